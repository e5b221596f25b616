"""The flagwatch binary under test: one wrapper per command, on one process base.

  flagwatch_binary()         $FLAGWATCH_BIN, else .build/debug/flagwatch of this checkout
  release_binary()           $FLAGWATCH_RELEASE_BIN, else .build/release/flagwatch (image, boot)
  FlagwatchProcess           start through a Processes registry (stopped by PID), log, context,
                             stop (a signal, a bounded wait, the exit status), close (SIGKILL)
  FlagwatchRun               `flagwatch run`: its port (given, or found from /proc when the
                             daemon listens on :0), wait_ready (/-/ready), get / request,
                             samples, wait_samples
  run_argv(config, ...)      the argv of `flagwatch run --config ... --listen 127.0.0.1:PORT`
  start_run(...)             FlagwatchRun on a config, ready when it returns
  start_on_free_port(start)  retries start(port) on another free port if flagwatch cannot listen
  FlagwatchFollow            `flagwatch scan --follow --output json`: a thread reads stdout, one
                             JSON object per line; wait_ready / wait_more / wait_counts / hold /
                             finish / stop / kill / terminate
  daemon_config(...)         a config file's text
"""
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from harness import REPO
from harness.lines import describe_difference
from harness.metrics import ACCEPT_PROMETHEUS, metric_samples, parse_exposition
from harness.net import LOOPBACK, free_port, http_get, http_request
from harness.polling import Timeout, poll_until
from harness.processes import Processes, kill_pid, listen_ports, log_tail, open_paths, stop_popen, tail, vm_status

READY_TIMEOUT = 20.0     # /-/ready answers 200, or the first JSON object
STOP_TIMEOUT = 15.0      # exit after SIGTERM / SIGINT
FOLLOW_READY_TIMEOUT = 15.0
COUNT_TIMEOUT = 20.0     # counts reach the expected value
SETTLE_REPORTS = 4       # after the counts are right, they must stay right this many objects
INTERVAL = 0.2           # --interval of the follow tests: one JSON object every 0.2 s


def flagwatch_binary():
    """$FLAGWATCH_BIN, else the debug build of this checkout."""
    return os.environ.get("FLAGWATCH_BIN") or str(REPO / ".build" / "debug" / "flagwatch")


BIN = flagwatch_binary()


def release_binary():
    """$FLAGWATCH_RELEASE_BIN (an existing release build, used as it is), else
    .build/release/flagwatch of this checkout (which `make image` / `make install` rebuild)."""
    return Path(os.environ.get("FLAGWATCH_RELEASE_BIN") or REPO / ".build" / "release" / "flagwatch")


def release_make_args():
    """make arguments that use $FLAGWATCH_RELEASE_BIN without building it (`-o release`); none
    when it is not set."""
    given = os.environ.get("FLAGWATCH_RELEASE_BIN")
    return ["-o", "release", "RELEASE_BIN=%s" % given] if given else []


def require_binary(binary=None):
    binary = Path(binary or flagwatch_binary())
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.fail("flagwatch binary not found at %s: run `swift build` in %s, or set FLAGWATCH_BIN"
                    % (binary, REPO), pytrace=False)
    return binary


