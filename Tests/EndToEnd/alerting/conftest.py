"""Helpers of the alerting tests: the daemon helpers of the Prometheus suite (loaded from its
conftest by path, as `fwd`), a real Alertmanager, and Envoy in front of two toggle backends.

  Alertmanager      /usr/bin/prometheus-alertmanager (Debian) with a tmp config and storage,
                    on 127.0.0.1 (port found from /proc), clustering off; alerts() reads
                    GET /api/v2/alerts
  start_backend     toggle_backend.py on a given port (0: kernel-chosen)
  start_envoy       Envoy 1.40 with envoy-alerting.yaml.in, writing Istio's TEXT log

Every process goes through envoy_harness.Procs (stopped by PID) and every wait is bounded.
Only 127.0.0.1 is used.
"""
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

# Imported by the test module as `alerting_kit` (several suites have a conftest.py).
sys.modules["alerting_kit"] = sys.modules[__name__]

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # envoy_harness

from envoy_harness import admin_request, read_line, tail  # noqa: E402

ALERTMANAGER_BIN = os.environ.get("ALERTMANAGER_BIN", "/usr/bin/prometheus-alertmanager")


def _load_daemon_helpers():
    spec = importlib.util.spec_from_file_location("flagwatch_daemon_helpers", HERE.parent / "prometheus" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DAEMON_HELPERS = _load_daemon_helpers()


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: end-to-end test that runs the flagwatch daemon on 127.0.0.1")


@pytest.fixture(scope="session")
def fwd():
    """The daemon helpers (Daemon, poll, parse_exposition, listen_ports, ...)."""
    return DAEMON_HELPERS


class Alertmanager:
    """A real Alertmanager with a do-nothing receiver; its API is what the test reads."""

    def __init__(self, procs, work):
        if not os.access(ALERTMANAGER_BIN, os.X_OK):
            pytest.fail("Alertmanager not found at %s: `make test-deps` installs prometheus-alertmanager"
                        % ALERTMANAGER_BIN, pytrace=False)
        work.mkdir(parents=True, exist_ok=True)
        config = work / "alertmanager.yml"
        config.write_text("route: {receiver: blackhole, group_wait: 1s, group_interval: 1s, repeat_interval: 1h}\n"
                          "receivers: [{name: blackhole}]\n")
        self.stderr_path = work / "alertmanager.log"
        # Port 0 is not accepted for the web listener; the port is then read from /proc.
        self.proc = procs.start([ALERTMANAGER_BIN, "--config.file", str(config), "--storage.path", str(work / "data"),
                                 "--web.listen-address", "127.0.0.1:0", "--cluster.listen-address", ""],
                                self.stderr_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        self.port = None

        def ready():
            if self.proc.poll() is not None:
                pytest.fail("alertmanager exited with %s:\n%s" % (self.proc.returncode, tail(self.stderr_path)),
                            pytrace=False)
            ports = DAEMON_HELPERS.listen_ports(self.proc.pid)
            if not ports:
                return False
            self.port = ports[0]
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/-/ready" % self.port, timeout=2) as response:
                    return response.status == 200
            except OSError:
                return False

        if not DAEMON_HELPERS.poll(ready, 20.0, 0.1):
            pytest.fail("alertmanager not ready:\n%s" % tail(self.stderr_path), pytrace=False)
        self.url = "http://127.0.0.1:%d" % self.port

    def alerts(self):
        """Active alerts, as GET /api/v2/alerts returns them (resolved ones are not listed)."""
        with urllib.request.urlopen(self.url + "/api/v2/alerts", timeout=5) as response:
            return json.loads(response.read())


def start_backend(procs, work, name, port=0):
    """toggle_backend.py on 127.0.0.1:port; returns (process, port)."""
    proc = procs.start([sys.executable, str(HERE / "toggle_backend.py"), "--port", str(port)],
                       work / ("backend-%s.log" % name), stdout=subprocess.PIPE)
    line = read_line(proc.stdout, 10.0)
    try:
        return proc, json.loads(line)["port"]
    except ValueError:
        pytest.fail("toggle_backend.py %s did not start: %r\n%s" % (name, line, tail(work / ("backend-%s.log" % name))),
                    pytrace=False)


def start_envoy(procs, work, envoy_bin, text_log, api_port, inventory_port):
    """Envoy on envoy-alerting.yaml.in; returns (admin address, listener port)."""
    values = {"TEXT_LOG": str(text_log), "API_PORT": str(api_port), "INVENTORY_PORT": str(inventory_port)}
    template = (HERE / "envoy-alerting.yaml.in").read_text()
    config = work / "envoy.yaml"
    config.write_text(re.sub(r"@@([A-Z0-9_]+)@@", lambda m: values[m.group(1)], template))
    addr_file = work / "admin-address"
    envoy_log = work / "envoy.log"
    envoy = procs.start([envoy_bin, "-c", str(config), "--disable-hot-restart", "--concurrency", "1",
                         "--file-flush-interval-msec", "100", "--local-address-ip-version", "v4",
                         "--admin-address-path", str(addr_file), "-l", "warning", "--log-path", str(envoy_log)],
                        work / "envoy.stderr.log", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if envoy.poll() is not None:
            pytest.fail("envoy exited with %s:\n%s" % (envoy.returncode, tail(envoy_log)), pytrace=False)
        text = addr_file.read_text().strip() if addr_file.exists() else ""
        if ":" in text:
            host, port = text.rsplit(":", 1)
            admin = (host, int(port))
            try:
                status, body = admin_request(admin, "/ready", timeout=1.0)
                if status == 200 and "LIVE" in body:
                    _, body = admin_request(admin, "/listeners?format=json", timeout=2.0)
                    port = json.loads(body)["listener_statuses"][0]["local_address"]["socket_address"]["port_value"]
                    return admin, port
            except (OSError, ValueError, KeyError):
                pass
        time.sleep(0.1)
    pytest.fail("envoy not ready:\n%s" % tail(envoy_log), pytrace=False)
