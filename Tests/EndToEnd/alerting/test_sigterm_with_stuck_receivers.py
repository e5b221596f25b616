"""SIGTERM while every alert receiver is stuck (it accepts the request and never answers) and a
scrape's response is still being read (slowly): the daemon exits 0 within the 5 s docs/daemon.md
promises, having saved its checkpoints.

Before, the notifier's final delivery (up to 5 s) began only after the listener's drain (up to
5 s) had ended: 6.8 s were measured with a short scrape in flight, 10.3 s with this one.
"""
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from harness.flagwatch import RunningDaemon
from harness.lines import istio_line
from harness.polling import poll_until
from harness.processes import Processes, log_tail

pytestmark = pytest.mark.e2e

HERE = Path(__file__).resolve().parent
PROMISED_SECONDS = 5.0


CLUSTERS = 2000  # a /metrics page of about a megabyte: more than the sockets buffer


def slow_scrape(port):
    """A scrape whose reader takes its time: a 1 KiB receive buffer, one small read, then none."""
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    client.connect(("127.0.0.1", port))
    client.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    client.settimeout(5)
    assert client.recv(100).startswith(b"HTTP/1.1 200")
    return client


def start_stuck_receiver(processes, tmp_path, name):
    record = tmp_path / ("%s.jsonl" % name)
    log = tmp_path / ("%s.log" % name)
    receiver = processes.start([sys.executable, HERE.parent / "receivers" / "webhook_receiver.py",
                                "--record", record, "--stall-first", "100000", "--stall-seconds", "600"], log)
    port = poll_until(lambda: json.loads(log.read_text().splitlines()[0])["port"], 10, "%s listening" % name)
    return receiver, port, record


def test_sigterm_with_every_receiver_stuck_exits_0_within_5_seconds(tmp_path):
    processes = Processes()
    try:
        _, webhook_port, webhook_record = start_stuck_receiver(processes, tmp_path, "webhook")
        _, am_port, am_record = start_stuck_receiver(processes, tmp_path, "alertmanager")
        log = tmp_path / "access.log"
        log.write_text("")
        config = tmp_path / "flagwatch.yaml"
        config.write_text("""\
state_dir: %s
sources:
  - {name: envoy, files: ["%s"], format: istio, start_at: beginning}
alerting:
  evaluate_every: 1s
  notification_timeout: 30s
  alertmanagers: ["http://127.0.0.1:%d"]
  webhooks: [{url: "http://127.0.0.1:%d/hook"}]
  rules:
    - {name: Failing, flags: [UF], window: 1m, min_count: 1, for: 0s}
""" % (tmp_path / "state", log, am_port, webhook_port))
        stderr = tmp_path / "flagwatch.stderr"
        daemon = RunningDaemon(processes, config, stderr)
        with open(log, "a") as out:
            out.write("".join(istio_line("outbound|80||api-%d.default.svc.cluster.local" % i, "UF", 503, i)
                              for i in range(CLUSTERS)))
        # Both receivers hold a request of ours, unanswered.
        poll_until(lambda: webhook_record.stat().st_size > 0 and am_record.stat().st_size > 0, 20,
                   "both receivers got a request", context=daemon.log)
        poll_until(lambda: daemon.sample('flagwatch_lines_total{source="envoy"}') == CLUSTERS, 20, "lines counted",
                   context=daemon.log)
        reader = slow_scrape(daemon.port)

        started = time.monotonic()
        os.kill(daemon.pid, signal.SIGTERM)
        status = daemon.process.wait(timeout=30)
        elapsed = time.monotonic() - started
        print("\nexited %.2f s after SIGTERM" % elapsed)
        assert status == 0, log_tail(stderr)
        assert elapsed <= PROMISED_SECONDS + 0.5, "exited %.2f s after SIGTERM\n%s" % (elapsed, log_tail(stderr))
        assert "stopped; checkpoints saved" in stderr.read_text()
        reader.close()
    finally:
        processes.stop_all()
