#!/usr/bin/env python3
"""receiver_bench.py: received entries per second per core of `flagwatch run`'s gRPC access-log
source, the whole path: grpc-swift's HTTP/2 and gRPC framing, the copy into the handoff queue,
the poll loop's in-place decoding and the counting.

  1. Starts `flagwatch run` with one `grpc_access_log` source (and its metrics listener) on
     127.0.0.1 free ports.
  2. --streams (4) client streams (grpcio, one channel each, as Envoy opens one stream per
     worker thread) send, for --seconds (10), the same pre-encoded StreamAccessLogsMessage:
     --entries (64) HTTP entries over 8 Istio clusters, 1 in 10 a 503 with UF (as
     als/main.swift), the identifier on each stream's first message. Envoy's default batch
     (buffer_size_bytes 16 KiB) holds about 160 such entries.
  3. Waits until /metrics counts every entry that was sent (counted + dropped == sent), then
     reads the daemon's CPU time (utime+stime from /proc/PID/stat) over the whole run.

Prints entries sent, counted, dropped, the offered rate, and entries per CPU-second of the
daemon (= entries/s per core), then one JSON line. The sender is Python and shares the machine:
the figure that matters is the daemon's CPU per entry, not the offered rate. Exit status: 0 when
every sent entry was counted or counted as dropped, 2 when the measurement could not be made.
Every process is stopped by its PID; every wait has a deadline.
"""

import argparse
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

try:
    import grpc
except ImportError:
    sys.exit("receiver_bench: needs python3-grpcio (scripts/install-deps.sh test)")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
METHOD = "/envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs"
ENTRIES_PER_MESSAGE = 64   # --entries: 160 is about Envoy's default 16 KiB ALS batch


def fail(message):
    print("receiver_bench: " + message, file=sys.stderr)
    sys.exit(2)


def varint(value):
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        out.append(low | 0x80 if value else low)
        if not value:
            return bytes(out)


def field(number, body):
    """A length-delimited protobuf field."""
    return varint(number << 3 | 2) + varint(len(body)) + body


def message(with_identifier, count):
    """A StreamAccessLogsMessage of `count` HTTP entries, as Benchmarks/scripts/als/main.swift."""
    entries = b""
    for index in range(count):
        cluster = ("outbound|%d||svc%d.default.svc.cluster.local" % (8080 + index % 8, index % 8)).encode()
        address = field(1, field(2, ("10.1.2.%d" % (index % 200)).encode()) + bytes([0x18, 0x90, 0x3F]))
        common = field(13, address) + field(15, cluster)
        if index % 10 == 0:
            common += field(16, bytes([0x30, 0x01]))   # ResponseFlags.upstream_connection_failure
        common += field(19, b"default")
        code = 503 if index % 10 == 0 else 200
        response = field(1, bytes([0x08]) + varint(code)) + field(6, b"via_upstream")
        entries += field(1, field(1, common) + field(4, response))
    identifier = field(1, field(2, b"flagwatch_bench")) if with_identifier else b""
    return identifier + field(2, entries)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def metric(page, name, **labels):
    label_text = ",".join('%s="%s"' % item for item in labels.items())
    match = re.search(re.escape(name + ("{%s}" % label_text if labels else "")) + r" (\S+)$", page, re.M)
    return float(match.group(1)) if match else 0.0


def scrape(port):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/metrics")
        return connection.getresponse().read().decode()
    finally:
        connection.close()


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_streams(port, streams, seconds, entries):
    """Each stream sends until the deadline; returns the number of messages the server took."""
    first, rest = message(True, entries), message(False, entries)
    sent = [0] * streams
    errors = []
    deadline = time.monotonic() + seconds

    def one(index):
        channel = grpc.insecure_channel("127.0.0.1:%d" % port)
        call = channel.stream_unary(METHOD)

        def messages():
            yield first
            sent[index] += 1
            while time.monotonic() < deadline:
                for _ in range(64):
                    yield rest
                    sent[index] += 1
        try:
            call(messages(), timeout=seconds + 30)
        except grpc.RpcError as error:
            errors.append("%s %s" % (error.code(), error.details()))
        finally:
            channel.close()

    threads = [threading.Thread(target=one, args=(index,)) for index in range(streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    if errors:
        fail("a stream failed: %s" % errors[0])
    return sum(sent)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--binary", default=os.environ.get("FLAGWATCH_BIN",
                                                           os.path.join(ROOT, ".build/release/flagwatch")))
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--entries", type=int, default=ENTRIES_PER_MESSAGE, help="entries per message")
    args = parser.parse_args()
    if not os.access(args.binary, os.X_OK):
        fail("no flagwatch binary at %s (make release)" % args.binary)

    with tempfile.TemporaryDirectory(prefix="flagwatch-receiver-bench.") as work:
        metrics_port, als_port = free_port(), free_port()
        config = os.path.join(work, "flagwatch.yaml")
        with open(config, "w") as out:
            out.write('listen: "127.0.0.1:%d"\nstate_dir: %s\nwindows: [1m, 5m, 15m]\nsources:\n'
                      '  - name: mesh\n    grpc_access_log: { listen: "127.0.0.1:%d" }\n'
                      % (metrics_port, work, als_port))
        log = open(os.path.join(work, "flagwatch.log"), "w")
        daemon = subprocess.Popen([args.binary, "run", "--config", config], stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 15
            while True:
                try:
                    scrape(metrics_port)
                    break
                except OSError:
                    if time.monotonic() > deadline or daemon.poll() is not None:
                        fail("flagwatch did not start (see its log)")
                    time.sleep(0.1)
            cpu_before = cpu_seconds(daemon.pid)
            started = time.monotonic()
            messages = run_streams(als_port, args.streams, args.seconds, args.entries)
            sending = time.monotonic() - started
            sent = messages * args.entries
            deadline = time.monotonic() + 60
            while True:
                page = scrape(metrics_port)
                counted = metric(page, "flagwatch_lines_total", source="mesh")
                dropped = metric(page, "flagwatch_received_entries_dropped_total", source="mesh")
                if counted + dropped >= sent:
                    break
                if time.monotonic() > deadline:
                    fail("counted %d + dropped %d of %d sent entries within 60 s" % (counted, dropped, sent))
                time.sleep(0.2)
            cpu = cpu_seconds(daemon.pid) - cpu_before
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(10)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
            log.close()
    result = {
        "streams": args.streams, "entries_per_message": args.entries, "seconds": round(sending, 2), "entries_sent": sent,
        "entries_counted": int(counted), "entries_dropped": int(dropped),
        "offered_entries_per_second": round(sent / sending), "daemon_cpu_seconds": round(cpu, 3),
        "entries_per_cpu_second": round(counted / cpu) if cpu > 0 else None,
    }
    print("sent %d entries in %.1f s over %d streams (%.2f M/s offered); counted %d, dropped %d" % (
        sent, sending, args.streams, sent / sending / 1e6, counted, dropped))
    print("daemon CPU %.2f s: %.2f M entries per CPU-second (entries/s per core)" % (
        cpu, (counted / cpu / 1e6) if cpu > 0 else 0))
    print(json.dumps(result))
    if counted + dropped != sent:
        fail("counted + dropped %d != sent %d" % (counted + dropped, sent))


if __name__ == "__main__":
    main()
