"""A raw gRPC sender for flagwatch's `grpc_access_log` source: exactly the bytes a test wants.

  http_entry(cluster, flags, code)   one HTTPAccessLogEntry (protobuf, encoded by hand here)
  als_message(entries, ...)          one StreamAccessLogsMessage (identifier + http_logs)
  grpc_frame(payload, ...)           the 5-byte gRPC length prefix (compressed flag, length) + payload
  GrpcConnection(port, ...)          one HTTP/2 connection (python3-h2), plaintext or TLS: open
                                     streams, send frames, end streams, write raw bytes, and read
                                     what the server answers (headers, trailers' grpc-status,
                                     RST_STREAM, GOAWAY, the connection closing)
  send_streams(port, ...)            N streams on one connection, each sending messages in turns
  grpc_module()                      the `grpc` package (grpcio) for a real client library

The encoder writes the field numbers of docs/formats.md §10.1 (Envoy 1.40's protos); the flags
are the short names of the same table. h2 and grpcio come from PyPI (scripts/install-deps.sh
test installs them into the python3 that runs the tests).
"""
import select
import socket
import ssl
import threading
import time

import grpc
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings


def grpc_module():
    """The `grpc` package (grpcio) for a real client library."""
    return grpc


ALS_PATH = "/envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs"

# AccessLogCommon.response_flags (16): ResponseFlags' field number per short flag (§10.1).
FLAG_FIELDS = {
    "LH": 1, "UH": 2, "UT": 3, "LR": 4, "UR": 5, "UF": 6, "UC": 7, "UO": 8, "NR": 9, "DI": 10,
    "FI": 11, "RL": 12, "RLSE": 14, "DC": 15, "URX": 16, "SI": 17, "IH": 18, "DPE": 19,
    "UMSDR": 20, "RFCF": 21, "NFCF": 22, "DT": 23, "UPE": 24, "NC": 25, "OM": 26, "DF": 27, "DR": 28,
}


# --------------------------------------------------------------------------- protobuf, by hand

def varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field_varint(number, value):
    return varint(number << 3) + varint(value)


def field_bytes(number, payload):
    if isinstance(payload, str):
        payload = payload.encode()
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def http_entry(cluster, flags=(), code=200):
    """HTTPAccessLogEntry{common_properties{upstream_cluster, response_flags{flag: true...}},
    response{response_code{value}}}."""
    flag_bytes = b"".join(field_varint(FLAG_FIELDS[flag], 1) for flag in flags)
    common = field_bytes(15, cluster)
    if flags:
        common += field_bytes(16, flag_bytes)
    response = field_bytes(1, field_varint(1, code)) if code is not None else b""
    return field_bytes(1, common) + field_bytes(4, response)


def als_message(entries, log_name="flagwatch-test", identifier=True):
    """StreamAccessLogsMessage{identifier{log_name} (first message of a stream), http_logs{log_entry...}}.
    `entries` are encoded HTTPAccessLogEntry bytes (http_entry, or any bytes a test wants)."""
    head = field_bytes(1, field_bytes(2, log_name)) if identifier else b""
    return head + field_bytes(2, b"".join(field_bytes(1, entry) for entry in entries))


def grpc_frame(payload, compressed=False, length=None):
    """The gRPC length-prefixed message: flag byte, 4-byte big-endian length (the real one unless
    `length` says otherwise), payload."""
    size = len(payload) if length is None else length
    return bytes([1 if compressed else 0]) + size.to_bytes(4, "big") + payload


# --------------------------------------------------------------------------- HTTP/2

def goaway_code(data):
    """The error code of the first GOAWAY frame in `data` (whole HTTP/2 frames), else None."""
    offset = 0
    while offset + 9 <= len(data):
        length = int.from_bytes(data[offset:offset + 3], "big")
        if data[offset + 3] == 0x7 and offset + 9 + 8 <= len(data):
            return int.from_bytes(data[offset + 13:offset + 17], "big")
        offset += 9 + length
    return None


