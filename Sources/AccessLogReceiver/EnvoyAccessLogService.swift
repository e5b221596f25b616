import AccessLogParser
import GRPCCore
import Synchronization

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
///
/// A stream that carries no message for `streamIdleTimeout` is ended with UNAVAILABLE: grpc-swift's
/// own idle timer (``ReceiverLimits/idleTimeoutSeconds``) only closes connections without an open
/// stream, so a sender that opens a stream and goes silent would otherwise hold the stream and its
/// connection for ever. Envoy opens a new stream for its next entry, so nothing is lost by it.
struct EnvoyAccessLogService: RegistrableRPCService {
    static let streamAccessLogs = MethodDescriptor(
        fullyQualifiedService: "envoy.service.accesslog.v3.AccessLogService", method: "StreamAccessLogs")

    let queue: ReceivedMessageQueue
    let streamIdleTimeout: Duration

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        let queue = self.queue
        let idleTimeout = streamIdleTimeout
        router.registerHandler(
            forMethod: Self.streamAccessLogs, deserializer: RawMessageBytes(), serializer: RawMessageBytes()
        ) { request, _ in
            try await Self.receive(request.messages, into: queue, idleTimeout: idleTimeout)
            // StreamAccessLogsResponse has no fields: its encoding is zero bytes.
            return StreamingServerResponse(single: ServerResponse(message: []))
        }
    }

    /// Queues every message of the stream until the sender ends it; throws UNAVAILABLE once no
    /// message came for `idleTimeout` (the reading task is cancelled then, which ends the
    /// transport's inbound sequence).
    static func receive(
        _ messages: RPCAsyncSequence<[UInt8], any Error>, into queue: ReceivedMessageQueue, idleTimeout: Duration
    ) async throws {
        let activity = StreamActivity()
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for try await message in messages {
                        activity.touch()
                        queue.offer(message) {
                            message.withUnsafeBytes { EnvoyAccessLogDecoder.entryCount(in: $0) }
                        }
                    }
                }
                group.addTask { try await activity.expire(after: idleTimeout) }
                // The first to finish decides: the sender's end of stream (the watchdog is then
                // cancelled and its CancellationError discarded), an error of the stream, or idleness.
                try await group.next()
                group.cancelAll()
            }
        } catch let error as RPCError where error.code == .internalError {
            // grpc-swift-nio-transport ends the inbound messages with INTERNAL ("Failed to decode
            // message", and resets the stream) when it rejects a message: one over
            // max_message_size, one compressed without a negotiated grpc-encoding, broken framing.
            // The sender sees the reset, not a status; here it is counted, once per stream.
            queue.noteRejectedMessage()
            throw error
        } catch is StreamIdle {
            throw RPCError(
                code: .unavailable,
                message:
                    "no message for \(idleTimeout.components.seconds) s: flagwatch ends idle streams "
                    + "(stream_idle_timeout); open a new stream for the next entries")
        }
    }
}

/// Thrown by the watchdog of a stream that carried no message for its idle timeout.
private struct StreamIdle: Error {}

/// When a stream last carried a message, shared by its reading task and its watchdog.
private final class StreamActivity: Sendable {
    private let last = Mutex(ContinuousClock.now)

    func touch() {
        let now = ContinuousClock.now
        last.withLock { $0 = now }
    }

    /// Returns only by throwing: ``StreamIdle`` once `timeout` passed since the last message,
    /// CancellationError when the stream ended first. One sleep per timeout period, however
    /// many messages arrive in it.
    func expire(after timeout: Duration) async throws {
        while true {
            let deadline = last.withLock { $0 } + timeout
            if ContinuousClock.now >= deadline { throw StreamIdle() }
            try await Task.sleep(until: deadline, clock: .continuous)
        }
    }
}
