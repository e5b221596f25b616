#!/usr/bin/env python3
"""A backend the alerting test switches off and on (Python standard library only).

    toggle_backend.py --port PORT      serve on 127.0.0.1:PORT (0: the kernel picks; printed)

Answers 200 to everything. GET /healthz answers 200, or 503 after `POST /control/unhealthy`
(until `POST /control/healthy`): Envoy's active health check then marks the endpoint unhealthy
and requests get UH. Switching the backend off is the test's job: it stops this process by PID
(Envoy then gets connection refused: UF) and starts it again on the same port.

Prints one line {"port": N} once listening. Exits on SIGTERM or after --lifetime seconds.
"""
import argparse
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

healthy = threading.Event()
healthy.set()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _answer(self, status, body=b"ok\n"):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/healthz":
            self._answer(200 if healthy.is_set() else 503)
        else:
            self._answer(200)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.path == "/control/unhealthy":
            healthy.clear()
        elif self.path == "/control/healthy":
            healthy.set()
        self._answer(200)


class Server(ThreadingHTTPServer):
    allow_reuse_address = True  # restart on the same port right after being stopped
    daemon_threads = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--lifetime", type=float, default=600)
    args = ap.parse_args()
    server = Server(("127.0.0.1", args.port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # A daemon thread: SIGTERM's SystemExit must end the process without waiting for it.
    lifetime = threading.Timer(args.lifetime, server.shutdown)
    lifetime.daemon = True
    lifetime.start()
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
