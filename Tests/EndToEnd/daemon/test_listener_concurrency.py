"""Many concurrent keep-alive clients against the `flagwatch run` listener (one poll loop).

- 1,000 clients, all connected at once, each doing 5 scrapes one after another on its one
  connection (a selectors event loop on our side): every response 200 with valid metrics text
  counting every log line, no connection dropped or reopened.
- 1,000 clients each pipelining 6 mixed requests (Prometheus, OpenMetrics, HEAD, health, 404)
  in one write.
- 1,000 threads with blocking sockets, released together by a barrier.

The figures (connect time, total time, requests per second) are printed (`pytest -s`).
"""
import errno
import selectors
import shutil
import socket
import subprocess
import threading
import time

import pytest

from harness.listener import PROMETHEUS_TYPE, Closed, check_metrics_text, raise_nofile, request_bytes

pytestmark = pytest.mark.daemon

CLIENTS = 1000
REQUESTS = 5
DEADLINE = 180.0   # the whole run, bounded
OPENMETRICS_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"


class Client:
    """One non-blocking connection with a queue of (request bytes, method, check) to do in turn
    (or all at once when pipelined)."""

    def __init__(self, index, port, plan, pipelined):
        self.index, self.plan, self.pipelined = index, plan, pipelined
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        code = self.sock.connect_ex(("127.0.0.1", port))
        assert code in (0, errno.EINPROGRESS), "connect: %s" % errno.errorcode.get(code, code)
        self.connected = False
        self.out = bytearray()
        self.buffer = bytearray()
        self.sent = 0       # requests written
        self.done = 0       # responses checked
        self.error = None
        self.finished = False

    def queue_next(self):
        if self.pipelined:
            while self.sent < len(self.plan):
                self.out += self.plan[self.sent][0]
                self.sent += 1
        elif self.sent < len(self.plan):
            self.out += self.plan[self.sent][0]
            self.sent += 1

    def flush(self):
        while self.out:
            try:
                count = self.sock.send(self.out)
            except BlockingIOError:
                return
            del self.out[:count]

    def take_responses(self):
        """Checks every whole response in the buffer; True when the plan is done."""
        while self.done < self.sent:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return False
            head = bytes(self.buffer[:end]).split(b"\r\n")
            headers = {}
            for line in head[1:]:
                name, _, value = line.partition(b":")
                headers[name.decode().lower()] = value.strip().decode()
            _, method, check = self.plan[self.done]
            length = 0 if method == "HEAD" else int(headers["content-length"])
            if len(self.buffer) < end + 4 + length:
                return False
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            check(head[0], headers, body)
            self.done += 1
            if not self.pipelined:
                self.queue_next()
                self.flush()
        return self.done == len(self.plan)


def run_clients(port, plans, pipelined, deadline=DEADLINE):
    """Connects every client, waits until all are connected, then starts them together.
    Returns (clients, connect seconds, run seconds)."""
    selector = selectors.DefaultSelector()
    started = time.monotonic()
    clients = [Client(index, port, plan, pipelined) for index, plan in enumerate(plans)]
    pending = {client.sock.fileno(): client for client in clients}
    for client in clients:
        selector.register(client.sock, selectors.EVENT_WRITE, client)
    end = started + deadline
    while pending and time.monotonic() < end:
        for key, _ in selector.select(timeout=1.0):
            client = key.data
            code = client.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            assert code == 0, "client %d: connect failed: %s" % (client.index, errno.errorcode.get(code, code))
            client.connected = True
            selector.unregister(client.sock)
            del pending[client.sock.fileno()]
    assert not pending, "%d clients not connected within %.0f s" % (len(pending), deadline)
    connected = time.monotonic()

    for client in clients:
        client.queue_next()
        client.flush()
        selector.register(client.sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if client.out else 0), client)
    active = len(clients)
    while active and time.monotonic() < end:
        for key, events in selector.select(timeout=1.0):
            client = key.data
            try:
                if events & selectors.EVENT_WRITE:
                    client.flush()
                if events & selectors.EVENT_READ:
                    try:
                        chunk = client.sock.recv(1 << 20)
                    except BlockingIOError:
                        chunk = None
                    except ConnectionResetError:
                        raise Closed("client %d: connection reset after %d responses" % (client.index, client.done))
                    if chunk == b"":
                        raise Closed("client %d: connection closed after %d of %d responses" % (client.index, client.done, len(client.plan)))
                    if chunk:
                        client.buffer += chunk
                        if client.take_responses():
                            client.finished = True
            except (AssertionError, Closed, OSError) as error:
                client.error = error
                client.finished = True
            if client.finished:
                selector.unregister(client.sock)
                active -= 1
            else:
                want = selectors.EVENT_READ | (selectors.EVENT_WRITE if client.out else 0)
                if want != key.events:
                    selector.modify(client.sock, want, client)
    finished = time.monotonic()
    selector.close()
    return clients, connected - started, finished - connected


def close_all(clients):
    for client in clients:
        try:
            client.sock.close()
        except OSError:
            pass


def checker(kind, lines, samples_out=None):
    def check(status_line, headers, body):
        if kind == "healthy":
            assert status_line == b"HTTP/1.1 200 OK" and body == b"healthy\n", (status_line, body)
        elif kind == "nope":
            assert status_line == b"HTTP/1.1 404 Not Found", status_line
        elif kind == "head":
            assert status_line == b"HTTP/1.1 200 OK" and headers["content-type"] == PROMETHEUS_TYPE, (status_line, headers)
            assert body == b"" and int(headers["content-length"]) > 1000, headers
        else:
            assert status_line == b"HTTP/1.1 200 OK", (status_line, body[:200])
            openmetrics = kind == "openmetrics"
            assert headers["content-type"] == (OPENMETRICS_TYPE if openmetrics else PROMETHEUS_TYPE), headers
            assert headers.get("connection") == "keep-alive", headers
            check_metrics_text(body, openmetrics=openmetrics, lines_total=lines)
            if samples_out is not None and not samples_out:
                samples_out.append(body)
    return check


