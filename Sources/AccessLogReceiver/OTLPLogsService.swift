import AccessLogParser
import GRPCCore

/// `opentelemetry.proto.collector.logs.v1.LogsService/Export` (OTLP/gRPC logs, what Envoy's
/// `envoy.access_loggers.open_telemetry` and Istio's `envoyOtelAls` provider send), on the same
/// server and port as Envoy's access-log service.
///
/// Unary: each `ExportLogsServiceRequest` goes to the queue as it arrives and is answered at
/// once, before the poll loop counts it. To answer truthfully anyway, the handler first walks
/// the request (``AccessLogParser/OTLPLogsDecoder/inspect(_:keys:)``: the same structure and
/// attributes the decode reads, no body parsing, no allocation) and reports the records that
/// are not valid protobuf in `partial_success` — exactly the ones the poll loop will count as
/// `bad_protobuf`. A full queue answers UNAVAILABLE (OTLP's "retry later"): the request is
/// counted as dropped with its records, and a sender that retries (the OpenTelemetry
/// Collector) sends it again; Envoy's logger does not retry.
struct OTLPLogsService: RegistrableRPCService {
    static let export = MethodDescriptor(
        fullyQualifiedService: "opentelemetry.proto.collector.logs.v1.LogsService", method: "Export")

    let queue: ReceivedMessageQueue
    let keys: OTLPAttributeKeys

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        let queue = self.queue
        let keys = self.keys
        router.registerHandler(
            forMethod: Self.export, deserializer: RawMessageBytes(), serializer: RawMessageBytes()
        ) { request, _ in
            // A unary method: the client sends one message; more would each be handled alike.
            var rejected = 0
            for try await message in request.messages {
                let inspection = message.withUnsafeBytes { OTLPLogsDecoder.inspect($0, keys: keys) }
                guard queue.offer(message, kind: .otlpLogs, entryCount: { inspection.units }) else {
                    throw RPCError(
                        code: .unavailable,
                        message: "flagwatch is behind: its queue is full; \(inspection.units) log records dropped")
                }
                rejected += inspection.rejected
            }
            return StreamingServerResponse(single: ServerResponse(message: Self.exportResponse(rejected: rejected)))
        }
    }

    /// `ExportLogsServiceResponse`: empty when every record was accepted (OTLP: the server
    /// leaves `partial_success` unset then), else `partial_success` (1) with
    /// `rejected_log_records` (1) and `error_message` (2).
    static func exportResponse(rejected: Int) -> [UInt8] {
        guard rejected > 0 else { return [] }
        let message = Array(
            "\(rejected) log record(s) are not valid protobuf (counted as bad_protobuf by flagwatch)".utf8)
        var partialSuccess: [UInt8] = [0x08]  // field 1, varint
        appendVarint(UInt64(rejected), to: &partialSuccess)
        partialSuccess.append(0x12)  // field 2, length-delimited
        appendVarint(UInt64(message.count), to: &partialSuccess)
        partialSuccess += message
        var response: [UInt8] = [0x0A]  // field 1, length-delimited
        appendVarint(UInt64(partialSuccess.count), to: &response)
        return response + partialSuccess
    }

    private static func appendVarint(_ value: UInt64, to bytes: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }
}
