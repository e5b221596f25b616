"""End-to-end: flagwatch's gRPC receiver under bad input, load, limits and TLS (issue 16).

`flagwatch run` with one `grpc_access_log` source (source "mesh") on 127.0.0.1; the senders are
harness/grpc_sender.py (HTTP/2 by python3-h2, protobuf and gRPC framing by hand, so a test sends
exactly the bytes it wants), python3-grpcio where a real client library's behaviour is the
point, and the real Envoy 1.40 for the idle-stream and TLS tests. What each test asserts is the
contract written in docs/formats.md §10.2 and docs/configuration.md.

Only 127.0.0.1; every process is stopped by PID (the processes fixture); every wait is bounded.
"""
import os
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from harness.envoy import envoy_counter, find_envoy
from harness.flagwatch import FlagwatchProcess, FlagwatchRun, flagwatch_binary, run_argv
from harness.grpc_sender import (GrpcConnection, als_message, field_bytes, grpc_frame, grpc_module, http_entry,
                                 send_streams, send_streams_threaded)
from harness.net import LOOPBACK, free_port, http_get
from harness.polling import poll_until
from harness.processes import vm_status

pytestmark = pytest.mark.e2e

HERE = Path(__file__).resolve().parent
SOURCE = "mesh"
COUNT_TIMEOUT = 20.0
# grpc-status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html).
OK, INTERNAL, RESOURCE_EXHAUSTED, UNAVAILABLE, UNIMPLEMENTED = 0, 13, 8, 14, 12
# HTTP/2 error codes (RFC 9113 §7).
H2_NO_ERROR, H2_PROTOCOL_ERROR, H2_CANCEL = 0x0, 0x1, 0x8


# --------------------------------------------------------------------------- the daemon

def receiver_config(tmp_path, als_port, **settings):
    """A config: metrics on a free port, one grpc_access_log source `mesh` on `als_port` with
    `settings` (YAML flow values) added to its mapping."""
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    fields = ['listen: "%s:%d"' % (LOOPBACK, als_port)] + ["%s: %s" % kv for kv in settings.items()]
    text = ('listen: "127.0.0.1:0"\nstate_dir: %s\nsources:\n  - name: %s\n    grpc_access_log: { %s }\n'
            % (state, SOURCE, ", ".join(fields)))
    path = tmp_path / "flagwatch.yaml"
    path.write_text(text)
    return path


class Receiver:
    """`flagwatch run` with the receiver; `als_port` is where the senders go."""

    def __init__(self, processes, tmp_path, **settings):
        self.als_port = free_port()
        self.config = receiver_config(tmp_path, self.als_port, **settings)
        port = free_port()
        self.run = FlagwatchRun(run_argv(self.config, port), tmp_path / "flagwatch.log", port, processes)
        self.run.wait_ready()

    def samples(self):
        return self.run.samples()

    def lines(self, samples=None):
        return (samples or self.samples()).get('flagwatch_lines_total{source="%s"}' % SOURCE, 0)

    def wait_lines(self, want, timeout=COUNT_TIMEOUT, extra=lambda s: True):
        """Scrapes until lines == want (and `extra`); then checks that they stay there for 0.5 s
        (a count that overshoots fails)."""
        samples = self.run.wait_samples(lambda s: self.lines(s) >= want and extra(s),
                                        "%d lines of source %s" % (want, SOURCE), timeout)
        time.sleep(0.5)
        samples = self.samples()
        assert self.lines(samples) == want, "lines %s, want %d" % (self.lines(samples), want)
        return samples

    def alive(self):
        assert self.run.proc.poll() is None, "flagwatch exited%s" % self.run.context()
        assert self.run.get("/metrics")[0] == 200


def malformed(samples, reason="bad_protobuf"):
    return samples.get('flagwatch_lines_malformed_total{source="%s",reason="%s"}' % (SOURCE, reason), 0)


def flag(samples, cluster, flag_name):
    return samples.get('flagwatch_response_flags_total{upstream_cluster="%s",response_flag="%s"}'
                       % (cluster, flag_name), 0)


def dropped(samples, what="entries"):
    return samples.get('flagwatch_received_%s_dropped_total{source="%s"}' % (what, SOURCE), 0)


