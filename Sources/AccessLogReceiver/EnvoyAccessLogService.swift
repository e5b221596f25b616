import AccessLogParser
import GRPCCore

/// A gRPC message passed on as the bytes it arrived as: flagwatch decodes Envoy's messages
/// itself, in place (``AccessLogParser/EnvoyAccessLogDecoder``), so neither swift-protobuf nor
/// generated message types are needed. The one copy is the one the handoff to the poll loop
/// needs anyway (the transport's buffer is not ours once the handler returns).
struct RawMessageBytes: MessageDeserializer, MessageSerializer {
    func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> [UInt8] {
        serializedMessageBytes.withUnsafeBytes { [UInt8]($0) }
    }

    func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes {
        Bytes(message)
    }
}

/// `envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs`: a client stream of
/// `StreamAccessLogsMessage`s, answered with one empty `StreamAccessLogsResponse` when Envoy
/// closes it. Each message goes to the queue as it arrives; the handler never waits for the
/// poll loop (a full queue drops the message and counts it).
struct EnvoyAccessLogService: RegistrableRPCService {
    static let streamAccessLogs = MethodDescriptor(
        fullyQualifiedService: "envoy.service.accesslog.v3.AccessLogService", method: "StreamAccessLogs")

    let queue: ReceivedMessageQueue

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        let queue = self.queue
        router.registerHandler(
            forMethod: Self.streamAccessLogs, deserializer: RawMessageBytes(), serializer: RawMessageBytes()
        ) { request, _ in
            for try await message in request.messages {
                queue.offer(message) {
                    message.withUnsafeBytes { EnvoyAccessLogDecoder.entryCount(in: $0) }
                }
            }
            // StreamAccessLogsResponse has no fields: its encoding is zero bytes.
            return StreamingServerResponse(single: ServerResponse(message: []))
        }
    }
}
