"""Fixtures of the HAProxy tests: the failing backends (Tests/EndToEnd/nginx/failing_backends.py)
and a real HAProxy (Debian's haproxy 2.6) in front of them, on 127.0.0.1, with its own config in
the test's tmp dir, logging `option httplog` lines to its stdout (`log stdout format raw`),
which goes to a file; stopped by PID."""
import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "nginx"))

from failing_backends import backends, free_port, log_tail, poll_until, port_open, procs  # noqa: E402,F401 (fixtures)

HAPROXY_BIN = os.environ.get("HAPROXY_BIN") or shutil.which("haproxy") or "/usr/sbin/haproxy"


class HAProxy:
    """One frontend routing by path to a backend per misbehaviour: be_refused (a port nobody
    listens on), be_hang (never answers: timeout server, 1 s), be_close (closes mid-response
    header), be_alldown (its only server disabled: <NOSRV>), be_queue (a hanging server at
    maxconn 1, timeout queue 500 ms). No retries, so each request is one attempt."""

    def __init__(self, procs, work, backends, log_format="raw"):
        if not os.access(HAPROXY_BIN, os.X_OK):
            pytest.skip("haproxy not installed (scripts/install-deps.sh test installs it)")
        work.mkdir(parents=True, exist_ok=True)
        self.log_format = log_format
        self.port = free_port()
        self.servers = {
            "be_refused": "127.0.0.1:%d" % backends.refused_port(),
            "be_hang": "127.0.0.1:%d" % backends.hang,
            "be_close": "127.0.0.1:%d" % backends.close_mid,
            "be_alldown": "127.0.0.1:%d" % backends.refused_port(),
            "be_queue": "127.0.0.1:%d" % backends.hang,
        }
        options = {"be_alldown": " disabled", "be_queue": " maxconn 1"}
        routes = "".join("  use_backend %s if { path_beg /%s }\n" % (name, name) for name in self.servers)
        sections = "".join(
            "backend %s\n%s  server s1 %s%s\n" % (name, "  timeout server 5s\n" if name == "be_queue" else "", address, options.get(name, ""))
            for name, address in self.servers.items())
        self.config = work / "haproxy.cfg"
        self.config.write_text(
            "global\n  log stdout format %s local0\n"
            # dontlognull: the readiness probe's empty connection is not logged (it would be a
            # real DC: the client aborted before sending a request).
            "defaults\n  mode http\n  log global\n  option httplog\n  option dontlognull\n  retries 0\n"
            "  timeout connect 1s\n  timeout client 10s\n  timeout server 1s\n  timeout queue 500ms\n"
            "frontend fe_http\n  bind 127.0.0.1:%d\n%s%s" % (log_format, self.port, routes, sections))
        self.log = work / "haproxy.log"
        self.process = procs.start([HAPROXY_BIN, "-f", self.config, "-db"], self.log)
        poll_until(lambda: port_open(self.process, self.port, "haproxy"), 15, "haproxy listening on 127.0.0.1:%d" % self.port, context=lambda: log_tail(self.log))

    def url(self, backend):
        return "http://127.0.0.1:%d/%s" % (self.port, backend)


@pytest.fixture(params=["raw", "rfc3164"])
def haproxy(request, procs, backends, tmp_path):
    """HAProxy logging without a syslog header, and with one."""
    return HAProxy(procs, tmp_path / "haproxy", backends, log_format=request.param)


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: end-to-end test that starts real nginx/HAProxy and flagwatch on 127.0.0.1")
