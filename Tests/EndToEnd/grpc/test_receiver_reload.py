"""End-to-end: a daemon receiving over gRPC (issue 16): SIGHUP, and no state directory needed.

A reload that leaves the source's settings alone keeps its listener and the senders' open
streams (a stream opened before the reload goes on being counted); one that moves it to another
port stops the old listener (its streams end, new connections are refused) and listens on the
new port; the source's counts carry over by name.

The sender is grpcio streaming StreamAccessLogsMessages encoded by harness/grpc_sender.py. Only 127.0.0.1; the daemon is stopped by PID (procs); every wait is bounded.
"""
import queue
import signal
import threading

import grpc
import pytest

from harness.grpc_sender import ALS_PATH, als_message, http_entry
from harness.flagwatch import FlagwatchRun, run_argv
from harness.net import LOOPBACK, free_port
from harness.polling import poll_until

pytestmark = pytest.mark.e2e

REFUSED = "outbound|9001||payments.default.svc.cluster.local"
STREAM_TIMEOUT = 60.0


def config_text(state_dir, als_port):
    return ('listen: "127.0.0.1:0"\nstate_dir: %s\nsources:\n  - name: mesh\n'
            '    grpc_access_log: { listen: "%s:%d" }\n' % (state_dir, LOOPBACK, als_port))


class OpenStream:
    """One StreamAccessLogs call kept open; `send` queues a message on it, `close` ends it and
    returns the call's outcome (a grpc.StatusCode)."""

    def __init__(self, port):
        self.channel = grpc.insecure_channel("%s:%d" % (LOOPBACK, port))
        self.messages = queue.Queue()
        self.outcome = None
        self.thread = threading.Thread(target=self._call, daemon=True)
        self.thread.start()

    def _requests(self):
        while True:
            message = self.messages.get()
            if message is None:
                return
            yield message

    def _call(self):
        try:
            self.channel.stream_unary(ALS_PATH)(self._requests(), timeout=STREAM_TIMEOUT)
            self.outcome = grpc.StatusCode.OK
        except grpc.RpcError as error:
            self.outcome = error.code()

    def send(self, message):
        self.messages.put(message)

    def close(self):
        self.messages.put(None)
        self.thread.join(STREAM_TIMEOUT + 5)
        self.channel.close()
        return self.outcome


def batch(count, refused=True):
    """A StreamAccessLogsMessage of `count` entries of REFUSED: UF 503s, or 200s."""
    entry = http_entry(REFUSED, ("UF",), 503) if refused else http_entry(REFUSED)
    return als_message([entry] * count)


def lines(samples):
    return samples.get('flagwatch_lines_total{source="mesh"}', 0)


def uf(samples):
    return samples.get('flagwatch_response_flags_total{upstream_cluster="%s",response_flag="UF"}' % REFUSED, 0)


def test_a_reload_keeps_an_unchanged_receivers_streams_and_a_moved_one_listens_on_its_new_port(tmp_path, procs):
    first_port, second_port = free_port(), free_port()
    (tmp_path / "state").mkdir()
    config = tmp_path / "flagwatch.yaml"
    config.write_text(config_text(tmp_path / "state", first_port))
    metrics_port = free_port()
    daemon = FlagwatchRun(run_argv(config, metrics_port, ("--log-level", "info")), tmp_path / "flagwatch.log",
                          metrics_port, procs).wait_ready()

    # A stream opened before any reload: 3 messages of 2 entries, every entry a UF.
    stream = OpenStream(first_port)
    for _ in range(3):
        stream.send(batch(2))
    daemon.wait_for(lambda s: lines(s) == 6, "the first 6 entries")

    # Reload 1: nothing changed. The same stream goes on being counted.
    daemon.send_signal(signal.SIGHUP)
    poll_until(lambda: daemon.log_text().count("reload") >= 1 or None, 10, "the reload logged")
    for _ in range(2):
        stream.send(batch(2))
    samples = daemon.wait_for(lambda s: lines(s) == 10, "10 entries over the stream that outlived the reload")
    assert uf(samples) == 10
    assert "grpc_access_log source mesh stopped" not in daemon.log_text()

    # Reload 2: the source moves to another port. The old listener stops and the open stream
    # ends; the new port counts into the same source's counts.
    config.write_text(config_text(tmp_path / "state", second_port))
    daemon.send_signal(signal.SIGHUP)
    poll_until(lambda: ("grpc_access_log source mesh listening on port %d" % second_port) in daemon.log_text()
               or None, 15, "the source listening on its new port")
    assert stream.close() in (grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
    moved = OpenStream(second_port)
    moved.send(batch(3))
    moved.send(batch(1, refused=False))
    assert moved.close() == grpc.StatusCode.OK
    samples = daemon.wait_for(lambda s: lines(s) == 14, "14 entries: 10 before the move, 4 after")
    assert uf(samples) == 13
    assert samples.get('flagwatch_lines_malformed_total{source="mesh",reason="bad_protobuf"}', 0) == 0

    # The old port no longer answers.
    old = OpenStream(first_port)
    old.send(batch(1))
    assert old.close() == grpc.StatusCode.UNAVAILABLE
    assert lines(daemon.samples()) == 14


def test_a_daemon_that_only_receives_needs_no_state_directory(tmp_path, procs):
    als_port, metrics_port = free_port(), free_port()
    config = tmp_path / "flagwatch.yaml"
    config.write_text(config_text(tmp_path / "no-such-directory", als_port))
    daemon = FlagwatchRun(run_argv(config, metrics_port), tmp_path / "flagwatch.log", metrics_port, procs).wait_ready()
    stream = OpenStream(als_port)
    stream.send(batch(4))
    assert stream.close() == grpc.StatusCode.OK
    samples = daemon.wait_for(lambda s: lines(s) == 4, "the 4 received entries")
    assert uf(samples) == 4
    assert not (tmp_path / "no-such-directory").exists()
