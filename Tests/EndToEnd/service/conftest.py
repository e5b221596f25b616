"""Helpers of the service tests (systemd notification protocol, reload): a `flagwatch run` started
with a given environment, on a kernel-chosen free port on 127.0.0.1, with an Istio access log in
tmp_path, and a reader of its /metrics. Every process is stopped by PID in teardown; every wait
is bounded."""
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

# Test modules import these helpers as `service_kit`: `from conftest import ...` would get
# whichever conftest.py was imported first when several suites run together.
import sys  # noqa: E402
sys.modules["service_kit"] = sys.modules[__name__]

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
BIN = os.environ.get("FLAGWATCH_BIN", str(REPO / ".build" / "debug" / "flagwatch"))


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def istio_line(cluster, flags="-", code=200, index=0):
    return (
        '[2026-12-05T02:34:27.532Z] "GET /r/%d HTTP/1.1" %d %s via_upstream - "-" 0 14 11 10 "-" '
        '"curl/8.5.0" "0d8e5a88-130d-4223-9294-7eee8276b7f5" "svc:8080" "10.244.1.7:8080" %s '
        "10.244.0.17:55718 10.244.0.17:15006 10.244.1.9:56922 - default\n" % (index, code, flags, cluster)
    )


SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*\})?) (\S+)$")


class Daemon:
    def __init__(self, tmp, config_text, env=None):
        self.tmp = tmp
        self.config = tmp / "flagwatch.yaml"
        self.config.write_text(config_text)
        self.port = free_port()
        self.stderr_path = tmp / "flagwatch.stderr"
        self._stderr = open(self.stderr_path, "ab")
        full_env = dict(os.environ)
        for key in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "JOURNAL_STREAM"):
            full_env.pop(key, None)
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [BIN, "run", "--config", str(self.config), "--listen", "127.0.0.1:%d" % self.port, "--log-level", "info"],
            stdin=subprocess.DEVNULL, stdout=self._stderr, stderr=self._stderr, env=full_env, close_fds=True)
        self.pid = self.proc.pid

    def get(self, path, timeout=10):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.port, path), timeout=timeout) as response:
            return response.status, response.read()

    def wait_ready(self, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "flagwatch exited%s" % self.context()
            try:
                if self.get("/-/ready", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        pytest.fail("flagwatch not ready within %d s%s" % (timeout, self.context()))

    def samples(self):
        status, body = self.get("/metrics")
        assert status == 200
        result = {}
        for line in body.decode().splitlines():
            match = SAMPLE.match(line)
            if match and not line.startswith("#"):
                result[match.group(1)] = float(match.group(2))
        return result

    def wait_for(self, predicate, what, timeout=30):
        deadline = time.monotonic() + timeout
        samples = {}
        while time.monotonic() < deadline:
            samples = self.samples()
            if predicate(samples):
                return samples
            time.sleep(0.1)
        interesting = {k: v for k, v in samples.items() if k.startswith("flagwatch_lines") or "flags_total" in k}
        pytest.fail("%s not reached within %d s; metrics: %r%s" % (what, timeout, interesting, self.context()))

    def stderr_text(self):
        return self.stderr_path.read_text(errors="replace")

    def context(self):
        return "\n--- flagwatch stderr ---\n" + self.stderr_text()[-3000:]

    def stop(self, sig=signal.SIGTERM, timeout=15):
        os.kill(self.pid, sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail("flagwatch did not exit within %d s%s" % (timeout, self.context()))

    def close(self):
        if self.proc.poll() is None:
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.kill(self.pid, sig)
                except ProcessLookupError:
                    pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self._stderr.close()


@pytest.fixture
def start_daemon(tmp_path):
    daemons = []

    def start(config_text, env=None):
        daemon = Daemon(tmp_path, config_text, env)
        daemons.append(daemon)
        return daemon

    yield start
    for daemon in daemons:
        daemon.close()
