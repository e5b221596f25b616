"""Failing upstreams for the nginx and HAProxy end-to-end tests, and flagwatch run on their logs.

  FailingBackends   listeners on 127.0.0.1 in threads of the test process: `hang` accepts and
                    never answers, `close_mid` sends half a response header and closes, `ok`
                    answers 200; `refused_port()` is a port nothing listens on
  procs, backends   the fixtures both suites' conftests import: Processes (stopped by PID) and
                    FailingBackends (stopped at teardown)
  port_open(...)    whether a started proxy accepts connections yet
  drive(url, n)     n GETs, each bounded in time; returns their status codes (None: no answer)
  scan_json(...)    `flagwatch scan --format F --output json FILES`, parsed
  flags_by_cluster  {cluster: {flag: count}} from scan's JSON
  FlagwatchRun      `flagwatch run` with the shipped default rules (`for` shortened), on
                    127.0.0.1, stopped by PID; alerts() reads /api/v1/alerts
  FollowScan        `flagwatch scan --follow --output json` on files, started before the
                    traffic; report() is its latest JSON report

Both suites load this module by name (their conftest puts this directory on sys.path).
Every loop and wait is bounded in time.
"""
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from e2e_helpers import (  # noqa: E402
    LOOPBACK, Processes, flagwatch_binary, free_port, http_get, log_tail, metric_samples, flag_counts, poll_until,
)

REPO = HERE.parent.parent.parent


class FailingBackends:
    """The upstreams' misbehaviours, each on its own kernel-chosen port."""

    def __init__(self):
        self._listeners = []
        self._connections = []
        self._halt = threading.Event()
        # Connections accepted per port, so a test can tell when a proxy reached a backend.
        self.accepted = {}
        self.hang = self._listen(self._never_answer)
        # Half a response header, then the connection closes.
        self.close_mid = self._listen(lambda connection: self._answer(connection, b"HTTP/1.1 200 OK\r\nContent-Type: text/pl"))
        self.ok = self._listen(lambda connection: self._answer(
            connection, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"))

    @staticmethod
    def refused_port():
        """A port the kernel just handed out and nobody listens on: connects are refused."""
        return free_port()

    def _listen(self, handle):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LOOPBACK, 0))
        listener.listen(128)
        listener.settimeout(0.2)
        self._listeners.append(listener)
        port = listener.getsockname()[1]
        self.accepted[port] = 0
        thread = threading.Thread(target=self._accept_loop, args=(listener, port, handle), daemon=True)
        thread.start()
        return port

    def _accept_loop(self, listener, port, handle):
        while not self._halt.is_set():
            try:
                connection, _ = listener.accept()
            except (socket.timeout, OSError):
                continue
            self.accepted[port] += 1
            self._connections.append(connection)
            threading.Thread(target=handle, args=(connection,), daemon=True).start()

    @staticmethod
    def _read_head(connection):
        connection.settimeout(5)
        data = b""
        try:
            while b"\r\n\r\n" not in data and len(data) < 65536:
                chunk = connection.recv(4096)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
        return data

    def _never_answer(self, connection):
        # Keeps the connection open (closed at stop()): the proxy's read timeout strikes.
        self._read_head(connection)

    def _answer(self, connection, payload):
        self._read_head(connection)
        try:
            connection.sendall(payload)
        except OSError:
            pass
        connection.close()

    def stop(self):
        self._halt.set()
        for sock in self._listeners + self._connections:
            try:
                sock.close()
            except OSError:
                pass


def port_open(process, port, name):
    """Whether `process` (still running) accepts connections on 127.0.0.1:`port`."""
    assert process.poll() is None, "%s exited" % name
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((LOOPBACK, port)) == 0


@pytest.fixture
def procs():
    """The processes a test starts, stopped by PID at teardown."""
    processes = Processes()
    yield processes
    processes.stop_all()


@pytest.fixture
def backends():
    failing = FailingBackends()
    yield failing
    failing.stop()


def drive(url, count, timeout=10.0, parallel=False):
    """`count` GETs of `url`; their status codes (None for no HTTP answer)."""
    codes = [None] * count

    def one(index):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                codes[index] = response.status
        except urllib.error.HTTPError as error:
            codes[index] = error.code
        except (OSError, ValueError):
            codes[index] = None

    if not parallel:
        for index in range(count):
            one(index)
        return codes
    threads = [threading.Thread(target=one, args=(index,), daemon=True) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout + 5)
    return codes