def rejected(samples):
    return samples.get('flagwatch_received_messages_rejected_total{source="%s"}' % SOURCE, 0)


def uf_entries(cluster, count):
    return [http_entry(cluster, ["UF"], 503) for _ in range(count)]


@pytest.fixture
def receiver(processes, tmp_path):
    return Receiver(processes, tmp_path)


# --------------------------------------------------------------------------- 1. garbage

def test_a_message_that_is_not_protobuf_counts_once_as_bad_protobuf_and_the_stream_goes_on(receiver):
    conn = GrpcConnection(receiver.als_port)
    stream = conn.open_stream()
    conn.send(stream, grpc_frame(als_message(uf_entries("a", 3))))
    # A length-delimited field 2 whose length runs past the message's end: not protobuf.
    conn.send(stream, grpc_frame(b"\x12\x7f\x00garbage, not protobuf"))
    conn.send(stream, grpc_frame(als_message(uf_entries("a", 4), identifier=False)))
    conn.end(stream)
    outcome = conn.outcome(stream)
    assert (outcome.grpc_status, outcome.data) == (OK, b"\x00\x00\x00\x00\x00"), outcome
    samples = receiver.wait_lines(3 + 1 + 4)
    assert (malformed(samples), rejected(samples)) == (1, 0)
    assert flag(samples, "a", "UF") == 7


def test_an_entry_with_broken_bytes_is_malformed_and_its_neighbours_count(receiver):
    broken = field_bytes(1, b"\x0a\x05ab")   # common_properties says 5 bytes, 2 follow
    entries = uf_entries("b", 2) + [broken] + uf_entries("b", 3)
    conn = GrpcConnection(receiver.als_port)
    stream = conn.open_stream()
    conn.send(stream, grpc_frame(als_message(entries)), end_stream=True)
    assert conn.outcome(stream).grpc_status == OK
    samples = receiver.wait_lines(6)
    assert malformed(samples) == 1
    assert flag(samples, "b", "UF") == 5


def test_a_method_flagwatch_does_not_serve_is_unimplemented_and_counts_nothing(receiver):
    conn = GrpcConnection(receiver.als_port)
    stream = conn.open_stream(path="/envoy.service.accesslog.v2.AccessLogService/StreamAccessLogs")
    conn.send(stream, grpc_frame(als_message(uf_entries("v2", 2))), end_stream=True)
    assert conn.outcome(stream).grpc_status == UNIMPLEMENTED
    time.sleep(0.5)
    samples = receiver.samples()
    assert (receiver.lines(samples), malformed(samples), rejected(samples)) == (0, 0, 0)


def test_bytes_that_are_not_http2_close_that_connection_and_the_daemon_serves_the_next(receiver):
    garbage = GrpcConnection(receiver.als_port, preamble=False)
    garbage.write_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + os.urandom(512))
    assert garbage.wait_closed(10), "the server kept a connection that does not speak HTTP/2"
    garbage.close()

    # A valid preface, then a frame of an unknown stream state: DATA on stream 0, PROTOCOL_ERROR.
    bad_frames = GrpcConnection(receiver.als_port)
    bad_frames.wait_settings()
    bad_frames.write_raw(b"\x00\x00\x04\x00\x00\x00\x00\x00\x00abcd")
    assert bad_frames.wait_closed(10), "the server kept a connection after an invalid frame"
    assert bad_frames.goaway == H2_PROTOCOL_ERROR
    bad_frames.close()

    receiver.alive()
    outcomes = send_streams(receiver.als_port, 1, 2, lambda s, m: als_message(uf_entries("c", 5), identifier=m == 0))
    assert [o.grpc_status for o in outcomes] == [OK]
    samples = receiver.wait_lines(10)
    assert flag(samples, "c", "UF") == 10
    assert malformed(samples) == 0


