import AccessLogParser
import AccessLogReceiver
import FlagCounting
import GRPCCore
import GRPCNIOTransportHTTP2
import SystemCalls
import Testing

let otlpExport = MethodDescriptor(
    fullyQualifiedService: "opentelemetry.proto.collector.logs.v1.LogsService", method: "Export")

/// Sends one `ExportLogsServiceRequest` to 127.0.0.1:`port`; returns the response's bytes.
func export(_ request: [UInt8], to port: Int) async throws -> [UInt8] {
    try await withGRPCClient(
        transport: .http2NIOPosix(target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext)
    ) { client in
        try await client.unary(
            request: ClientRequest(message: request), descriptor: otlpExport, serializer: RawBytesCodec(),
            deserializer: RawBytesCodec(), options: .defaults
        ) { response in try response.message }
    }
}

/// A string `KeyValue` (OTLP common.v1: key = 1, value = 2 { string_value = 1 }).
func otlpAttribute(_ key: String, _ value: String) -> [UInt8] {
    lengthDelimitedField(1, Array(key.utf8)) + lengthDelimitedField(2, lengthDelimitedField(1, Array(value.utf8)))
}

/// A `LogRecord` of `cluster`: a 503 with UF as attributes (LogRecord.attributes = 6) when
/// `refused`, else a 200.
func otlpRecord(cluster: String, refused: Bool) -> [UInt8] {
    lengthDelimitedField(6, otlpAttribute("response_flags", refused ? "UF" : "-"))
        + lengthDelimitedField(6, otlpAttribute("response_code", refused ? "503" : "200"))
        + lengthDelimitedField(6, otlpAttribute("upstream_cluster", cluster))
}

/// An `ExportLogsServiceRequest` of one resource and one scope holding `records` log records of
/// `cluster` (``otlpRecord(cluster:refused:)``).
func otlpRequest(cluster: String, records: Int, refused: Bool = true) -> [UInt8] {
    let record = otlpRecord(cluster: cluster, refused: refused)
    let scope = [UInt8]((0..<records).flatMap { _ in lengthDelimitedField(2, record) })
    return lengthDelimitedField(1, lengthDelimitedField(2, scope))
}

/// The same, each record's body one Istio text line (Istio's `envoyOtelAls` default).
func otlpIstioBodyRequest(records: Int) -> [UInt8] {
    let line =
        #"[2026-11-22T02:34:27.561Z] "GET /api/pay HTTP/1.1" 503 UF upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused} - "delayed_connect_error:_Connection_refused" 0 98 0 - "-" "flag-harness/uf" "daad7b68-4bb4-4f21-9762-5f4f56c34fee" "payments.default.svc.cluster.local:9001" "127.0.0.1:18019" outbound|9001||payments.default.svc.cluster.local - 127.0.0.1:18000 127.0.0.1:56936 - payments-default"#
        + "\n"
    let record = lengthDelimitedField(5, lengthDelimitedField(1, Array(line.utf8)))
    let scope = [UInt8]((0..<records).flatMap { _ in lengthDelimitedField(2, record) })
    return lengthDelimitedField(1, lengthDelimitedField(2, scope))
}

@Suite("The OTLP logs service on the receiver's port")
struct OTLPLogsReceiverTests {
    @Test("2 Export calls of 3 and 4 log records count 7 lines and their flags per cluster; both answers are empty")
    func exports() async throws {
        let running = try await RunningReceiver()
        #expect(try await export(otlpRequest(cluster: "a", records: 3), to: running.port) == [])
        #expect(try await export(otlpRequest(cluster: "b", records: 4, refused: false), to: running.port) == [])
        running.stop()
        #expect(running.counts.lines == 7)
        #expect(running.tally.lines == 7)
        let byName = Dictionary(uniqueKeysWithValues: running.counts.allClusters.map { ($0.name, $0) })
        #expect(byName["a"]?.flags == [.upstreamConnectionFailure: 3])
        #expect(byName["b"]?.requests == 4)
        #expect(byName["b"]?.flags == [:])
        #expect(running.receiver.queue.drops == HandoffDrops())
    }

    @Test("Envoy's access-log stream and an OTLP Export on one port: 2 + 5 lines, both counted")
    func bothServicesOnOnePort() async throws {
        let running = try await RunningReceiver()
        _ = try await stream([alsMessage(cluster: "als", entries: 2)], to: running.port)
        _ = try await export(otlpRequest(cluster: "otlp", records: 5), to: running.port)
        running.stop()
        #expect(running.counts.lines == 7)
        let byName = Dictionary(uniqueKeysWithValues: running.counts.allClusters.map { ($0.name, $0) })
        #expect(byName["als"]?.flags == [.upstreamConnectionFailure: 2])
        #expect(byName["otlp"]?.flags == [.upstreamConnectionFailure: 5])
    }

    @Test(
        "a request with 1 broken record of 3 is answered partial_success { rejected_log_records: 1 } and counts 1 bad_protobuf"
    )
    func partialSuccess() async throws {
        let running = try await RunningReceiver()
        let good = lengthDelimitedField(2, otlpRecord(cluster: "a", refused: true))
        // Between two good records, one whose attribute's length runs past its end.
        let scope = good + lengthDelimitedField(2, [0x32, 0x09, 0x0A]) + good
        let response = try await export(lengthDelimitedField(1, lengthDelimitedField(2, scope)), to: running.port)
        running.stop()
        // ExportLogsServiceResponse { partial_success (1) { rejected_log_records (1): 1, error_message (2) } }
        #expect(Array(response.prefix(5)) == [0x0A, UInt8(response.count - 2), 0x08, 0x01, 0x12])
        let message = String(decoding: response.dropFirst(6), as: UTF8.self)
        #expect(message == "1 log record(s) are not valid protobuf (counted as bad_protobuf by flagwatch)")
        #expect(running.counts.lines == 3)
        #expect(running.tally.malformedCount(LineDefect(.badProtobuf)) == 1)
        #expect(running.counts.allClusters.first { $0.name == "a" }?.flags == [.upstreamConnectionFailure: 2])
    }

    @Test("bodies in Istio's text format count with format istio: 4 records, 4 UF on the payments cluster")
    func istioBodies() async throws {
        let running = try await RunningReceiver(bodyFormat: .istio)
        #expect(try await export(otlpIstioBodyRequest(records: 4), to: running.port) == [])
        running.stop()
        #expect(running.counts.lines == 4)
        #expect(LineDefect.allCases.allSatisfy { running.tally.malformedCount($0) == 0 })
        let payments = running.counts.allClusters.first {
            $0.name == "outbound|9001||payments.default.svc.cluster.local"
        }
        #expect(payments?.flags == [.upstreamConnectionFailure: 4])
    }

    @Test("a full queue answers UNAVAILABLE and counts the request's 6 records as dropped entries")
    func fullQueue() async throws {
        var limits = ReceiverLimits()
        limits.handoff = HandoffLimits(maxMessages: 1)
        let running = try await RunningReceiver(limits: limits)
        // The test's poll loop does not run, so the first request stays queued.
        _ = try await export(otlpRequest(cluster: "a", records: 2), to: running.port)
        let error = await #expect(throws: RPCError.self) {
            _ = try await export(otlpRequest(cluster: "a", records: 6), to: running.port)
        }
        #expect(error?.code == .unavailable)
        #expect(running.receiver.queue.drops.messages == 1)
        #expect(running.receiver.queue.drops.entries == 6)
        running.stop()
        #expect(running.counts.lines == 2)
    }
}