def scrape(lines, samples_out=None, openmetrics=False):
    headers = {"Accept": "application/openmetrics-text; version=1.0.0"} if openmetrics else None
    return (request_bytes("/metrics", headers=headers), "GET", checker("openmetrics" if openmetrics else "prometheus", lines, samples_out))


def report(clients, daemon, what):
    failures = [client for client in clients if client.error is not None or client.done != len(client.plan)]
    assert not failures, "%d of %d clients failed (%s); first: %r%s" % (
        len(failures), len(clients), what, failures[0].error or "%d of %d responses" % (failures[0].done, len(failures[0].plan)),
        daemon.context())


def test_1000_concurrent_keepalive_clients(fw):
    raise_nofile(4 * CLIENTS)
    daemon = fw.start(nofile=4 * CLIENTS)
    sample = []
    plans = [[scrape(daemon.lines, sample, openmetrics=(index % 10 == 0 and step == 2)) for step in range(REQUESTS)]
             for index in range(CLIENTS)]
    cpu_before = daemon.cpu_seconds()
    clients, connect_s, run_s = run_clients(daemon.port, plans, pipelined=False)
    cpu = daemon.cpu_seconds() - cpu_before
    try:
        report(clients, daemon, "sequential keep-alive scrapes")
        # Every client still holds its one connection: the daemon has them all open.
        assert daemon.socket_count() == CLIENTS + 1, daemon.socket_count()
        total = CLIENTS * REQUESTS
        print("\n%d clients x %d scrapes on one keep-alive connection each: connected in %.2f s, "
              "%d responses in %.2f s (%.0f req/s), body %d bytes; daemon CPU %.2f s (%.2f ms per scrape)"
              % (CLIENTS, REQUESTS, connect_s, total, run_s, total / run_s, len(sample[0]), cpu, cpu * 1000 / total))
    finally:
        close_all(clients)
    promtool = shutil.which("promtool")
    if promtool:
        check = subprocess.run([promtool, "check", "metrics"], input=sample[0], capture_output=True, timeout=30)
        assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
    daemon.assert_serving()


def test_1000_concurrent_pipelining_clients(fw):
    raise_nofile(4 * CLIENTS)
    daemon = fw.start(nofile=4 * CLIENTS)
    lines = daemon.lines
    kinds = [
        scrape(lines),
        (request_bytes("/-/healthy"), "GET", checker("healthy", lines)),
        scrape(lines, openmetrics=True),
        (request_bytes("/metrics", "HEAD"), "HEAD", checker("head", lines)),
        (request_bytes("/nope"), "GET", checker("nope", lines)),
        scrape(lines),
    ]
    plans = [kinds[index % 3 :] + kinds[: index % 3] for index in range(CLIENTS)]
    cpu_before = daemon.cpu_seconds()
    clients, connect_s, run_s = run_clients(daemon.port, plans, pipelined=True)
    cpu = daemon.cpu_seconds() - cpu_before
    try:
        report(clients, daemon, "pipelined mixed requests")
        total = sum(len(plan) for plan in plans)
        print("\n%d clients pipelining %d mixed requests each: connected in %.2f s, %d responses in %.2f s (%.0f req/s); "
              "daemon CPU %.2f s" % (CLIENTS, len(kinds), connect_s, total, run_s, total / run_s, cpu))
    finally:
        close_all(clients)
    daemon.assert_serving()


def test_1000_threads_with_blocking_sockets(fw):
    raise_nofile(4 * CLIENTS)
    daemon = fw.start(nofile=4 * CLIENTS)
    barrier = threading.Barrier(CLIENTS + 1)
    errors = []
    done = []
    conns = []
    lock = threading.Lock()

    def worker(index):
        try:
            conn = daemon.connect(timeout=60)
            with lock:
                conns.append(conn)
            barrier.wait(60)
            for step in range(REQUESTS):
                path = "/metrics" if step != 1 else "/-/ready"
                response = conn.request(path, timeout=60)
                assert response.status == 200 and not response.closes, response
                if path == "/metrics":
                    check_metrics_text(response.body, lines_total=daemon.lines)
                else:
                    assert response.body == b"ready\n"
            with lock:
                done.append(index)
        except BaseException as error:  # collected below
            with lock:
                errors.append((index, error))
            try:
                barrier.abort()
            except threading.BrokenBarrierError:
                pass

    threads = [threading.Thread(target=worker, args=(index,), daemon=True) for index in range(CLIENTS)]
    started = time.monotonic()
    try:
        for thread in threads:
            thread.start()
        barrier.wait(120)
        released = time.monotonic()
        for thread in threads:
            thread.join(max(1.0, started + DEADLINE - time.monotonic()))
        finished = time.monotonic()
        assert not any(thread.is_alive() for thread in threads), "threads still running after %.0f s" % DEADLINE
        assert not errors, "%d of %d threads failed; first: %r%s" % (len(errors), CLIENTS, errors[0], daemon.context())
        assert len(done) == CLIENTS
        print("\n%d threads x %d requests: all connected in %.2f s, done in %.2f s after the barrier (%.0f req/s)"
              % (CLIENTS, REQUESTS, released - started, finished - released, CLIENTS * REQUESTS / (finished - released)))
    finally:
        for conn in conns:
            conn.close()
    daemon.assert_serving()
