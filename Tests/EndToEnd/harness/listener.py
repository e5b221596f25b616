"""Helpers of the `flagwatch run` listener tests (daemon/) (raw sockets against the daemon).

Everything a test needs comes from the `fw` fixture (a `Kit`):

  fw.start(...)            writes a config in tmp_path (listen on a kernel-chosen free port on
                           127.0.0.1, state_dir and a files source in tmp_path, an Istio access
                           log with `clusters` upstream clusters read from the beginning),
                           starts `flagwatch run`, waits for /-/ready and for every line to be
                           counted, and returns a `Daemon`
  daemon.connect()         a `Conn`: a raw TCP socket with a receive buffer and an HTTP/1.1
                           response reader (`request`, `send`, `read_response`, `expect_closed`)
  daemon.get(path, ...)    one request on a fresh connection
  daemon.assert_serving()  a normal GET /metrics on a fresh connection: 200, Prometheus text,
                           the expected line count; every abusive test ends with it
  daemon.stop(sig)         signal, bounded wait, exit status
  check_metrics_text(...)  a line-by-line validator of the Prometheus text / OpenMetrics format

The daemon/ tests import the helpers with `from harness.listener import ...`; the fixtures are
in daemon/conftest.py. Every wait is bounded (socket timeouts, deadlines). Every flagwatch process is stopped by PID
in the fixture's teardown (SIGCONT, then SIGKILL), whatever the test did.
"""
import os
import re
import resource
import socket
import time
from pathlib import Path

import pytest

from harness.flagwatch import FlagwatchRun, run_argv, start_on_free_port
from harness.lines import access_log
from harness.metrics import PROMETHEUS_TYPE, check_metrics_text  # noqa: F401 - the daemon/ tests import them here

READY_TIMEOUT = 20.0     # /-/ready answers 200
COUNT_TIMEOUT = 30.0     # every line of the log is counted
STOP_TIMEOUT = 15.0      # exit after SIGTERM
IO_TIMEOUT = 10.0        # one socket operation in a test (a response that should come at once)

# The listener's limits (Sources/HTTPListener/HTTPServer.swift, HTTPLimits); not configurable.
MAX_HEADER_BYTES = 8 * 1024
MAX_REQUEST_LINE = 4 * 1024
READ_TIMEOUT = 10.0
IDLE_TIMEOUT = 60.0
WRITE_TIMEOUT = 30.0
MAX_CONNECTIONS = 1024
TIMER_SLACK = 1.0        # timeouts are enforced by a 1 s timer


