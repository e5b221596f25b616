"""Fixtures of the nginx tests: the failing backends and a real nginx (Debian's nginx-light)
in front of them, on 127.0.0.1, with its own config and logs in the test's tmp dir, stopped by
PID. The helpers are in failing_backends.py (shared with Tests/EndToEnd/haproxy)."""
import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from failing_backends import backends, free_port, log_tail, poll_until, port_open, procs  # noqa: E402,F401 (fixtures)

NGINX_BIN = os.environ.get("NGINX_BIN") or shutil.which("nginx") or "/usr/sbin/nginx"

# ingress-nginx's default `upstreaminfo` log format ($request_id stands for its $req_id).
UPSTREAMINFO = (
    "'$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" "
    "\"$http_user_agent\" $request_length $request_time [$proxy_upstream_name] [$proxy_alternative_upstream_name] "
    "$upstream_addr $upstream_response_length $upstream_response_time $upstream_status $request_id'"
)


class Nginx:
    """nginx in the foreground (`daemon off;`) with one upstream group per misbehaviour:
    `refusing` (a port nobody listens on), `hanging` (accepts, never answers), `closing`
    (closes mid-response header), `alldown` (two refusing servers: once both are marked failed,
    `no live upstreams`). Error log at warn level, access log in `upstreaminfo`."""

    def __init__(self, procs, work, backends):
        if not os.access(NGINX_BIN, os.X_OK):
            pytest.skip("nginx not installed (scripts/install-deps.sh test installs nginx-light)")
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.servers = {
            "refusing": ["127.0.0.1:%d" % backends.refused_port()],
            "hanging": ["127.0.0.1:%d" % backends.hang],
            "closing": ["127.0.0.1:%d" % backends.close_mid],
            "alldown": ["127.0.0.1:%d" % backends.refused_port(), "127.0.0.1:%d" % backends.refused_port()],
        }
        self.error_log = work / "error.log"
        self.access_log = work / "access.log"
        temp = "".join("  %s_temp_path %s;\n" % (name, work / name) for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        upstreams = "".join(
            "  upstream %s { %s }\n" % (name, " ".join("server %s max_fails=1 fail_timeout=120s;" % s for s in servers))
            for name, servers in self.servers.items())
        locations = "".join(
            "    location /%s { set $proxy_upstream_name %s; proxy_pass http://%s; }\n" % (name, name, name)
            for name in self.servers)
        self.config = work / "nginx.conf"
        self.config.write_text(
            "worker_processes 1;\n"
            "pid %s;\n"
            "error_log %s warn;\n"
            "events { worker_connections 128; }\n"
            "http {\n%s"
            "  log_format upstreaminfo %s;\n"
            "  access_log %s upstreaminfo;\n"
            "  proxy_connect_timeout 2s;\n  proxy_read_timeout 1s;\n%s"
            "  server {\n    listen 127.0.0.1:%d;\n    set $proxy_alternative_upstream_name \"\";\n%s  }\n"
            "}\n" % (work / "nginx.pid", self.error_log, temp, UPSTREAMINFO, self.access_log, upstreams, self.port, locations))
        self.process = procs.start(
            [NGINX_BIN, "-p", work, "-c", self.config, "-e", self.error_log, "-g", "daemon off;"], work / "nginx.out")
        poll_until(lambda: port_open(self.process, self.port, "nginx"), 15, "nginx listening on 127.0.0.1:%d" % self.port,
                   context=lambda: log_tail(work / "nginx.out") + "\n" + log_tail(self.error_log))

    def url(self, name):
        return "http://127.0.0.1:%d/%s" % (self.port, name)


@pytest.fixture
def nginx(procs, backends, tmp_path):
    # nginx's master stops its worker and exits on SIGQUIT (graceful) or SIGTERM (fast):
    # Processes.stop_all sends SIGTERM to the master's PID.
    return Nginx(procs, tmp_path / "nginx", backends)


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: end-to-end test that starts real nginx/HAProxy and flagwatch on 127.0.0.1")

