#!/usr/bin/env python3
"""The "pods" behind Envoy in the diagnosis end-to-end tests (Python standard library only).

Run inside the network namespace the test creates (`ip netns exec NS python3 pods.py ...`):
each --serve ROLE@ADDRESS:PORT binds one HTTP/1.1 server on that address. Once all are bound,
one JSON line is printed on stdout ({"ok@198.18.7.2:8080": "bound", ...}).

  role   behaviour
  ok     200 for everything
  slow   sleeps x-backend-delay-ms (default 1000, at most 20000), then 200

An endpoint with no server (no --serve for its address and port) refuses connections: the
kernel answers the SYN with RST. Exits on SIGTERM/SIGINT, or by itself after --lifetime seconds.
"""
import argparse
import json
import os
import signal
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_DELAY_MS = 20000


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "flagwatch-e2e-pod"
    sys_version = ""
    timeout = 30.0

    def log_message(self, *args):  # stdout is for the READY line only
        pass

    def handle(self):
        try:
            super().handle()
        except OSError:  # Envoy resets connections on timeouts
            pass

    def do_GET(self):
        if self.server.role == "slow":
            try:
                delay = int(self.headers.get("x-backend-delay-ms") or 1000)
            except ValueError:
                delay = 1000
            time.sleep(max(0, min(delay, MAX_DELAY_MS)) / 1000.0)
        body = ("%s %s:%d %s\n" % (self.server.role, *self.server.server_address[:2], self.path)).encode()
        try:
            self.send_response(200)
            self.send_header("content-type", "text/plain")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            self.close_connection = True


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        pass

    def server_bind(self):
        # HTTPServer.server_bind asks DNS for the address's name (socket.getfqdn): nothing
        # to ask inside the namespace, and no reason to wait for it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--serve", action="append", default=[], metavar="ROLE@ADDRESS:PORT")
    ap.add_argument("--lifetime", type=float, default=300.0, help="exit by itself after this many seconds")
    args = ap.parse_args()

    servers = []
    for spec in args.serve:
        role, _, where = spec.partition("@")
        address, _, port = where.rpartition(":")
        if role not in ("ok", "slow"):
            ap.error("unknown role %r" % role)
        srv = Server((address, int(port)), Handler)
        srv.role = role
        servers.append(srv)
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(json.dumps({spec: "bound" for spec in args.serve}), flush=True)
    stop.wait(timeout=args.lifetime)
    for srv in servers:
        srv.shutdown()
        srv.server_close()
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
