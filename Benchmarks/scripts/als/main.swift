// Entries per second per core of a gRPC access-log source's poll-loop side: decoding
// StreamAccessLogsMessages in place (EnvoyAccessLogDecoder) and OTLP ExportLogsServiceRequests
// (OTLPLogsDecoder: fields as attributes, and Istio text lines as bodies) and counting each
// entry (ReceivedEntryCounter into FlagCounts with 3 windows), on one thread. The network side
// (grpc-swift's HTTP/2 and the copy into the handoff queue) runs on other threads and is not
// measured here. Built and run by als_decode_bench.sh (-O, as the release build). ROUNDS
// (default 200000) sets the messages decoded per measurement: running with two values under
// `valgrind --tool=memcheck` shows the allocations per entry (none once warm).
import AccessLogParser
import FlagCounting

#if canImport(Glibc)
    import Glibc
#endif

func varint(_ value: Int) -> [UInt8] {
    var value = value
    var bytes: [UInt8] = []
    repeat {
        let low = UInt8(value & 0x7F)
        value >>= 7
        bytes.append(value > 0 ? low | 0x80 : low)
    } while value > 0
    return bytes
}

/// A length-delimited protobuf field.
func field(_ number: Int, _ body: [UInt8]) -> [UInt8] {
    varint(number << 3 | 2) + varint(body.count) + body
}

// A StreamAccessLogsMessage like an http_grpc batch: 64 entries over 8 clusters, 1 in 10 a 503
// with UF, each with the fields Envoy fills that flagwatch reads or skips.
var entries: [UInt8] = []
for index in 0..<64 {
    let cluster = Array("outbound|\(8080 + index % 8)||svc\(index % 8).default.svc.cluster.local".utf8)
    var common = field(13, field(1, field(2, Array("10.1.2.\(index % 200)".utf8)) + [0x18, 0x90, 0x3F]))
    common += field(15, cluster)
    if index % 10 == 0 { common += field(16, [0x30, 0x01]) }
    common += field(19, Array("default".utf8))
    let response =
        field(1, [0x08, index % 10 == 0 ? 0xF7 : 0xC8, index % 10 == 0 ? 0x03 : 0x01])
        + field(6, Array("via_upstream".utf8))
    entries += field(1, field(1, common) + field(4, response))
}
let message = field(2, entries)
let rounds = Int(String(cString: getenv("ROUNDS") ?? strdup("200000"))) ?? 200_000

/// Decodes `message` `rounds` times with `decode` (which counts into `counts`) and prints the rate.
func measure(_ name: String, _ message: [UInt8], entriesPerMessage: Int, _ decode: (UnsafeRawBufferPointer) -> Void) {
    let clock = ContinuousClock()
    let elapsed = clock.measure {
        message.withUnsafeBytes { bytes in
            for _ in 0..<rounds { decode(bytes) }
        }
    }
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    let total = entriesPerMessage * rounds
    print(
        "\(name): message \(message.count) B, \(total) entries in \(seconds) s: \(Double(total) / seconds / 1e6) M entries/s, \(Double(message.count * rounds) / seconds / 1e9) GB/s"
    )
}

let counts = FlagCounts(windows: [60, 300, 900])
let counter = ReceivedEntryCounter(counts: counts)
let decoder = EnvoyAccessLogDecoder(fields: .countingWithFailureDetails)
measure("ALS", message, entriesPerMessage: 64) { bytes in
    _ = try? decoder.decodeStreamAccessLogsMessage(bytes) { counter.count($0) }
}

// The same 64 requests as OTLP log records, as Envoy's open_telemetry logger sends them with
// `attributes:` naming the fields (string values), plus Envoy's resource attributes.
func attribute(_ key: String, _ value: String) -> [UInt8] {
    field(6, field(1, Array(key.utf8)) + field(2, field(1, Array(value.utf8))))
}
var attributeRecords: [UInt8] = []
var bodyRecords: [UInt8] = []
for index in 0..<64 {
    let refused = index % 10 == 0
    let cluster = "outbound|\(8080 + index % 8)||svc\(index % 8).default.svc.cluster.local"
    let time: [UInt8] = [0x09] + [UInt8](repeating: 0x17, count: 8)  // time_unix_nano, fixed64
    var record = time + attribute("response_code", refused ? "503" : "200")
    record += attribute("response_flags", refused ? "UF" : "-")
    record += attribute("response_code_details", refused ? "upstream_reset_before_response_started{remote_connection_failure}" : "via_upstream")
    record += attribute("upstream_transport_failure_reason", refused ? "delayed_connect_error:_Connection_refused" : "-")
    record += attribute("upstream_cluster", cluster)
    record += attribute("upstream_host", "10.1.2.\(index % 200):8080")
    record += attribute("route_name", "default")
    attributeRecords += field(2, record)
    // Istio's envoyOtelAls default: the body is its text line.
    let line =
        "[2026-11-22T02:34:27.532Z] \"GET /reviews/\(index) HTTP/1.1\" \(refused ? "503 UF upstream_reset_before_response_started{remote_connection_failure}" : "200 - via_upstream") - \"\(refused ? "delayed_connect_error:_Connection_refused" : "-")\" 0 14 11 10 \"-\" \"curl/8.5.0\" \"0d8e5a88-130d-4223-9294-7eee8276b7f5\" \"svc.default.svc.cluster.local:8080\" \"10.1.2.\(index % 200):8080\" \(cluster) 10.1.2.9:55718 10.0.0.7:8080 10.0.0.9:56922 - default\n"
    bodyRecords += field(2, time + field(5, field(1, Array(line.utf8))))
}
let resource = field(1, field(1, Array("node_name".utf8)) + field(2, field(1, Array("sidecar~10.0.0.7~a.shop".utf8))))
let attributesRequest = field(1, resource + field(2, field(1, field(1, Array("envoy".utf8))) + attributeRecords))
let bodyRequest = field(1, resource + field(2, bodyRecords))
var attributesDecoder = try OTLPLogsDecoder(bodyFormat: .auto)
measure("OTLP attributes", attributesRequest, entriesPerMessage: 64) { bytes in
    _ = try? attributesDecoder.decodeExportRequest(bytes) { counter.count($0) }
}
var istioDecoder = try OTLPLogsDecoder(bodyFormat: .istio)
measure("OTLP Istio body", bodyRequest, entriesPerMessage: 64) { bytes in
    _ = try? istioDecoder.decodeExportRequest(bytes) { counter.count($0) }
}
print("lines \(counts.lines), malformed \(LineDefect.allCases.reduce(0) { $0 + counts.malformedCount($1) })")