def scan_json(fmt, files):
    """`flagwatch scan --format FMT --output json FILES`, parsed."""
    result = subprocess.run(
        [flagwatch_binary(), "scan", "--format", fmt, "--output", "json", *[str(f) for f in files]],
        capture_output=True, timeout=60, check=False)
    assert result.returncode == 0, "scan failed (%d): %s" % (result.returncode, result.stderr.decode(errors="replace"))
    return json.loads(result.stdout)


def flags_by_cluster(report):
    """{cluster: {flag: count}} of the clusters with flags, from scan's JSON."""
    out = {}
    for name, cluster in report["clusters"].items():
        flags = {flag: count for flag, count in cluster.get("flags", {}).items() if count}
        if flags:
            out[name] = flags
    return out


def default_rules(for_duration="1s"):
    """The shipped rules (config/flagwatch.yaml), with `for` shortened so a test sees them fire."""
    import yaml
    config = yaml.safe_load((REPO / "config" / "flagwatch.yaml").read_text())
    rules = config["alerting"]["rules"]
    for rule in rules:
        rule["for"] = for_duration
    return rules


class FlagwatchRun:
    """`flagwatch run` reading `sources` from their beginning, with the default rules."""

    def __init__(self, procs, work, sources):
        import yaml
        work.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        config = {
            "listen": "%s:%d" % (LOOPBACK, self.port),
            "state_dir": str(work / "state"),
            "sources": [dict(source, start_at="beginning") for source in sources],
            "alerting": {"evaluate_every": "1s", "rules": default_rules()},
        }
        self.config_path = work / "flagwatch.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = work / "flagwatch.log"
        self.process = procs.start([flagwatch_binary(), "run", "--config", self.config_path], self.log_path)
        poll_until(lambda: self._ready(), 20, "flagwatch run ready", context=lambda: log_tail(self.log_path))

    def _ready(self):
        assert self.process.poll() is None, "flagwatch run exited: %s" % log_tail(self.log_path)
        try:
            return http_get("http://%s:%d/-/ready" % (LOOPBACK, self.port), timeout=2)[0] == 200
        except OSError:
            return False

    def flag_counts(self):
        """{(cluster, flag): count} from /metrics."""
        status, body = http_get("http://%s:%d/metrics" % (LOOPBACK, self.port))
        assert status == 200
        return flag_counts(metric_samples(body.decode()))

    def alerts(self):
        status, body = http_get("http://%s:%d/api/v1/alerts" % (LOOPBACK, self.port))
        assert status == 200
        return json.loads(body)["data"]["alerts"]

    def firing(self, alertname, cluster):
        for alert in self.alerts():
            labels = alert.get("labels", {})
            if (labels.get("alertname") == alertname and labels.get("upstream_cluster") == cluster
                    and alert.get("state") == "firing"):
                return alert
        return None


class FollowScan:
    """`flagwatch scan --follow --output json --format FMT --file F...`, reading the files from
    their end: only what is written after it started counts. Stdout (one JSON report per line)
    goes to a file; stopped by PID through `procs`."""

    def __init__(self, procs, work, fmt, files):
        work.mkdir(parents=True, exist_ok=True)
        self.out_path = work / "follow.out"
        argv = [flagwatch_binary(), "scan", "--follow", "--output", "json", "--format", fmt, "--interval", "1",
                "--state-dir", work / "state", "--log-level", "warning"]
        for path in files:
            argv += ["--file", path]
        # Reports (stdout) and the few warnings (stderr) share the file; reports are the lines
        # that are JSON objects.
        self.process = procs.start(argv, self.out_path)
        # The first report comes once every file is open and its start position fixed.
        poll_until(self.report, 20, "scan --follow's first report", context=lambda: log_tail(self.out_path))

    def report(self):
        """The latest complete report, or None."""
        for line in reversed(self.out_path.read_bytes().split(b"\n")[:-1]):
            if line.startswith(b"{"):
                try:
                    return json.loads(line)
                except ValueError:
                    continue
        return None


def wait_for_lines(path, predicate, what, timeout=20):
    """Polls the log at `path` until `predicate(text)` holds (proxies write their logs a
    moment after answering)."""
    return poll_until(lambda: predicate(Path(path).read_text(errors="replace")) if Path(path).exists() else False,
                      timeout, what, context=lambda: log_tail(path))


__all__ = [
    "FailingBackends", "FlagwatchRun", "FollowScan", "Processes", "drive", "flags_by_cluster", "free_port", "log_tail",
    "poll_until", "scan_json", "wait_for_lines", "os",
]
