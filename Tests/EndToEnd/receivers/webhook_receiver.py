#!/usr/bin/env python3
"""A webhook receiver for the Notifier tests (stdlib only).

Listens on 127.0.0.1 (port 0: the kernel chooses), prints the port as the first line of stdout
(`{"port": N}`), and appends every request it receives to a JSON-lines file before answering:

  {"method": "POST", "path": "/hook", "headers": {"content-type": "...", ...},
   "body_b64": "...", "received_at": 1700000000.123, "status": 200}

Header names are lower-cased. Behaviour:

  --fail-first N       answer --fail-status (500) to the first N requests, then 200
  --stall-first N      do not answer the first N requests for --stall-seconds (a timeout test)
  --tls-cert/--tls-key serve HTTPS with that certificate

It exits at once on SIGTERM or SIGINT. A request is recorded before it is answered, so a request that
the client gave up on (timeout) is in the file too.
"""
import argparse
import base64
import json
import os
import signal
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--record", required=True, help="JSON-lines file the requests are appended to")
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--fail-status", type=int, default=500)
    parser.add_argument("--stall-first", type=int, default=0)
    parser.add_argument("--stall-seconds", type=float, default=5.0)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args()

    lock = threading.Lock()
    counter = {"requests": 0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *arguments):  # noqa: A002 - the base class's name
            sys.stderr.write("webhook_receiver: " + (format % arguments) + "\n")

        def _handle(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else b""
            with lock:
                counter["requests"] += 1
                number = counter["requests"]
                if number <= args.stall_first:
                    status = "stall"
                elif number <= args.stall_first + args.fail_first:
                    status = args.fail_status
                else:
                    status = 200
                record = {
                    "method": self.command,
                    "path": self.path,
                    "headers": {name.lower(): value for name, value in self.headers.items()},
                    "body_b64": base64.b64encode(body).decode("ascii"),
                    "received_at": time.time(),
                    "status": status,
                }
                with open(args.record, "a", encoding="utf-8") as out:
                    out.write(json.dumps(record) + "\n")
            if status == "stall":
                time.sleep(args.stall_seconds)
                status = 200
            reply = b"" if status == 200 else b"receiver says no"
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)
            except OSError:
                pass  # the client gave up (timeout)

        do_POST = _handle
        do_PUT = _handle
        do_GET = _handle

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = Server(("127.0.0.1", args.port), Handler)
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)

    def stop(signum, frame):
        # At once, even with a stalled request sleeping: no record is half written (the lock),
        # and each record was flushed when its request arrived.
        with lock:
            os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # A child inherits its parent's signal mask, and the Swift test process blocks SIGTERM on
    # the thread that spawns us: without this, SIGTERM would wait for ever.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    server.serve_forever(poll_interval=0.1)


if __name__ == "__main__":
    main()
