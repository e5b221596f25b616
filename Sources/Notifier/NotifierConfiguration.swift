/// Where alerts go: an Alertmanager (API v2) or a generic webhook.
public struct ReceiverConfig: Sendable {
    public enum Kind: String, Sendable {
        /// POST `{url}/api/v2/alerts` with a JSON array of alerts, as Prometheus does.
        case alertmanager
        /// POST `url` with Alertmanager's webhook payload (version "4"), one POST per alertname.
        case webhook
    }

    public var kind: Kind
    /// The `receiver` label value in metrics, and the webhook payload's `receiver`.
    public var name: String
    /// Alertmanager base URL or the webhook URL.
    public var url: String
    /// A file holding a bearer token, read once at start and trimmed.
    public var bearerTokenFile: String?
    /// A file holding the HMAC-SHA256 key for `X-Flagwatch-Signature`, read once and trimmed.
    public var hmacSecretFile: String?
    /// PEM CA certificates trusted for this receiver in addition to the system trust store.
    public var caFile: String?
    /// Per request, seconds.
    public var timeout: Double
    /// At most this many alerts wait for this receiver.
    public var queueCapacity: Int

    public init(
        kind: Kind,
        name: String,
        url: String,
        bearerTokenFile: String? = nil,
        hmacSecretFile: String? = nil,
        caFile: String? = nil,
        timeout: Double = 10,
        queueCapacity: Int = 1000
    ) {
        self.kind = kind
        self.name = name
        self.url = url
        self.bearerTokenFile = bearerTokenFile
        self.hmacSecretFile = hmacSecretFile
        self.caFile = caFile
        self.timeout = timeout
        self.queueCapacity = queueCapacity
    }
}

public struct NotifierOptions: Sendable {
    /// Firing alerts are sent to Alertmanagers again this often (seconds), with `endsAt` moved
    /// to now + 4 × this, so that Alertmanager resolves them by itself if flagwatch stops.
    public var resendInterval: Double
    /// Firing alerts are sent to webhooks again this often (seconds). A webhook expects
    /// Alertmanager's notifications, which repeat every `repeat_interval` (4 h by default),
    /// not Prometheus' resends: once a minute would page someone once a minute.
    public var webhookRepeatInterval: Double
    /// The first retry waits up to this long (seconds); each failure doubles the ceiling.
    public var initialBackoff: Double
    /// The ceiling on a retry's wait (seconds).
    public var maximumBackoff: Double
    /// At most this many alerts in one POST to an Alertmanager (Prometheus uses 256).
    public var alertmanagerBatchSize: Int
    /// The webhook payload's `externalURL`: where a human finds flagwatch.
    public var externalURL: String

    public init(
        resendInterval: Double = 60,
        webhookRepeatInterval: Double = 4 * 3600,
        initialBackoff: Double = 1,
        maximumBackoff: Double = 60,
        alertmanagerBatchSize: Int = 256,
        externalURL: String = ""
    ) {
        self.resendInterval = resendInterval
        self.webhookRepeatInterval = webhookRepeatInterval
        self.initialBackoff = initialBackoff
        self.maximumBackoff = maximumBackoff
        self.alertmanagerBatchSize = alertmanagerBatchSize
        self.externalURL = externalURL
    }
}

/// One receiver's counters, for `flagwatch_notifications_total{receiver,result}` and
/// `flagwatch_notification_queue_length{receiver}`. The totals count alerts, not requests
/// (as Prometheus' `prometheus_notifications_*_total` do).
public struct ReceiverStatistics: Sendable, Equatable {
    public var name: String
    public var kind: ReceiverConfig.Kind
    /// Alerts waiting now.
    public var queueLength: Int
    /// Alerts in requests answered 2xx.
    public var sent: UInt64
    /// Alerts in requests that failed, once per failed attempt (a retried alert counts again).
    public var failed: UInt64
    /// Alerts given up on: pushed out of a full queue, or rejected with a permanent 4xx.
    public var dropped: UInt64
}

public enum NotifierError: Error, CustomStringConvertible {
    case unreadableFile(path: String, purpose: String, reason: String)
    case emptyFile(path: String, purpose: String)
    case invalidReceiver(name: String, reason: String)

    public var description: String {
        switch self {
        case .unreadableFile(let path, let purpose, let reason):
            return "cannot read \(purpose) file \(path): \(reason)"
        case .emptyFile(let path, let purpose):
            return "\(purpose) file \(path) is empty"
        case .invalidReceiver(let name, let reason):
            return "receiver \(name): \(reason)"
        }
    }
}
