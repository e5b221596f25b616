"""Envoy's gRPC access-log messages, encoded by hand (envoy.service.accesslog.v3; the field
numbers are those of protos/envoy/accesslog_minimal.proto and docs/formats.md §10.1), for the
tests that play a sender themselves instead of a real Envoy.

  STREAM_ACCESS_LOGS         the gRPC method path Envoy calls
  als_message(cluster, ...)  a StreamAccessLogsMessage of N HTTP entries of one cluster
  varint, field              the two protobuf encodings the messages need
"""

STREAM_ACCESS_LOGS = "/envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs"


def varint(value):
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        out.append(low | 0x80 if value else low)
        if not value:
            return bytes(out)


def field(number, body):
    """A length-delimited (wire type 2) protobuf field."""
    return varint(number << 3 | 2) + varint(len(body)) + body


def http_entry(cluster, refused):
    """HTTPAccessLogEntry: common_properties (1) {upstream_cluster (15), response_flags (16)
    {upstream_connection_failure (6): true} when refused}, response (4) {response_code (1):
    UInt32Value 503 when refused, else 200}."""
    common = field(15, cluster.encode())
    if refused:
        common += field(16, bytes([6 << 3, 1]))
    code = 503 if refused else 200
    return field(1, common) + field(4, field(1, bytes([1 << 3]) + varint(code)))


def als_message(cluster, entries=1, refused=True, log_name=None):
    """StreamAccessLogsMessage: identifier (1) {log_name (2)} when log_name is given (Envoy sends
    it on a stream's first message), http_logs (2) {log_entry (1) ...}."""
    identifier = field(1, field(2, log_name.encode())) if log_name else b""
    return identifier + field(2, b"".join(field(1, http_entry(cluster, refused)) for _ in range(entries)))