def test_a_message_over_max_message_size_resets_its_stream_counts_as_rejected_and_nothing_from_it(processes, tmp_path):
    """grpc-swift-nio-transport 2.9 checks the 5-byte length prefix against max_message_size
    before it buffers the payload and resets the stream (RST_STREAM CANCEL): the client sees no
    grpc-status (grpcio reports CANCELLED; RESOURCE_EXHAUSTED would be the gRPC convention, but
    the transport drops its own error). The other stream on the same connection goes on."""
    receiver = Receiver(processes, tmp_path, max_message_size=2048)
    conn = GrpcConnection(receiver.als_port)
    big, small = conn.open_stream(), conn.open_stream()
    conn.send(small, grpc_frame(als_message(uf_entries("small", 2))))
    too_big = als_message(uf_entries("big", 100))
    assert len(too_big) > 2048
    conn.send(big, grpc_frame(als_message(uf_entries("big", 1))))
    conn.send(big, grpc_frame(too_big))
    outcome = conn.outcome(big)
    assert (outcome.grpc_status, outcome.reset_code) == (None, H2_CANCEL), outcome
    conn.send(small, grpc_frame(als_message(uf_entries("small", 3), identifier=False)), end_stream=True)
    assert conn.outcome(small).grpc_status == OK
    samples = receiver.wait_lines(1 + 5, extra=lambda s: rejected(s) >= 1)
    assert flag(samples, "big", "UF") == 1
    assert flag(samples, "small", "UF") == 5
    assert (malformed(samples), rejected(samples)) == (0, 1)

    # A real client library's view of the same: CANCELLED, and still nothing counted from it.
    grpc = grpc_module()
    with grpc.insecure_channel("%s:%d" % (LOOPBACK, receiver.als_port)) as channel:
        call = channel.stream_unary("/envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs",
                                    request_serializer=lambda b: b, response_deserializer=lambda b: b)
        with pytest.raises(grpc.RpcError) as failure:
            call(iter([too_big]), timeout=10)
        assert failure.value.code() == grpc.StatusCode.CANCELLED
    receiver.alive()
    samples = receiver.run.wait_samples(lambda s: rejected(s) == 2, "2 rejected messages")
    assert (receiver.lines(samples), flag(samples, "big", "UF")) == (6, 1)


def test_a_compressed_message_without_grpc_encoding_resets_its_stream_and_counts_as_rejected(receiver):
    """No grpc-encoding was negotiated, so the transport has no decompressor: it resets the
    stream (RST_STREAM CANCEL, no grpc-status); the messages before it count."""
    conn = GrpcConnection(receiver.als_port)
    stream = conn.open_stream()
    conn.send(stream, grpc_frame(als_message(uf_entries("d", 2))))
    conn.send(stream, grpc_frame(als_message(uf_entries("d", 3)), compressed=True))
    outcome = conn.outcome(stream)
    assert (outcome.grpc_status, outcome.reset_code) == (None, H2_CANCEL), outcome
    receiver.alive()
    samples = receiver.wait_lines(2, extra=lambda s: rejected(s) == 1)
    assert flag(samples, "d", "UF") == 2
    assert (malformed(samples), rejected(samples)) == (0, 1)


def test_a_truncated_message_at_the_end_of_a_stream_is_dropped_by_the_transport_and_the_rest_counts(receiver):
    """The transport ends the call normally (grpc-status 0) and discards the incomplete last
    message without telling the handler: flagwatch cannot count it, neither as lines nor as
    malformed (docs/formats.md §10.2). Envoy never sends one: it frames whole messages."""
    conn = GrpcConnection(receiver.als_port)
    stream = conn.open_stream()
    conn.send(stream, grpc_frame(als_message(uf_entries("e", 2))))
    whole = grpc_frame(als_message(uf_entries("e", 3)))
    conn.send(stream, whole[:len(whole) - 7], end_stream=True)
    outcome = conn.outcome(stream)
    assert (outcome.grpc_status, outcome.reset_code) == (OK, None), outcome
    receiver.alive()
    samples = receiver.wait_lines(2)
    assert flag(samples, "e", "UF") == 2
    assert (malformed(samples), rejected(samples)) == (0, 0)


# --------------------------------------------------------------------------- 2. concurrent streams

MESSAGES_PER_STREAM = 20


def mixed_message(cluster, first):
    """3 entries of `cluster`: a 503 UF, a 503 UH and a 200 without flags."""
    return als_message([http_entry(cluster, ["UF"], 503), http_entry(cluster, ["UH"], 503), http_entry(cluster)],
                       identifier=first)