class FlagwatchProcess:
    """One flagwatch process (or a command that execs it, keeping the PID), started through
    `processes` (a fresh registry when None), its stderr (and stdout unless `stdout=`) to
    `log_path`."""

    def __init__(self, argv, log_path, processes=None, stdout=None, env=None, preexec_fn=None):
        self.processes = processes if processes is not None else Processes()
        self.argv = [str(arg) for arg in argv]
        self.log_path = self.stderr_path = Path(log_path)
        self.proc = self.process = self.processes.start(self.argv, self.log_path, env=env, stdout=stdout,
                                                        preexec_fn=preexec_fn)
        self.pid = self.proc.pid

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    stderr_text = log_text

    def stderr_tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])

    def log(self, n=30):
        return log_tail(self.log_path, n)

    def context(self):
        text = self.log_text()
        end = text[-3000:]
        return "\n-- flagwatch argv: %s\n-- pid %d, exit status %s; log (last %d of %d bytes, %s):\n%s" % (
            " ".join(self.argv), self.pid, self.proc.poll(), len(end), len(text), self.log_path, end)

    def send_signal(self, sig):
        os.kill(self.pid, sig)

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Sends `sig` by PID; the exit status. Not exiting within `timeout` fails the test (after
        a SIGKILL: harness.processes.stop_popen)."""
        status = stop_popen(self.proc, sig, timeout)
        if status is None:
            pytest.fail("flagwatch did not exit within %.0f s of %s%s" % (timeout, sig.name, self.context()))
        return status

    def open_paths(self):
        return open_paths(self.pid)

    def force_stop(self):
        """SIGCONT + SIGKILL by PID if it still runs, whatever state it is in; reaps it."""
        if self.proc.poll() is None:
            kill_pid(self.pid)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass

    def close(self):
        """Teardown: force_stop() and close our end of its stdout."""
        self.force_stop()
        if self.proc.stdout:
            self.proc.stdout.close()


# --------------------------------------------------------------------------- flagwatch run

def run_argv(config, port, extra_args=(), prefix=(), binary=None):
    """`[prefix...] flagwatch run --config CONFIG --listen 127.0.0.1:PORT [extra...]`; port None:
    no --listen (the config's)."""
    argv = [*prefix, binary or flagwatch_binary(), "run", "--config", config]
    if port is not None:
        argv += ["--listen", "%s:%d" % (LOOPBACK, port)]
    return [str(arg) for arg in [*argv, *extra_args]]


class FlagwatchRun(FlagwatchProcess):
    """`flagwatch run` listening on 127.0.0.1:`port`; port 0: the kernel chose it, found from
    /proc (the socket the process listens on) by wait_ready."""

    def __init__(self, argv, log_path, port, processes=None, **kw):
        super().__init__(argv, log_path, processes, **kw)
        self.port = port or None

    def url(self, path=""):
        return "http://%s:%d%s" % (LOOPBACK, self.port, path)

    def _find_port(self):
        if self.port is None:
            ports = listen_ports(self.pid)
            self.port = ports[0] if ports else None
        return self.port

    def wait_ready(self, timeout=READY_TIMEOUT, interval=0.05):
        """Until GET /-/ready answers 200; an exit or the deadline fails the test."""
        def ready():
            if self.proc.poll() is not None:
                pytest.fail("flagwatch exited with %s%s" % (self.proc.returncode, self.context()), pytrace=False)
            if self._find_port() is None:
                return False
            try:
                return http_get(self.url("/-/ready"), timeout=2.0)[0] == 200
            except OSError:
                return False
        try:
            poll_until(ready, timeout, "flagwatch run answers /-/ready with 200 (port %s)" % self.port,
                       interval=interval)
        except Timeout as error:
            pytest.fail("%s%s" % (error, self.context()), pytrace=False)
        return self

    def get(self, path, timeout=10.0):
        """(status, body bytes) of a GET."""
        return http_get(self.url(path), timeout=timeout)

    def request(self, path, headers=None, timeout=10.0, method="GET"):
        """(status, {lower-case header: value}, body bytes)."""
        return http_request(self.port, path, headers, timeout=timeout, method=method)

    def samples(self, timeout=5.0):
        """One scrape of /metrics as {"name{labels}": value}."""
        status, body = self.get("/metrics", timeout=timeout)
        assert status == 200, "GET /metrics: %s%s" % (status, self.context())
        return metric_samples(body.decode())

    def sample(self, key, default=0):
        """One sample, e.g. 'flagwatch_lines_total{source="envoy"}'."""
        return self.samples().get(key, default)

    def lines_total(self, source="envoy"):
        return self.samples().get('flagwatch_lines_total{source="%s"}' % source, 0)

    def error_count(self, kind, samples=None, source="envoy"):
        samples = samples if samples is not None else self.samples()
        return samples.get('flagwatch_source_errors_total{source="%s",kind="%s"}' % (source, kind), 0)

    def wait_samples(self, predicate, what, timeout=30):
        """Scrapes until predicate(samples) holds; returns those samples."""
        deadline = time.monotonic() + timeout
        samples = {}
        while time.monotonic() < deadline:
            samples = self.samples()
            if predicate(samples):
                return samples
            time.sleep(0.1)
        interesting = {k: v for k, v in samples.items() if k.startswith("flagwatch_lines") or "flags_total" in k}
        pytest.fail("%s not reached within %d s; metrics: %r%s" % (what, timeout, interesting, self.context()))

    wait_for = wait_samples


def start_run(processes, config_path, log_path, ready_timeout=READY_TIMEOUT, extra_args=()):
    """`flagwatch run --config CONFIG --listen 127.0.0.1:<free port>` started through
    `processes` (so the test's teardown stops it by PID), ready when this returns."""
    port = free_port()
    run = FlagwatchRun(run_argv(config_path, port, extra_args), log_path, port, processes)
    return run.wait_ready(ready_timeout, interval=0.1)


RunningDaemon = start_run


def start_on_free_port(start, attempts=5, ready_timeout=READY_TIMEOUT):
    """`start(port)` starts a FlagwatchRun on a free_port(); returns it once ready. When the port
    was taken in between (flagwatch says "cannot listen"), force-stops it and tries another."""
    for _ in range(attempts):
        run = start(free_port())
        try:
            run.wait_ready(ready_timeout)
            return run
        except BaseException:  # pytest.fail is a BaseException
            if "cannot listen" not in run.log_text():
                raise
            run.force_stop()
    pytest.fail("flagwatch could not listen on a free port in %d attempts%s" % (attempts, run.context()))

# What a service manager may have put in our environment; a daemon under test gets none of it.
SERVICE_ENVIRONMENT = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "JOURNAL_STREAM")