class StreamOutcome:
    """What the server said on one stream."""

    def __init__(self):
        self.headers = {}
        self.trailers = {}
        self.data = b""
        self.reset_code = None    # RST_STREAM's error code (an int) when the server reset it
        self.ended = False        # END_STREAM from the server, or reset

    @property
    def grpc_status(self):
        """grpc-status from the trailers (or a trailers-only response's headers); None when absent."""
        value = self.trailers.get("grpc-status", self.headers.get("grpc-status"))
        return int(value) if value is not None else None

    @property
    def grpc_message(self):
        return self.trailers.get("grpc-message", self.headers.get("grpc-message", ""))

    def __repr__(self):
        return "StreamOutcome(status=%r, message=%r, reset=%r, headers=%r, trailers=%r, ended=%r)" % (
            self.grpc_status, self.grpc_message, self.reset_code, self.headers, self.trailers, self.ended)


class GrpcConnection:
    """One HTTP/2 client connection to 127.0.0.1:`port` (TLS when `tls_context` is given, ALPN h2).
    Not thread-safe: one thread drives it. Every wait is bounded by its `timeout`."""

    def __init__(self, port, host="127.0.0.1", tls_context=None, server_hostname="localhost", timeout=10.0,
                 preamble=True):
        self.port = port
        self.timeout = timeout
        raw = socket.create_connection((host, port), timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = tls_context.wrap_socket(raw, server_hostname=server_hostname) if tls_context else raw
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.streams = {}
        self.goaway = None        # GOAWAY's error code, when the server sent one
        self.closed = False       # the server closed the TCP connection (or reset it)
        self.remote_settings_seen = False
        if preamble:
            self.h2.initiate_connection()
            # A large connection window: the server's messages are small; ours are what we test.
            self.h2.increment_flow_control_window(2 ** 30)
            self._flush()

    # -- plumbing --------------------------------------------------------------------------------

    def _flush(self):
        data = self.h2.data_to_send()
        if data:
            self.write_raw(data)

    def write_raw(self, data):
        """Writes bytes as they are (no HTTP/2 framing by us): garbage, hand-made frames."""
        try:
            self.sock.sendall(data)
        except OSError:
            self.closed = True
            raise

    def pump(self, timeout):
        """Reads and handles what arrives within `timeout` s (returns early on the first read)."""
        if self.closed:
            return
        pending = isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()
        if not pending:
            ready, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
            if not ready:
                return
        try:
            data = self.sock.recv(65536)
        except (ConnectionError, ssl.SSLError, OSError):
            self.closed = True
            return
        if not data:
            self.closed = True
            return
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            # h2 refuses any frame after a GOAWAY (grpc-swift sends GOAWAY then a PING when it
            # closes an idle connection) and loses the events before it: read GOAWAY's code
            # from the raw frames instead. The connection is done either way.
            self.goaway = goaway_code(data) if self.goaway is None else self.goaway
            self.closed = True
            return
        for event in events:
            self._handle(event)
        try:
            self._flush()
        except OSError:
            pass

    def _handle(self, event):
        stream = self.streams.get(getattr(event, "stream_id", None))
        if isinstance(event, h2.events.ResponseReceived) and stream:
            stream.headers.update(dict(event.headers))
        elif isinstance(event, h2.events.TrailersReceived) and stream:
            stream.trailers.update(dict(event.headers))
        elif isinstance(event, h2.events.DataReceived) and stream:
            stream.data += event.data
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded) and stream:
            stream.ended = True
        elif isinstance(event, h2.events.StreamReset) and stream:
            stream.reset_code = int(event.error_code)
            stream.ended = True
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = int(event.error_code)
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self.remote_settings_seen = True

    def wait(self, predicate, timeout=None):
        """Pumps until predicate() or the deadline; returns predicate()'s last value."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not predicate() and not self.closed and time.monotonic() < deadline:
            self.pump(min(0.2, max(0.0, deadline - time.monotonic())))
        return predicate()

    def wait_settings(self, timeout=None):
        """Until the server's SETTINGS arrived (its max_concurrent_streams is known then)."""
        return self.wait(lambda: self.remote_settings_seen, timeout)

    @property
    def server_max_concurrent_streams(self):
        return self.h2.remote_settings.max_concurrent_streams

    def ignore_server_stream_limit(self, limit=2 ** 20):
        """Behave as a client that ignores the server's SETTINGS_MAX_CONCURRENT_STREAMS: h2 then
        lets us open up to `limit` streams (for a test of what the server does about it)."""
        self.h2.remote_settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = limit
        self.h2.remote_settings.acknowledge()

    # -- streams ---------------------------------------------------------------------------------

    def open_stream(self, path=ALS_PATH, extra_headers=()):
        stream_id = self.h2.get_next_available_stream_id()
        headers = [(":method", "POST"), (":scheme", "https" if isinstance(self.sock, ssl.SSLSocket) else "http"),
                   (":path", path), (":authority", "127.0.0.1:%d" % self.port),
                   ("content-type", "application/grpc"), ("te", "trailers"), *extra_headers]
        self.h2.send_headers(stream_id, headers)
        self.streams[stream_id] = StreamOutcome()
        self._flush()
        return stream_id

    def send(self, stream_id, data, end_stream=False):
        """Sends `data` on the stream as DATA frames, within the flow-control windows (waiting for
        WINDOW_UPDATEs, bounded); END_STREAM on the last frame when `end_stream`."""
        view = memoryview(data)
        deadline = time.monotonic() + self.timeout
        while True:
            if self.closed or self.streams[stream_id].ended:
                return False
            try:
                window = self.h2.local_flow_control_window(stream_id)
            except h2.exceptions.StreamClosedError:
                return False
            size = min(len(view), window, self.h2.max_outbound_frame_size)
            if size == 0 and len(view) > 0:
                if time.monotonic() > deadline:
                    raise TimeoutError("no flow-control window on stream %d within %.0f s" % (stream_id, self.timeout))
                self.pump(0.05)
                continue
            last = size == len(view)
            try:
                self.h2.send_data(stream_id, bytes(view[:size]), end_stream=end_stream and last)
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                return False
            self._flush()
            view = view[size:]
            if last:
                return True

    def end(self, stream_id):
        """Half-closes the stream (an empty DATA frame with END_STREAM)."""
        try:
            self.h2.end_stream(stream_id)
            self._flush()
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            pass

    def outcome(self, stream_id, timeout=None):
        """Waits (bounded) for the server to end the stream; its StreamOutcome."""
        stream = self.streams[stream_id]
        self.wait(lambda: stream.ended, timeout)
        return stream

    def wait_closed(self, timeout=None):
        """Until the server closed the connection (GOAWAY and/or EOF); whether it did."""
        return self.wait(lambda: self.closed, timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def send_streams(port, streams, messages_per_stream, make_message, tls_context=None, timeout=30.0):
    """Opens `streams` streams on one connection, sends each `messages_per_stream` messages
    (make_message(stream_index, message_index) -> payload) in turns across the streams, ends
    them all and returns their outcomes (in stream order)."""
    conn = GrpcConnection(port, tls_context=tls_context, timeout=timeout)
    try:
        conn.wait_settings()
        ids = [conn.open_stream() for _ in range(streams)]
        for m in range(messages_per_stream):
            for s, stream_id in enumerate(ids):
                conn.send(stream_id, grpc_frame(make_message(s, m)))
            conn.pump(0)
        for stream_id in ids:
            conn.end(stream_id)
        return [conn.outcome(stream_id, timeout) for stream_id in ids]
    finally:
        conn.close()


def send_streams_threaded(port, connections, streams_per_connection, messages_per_stream, make_message,
                          timeout=60.0):
    """`connections` threads, each running send_streams on its own connection at once; the
    outcomes, connection by connection. A thread's exception is raised here."""
    results = [None] * connections
    errors = []
    start = threading.Barrier(connections)

    def run(index):
        try:
            start.wait(timeout)
            results[index] = send_streams(
                port, streams_per_connection, messages_per_stream,
                lambda s, m: make_message(index, s, m), timeout=timeout)
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,), name="grpc-sender-%d" % i) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout + 10)
    if any(thread.is_alive() for thread in threads):
        raise TimeoutError("senders still running after %.0f s" % (timeout + 10))
    if errors:
        raise errors[0]
    return results