def test_100_streams_over_10_connections_at_once_count_every_entry_and_flag_per_cluster(receiver):
    results = send_streams_threaded(
        receiver.als_port, 10, 10, MESSAGES_PER_STREAM, lambda c, s, m: mixed_message("conn%d" % c, m == 0))
    assert [o.grpc_status for outcomes in results for o in outcomes] == [OK] * 100
    samples = receiver.wait_lines(100 * MESSAGES_PER_STREAM * 3)
    for c in range(10):
        assert (flag(samples, "conn%d" % c, "UF"), flag(samples, "conn%d" % c, "UH")) == \
            (10 * MESSAGES_PER_STREAM, 10 * MESSAGES_PER_STREAM), "cluster conn%d" % c
    assert (malformed(samples), dropped(samples)) == (0, 0)


def test_100_streams_on_one_connection_at_once_count_every_entry_and_flag_per_cluster(receiver):
    outcomes = send_streams(receiver.als_port, 100, MESSAGES_PER_STREAM,
                            lambda s, m: mixed_message("stream%d" % (s % 7), m == 0))
    assert [o.grpc_status for o in outcomes] == [OK] * 100
    samples = receiver.wait_lines(100 * MESSAGES_PER_STREAM * 3)
    for c in range(7):
        streams = len(range(c, 100, 7))
        assert (flag(samples, "stream%d" % c, "UF"), flag(samples, "stream%d" % c, "UH")) == \
            (streams * MESSAGES_PER_STREAM, streams * MESSAGES_PER_STREAM), "cluster stream%d" % c
    assert (malformed(samples), dropped(samples)) == (0, 0)


def test_with_max_concurrent_streams_10_a_grpc_client_holds_its_11th_stream_until_one_ends(processes, tmp_path):
    receiver = Receiver(processes, tmp_path, max_concurrent_streams=10)
    grpc = grpc_module()
    channel = grpc.insecure_channel("%s:%d" % (LOOPBACK, receiver.als_port))
    try:
        stream_call = channel.stream_unary(
            "/envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs",
            request_serializer=lambda b: b, response_deserializer=lambda b: b)
        release = [threading.Event() for _ in range(11)]

        def requests(i):
            yield als_message(uf_entries("held%d" % i, 1))
            release[i].wait(30)

        futures = []
        for i in range(11):
            futures.append(stream_call.future(requests(i), timeout=60))
            if i == 9:
                receiver.wait_lines(10)
        # The 11th stream's first message waits in the client for a free stream slot: still 10.
        time.sleep(1.5)
        assert receiver.lines() == 10
        release[0].set()
        assert futures[0].result(10) == b""
        samples = receiver.wait_lines(11)
        assert flag(samples, "held10", "UF") == 1
        for event in release:
            event.set()
        assert [f.result(10) for f in futures] == [b""] * 11
    finally:
        channel.close()


def test_a_client_that_opens_more_streams_than_max_concurrent_streams_loses_its_connection_not_the_daemon(
        processes, tmp_path):
    receiver = Receiver(processes, tmp_path, max_concurrent_streams=10)
    conn = GrpcConnection(receiver.als_port)
    assert conn.wait_settings()
    assert conn.server_max_concurrent_streams == 10
    conn.pump(0.3)   # our SETTINGS ACK and the server's settings are exchanged
    conn.ignore_server_stream_limit()
    streams = [conn.open_stream() for _ in range(10)]
    for stream in streams:
        conn.send(stream, grpc_frame(als_message(uf_entries("limit", 1))))
    receiver.wait_lines(10)
    conn.open_stream()
    assert conn.wait_closed(10), "the server kept a connection that broke its stream limit"
    assert conn.goaway == H2_PROTOCOL_ERROR
    conn.close()
    receiver.alive()
    assert [o.grpc_status for o in send_streams(receiver.als_port, 10, 1, lambda s, m: als_message(
        uf_entries("after", 1)))] == [OK] * 10
    samples = receiver.wait_lines(20)
    assert (flag(samples, "limit", "UF"), flag(samples, "after", "UF")) == (10, 10)