def raise_nofile(want):
    """Raises this process's soft RLIMIT_NOFILE to at least `want` (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < want:
        target = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft


# --------------------------------------------------------------------------------------------
# Metrics text
# --------------------------------------------------------------------------------------------

# --------------------------------------------------------------------------------------------
# Raw HTTP/1.1 over a socket
# --------------------------------------------------------------------------------------------


class Closed(Exception):
    """The peer closed the connection (EOF or reset) before a whole response arrived."""


class Response:
    def __init__(self, status, reason, headers, body, raw_head):
        self.status, self.reason, self.headers, self.body, self.raw_head = status, reason, headers, body, raw_head

    def header(self, name):
        return self.headers.get(name.lower())

    @property
    def closes(self):
        return (self.header("connection") or "").lower() == "close"

    def __repr__(self):
        return "<Response %d %s %r body=%d bytes>" % (self.status, self.reason, self.headers, len(self.body))


STATUS_LINE = re.compile(rb"^HTTP/1\.1 ([1-5][0-9][0-9]) ([^\r\n]*)$")


class Conn:
    """A raw client connection: bytes out, HTTP/1.1 responses in, every read bounded."""

    def __init__(self, port, rcvbuf=None, timeout=IO_TIMEOUT):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.buffer = bytearray()
        self.eof = False
        self.reset = False

    def send(self, data):
        self.sock.sendall(data)

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def fileno(self):
        return self.sock.fileno()

    def _fill(self, timeout, limit=1 << 20):
        """One recv into the buffer: True if bytes came, False at the end of the stream (EOF or
        reset); raises socket.timeout if nothing came within `timeout`."""
        if self.eof:
            return False
        self.sock.settimeout(max(timeout, 0.001))
        try:
            chunk = self.sock.recv(limit)
        except ConnectionResetError:
            self.eof = self.reset = True
            return False
        if not chunk:
            self.eof = True
            return False
        self.buffer += chunk
        return True

    def _read_until(self, marker, deadline):
        while True:
            index = self.buffer.find(marker)
            if index >= 0:
                return index
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout("no %r within the deadline; have %r" % (marker, bytes(self.buffer[:200])))
            if not self._fill(remaining):
                raise Closed("connection closed; have %r" % bytes(self.buffer[:200]))

    def _read_exactly(self, count, deadline):
        while len(self.buffer) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout("%d of %d body bytes within the deadline" % (len(self.buffer), count))
            if not self._fill(remaining):
                raise Closed("connection closed after %d of %d body bytes" % (len(self.buffer), count))
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        return data

    def read_response(self, method="GET", timeout=IO_TIMEOUT):
        """One whole response (the body is Content-Length bytes; none after HEAD)."""
        deadline = time.monotonic() + timeout
        end = self._read_until(b"\r\n\r\n", deadline)
        raw_head = bytes(self.buffer[:end])
        del self.buffer[: end + 4]
        lines = raw_head.split(b"\r\n")
        match = STATUS_LINE.match(lines[0])
        assert match, "not an HTTP/1.1 status line: %r" % lines[0]
        headers = {}
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            assert colon and name and name == name.strip(), "malformed response header %r" % line
            key = name.decode().lower()
            assert key not in headers, "duplicate response header %r in %r" % (key, raw_head)
            headers[key] = value.strip().decode()
        assert "content-length" in headers, "response without Content-Length: %r" % raw_head
        length = int(headers["content-length"])
        body = b"" if method == "HEAD" else self._read_exactly(length, deadline)
        return Response(int(match.group(1)), match.group(2).decode(), headers, body, raw_head)

    def request(self, path="/metrics", method="GET", headers=None, version="HTTP/1.1", timeout=IO_TIMEOUT):
        self.send(request_bytes(path, method, headers, version))
        return self.read_response(method, timeout)

    def expect_closed(self, timeout=IO_TIMEOUT):
        """Waits for the end of the stream; returns the bytes that came before it (unread
        buffer included). Fails if the connection is still open after `timeout`."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline and self._fill(deadline - time.monotonic()):
                pass
        except socket.timeout:
            pass
        assert self.eof, "connection still open after %.1f s (have %r)" % (timeout, bytes(self.buffer[:200]))
        data = bytes(self.buffer)
        self.buffer.clear()
        return data

    def is_open(self):
        """True if the peer has not closed (nothing pending to read, no EOF); does not block."""
        if self.eof:
            return False
        self.sock.setblocking(False)
        try:
            data = self.sock.recv(1, socket.MSG_PEEK)
            return bool(data)  # b"" is EOF
        except BlockingIOError:
            return True
        except ConnectionResetError:
            return False
        finally:
            self.sock.setblocking(True)


def request_bytes(path="/metrics", method="GET", headers=None, version="HTTP/1.1"):
    head = "%s %s %s\r\n" % (method, path, version)
    all_headers = {"Host": "127.0.0.1", "User-Agent": "flagwatch-e2e"}
    all_headers.update(headers or {})
    for name, value in all_headers.items():
        if value is not None:
            head += "%s: %s\r\n" % (name, value)
    return (head + "\r\n").encode()


# --------------------------------------------------------------------------------------------
# The daemon
# --------------------------------------------------------------------------------------------


