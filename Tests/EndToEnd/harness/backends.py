#!/usr/bin/env python3
"""Fake upstreams for the flagwatch end-to-end test (Python standard library only).

Every socket is bound to 127.0.0.1 on a port the kernel picks (port 0), so nothing can
collide with other processes on the machine. Once everything is bound, one JSON line is
printed on stdout with the ports, e.g. {"ok": 41001, "slow": 41002, ...}; the test renders
them into the Envoy bootstrap.

  role     behaviour                                            flag it provokes in Envoy
  ok       200 for everything                                   -  (and DI, FI with fault filter)
  slow     sleeps x-backend-delay-ms (default 1000), then 200   UT SI UMSDR DC UO, 504 without flag
  close    reads the request head, closes without answering     UC
  hc500    500 for everything (fails Envoy's active health check) UH
  garbage  answers with bytes that are not HTTP                 UPE
  h2rst    minimal HTTP/2 server, RST_STREAM for every request  UR
  silent   accepts and reads, never writes                      DT (TCP proxy)
  closed   bound but NOT listening: connecting is refused       UF, URX

The "closed" socket is bound without listen(), so the kernel answers SYNs with RST while
the port stays reserved for us (a port that is merely "probably free" could be taken).

Exits on SIGTERM/SIGINT, or by itself after --lifetime seconds (safety net in case the
test process dies without tearing down).
"""
import argparse
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOST = "127.0.0.1"
SOCK_TIMEOUT = 5.0
MAX_DELAY_MS = 5000


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "flagwatch-e2e-backend"
    sys_version = ""
    timeout = SOCK_TIMEOUT

    def log_message(self, *args):  # keep stdout for the READY line only
        pass

    def handle(self):
        try:
            super().handle()
        except OSError:  # Envoy resets connections on purpose in several scenarios
            pass

    def send_text(self, code, body):
        data = body.encode()
        try:
            self.send_response(code)
            self.send_header("content-type", "text/plain")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True


class OkHandler(Handler):
    def do_GET(self):
        self.send_text(200, "ok %s\n" % self.path)


class SlowHandler(Handler):
    def do_GET(self):
        try:
            delay = int(self.headers.get("x-backend-delay-ms") or 1000)
        except ValueError:
            delay = 1000
        time.sleep(max(0, min(delay, MAX_DELAY_MS)) / 1000.0)
        self.send_text(200, "slow %dms\n" % delay)


class Hc500Handler(Handler):
    def do_GET(self):
        self.send_text(500, "unhealthy\n")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request, client_address):  # no tracebacks on resets
        pass


def read_head(conn, limit=16384):
    """Read until the end of an HTTP/1 request head (bounded in size and time)."""
    buf = b""
    deadline = time.monotonic() + SOCK_TIMEOUT
    while b"\r\n\r\n" not in buf and len(buf) < limit and time.monotonic() < deadline:
        chunk = conn.recv(4096)
        if not chunk:
            break
        buf += chunk
    return buf


def on_close(conn):
    read_head(conn)  # then close without a response -> UC


def on_garbage(conn):
    read_head(conn)
    conn.sendall(b"THIS IS NOT HTTP\r\n\r\n")  # -> UPE


def on_silent(conn):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if not conn.recv(4096):
                return
        except socket.timeout:
            continue


H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def h2_frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def on_h2rst(conn):
    """Just enough HTTP/2 for Envoy to open a stream, which is then reset -> UR."""
    buf = b""
    while len(buf) < len(H2_PREFACE):
        chunk = conn.recv(4096)
        if not chunk:
            return
        buf += chunk
    if not buf.startswith(H2_PREFACE):
        return
    buf = buf[len(H2_PREFACE):]
    conn.sendall(h2_frame(0x4, 0, 0))  # our empty SETTINGS
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        while len(buf) < 9:
            chunk = conn.recv(65536)
            if not chunk:
                return
            buf += chunk
        length = int.from_bytes(buf[0:3], "big")
        ftype, flags = buf[3], buf[4]
        stream = int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
        while len(buf) < 9 + length:
            chunk = conn.recv(65536)
            if not chunk:
                return
            buf += chunk
        payload, buf = buf[9:9 + length], buf[9 + length:]
        if ftype == 0x4 and not flags & 0x1:  # SETTINGS -> ACK
            conn.sendall(h2_frame(0x4, 0x1, 0))
        elif ftype == 0x6 and not flags & 0x1:  # PING -> PING ACK
            conn.sendall(h2_frame(0x6, 0x1, 0, payload))
        elif ftype == 0x1 and stream:  # HEADERS -> RST_STREAM(INTERNAL_ERROR)
            conn.sendall(h2_frame(0x3, 0, stream, struct.pack(">I", 0x2)))
        elif ftype == 0x7:  # GOAWAY
            return


def raw_listener(fn):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind((HOST, 0))
    ls.listen(128)
    ls.settimeout(0.5)

    def serve(stop):
        while not stop.is_set():
            try:
                conn, _ = ls.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            threading.Thread(target=run_conn, args=(fn, conn), daemon=True).start()
        ls.close()

    return ls.getsockname()[1], serve


def run_conn(fn, conn):
    conn.settimeout(SOCK_TIMEOUT)
    try:
        fn(conn)
    except OSError:
        pass
    finally:
        try:
            conn.close()
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lifetime", type=float, default=120.0, help="exit by itself after this many seconds")
    args = ap.parse_args()

    stop = threading.Event()
    ports = {}
    http_servers = []
    threads = []
    for role, handler in (("ok", OkHandler), ("slow", SlowHandler), ("hc500", Hc500Handler)):
        srv = Server((HOST, 0), handler)
        ports[role] = srv.server_address[1]
        http_servers.append(srv)
        threads.append(threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True))
    for role, fn in (("close", on_close), ("garbage", on_garbage), ("h2rst", on_h2rst), ("silent", on_silent)):
        port, serve = raw_listener(fn)
        ports[role] = port
        threads.append(threading.Thread(target=serve, args=(stop,), daemon=True))
    closed = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    closed.bind((HOST, 0))  # no listen(): connections are refused, the port stays ours
    ports["closed"] = closed.getsockname()[1]

    for t in threads:
        t.start()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(json.dumps(ports), flush=True)
    stop.wait(timeout=args.lifetime)
    stop.set()
    for srv in http_servers:
        srv.shutdown()
        srv.server_close()
    closed.close()
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