# --------------------------------------------------------------------------- 3. backpressure

FLOOD_ENTRIES_PER_MESSAGE = 400
FLOOD_CLUSTER = "outbound|8080||flood.default.svc.cluster.local." + "x" * 60   # long: more bytes per entry
RSS_GROWTH_BOUND = 64 * 1024 * 1024


def test_a_flood_into_a_tiny_queue_drops_whole_messages_counts_them_and_keeps_memory_bounded(processes, tmp_path):
    receiver = Receiver(processes, tmp_path, max_message_size=65536, queue_messages=2, queue_bytes=65536)
    message = als_message([http_entry(FLOOD_CLUSTER, ["UF"], 503)] * FLOOD_ENTRIES_PER_MESSAGE, identifier=False)
    assert len(message) < 65536
    # Warm up (threads, allocator arenas) before the baseline.
    send_streams(receiver.als_port, 1, 1, lambda s, m: message)
    receiver.wait_lines(FLOOD_ENTRIES_PER_MESSAGE)
    before = vm_status(receiver.run.pid)["VmRSS"]

    connections, streams, messages = 4, 5, 150
    results = send_streams_threaded(receiver.als_port, connections, streams, messages, lambda c, s, m: message,
                                    timeout=120)
    assert [o.grpc_status for outcomes in results for o in outcomes] == [OK] * (connections * streams)
    sent_messages = connections * streams * messages
    sent = sent_messages * FLOOD_ENTRIES_PER_MESSAGE
    flood_bytes = sent_messages * len(message)

    def settled(samples):
        return receiver.lines(samples) - FLOOD_ENTRIES_PER_MESSAGE + dropped(samples) >= sent
    samples = receiver.run.wait_samples(settled, "received + dropped = sent", 120)
    time.sleep(0.5)
    samples = receiver.samples()
    after = vm_status(receiver.run.pid)["VmRSS"]
    counted = receiver.lines(samples) - FLOOD_ENTRIES_PER_MESSAGE
    assert counted + dropped(samples) == sent
    assert dropped(samples) == dropped(samples, "messages") * FLOOD_ENTRIES_PER_MESSAGE
    assert dropped(samples, "messages") > 0, "no message was dropped: the flood did not fill the queue"
    assert flag(samples, FLOOD_CLUSTER, "UF") == counted + FLOOD_ENTRIES_PER_MESSAGE
    print("flood: %d messages, %.0f MiB; counted %d entries, dropped %d messages; VmRSS %.1f -> %.1f MiB" % (
        sent_messages, flood_bytes / 2 ** 20, counted, dropped(samples, "messages"), before / 2 ** 20, after / 2 ** 20))
    assert flood_bytes > 2 * RSS_GROWTH_BOUND
    assert after - before < RSS_GROWTH_BOUND
    receiver.alive()


# --------------------------------------------------------------------------- 4. idle streams

def test_a_stream_silent_for_stream_idle_timeout_is_ended_with_unavailable_and_its_entries_count(processes, tmp_path):
    receiver = Receiver(processes, tmp_path, stream_idle_timeout="2s")
    conn = GrpcConnection(receiver.als_port)
    silent, busy = conn.open_stream(), conn.open_stream()
    started = time.monotonic()
    conn.send(silent, grpc_frame(als_message(uf_entries("silent", 2))))
    # The busy stream sends every 0.5 s for 4 s: it is never idle for 2 s and stays open.
    for i in range(8):
        conn.send(busy, grpc_frame(als_message(uf_entries("busy", 1), identifier=i == 0)))
        conn.wait(lambda: False, 0.5)
    outcome = conn.streams[silent]
    assert outcome.ended, outcome
    assert (outcome.grpc_status, outcome.reset_code) == (UNAVAILABLE, None), outcome
    assert "stream_idle_timeout" in outcome.grpc_message
    assert not conn.streams[busy].ended
    conn.end(busy)
    assert conn.outcome(busy).grpc_status == OK
    assert time.monotonic() - started >= 4
    samples = receiver.wait_lines(2 + 8)
    assert (flag(samples, "silent", "UF"), flag(samples, "busy", "UF")) == (2, 8)
    assert rejected(samples) == 0


