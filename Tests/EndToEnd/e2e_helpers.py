"""Process and polling helpers shared by the end-to-end suites.

Suites import it by name (`from e2e_helpers import Processes, poll_until`): pytest puts
Tests/EndToEnd on sys.path because its conftest.py lives there.

  free_port()            a TCP port on 127.0.0.1 the kernel just handed out
  poll_until(...)        calls a function until it returns something truthy, bounded in time
  Processes              the processes a test starts: each one stopped by PID (SIGTERM, a bounded
                         wait, then SIGKILL), also when the test fails halfway
  stop_pid(...)          the same stop for a PID the test did not start itself
  http_get(...)          one GET on 127.0.0.1, returning (status, body) also for 4xx/5xx
  wait_http_ready(...)   polls a URL until it answers 200
  metric_samples(text)   the Prometheus text format as {"name{labels}": value}

Every loop here has a deadline; nothing waits forever.
"""
import ctypes
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

LOOPBACK = "127.0.0.1"


def free_port():
    """A port on 127.0.0.1 that was free a moment ago (the kernel chose it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


class Timeout(AssertionError):
    """poll_until's deadline passed: an assertion failure, so pytest reports it as such."""


def poll_until(check, timeout, what, interval=0.1, context=None):
    """Calls `check()` until it returns a truthy value, and returns that value. After `timeout`
    seconds raises Timeout naming `what`, the last value (or exception) seen, and `context()`
    (e.g. a log tail) when given. Exceptions from `check` count as "not yet"."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = check()
            if last:
                return last
        except Exception as error:  # noqa: BLE001 - "not yet", reported if it lasts
            last = error
        if time.monotonic() >= deadline:
            extra = ""
            if context is not None:
                try:
                    extra = "\n" + str(context())
                except Exception as error:  # noqa: BLE001
                    extra = "\n(context unavailable: %r)" % error
            raise Timeout("%s: not within %.0f s; last: %r%s" % (what, timeout, last, extra))
        time.sleep(interval)


def _die_with_parent():
    """In the child: SIGTERM when the test process dies without its teardown (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def stop_pid(pid, sig=signal.SIGTERM, grace=10.0, is_gone=None):
    """Sends `sig` to `pid`, waits up to `grace` seconds for it to go, then SIGCONT + SIGKILL.
    Returns True if it went within the grace period. `is_gone()` tells whether it has exited
    (default: the PID no longer exists; a child of ours must be reaped by its Popen instead)."""
    def gone():
        if is_gone is not None:
            return is_gone()
        try:
            os.kill(pid, 0)
            return False
        except ProcessLookupError:
            return True
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if gone():
            return True
        time.sleep(0.05)
    for last in (signal.SIGCONT, signal.SIGKILL):
        try:
            os.kill(pid, last)
        except ProcessLookupError:
            pass
    return False


class Processes:
    """The processes one test starts. `start` writes the child's stdout and stderr to a file;
    `stop` ends one by PID and returns its exit status; `stop_all` (teardown) ends the rest in
    reverse order of starting."""

    def __init__(self):
        self._started = []

    def start(self, argv, log_path, env=None, **popen_args):
        with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            process = subprocess.Popen(
                [str(arg) for arg in argv], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                env=env, preexec_fn=_die_with_parent, close_fds=True, **popen_args)
        process.log_path = log_path
        self._started.append(process)
        return process

    def stop(self, process, sig=signal.SIGTERM, grace=10.0):
        """Stops `process` (SIGTERM by default); returns its exit status, or None if it had to
        be killed after `grace` seconds."""
        in_time = stop_pid(process.pid, sig, grace, is_gone=lambda: process.poll() is not None)
        try:
            status = process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            status = None
        return status if in_time else None

    def stop_all(self, grace=5.0):
        for process in reversed(self._started):
            if process.poll() is None:
                self.stop(process, grace=grace)
        self._started = []


def log_tail(path, lines=30):
    try:
        with open(path, "rb") as log:
            text = log.read().decode("utf-8", "replace")
    except OSError as error:
        return "(no log at %s: %s)" % (path, error)
    return "--- %s ---\n%s" % (path, "\n".join(text.splitlines()[-lines:]))


def http_get(url, timeout=5.0):
    """(status, body bytes) of a GET; 4xx and 5xx are answers too, not exceptions."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_http_ready(url, timeout, context=None):
    """Polls `url` until it answers 200; returns the body."""
    def ready():
        status, body = http_get(url, timeout=2.0)
        return body if status == 200 else None
    return poll_until(ready, timeout, "GET %s == 200" % url, interval=0.1, context=context)


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*\})?) (\S+)(?: \S+)?$")


def metric_samples(text):
    """{"name{labels}": value} for every sample line of a Prometheus text page."""
    samples = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match:
            samples[match.group(1)] = float(match.group(2))
    return samples


def flag_counts(samples, metric="flagwatch_response_flags_total"):
    """{(upstream_cluster, response_flag): count} from metric_samples' result, zeros left out."""
    label = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
    counts = {}
    for key, value in samples.items():
        if not key.startswith(metric + "{") or value == 0:
            continue
        labels = dict(label.findall(key[len(metric):]))
        pair = (labels.get("upstream_cluster"), labels.get("response_flag"))
        counts[pair] = counts.get(pair, 0) + int(value)
    return counts


# --------------------------------------------------------------------------- flagwatch itself

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def flagwatch_binary():
    """$FLAGWATCH_BIN, else the debug build of this checkout."""
    return os.environ.get("FLAGWATCH_BIN") or os.path.join(REPO, ".build", "debug", "flagwatch")


def istio_line(cluster, flags="-", code=200, index=0):
    """One Istio 1.9+ TEXT access-log line, with its newline."""
    return ('[2026-12-06T02:34:27.532Z] "GET /r/%d HTTP/1.1" %d %s via_upstream - "-" 0 14 11 10 "-" '
            '"curl/8.5.0" "0d8e5a88-130d-4223-9294-7eee8276b7f5" "svc:8080" "10.244.1.7:8080" %s '
            "10.244.0.17:55718 10.244.0.17:15006 10.244.1.9:56922 - default\n" % (index, code, flags, cluster))


class RunningDaemon:
    """`flagwatch run --config CONFIG --listen 127.0.0.1:<free port>` started through
    `processes` (so the test's teardown stops it by PID), ready when this returns."""

    def __init__(self, processes, config_path, log_path, ready_timeout=20.0, extra_args=()):
        self.port = free_port()
        self.url = "http://%s:%d" % (LOOPBACK, self.port)
        self.log_path = log_path
        self.process = processes.start([flagwatch_binary(), "run", "--config", config_path,
                                        "--listen", "%s:%d" % (LOOPBACK, self.port), *extra_args], log_path)
        self.pid = self.process.pid

        def ready():
            if self.process.poll() is not None:
                raise Timeout("flagwatch exited with %s\n%s" % (self.process.returncode, log_tail(log_path)))
            return http_get(self.url + "/-/ready", timeout=2)[0] == 200
        poll_until(ready, ready_timeout, "flagwatch ready", context=self.log)

    def log(self):
        return log_tail(self.log_path)

    def samples(self, timeout=5.0):
        status, body = http_get(self.url + "/metrics", timeout=timeout)
        assert status == 200, status
        return metric_samples(body.decode())

    def sample(self, key, default=0):
        """One sample, e.g. 'flagwatch_lines_total{source="envoy"}'."""
        return self.samples().get(key, default)
