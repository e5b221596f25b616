/// One receiving source (`grpc_access_log:` in the config) as the engine takes it.
public struct ReceiverSourceSpec: Sendable, Equatable {
    public var name: String
    /// An IPv4 address (127.0.0.1 by default in the config: plaintext stays on loopback).
    public var host: String
    /// 0: the kernel chooses (tests).
    public var port: Int
    public var limits: ReceiverLimits
    /// Nil: plaintext.
    public var tls: ReceiverTLS?

    public init(
        name: String, host: String, port: Int, limits: ReceiverLimits = ReceiverLimits(), tls: ReceiverTLS? = nil
    ) {
        self.name = name
        self.host = host
        self.port = port
        self.limits = limits
        self.tls = tls
    }
}

/// What one receiving source may take from its senders.
public struct ReceiverLimits: Sendable, Equatable {
    /// The largest gRPC message accepted (grpc-swift's transport resets the stream of a larger
    /// one: docs/formats.md §10.4).
    /// Envoy's ALS batches are `buffer_size_bytes` (16 KiB by default) plus one entry.
    public var maxMessageBytes = 4 * 1024 * 1024
    /// Streams per HTTP/2 connection (Envoy opens one per worker thread and logger).
    public var maxConcurrentStreams = 1_000
    /// A connection with no open stream for this long is closed (grpc-swift's `maxIdleTime`).
    public var idleTimeoutSeconds = 300.0
    /// A stream that carries no message for this long is ended with UNAVAILABLE (Envoy opens a
    /// new one for its next entry); without it a silent sender would hold its stream for ever.
    public var streamIdleTimeoutSeconds = 300.0
    /// A connection older than this is sent a GOAWAY (grpc-swift's `maxAge`), so its sender
    /// opens its next streams on a new connection, which a Service may send to another replica:
    /// without it, long-lived access-log streams stay on the replica they first reached. Nil:
    /// connections live as long as their sender keeps them.
    public var maxConnectionAgeSeconds: Double? = nil
    /// After that GOAWAY, how long the connection's open streams may go on before it is closed.
    public var maxConnectionAgeGraceSeconds = 10.0
    /// What may wait for the poll loop (``HandoffLimits``).
    public var handoff = HandoffLimits()

    public init() {}
}

/// TLS for a receiver that is not on loopback: the server's certificate chain and key (PEM),
/// and, when given, the CA that client certificates must chain to (mutual TLS).
public struct ReceiverTLS: Sendable, Equatable {
    public var certificateChainPath: String
    public var privateKeyPath: String
    public var clientCAPath: String?

    public init(certificateChainPath: String, privateKeyPath: String, clientCAPath: String? = nil) {
        self.certificateChainPath = certificateChainPath
        self.privateKeyPath = privateKeyPath
        self.clientCAPath = clientCAPath
    }
}