def test_a_stream_silent_for_stream_idle_timeout_is_not_ended_before_it(processes, tmp_path):
    receiver = Receiver(processes, tmp_path, stream_idle_timeout="3s")
    conn = GrpcConnection(receiver.als_port)
    stream = conn.open_stream()
    conn.send(stream, grpc_frame(als_message(uf_entries("quiet", 1))))
    started = time.monotonic()
    outcome = conn.outcome(stream, timeout=10)
    elapsed = time.monotonic() - started
    assert outcome.grpc_status == UNAVAILABLE, outcome
    assert 2.8 <= elapsed < 6, elapsed
    receiver.wait_lines(1)


def test_a_connection_without_an_open_stream_for_idle_timeout_is_closed_with_goaway(processes, tmp_path):
    receiver = Receiver(processes, tmp_path, idle_timeout="1s", stream_idle_timeout="1h")
    conn = GrpcConnection(receiver.als_port)
    stream = conn.open_stream()
    conn.send(stream, grpc_frame(als_message(uf_entries("idle", 1))), end_stream=True)
    assert conn.outcome(stream).grpc_status == OK
    started = time.monotonic()
    assert conn.wait_closed(10), "the connection stayed open"
    assert conn.goaway == H2_NO_ERROR
    assert 0.9 <= time.monotonic() - started < 6
    receiver.wait_lines(1)


class EnvoyWithALS:
    """The real Envoy 1.40 from `template` (envoy-als*.yaml.in), its access log streamed to
    `als_port`; `send(ok, refused)` makes requests and checks their codes."""

    def __init__(self, processes, tmp_path, template, als_port, **fill):
        self.ports = {name: free_port() for name in ("ADMIN", "HTTP", "REFUSED")}
        self.ports["ALS"] = als_port
        text = (HERE / template).read_text()
        for name, port in self.ports.items():
            text = text.replace("@@%s_PORT@@" % name, str(port))
        for name, value in fill.items():
            text = text.replace("@@%s@@" % name, str(value))
        path = tmp_path / "envoy.yaml"
        path.write_text(text)
        self.log = tmp_path / "envoy.log"
        self.proc = processes.start([find_envoy(), "-c", str(path), "--concurrency", "1", "-l", "warning",
                                     "--base-id", str(self.ports["ADMIN"])], self.log)
        poll_until(lambda: self._ready(), 20, "Envoy ready")

    def _ready(self):
        assert self.proc.poll() is None, "Envoy exited: %s" % self.log.read_text()[-3000:]
        try:
            return http_get("http://%s:%d/ready" % (LOOPBACK, self.ports["ADMIN"]), timeout=1.0)[0] == 200
        except OSError:
            return False

    def send(self, ok, refused):
        codes = [http_get("http://%s:%d/ok" % (LOOPBACK, self.ports["HTTP"]))[0] for _ in range(ok)]
        codes += [http_get("http://%s:%d/refused" % (LOOPBACK, self.ports["HTTP"]))[0] for _ in range(refused)]
        assert codes == [200] * ok + [503] * refused

    def counter(self, name):
        return envoy_counter(self.ports["ADMIN"], name)

    def wait_written(self, want):
        poll_until(lambda: self.counter("access_logs.grpc_access_log.logs_written") >= want, 10,
                   "Envoy's logs_written reaching %d" % want)
        return self.counter("access_logs.grpc_access_log.logs_written")


REFUSED_CLUSTER = "outbound|9001||payments.default.svc.cluster.local"


def test_envoy_opens_a_new_stream_after_flagwatch_ends_an_idle_one_and_every_entry_counts(processes, tmp_path):
    receiver = Receiver(processes, tmp_path, stream_idle_timeout="2s")
    envoy = EnvoyWithALS(processes, tmp_path, "envoy-als.yaml.in", receiver.als_port)
    envoy.send(3, 2)
    assert envoy.wait_written(5) == 5
    receiver.wait_lines(5)
    # Nothing to log for 2 s: flagwatch ends the stream (UNAVAILABLE); Envoy's cluster counts the
    # request (its stream) completed, and resets its own, still open, side.
    poll_until(lambda: envoy.counter("cluster.flagwatch_als.upstream_rq_completed") == 1, 10,
               "Envoy seeing its access-log stream ended by flagwatch")
    assert envoy.counter("cluster.flagwatch_als.upstream_rq_total") == 1
    envoy.send(4, 3)
    assert envoy.wait_written(12) == 12
    samples = receiver.wait_lines(12)
    assert flag(samples, REFUSED_CLUSTER, "UF") == 5
    assert envoy.counter("access_logs.grpc_access_log.logs_dropped") == 0
    assert envoy.counter("cluster.flagwatch_als.upstream_rq_total") == 2   # a new stream for the new entries
    assert (malformed(samples), dropped(samples)) == (0, 0)