def start_service_run(tmp, config_text, env=None, processes=None):
    """`flagwatch run --log-level info` on `config_text` (written to tmp/flagwatch.yaml) and a
    free port, with exactly the service environment `env` (e.g. NOTIFY_SOCKET); not yet ready."""
    config = tmp / "flagwatch.yaml"
    config.write_text(config_text)
    full_env = {k: v for k, v in os.environ.items() if k not in SERVICE_ENVIRONMENT}
    full_env.update(env or {})
    port = free_port()
    run = FlagwatchRun(run_argv(config, port, ("--log-level", "info")), tmp / "flagwatch.stderr", port, processes,
                       env=full_env)
    run.config = config
    return run


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


# --------------------------------------------------------------------------- scan --follow

class FlagwatchFollow(FlagwatchProcess):
    """A running `flagwatch scan --follow --output json`; stdout is read by a thread, one JSON
    object per line; stderr goes to a file (its tail is shown on failures)."""

    def __init__(self, argv, stderr_path, processes=None, drop_diagnosis=True):
        super().__init__(argv, stderr_path, processes, stdout=subprocess.PIPE)
        self.drop_diagnosis = drop_diagnosis
        self.reports = []
        self.bad_output = self.garbage = []
        self.eof = False
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, name="flagwatch-stdout-%d" % self.pid, daemon=True)
        self._reader.start()

    # -- output -------------------------------------------------------------------------------

    def _read(self):
        try:
            self._read_lines()
        except (OSError, ValueError):  # stdout closed by the teardown
            pass
        with self._cond:
            self.eof = True
            self._cond.notify_all()

    def _read_lines(self):
        for raw in self.proc.stdout:
            try:
                obj = json.loads(raw)
            except ValueError:
                obj = None
            with self._cond:
                if isinstance(obj, dict):
                    # The counts are compared here; a cluster's diagnosis is scan's (test_scan_cli.py).
                    for cluster in (obj.get("clusters") or {}).values() if self.drop_diagnosis else ():
                        if isinstance(cluster, dict):
                            cluster.pop("diagnosis", None)
                    self.reports.append(obj)
                else:
                    self.bad_output.append(raw)
                self._cond.notify_all()

    def latest(self):
        with self._cond:
            return self.reports[-1] if self.reports else None

    def count(self):
        with self._cond:
            return len(self.reports)

    def context(self):
        return "\n-- flagwatch argv: %s\n-- pid %d, exit status %s, %d objects; stderr tail (%s):\n%s" % (
            " ".join(self.argv), self.pid, self.proc.poll(), self.count(), self.stderr_path, self.stderr_tail()
        )

    def _wait_objects(self, n, timeout, what):
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.reports) < n:
                if self.eof or self.proc.poll() is not None:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.2))
            if len(self.reports) >= n:
                return
        pytest.fail("waiting for %s: flagwatch printed %d JSON objects, %d wanted%s"
                    % (what, self.count(), n, self.context()))

    def wait_ready(self, timeout=FOLLOW_READY_TIMEOUT):
        """The first object: all sources are open and start positions fixed."""
        self._wait_objects(1, timeout, "the first JSON object (ready)")
        first = self.reports[0]
        assert set(first) == {"lines", "malformed", "clusters"}, first
        return first

    def wait_more(self, n=SETTLE_REPORTS, timeout=None):
        """Waits until n more objects have been printed (n more intervals have passed)."""
        target = self.count() + n
        self._wait_objects(target, timeout or (n * INTERVAL * 5 + 10), "%d more JSON objects" % n)
        return self.latest()

    def wait_counts(self, expected, timeout=COUNT_TIMEOUT, what="the expected counts"):
        """Waits until the latest object equals `expected` exactly; fails with a diff."""
        deadline = time.monotonic() + timeout
        while True:
            latest = self.latest()
            if latest == expected:
                return latest
            if self.proc.poll() is not None and self.eof:
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        pytest.fail("flagwatch did not reach %s within %.0f s:\n%s%s"
                    % (what, timeout, describe_difference(expected, self.latest()), self.context()))

    def hold(self, expected, n=SETTLE_REPORTS, what="the expected counts"):
        """The counts must still equal `expected` after n more objects (nothing counted twice,
        nothing counted early)."""
        latest = self.wait_more(n)
        assert latest == expected, "counts moved away from %s:\n%s%s" % (
            what, describe_difference(expected, latest), self.context())
        return latest

    def check_stream(self):
        """Every stdout line was a JSON object; cumulative counts never go down."""
        assert not self.bad_output, "stdout lines that are not JSON objects: %r%s" % (self.bad_output[:3], self.context())
        previous = 0
        for report in self.reports:
            assert report["lines"] >= previous, "cumulative `lines` went down: %d then %d%s" % (
                previous, report["lines"], self.context())
            previous = report["lines"]

    # -- signals ------------------------------------------------------------------------------

    def pause(self):
        self.send_signal(signal.SIGSTOP)

    def resume(self):
        self.send_signal(signal.SIGCONT)

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Graceful stop: exit status 0 and one last object; returns that last object."""
        before = self.count()
        status = super().stop(sig, timeout)
        self._reader.join(10)
        assert status == 0, "exit status %s after %s%s" % (status, sig.name, self.context())
        assert self.count() > before, "no last JSON object after %s%s" % (sig.name, self.context())
        self.check_stream()
        return self.latest()

    def kill(self):
        """SIGKILL: no last object, no checkpoint save."""
        self.send_signal(signal.SIGKILL)
        self.proc.wait(STOP_TIMEOUT)
        self._reader.join(10)
        self.check_stream()

    def finish(self, expected, sig=signal.SIGTERM, what="the expected counts"):
        """Waits for exactly `expected`, checks it holds, stops with sig, checks the last object."""
        self.wait_counts(expected, what=what)
        self.hold(expected, what=what)
        final = self.stop(sig)
        assert final == expected, "last object after %s differs:\n%s%s" % (
            sig.name, describe_difference(expected, final), self.context())
        return final

    def close(self):
        """Teardown: stop the process by PID whatever state it is in."""
        self.force_stop()
        self._reader.join(5)
        super().close()

    # -- for long runs whose reports are judged by the test ----------------------------------

    def last(self):
        return self.latest()

    def stderr(self, n=30):
        return self.stderr_tail(n) or "(no stderr)"

    def wait_stable(self, want_lines, reports, timeout):
        """Until the last `reports` objects are identical and count `want_lines` lines
        (bounded). Returns the last object either way; the test judges it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            with self._cond:
                end = self.reports[-reports:]
            if len(end) == reports and all(r == end[0] for r in end) and end[0].get("lines") == want_lines:
                break
            time.sleep(0.1)
        return self.latest()

    def terminate(self, timeout=STOP_TIMEOUT):
        """SIGTERM; returns (exit code or None, the final object or None)."""
        before = self.count()
        code = stop_popen(self.proc, signal.SIGTERM, timeout)
        if code is None:
            return None, None
        self._reader.join(5.0)
        with self._cond:
            return code, (self.reports[-1] if len(self.reports) > before else None)


