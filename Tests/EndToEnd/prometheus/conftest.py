"""Shared helpers of the daemon tests (`flagwatch run`): the daemon itself, a real Prometheus,
the exposition-format parser, and Istio text lines with chosen clusters.

  Daemon               `flagwatch run --config <tmp yaml> --listen 127.0.0.1:0`; its port is
                       found from /proc (the socket the process listens on), then /-/ready
  Prometheus           /usr/bin/prometheus (Debian) with a tmp config and tmp TSDB, listening on
                       127.0.0.1:0 (port from /proc); query(), targets(), own_metrics()
  parse_exposition     samples of a Prometheus text 0.0.4 / OpenMetrics body
  istio_line           one Istio 1.9+ TEXT line with a given cluster, code and flags
  listen_ports         the TCP ports a process listens on (/proc/PID/fd + /proc/PID/net/tcp*)
  poll                 bounded polling
  RecordingProxy       a thread forwarding GET /metrics to the daemon with the caller's Accept
                       header, recording that header and the daemon's Content-Type

Tests get this module through the `fwd` fixture (`fwd.Daemon(...)`, `fwd.poll(...)`), as the
other suites do: several conftest.py files exist, so `import conftest` would be ambiguous.

Every process goes through envoy_harness.Procs (stopped by PID: SIGTERM, then SIGKILL) and
every wait is bounded. Only 127.0.0.1 is used.
"""
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # envoy_harness, backends.py

from envoy_harness import LOOPBACK, REPO, flagwatch_path, tail  # noqa: E402

PROMETHEUS_BIN = os.environ.get("PROMETHEUS_BIN", "/usr/bin/prometheus")
PROMTOOL_BIN = os.environ.get("PROMTOOL_BIN", shutil.which("promtool") or "/usr/bin/promtool")

ACCEPT_PROMETHEUS = "text/plain;version=0.0.4;q=1.0"
ACCEPT_OPENMETRICS = "application/openmetrics-text;version=1.0.0"
# What Prometheus 2.x sends by default (scrape.scrapeAcceptHeader).
ACCEPT_PROMETHEUS_DEFAULT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                             "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "e2e: end-to-end test that runs the flagwatch daemon (and Envoy / Prometheus) on 127.0.0.1",
    )


# Taken at import: by the time a fixture runs, sys.modules["conftest"] may be another suite's.
_THIS = sys.modules.get(__name__)  # absent when another suite loads this file by path


@pytest.fixture(scope="session")
def fwd():
    """This module: the helpers below."""
    return _THIS


# --------------------------------------------------------------------------- small utilities

def poll(predicate, timeout, interval=0.1):
    """Calls predicate() until it returns something truthy or `timeout` seconds pass; returns
    the last value (falsy on timeout)."""
    deadline = time.monotonic() + timeout
    value = None
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def listen_ports(pid):
    """TCP ports the process `pid` listens on (from its socket descriptors and /proc/net/tcp*)."""
    inodes = set()
    try:
        fds = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return []
    for fd in fds:
        try:
            m = re.match(r"socket:\[(\d+)\]$", os.readlink("/proc/%d/fd/%s" % (pid, fd)))
        except OSError:
            continue
        if m:
            inodes.add(m.group(1))
    ports = []
    for table in ("tcp", "tcp6"):
        try:
            with open("/proc/%d/net/%s" % (pid, table)) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == "0A" and fields[9] in inodes:  # 0A = LISTEN
                ports.append(int(fields[1].rsplit(":", 1)[1], 16))
    return sorted(set(ports))


def http_get(port, path, headers=None, timeout=10.0, method="GET"):
    """(status, headers {lower-case name: value}, body bytes) of one request on a new connection."""
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        conn.close()