# --------------------------------------------------------------------------- 5. TLS

def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, timeout=60, capture_output=True)


def make_pki(directory):
    """ca.pem/ca.key; server.pem/server.key (SAN localhost and 127.0.0.1, signed by ca);
    client.pem/client.key (signed by ca); other-ca.pem and other-client.pem/key (signed by it)."""
    directory.mkdir(exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", *ec, "-keyout", ca + ".key", "-out", ca + ".pem", "-days", "2",
                "-subj", "/CN=flagwatch test %s" % ca, cwd=directory)
    for name, ca, ext in (("server", "ca", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
                          ("client", "ca", "extendedKeyUsage=clientAuth"),
                          ("other-client", "other-ca", "extendedKeyUsage=clientAuth")):
        (directory / (name + ".ext")).write_text(ext + "\n")
        openssl("req", *ec, "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=%s" % name, cwd=directory)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key", "-CAcreateserial",
                "-out", name + ".pem", "-days", "2", "-extfile", name + ".ext", cwd=directory)
    return directory


def client_tls(pki, cert=None):
    context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    context.set_alpn_protocols(["h2"])
    if cert:
        context.load_cert_chain(str(pki / (cert + ".pem")), str(pki / (cert + ".key")))
    return context


def tls_settings(pki, client_ca=False):
    parts = ["certificate: %s" % (pki / "server.pem"), "key: %s" % (pki / "server.key")]
    if client_ca:
        parts.append("client_ca: %s" % (pki / "ca.pem"))
    return "{ %s }" % ", ".join(parts)


def client_certificate_yaml(pki):
    return ('          tls_certificates: [{ certificate_chain: { filename: "%s" }, private_key: { filename: "%s" } }]'
            % (pki / "client.pem", pki / "client.key"))


def test_envoy_streams_over_tls_and_every_entry_counts_while_a_plaintext_client_is_refused(processes, tmp_path):
    pki = make_pki(tmp_path / "pki")
    receiver = Receiver(processes, tmp_path, tls=tls_settings(pki))

    plaintext = GrpcConnection(receiver.als_port)
    try:
        stream = plaintext.open_stream()
        plaintext.send(stream, grpc_frame(als_message(uf_entries("plaintext", 5))), end_stream=True)
        assert plaintext.wait_closed(10), "the TLS port kept a plaintext connection"
        assert plaintext.streams[stream].grpc_status is None
    except OSError:   # the server closed it while we wrote
        pass
    finally:
        plaintext.close()

    envoy = EnvoyWithALS(processes, tmp_path, "envoy-als-tls.yaml.in", receiver.als_port, CA=pki / "ca.pem",
                         CLIENT_CERTIFICATE="")
    envoy.send(6, 4)
    assert envoy.wait_written(10) == 10
    samples = receiver.wait_lines(10)
    assert flag(samples, REFUSED_CLUSTER, "UF") == 4
    assert flag(samples, "plaintext", "UF") == 0
    assert envoy.counter("cluster.flagwatch_als.ssl.handshake") >= 1
    assert envoy.counter("access_logs.grpc_access_log.logs_dropped") == 0


