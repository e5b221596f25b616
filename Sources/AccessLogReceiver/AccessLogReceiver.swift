import AccessLogParser
import Dispatch
import FlagCounting
import GRPCCore
import GRPCNIOTransportHTTP2
import Synchronization
import SystemCalls

/// One `grpc_access_log:` source: the gRPC server on its own address (grpc-swift's event-loop
/// threads), serving Envoy's access-log service and OTLP logs on one port, and the poll-loop
/// side that counts what it receives.
///
/// The server threads only copy each message into the ``ReceivedMessageQueue``; decoding and
/// counting happen on the poll loop, which owns the counts, so nothing else is shared.
public final class AccessLogReceiver {
    public let spec: ReceiverSourceSpec
    public let queue: ReceivedMessageQueue
    public let drain: ReceivedMessageDrain
    /// The source's `format` this receiver parses OTLP bodies with (a reload that changes it
    /// restarts the receiver).
    public let bodyFormat: LogFormat
    private var server: GRPCServer<HTTP2ServerTransport.Posix>?
    /// The port bound (the spec may ask for 0); nil before ``start(on:)`` or after a failure.
    public private(set) var boundPort: Int?

    public enum StartError: Error, CustomStringConvertible {
        /// The server did not report its listening address within the startup budget, or
        /// reported why not (address in use, bad certificate...).
        case notListening(String)

        public var description: String {
            switch self {
            case .notListening(let reason): reason
            }
        }
    }

    /// The attribute keys of OTLP log records, shared with the OTLP handler.
    private let otlpKeys: OTLPAttributeKeys

    /// - Parameter bodyFormat: the source's `format`, for OTLP log records whose body is an
    ///   access-log line. Throws an `Errno` when the queue's eventfd cannot be made, a
    ///   `FormatStringError` for a format string that does not compile.
    public init(
        spec: ReceiverSourceSpec, counter: ReceivedEntryCounter, fields: RecordFieldSet = .countingWithFailureDetails,
        bodyFormat: LogFormat = .auto
    ) throws {
        self.spec = spec
        self.bodyFormat = bodyFormat
        queue = try ReceivedMessageQueue(limits: spec.limits.handoff)
        drain = try ReceivedMessageDrain(queue: queue, counter: counter, fields: fields, bodyFormat: bodyFormat)
        otlpKeys = OTLPAttributeKeys(bodyFormat: bodyFormat, fields: fields)
    }

    /// Starts the drain on `loop` and the server on grpc-swift's threads; returns once the
    /// server listens, or throws within `startupBudgetSeconds` (the server's tasks run on
    /// Swift's cooperative threads: a test process that keeps them busy needs a longer budget).
    public func start(on loop: PollLoop, startupBudgetSeconds: Double = 5) throws(StartError) {
        drain.start(on: loop)
        let transport = HTTP2ServerTransport.Posix(
            address: .ipv4(host: spec.host, port: spec.port), transportSecurity: spec.transportSecurity,
            config: spec.transportConfig)
        let server = GRPCServer(
            transport: transport,
            services: [
                EnvoyAccessLogService(
                    queue: queue,
                    streamIdleTimeout: .milliseconds(Int64(spec.limits.streamIdleTimeoutSeconds * 1000))),
                OTLPLogsService(queue: queue, keys: otlpKeys),
            ])
        self.server = server
        let outcome = StartOutcome()
        Task.detached {
            do {
                try await server.serve()
            } catch {
                outcome.set(.failure("\(error)"))
            }
        }
        Task.detached {
            do {
                let address = try await transport.listeningAddress
                outcome.set(address.ipv4.map { .listening($0.port) } ?? .failure("no IPv4 listening address"))
            } catch {
                // When the bind fails, listeningAddress may fail first, with only "serverIsStopped";
                // serve() then throws the reason (address in use, bad certificate...), which
                // wins if it comes within a second (the first outcome set is kept).
                try? await Task.sleep(for: .seconds(1))
                outcome.set(.failure("\(error)"))
            }
        }
        switch outcome.wait(seconds: startupBudgetSeconds) {
        case .listening(let port):
            boundPort = port
        case .failure(let reason):
            stop(on: loop)
            throw .notListening(reason)
        case nil:
            stop(on: loop)
            throw .notListening("not listening after \(startupBudgetSeconds) s")
        }
    }

    /// Stops accepting, ends the streams (Envoy reconnects elsewhere or later) and counts what
    /// was already received.
    public func stop(on loop: PollLoop) {
        server?.beginGracefulShutdown()
        server = nil
        boundPort = nil
        while drain.drainOnce() {}
        drain.stop(on: loop)
    }
}

/// The first of "listening on a port" and "failed", set from the server's tasks and waited
/// for (with a deadline) by the poll-loop thread.
private final class StartOutcome: Sendable {
    enum Value: Sendable {
        case listening(Int)
        case failure(String)
    }

    private let value = Mutex<Value?>(nil)
    private let settled = DispatchSemaphore(value: 0)

    func set(_ new: Value) {
        let first = value.withLock { current in
            guard current == nil else { return false }
            current = new
            return true
        }
        if first { settled.signal() }
    }

    func wait(seconds: Double) -> Value? {
        _ = settled.wait(timeout: .now() + seconds)
        return value.withLock { $0 }
    }
}
