"""nginx and HAProxy in front of failing upstreams, for Tests/EndToEnd/nginx and haproxy.

  FailingBackends   listeners on 127.0.0.1 in threads of the test process: `hang` accepts and
                    never answers, `close_mid` sends half a response header and closes, `ok`
                    answers 200; `refused_port()` is a port nothing listens on; `accepted`
                    counts connections per port
  backends          the fixture both suites' conftests import (FailingBackends, stopped at
                    teardown)
  Nginx             Debian's nginx-light in the foreground with an upstream group per
                    misbehaviour, its error log (warn) and an ingress-nginx `upstreaminfo`
                    access log in the test's tmp dir
  HAProxy           HAProxy 2.6 (`-db`) with a backend per misbehaviour plus a full queue,
                    logging httplog lines to stdout (raw, or with an RFC 3164 header) into a file
  drive(url, n)     n GETs, each bounded in time; their status codes (None: no answer)
  scan_json(...)    `flagwatch scan --format F --output json FILES`, parsed
  flags_by_cluster  {cluster: {flag: count}} from a scan report
  start_daemon      `flagwatch run` on the sources with the shipped default rules (`for`
                    shortened), ready; flag_counts / alerts / firing read it
  start_follow      `flagwatch scan --follow --output json` on files, from their end, ready

Every process goes through harness.processes.Processes (stopped by PID); every loop and wait is
bounded in time; everything listens on 127.0.0.1.
"""
import json
import os
import shutil
import socket
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from harness import REPO
from harness.flagwatch import FlagwatchFollow, daemon_config, flagwatch_binary, start_run
from harness.metrics import flag_counts
from harness.net import LOOPBACK, free_port
from harness.polling import poll_until
from harness.processes import log_tail

NGINX_BIN = os.environ.get("NGINX_BIN") or shutil.which("nginx") or "/usr/sbin/nginx"
HAPROXY_BIN = os.environ.get("HAPROXY_BIN") or shutil.which("haproxy") or "/usr/sbin/haproxy"


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

    def refused_port(self):
        """A port nobody listens on: connects are refused. The socket stays bound (without
        listen) until `stop`, so no later `free_port`, listener or connect's own source port can
        take the number while the test runs: a port merely free a moment ago was, and then a
        "refused" backend answered or a proxy connected to itself."""
        held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        held.bind((LOOPBACK, 0))
        self._listeners.append(held)
        return held.getsockname()[1]

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
def backends():
    failing = FailingBackends()
    yield failing
    failing.stop()


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


class HAProxy:
    """One frontend routing by path to a backend per misbehaviour: be_refused (a port nobody
    listens on), be_hang (never answers: timeout server, 1 s), be_close (closes mid-response
    header), be_alldown (its only server disabled: <NOSRV>), be_queue (a hanging server at
    maxconn 1, timeout queue 500 ms). No retries, so each request is one attempt. A second
    frontend in TCP mode (`option tcplog`, `tcp_port`) forwards to be_tcp_refused, whose server
    refuses."""

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
        self.tcp_port = free_port()
        sections += (
            # Every session logged: the connect to the refusing server may fail before the
            # client's bytes arrive, which dontlognull would count as an empty connection.
            "frontend fe_tcp\n  mode tcp\n  option tcplog\n  no option dontlognull\n  bind 127.0.0.1:%d\n"
            "  default_backend be_tcp_refused\n"
            "backend be_tcp_refused\n  mode tcp\n  server s1 127.0.0.1:%d\n" % (self.tcp_port, backends.refused_port()))
        self.config = work / "haproxy.cfg"
        self.config.write_text(
            # One thread: HAProxy drops a log line written to stdout while another thread holds
            # it (seen with two threads and parallel requests), and the tests count every line.
            "global\n  log stdout format %s local0\n  nbthread 1\n"
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

    def tcp_sessions(self, count, timeout=5.0):
        """`count` TCP sessions through fe_tcp, each sending a few bytes and reading until
        HAProxy closes (its connect to the refusing server failed)."""
        for _ in range(count):
            with socket.create_connection((LOOPBACK, self.tcp_port), timeout=timeout) as client:
                client.sendall(b"PING\r\n")
                try:
                    while client.recv(4096):
                        pass
                except OSError:
                    pass


def drive(url, count, timeout=10.0, parallel=False):
    """`count` GETs of `url`; their status codes (None for no HTTP answer)."""
    codes = [None] * count

    def one(index):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                codes[index] = response.status
        except urllib.error.HTTPError as error:
            codes[index] = error.code
        except (OSError, ValueError) as error:
            codes[index] = None
            # Shown with the test's output when it fails: which request got no answer, and why.
            print("drive: %s request %d: no HTTP answer: %r" % (url, index, error), flush=True)

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
    rules = yaml.safe_load((REPO / "config" / "flagwatch.yaml").read_text())["alerting"]["rules"]
    for rule in rules:
        rule["for"] = for_duration
    return rules


def start_daemon(processes, work, sources):
    """`flagwatch run` reading `sources` from their beginning, with the default rules evaluated
    every second; ready when this returns."""
    work.mkdir(parents=True, exist_ok=True)
    config = daemon_config([dict(source, start_at="beginning") for source in sources], work / "state")
    config += yaml.safe_dump({"alerting": {"evaluate_every": "1s", "rules": default_rules()}})
    path = work / "flagwatch.yaml"
    path.write_text(config)
    return start_run(processes, path, work / "flagwatch.log")


def daemon_flag_counts(run):
    """{(cluster, flag): count} from the daemon's /metrics."""
    return flag_counts(run.samples())


def alerts(run):
    status, body = run.get("/api/v1/alerts")
    assert status == 200
    return json.loads(body)["data"]["alerts"]


def firing(run, alertname, cluster):
    """The daemon's firing alert of that rule on that cluster, or None."""
    for alert in alerts(run):
        labels = alert.get("labels", {})
        if labels.get("alertname") == alertname and labels.get("upstream_cluster") == cluster and alert.get("state") == "firing":
            return alert
    return None


def start_follow(processes, work, fmt, files):
    """`flagwatch scan --follow --output json --format FMT` on `files`, from their end: only what
    is written after the first report counts. Ready (first report printed) when this returns."""
    work.mkdir(parents=True, exist_ok=True)
    argv = [flagwatch_binary(), "scan", "--follow", "--output", "json", "--format", fmt, "--interval", "1",
            "--state-dir", work / "state"]
    for path in files:
        argv += ["--file", path]
    follow = FlagwatchFollow(argv, work / "follow.stderr", processes)
    follow.wait_ready()
    return follow


def wait_for_lines(path, predicate, what, timeout=20):
    """Polls the log at `path` until `predicate(text)` holds (proxies write their logs a
    moment after answering)."""
    return poll_until(lambda: predicate(Path(path).read_text(errors="replace")) if Path(path).exists() else False,
                      timeout, what, context=lambda: log_tail(path))