def test_with_client_ca_envoys_certificate_counts_and_clients_without_one_or_from_another_ca_fail(
        processes, tmp_path):
    pki = make_pki(tmp_path / "pki")
    receiver = Receiver(processes, tmp_path, tls=tls_settings(pki, client_ca=True))

    for cert in (None, "other-client"):
        try:
            conn = GrpcConnection(receiver.als_port, tls_context=client_tls(pki, cert))
        except OSError:
            continue   # the handshake itself failed (ssl.SSLError is an OSError)
        # TLS 1.3: the client's handshake ends before the server checks its certificate; the
        # server's alert arrives on the client's next read or write, and the connection closes.
        try:
            stream = conn.open_stream()
            conn.send(stream, grpc_frame(als_message(uf_entries("untrusted", 5))), end_stream=True)
            assert conn.wait_closed(10), "a client with certificate %s stayed connected" % cert
            assert conn.streams[stream].grpc_status is None, conn.streams[stream]
        except OSError:   # ssl.SSLError too: the alert or the close came while we wrote
            pass
        finally:
            conn.close()
    receiver.alive()

    envoy = EnvoyWithALS(processes, tmp_path, "envoy-als-tls.yaml.in", receiver.als_port, CA=pki / "ca.pem",
                         CLIENT_CERTIFICATE=client_certificate_yaml(pki))
    envoy.send(2, 3)
    assert envoy.wait_written(5) == 5
    samples = receiver.wait_lines(5)
    assert flag(samples, REFUSED_CLUSTER, "UF") == 3
    assert flag(samples, "untrusted", "UF") == 0

    trusted = send_streams(receiver.als_port, 1, 1, lambda s, m: als_message(uf_entries("trusted", 2)),
                           tls_context=client_tls(pki, "client"))
    assert [o.grpc_status for o in trusted] == [OK]
    receiver.wait_lines(7)


def flagwatch_command(*args):
    """(exit status, stderr + stdout) of a short flagwatch command, bounded in time."""
    done = subprocess.run([flagwatch_binary(), *map(str, args)], capture_output=True, text=True, timeout=30)
    return done.returncode, done.stderr + done.stdout


@pytest.mark.parametrize("key,wrong,says", [
    ("certificate", "missing.pem", "cannot read {dir}/missing.pem: No such file or directory"),
    ("key", "server.pem", "{dir}/server.pem holds no PEM private key"),
    ("client_ca", "server.key", "{dir}/server.key holds no PEM certificate"),
    # A certificate cut short in the middle of its base64 (as a bad copy-paste leaves it).
    ("certificate", "cut.pem", "{dir}/cut.pem line 2: the PEM certificate is damaged"),
])
def test_a_tls_file_that_is_missing_or_not_what_its_key_says_is_a_config_error_naming_the_key(
        tmp_path, processes, key, wrong, says):
    pki = make_pki(tmp_path / "pki")
    files = {"certificate": pki / "server.pem", "key": pki / "server.key", "client_ca": pki / "ca.pem"}
    files[key] = pki / wrong
    if wrong == "cut.pem":
        lines = (pki / "server.pem").read_text().splitlines()
        body = "".join(lines[1:-1])
        # Cut at a multiple of 4 characters: still base64, but the DER inside is short.
        (pki / wrong).write_text("%s\n%s\n%s\n" % (lines[0], body[:len(body) // 8 * 4], lines[-1]))
    config = receiver_config(tmp_path, free_port(),
                             tls="{ %s }" % ", ".join("%s: %s" % kv for kv in files.items()))
    want = "sources[0].grpc_access_log.tls.%s: %s" % (key, says.format(dir=pki))
    status, output = flagwatch_command("check-config", config)
    assert (status, want in output) == (2, True), output
    run = FlagwatchProcess(run_argv(config, free_port()), tmp_path / "run.log", processes)
    assert run.proc.wait(30) == 2
    assert want in run.log_text(), run.log_text()


def test_plaintext_on_a_non_loopback_address_without_allow_plaintext_is_a_config_error_naming_the_key(tmp_path):
    config = tmp_path / "flagwatch.yaml"
    config.write_text('state_dir: %s\nsources:\n  - name: mesh\n    grpc_access_log: { listen: "0.0.0.0:9818" }\n'
                      % tmp_path)
    status, output = flagwatch_command("check-config", config)
    assert status == 2
    assert "sources[0].grpc_access_log.listen: plaintext off loopback" in output, output
    config.write_text(config.read_text().replace('9818" }', '9818", allow_plaintext: true }'))
    assert flagwatch_command("check-config", config)[0] == 0
