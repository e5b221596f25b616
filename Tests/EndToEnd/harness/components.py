"""Real components on 127.0.0.1, each started through the test's Processes (stopped by PID),
every wait bounded.

  Prometheus       /usr/bin/prometheus (Debian) with a tmp config and TSDB on 127.0.0.1:0 (port
                   from /proc); query(), targets(), own_metrics()
  Alertmanager     /usr/bin/prometheus-alertmanager with a tmp config and storage, clustering
                   off; alerts() reads GET /api/v2/alerts
  start_backend    alerting/toggle_backend.py on a given port (0: kernel-chosen)
  RecordingProxy   a thread forwarding GET /metrics to the daemon with the caller's Accept
                   header, recording that header and the daemon's Content-Type

The private systemd-journald is in harness/journald.py.
"""
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.parse
import types
import urllib.request

import pytest

from harness import E2E, flagwatch, lines, metrics, net, polling, processes
from harness.envoy import flagwatch_path, read_line
from harness.metrics import ACCEPT_PROMETHEUS, parse_exposition
from harness.net import LOOPBACK, http_request as http_get
from harness.polling import poll
from harness.processes import listen_ports, tail

PROMETHEUS_BIN = os.environ.get("PROMETHEUS_BIN", "/usr/bin/prometheus")
PROMTOOL_BIN = os.environ.get("PROMTOOL_BIN", shutil.which("promtool") or "/usr/bin/promtool")
ALERTMANAGER_BIN = os.environ.get("ALERTMANAGER_BIN", "/usr/bin/prometheus-alertmanager")


def _yaml(value):
    return json.dumps(value)


# --------------------------------------------------------------------------- Prometheus

class Prometheus:
    """A real Prometheus on 127.0.0.1 (kernel-chosen port), tmp config and TSDB."""

    def __init__(self, procs, work, jobs, scrape_interval="1s", ready_timeout=30.0, rule_files=()):
        """jobs: {job name: ["127.0.0.1:port", ...]}; rule_files: paths of rule files to load
        (evaluated every scrape_interval)."""
        if not os.access(PROMETHEUS_BIN, os.X_OK):
            pytest.fail("prometheus not found at %s (Debian: apt-get install prometheus; or set PROMETHEUS_BIN)"
                        % PROMETHEUS_BIN, pytrace=False)
        work.mkdir(parents=True, exist_ok=True)
        config = ["global:", "  scrape_interval: %s" % scrape_interval, "  scrape_timeout: %s" % scrape_interval,
                  "  evaluation_interval: %s" % scrape_interval]
        if rule_files:
            config += ["rule_files: %s" % _yaml([str(path) for path in rule_files])]
        config += ["scrape_configs:"]
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


# --------------------------------------------------------------------------- Alertmanager

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
            ports = listen_ports(self.proc.pid)
            if not ports:
                return False
            self.port = ports[0]
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/-/ready" % self.port, timeout=2) as response:
                    return response.status == 200
            except OSError:
                return False

        if not poll(ready, 20.0, 0.1):
            pytest.fail("alertmanager not ready:\n%s" % tail(self.stderr_path), pytrace=False)
        self.url = "http://127.0.0.1:%d" % self.port

    def alerts(self):
        """Active alerts, as GET /api/v2/alerts returns them (resolved ones are not listed)."""
        with urllib.request.urlopen(self.url + "/api/v2/alerts", timeout=5) as response:
            return json.loads(response.read())


def start_backend(procs, work, name, port=0):
    """toggle_backend.py on 127.0.0.1:port; returns (process, port)."""
    proc = procs.start([sys.executable, str(E2E / "alerting" / "toggle_backend.py"), "--port", str(port)],
                       work / ("backend-%s.log" % name), stdout=subprocess.PIPE)
    line = read_line(proc.stdout, 10.0)
    try:
        return proc, json.loads(line)["port"]
    except ValueError:
        pytest.fail("toggle_backend.py %s did not start: %r\n%s" % (name, line, tail(work / ("backend-%s.log" % name))),
                    pytrace=False)


# --------------------------------------------------------------------------- one namespace

# The `fwd` fixture (Tests/EndToEnd/conftest.py): what the prometheus/, alerting/ and full/
# tests call as fwd.X.
DAEMON_HELPERS = types.SimpleNamespace(
    ACCEPT_PROMETHEUS=metrics.ACCEPT_PROMETHEUS, ACCEPT_OPENMETRICS=metrics.ACCEPT_OPENMETRICS,
    ACCEPT_PROMETHEUS_DEFAULT=metrics.ACCEPT_PROMETHEUS_DEFAULT, PROMETHEUS_BIN=PROMETHEUS_BIN,
    PROMTOOL_BIN=PROMTOOL_BIN, Daemon=flagwatch.Daemon, Prometheus=Prometheus,
    RecordingProxy=RecordingProxy, daemon_config=flagwatch.daemon_config,
    http_get=net.http_request, istio_line=lines.istio_text_line, istio_cluster=lines.istio_cluster,
    parse_exposition=metrics.parse_exposition, select=metrics.select, by=metrics.by, poll=polling.poll,
    listen_ports=processes.listen_ports, vm_status=processes.vm_status, flagwatch_path=flagwatch_path,
)