class ScrapedRun(FlagwatchRun):
    """`flagwatch run --listen 127.0.0.1:0` on a config written into `work`, started through
    `procs` (stopped by PID), ready when constructed; samples() parses the exposition format
    (the prometheus/, alerting/ and full/ suites)."""

    def __init__(self, procs, work, config_text, binary=None, ready_timeout=20.0, extra_args=()):
        self.binary = require_binary(binary)
        work.mkdir(parents=True, exist_ok=True)
        self.config = work / "flagwatch.yaml"
        self.config.write_text(config_text)
        super().__init__(run_argv(self.config, 0, extra_args, binary=self.binary), work / "flagwatch.stderr.log",
                         0, procs)
        self.wait_ready(ready_timeout)

    def stderr(self, n=30):
        return tail(self.stderr_path, n)

    def scrape(self, accept=ACCEPT_PROMETHEUS, timeout=30.0):
        """(content type, body bytes) of GET /metrics."""
        status, headers, body = self.request("/metrics", {"Accept": accept}, timeout=timeout)
        assert status == 200, "GET /metrics: %s %r" % (status, body[:200])
        return headers.get("content-type", ""), body

    def samples(self, accept=ACCEPT_PROMETHEUS):
        return parse_exposition(self.scrape(accept)[1])

    def memory(self):
        return vm_status(self.pid)

    def terminate(self, timeout=15.0):
        """SIGTERM by PID; the exit status (None if it did not exit in time and was killed)."""
        return stop_popen(self.proc, signal.SIGTERM, timeout)


Daemon = ScrapedRun