class Daemon(FlagwatchRun):
    """A running `flagwatch run` (harness.flagwatch.FlagwatchRun) with raw-socket requests,
    stderr to a file in tmp_path."""

    def __init__(self, tmp, port, lines, argv, nofile=None):
        def limits():
            # nofile: the soft limit (the hard one stays ours, at least that), or (soft, hard).
            if nofile:
                soft, hard = nofile if isinstance(nofile, tuple) else (nofile, max(nofile, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
                resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

        super().__init__(argv, tmp / "flagwatch.stderr", port, preexec_fn=limits)
        self.tmp, self.lines = tmp, lines

    # -- requests ---------------------------------------------------------------------------

    def connect(self, **kw):
        return Conn(self.port, **kw)

    def get(self, path="/metrics", method="GET", headers=None, timeout=IO_TIMEOUT):
        conn = self.connect(timeout=timeout)
        try:
            return conn.request(path, method, headers, timeout=timeout)
        finally:
            conn.close()

    def assert_serving(self, what="after the test"):
        """A normal scrape on a fresh connection: 200, Prometheus text, every line counted."""
        self.assert_alive(what)
        response = self.get("/metrics")
        assert response.status == 200, "GET /metrics %s: %r%s" % (what, response, self.context())
        assert response.header("content-type") == PROMETHEUS_TYPE, response
        check_metrics_text(response.body, lines_total=self.lines)
        return response

    def assert_alive(self, what=""):
        status = self.proc.poll()
        assert status is None, "flagwatch exited (status %s) %s%s" % (status, what, self.context())

    # -- the process ---------------------------------------------------------------------------

    def cpu_seconds(self):
        fields = Path("/proc/%d/stat" % self.pid).read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def socket_count(self):
        """Sockets the process has open (listener included)."""
        count = 0
        fd_dir = "/proc/%d/fd" % self.pid
        for name in os.listdir(fd_dir):
            try:
                if os.readlink(os.path.join(fd_dir, name)).startswith("socket:"):
                    count += 1
            except OSError:
                pass
        return count


class Kit:
    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self._daemons = []

    def start(self, clusters=8, nofile=None, extra_config=""):
        """Starts `flagwatch run` on a free port with an access log of `clusters` clusters;
        returns once /-/ready is 200 and every line is counted. nofile: the daemon's soft
        RLIMIT_NOFILE, or (soft, hard)."""
        logs = self.tmp / "logs"
        logs.mkdir(exist_ok=True)
        data, lines = access_log(clusters)
        (logs / "access.log").write_bytes(data)
        state = self.tmp / "state"
        config = self.tmp / "flagwatch.yaml"
        config.write_text(
            "listen: \"127.0.0.1:9817\"\n"
            "state_dir: %s\n"
            "sources:\n"
            "  - name: envoy\n"
            "    files: [\"%s/*.log\"]\n"
            "    format: istio\n"
            "    start_at: beginning\n"
            "limits:\n"
            "  max_clusters: %d\n%s" % (state, logs, max(clusters, 100), extra_config)
        )
        def start(port):
            daemon = Daemon(self.tmp, port, lines, run_argv(config, port, ("--log-level", "info")), nofile=nofile)
            self._daemons.append(daemon)
            return daemon
        daemon = start_on_free_port(start, ready_timeout=READY_TIMEOUT)
        deadline = time.monotonic() + COUNT_TIMEOUT
        while True:
            response = daemon.get("/metrics", timeout=30)
            samples = check_metrics_text(response.body)
            if float(samples.get('flagwatch_lines_total{source="envoy"}', 0)) == lines:
                break
            if time.monotonic() > deadline:
                pytest.fail("flagwatch did not count the %d log lines within %.0f s%s" % (lines, COUNT_TIMEOUT, daemon.context()))
            time.sleep(0.1)
        return daemon

    def close(self):
        for daemon in self._daemons:
            daemon.close()