def vm_status(pid):
    """{"VmRSS": bytes, "VmHWM": bytes, ...} from /proc/PID/status (kB lines only)."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if len(parts) == 2 and parts[1] == "kB":
                    out[key] = int(parts[0]) * 1024
    except OSError:
        pass
    return out


# --------------------------------------------------------------------------- exposition parsing

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$')
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)')


def _unescape(value):
    return re.sub(r'\\(.)', lambda m: {"n": "\n", "\\": "\\", '"': '"'}.get(m.group(1), "\\" + m.group(1)), value)


def parse_labels(text):
    labels = {}
    pos = 0
    while pos < len(text):
        m = _LABEL.match(text, pos)
        if not m:
            raise ValueError("bad label block {%s} at %d" % (text, pos))
        labels[m.group(1)] = _unescape(m.group(2))
        pos = m.end()
    return labels


def parse_exposition(body):
    """[(name, labels, value)] from a text 0.0.4 or OpenMetrics body; comments skipped. Raises
    ValueError on a line that is neither."""
    samples = []
    for line in body.decode("utf-8").split("\n"):
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise ValueError("not a sample line: %r" % line)
        samples.append((m.group(1), parse_labels(m.group(3) or ""), float(m.group(4))))
    return samples


def select(samples, name, **match):
    """Samples of one metric whose labels include `match`."""
    return [(labels, value) for n, labels, value in samples
            if n == name and all(labels.get(k) == v for k, v in match.items())]


def by(samples, name, *keys, **match):
    """{(label values of keys...): value} for one metric (summing duplicates)."""
    out = {}
    for labels, value in select(samples, name, **match):
        key = tuple(labels.get(k, "") for k in keys)
        out[key] = out.get(key, 0) + value
    return out


# --------------------------------------------------------------------------- Istio text lines

def istio_line(cluster, code=200, flags="-", seq=0):
    """One Istio 1.9+ TEXT access-log line (Istio's default format, with its newline)."""
    details = "via_upstream" if code and code < 500 else "upstream_reset_before_response_started{connection_failure}"
    return ('[2026-11-22T06:00:00.000Z] "GET /r/%d HTTP/1.1" %d %s %s - "-" 0 %d 3 - "-" "curl/8.5.0" '
            '"6d7c5c7e-0f4a-4a55-9c1e-%012d" "reviews.default.svc.cluster.local:9080" "10.244.1.7:9080" %s '
            '- 10.244.0.17:15006 10.244.0.9:40312 - default\n'
            % (seq, code, flags, details, 100 + seq % 900, seq % 10**12, cluster))


def istio_cluster(i, namespace="ns"):
    """A distinct Istio outbound cluster name."""
    return "outbound|%d||svc-%07d.%s-%d.svc.cluster.local" % (8000 + i % 1000, i, namespace, i % 97)


# --------------------------------------------------------------------------- the daemon

def _yaml(value):
    """A YAML flow scalar / sequence / mapping (JSON syntax is valid YAML flow syntax)."""
    return json.dumps(value)


def daemon_config(sources, state_dir, windows=("1m", "5m", "15m"), limits=None, follow=None):
    """A config file's text. sources: [{name, files, format, start_at, ...}]."""
    lines = ['listen: "127.0.0.1:0"', "state_dir: %s" % _yaml(str(state_dir)), "sources:"]
    for source in sources:
        first = True
        for key, value in source.items():
            lines.append("%s%s: %s" % ("  - " if first else "    ", key, _yaml(value)))
            first = False
    lines.append("windows: [%s]" % ", ".join(windows))
    for section, values in (("limits", limits), ("follow", follow)):
        if values:
            lines.append("%s:" % section)
            lines.extend("  %s: %s" % (k, v) for k, v in values.items())
    return "\n".join(lines) + "\n"


class Daemon:
    """`flagwatch run` on a config written into `work`; stopped through `procs` (by PID)."""

    def __init__(self, procs, work, config_text, binary=None, ready_timeout=20.0, extra_args=()):
        self.binary = Path(binary or flagwatch_path())
        if not (self.binary.is_file() and os.access(self.binary, os.X_OK)):
            pytest.fail("flagwatch binary not found at %s: run `swift build` in %s, or set FLAGWATCH_BIN"
                        % (self.binary, REPO), pytrace=False)
        work.mkdir(parents=True, exist_ok=True)
        self.config = work / "flagwatch.yaml"
        self.config.write_text(config_text)
        self.stderr_path = work / "flagwatch.stderr.log"
        argv = [str(self.binary), "run", "--config", str(self.config), "--listen", "127.0.0.1:0", *extra_args]
        self.proc = procs.start(argv, self.stderr_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        self.pid = self.proc.pid
        self.port = None

        def ready():
            if self.proc.poll() is not None:
                pytest.fail("flagwatch run exited with %s:\n%s" % (self.proc.returncode, self.stderr()),
                            pytrace=False)
            if self.port is None:
                ports = listen_ports(self.pid)
                if not ports:
                    return False
                self.port = ports[0]
            try:
                return http_get(self.port, "/-/ready", timeout=2.0)[0] == 200
            except OSError:
                return False

        if not poll(ready, ready_timeout, 0.05):
            pytest.fail("flagwatch run not ready within %.0f s (port %s):\n%s"
                        % (ready_timeout, self.port, self.stderr()), pytrace=False)

    def stderr(self, n=30):
        return tail(self.stderr_path, n)

    def scrape(self, accept=ACCEPT_PROMETHEUS, timeout=30.0):
        """(content type, body bytes) of GET /metrics."""
        status, headers, body = http_get(self.port, "/metrics", {"Accept": accept}, timeout=timeout)
        assert status == 200, "GET /metrics: %s %r" % (status, body[:200])
        return headers.get("content-type", ""), body

    def samples(self, accept=ACCEPT_PROMETHEUS):
        return parse_exposition(self.scrape(accept)[1])

    def memory(self):
        return vm_status(self.pid)

    def terminate(self, timeout=15.0):
        """SIGTERM by PID; the exit status (None if it did not exit in time)."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None


# --------------------------------------------------------------------------- Prometheus

class Prometheus:
    """A real Prometheus on 127.0.0.1 (kernel-chosen port), tmp config and TSDB."""

    def __init__(self, procs, work, jobs, scrape_interval="1s", ready_timeout=30.0):
        """jobs: {job name: ["127.0.0.1:port", ...]}."""
        if not os.access(PROMETHEUS_BIN, os.X_OK):
            pytest.fail("prometheus not found at %s (Debian: apt-get install prometheus; or set PROMETHEUS_BIN)"
                        % PROMETHEUS_BIN, pytrace=False)
        work.mkdir(parents=True, exist_ok=True)
        config = ["global:", "  scrape_interval: %s" % scrape_interval, "  scrape_timeout: %s" % scrape_interval,
                  "  evaluation_interval: %s" % scrape_interval, "scrape_configs:"]
        for job, targets in jobs.items():
            config += ["  - job_name: %s" % _yaml(job), "    static_configs:",
                       "      - targets: %s" % _yaml(list(targets))]
        self.config = work / "prometheus.yml"
        self.config.write_text("\n".join(config) + "\n")
        self.log = work / "prometheus.log"
        argv = [PROMETHEUS_BIN, "--config.file", str(self.config), "--storage.tsdb.path", str(work / "tsdb"),
                "--web.listen-address", "127.0.0.1:0", "--log.level", "info"]
        self.proc = procs.start(argv, self.log, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, cwd=work)
        self.port = None

        def ready():
            if self.proc.poll() is not None:
                pytest.fail("prometheus exited with %s:\n%s" % (self.proc.returncode, tail(self.log)), pytrace=False)
            if self.port is None:
                ports = listen_ports(self.proc.pid)
                if not ports:
                    return False
                self.port = ports[0]
            try:
                return http_get(self.port, "/-/ready", timeout=2.0)[0] == 200
            except OSError:
                return False

        if not poll(ready, ready_timeout, 0.1):
            pytest.fail("prometheus not ready within %.0f s:\n%s" % (ready_timeout, tail(self.log)), pytrace=False)

    def api(self, path, **params):
        url = "/api/v1/" + path + ("?" + urllib.parse.urlencode(params) if params else "")
        status, _, body = http_get(self.port, url, timeout=10.0)
        data = json.loads(body)
        if status != 200 or data.get("status") != "success":
            raise AssertionError("prometheus %s: %s %s" % (url, status, body[:500]))
        return data["data"]

    def query(self, expr):
        """[(labels, value)] of an instant query (vector result)."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def targets(self):
        return self.api("targets")["activeTargets"]

    def own_metrics(self):
        status, _, body = http_get(self.port, "/metrics", {"Accept": ACCEPT_PROMETHEUS}, timeout=10.0)
        assert status == 200
        return parse_exposition(body)


# --------------------------------------------------------------------------- recording proxy

class RecordingProxy:
    """GET <path> -> the daemon, with the caller's Accept; records (Accept, Content-Type, body end).
    A thread of the test process on 127.0.0.1 (kernel-chosen port); stop() ends it."""

    def __init__(self, upstream_port):
        records = self.records = []
        lock = self.lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802
                accept = self.headers.get("Accept", "")
                try:
                    status, headers, body = http_get(upstream_port, self.path, {"Accept": accept}, timeout=10.0)
                except OSError as e:
                    status, headers, body = 502, {"content-type": "text/plain"}, str(e).encode()
                with lock:
                    records.append((accept, headers.get("content-type", ""), body[-64:]))
                self.send_response(status)
                self.send_header("Content-Type", headers.get("content-type", "text/plain"))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def snapshot(self):
        with self.lock:
            return list(self.records)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
