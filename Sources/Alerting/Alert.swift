import AccessLogParser
import Diagnosis

/// Where an alert is in its life, as in Prometheus.
public enum AlertState: String, Sendable, CaseIterable {
    case pending, firing, resolved
}

/// The figures a rule looked at for one cluster in one evaluation.
public struct AlertFigures: Sendable, Equatable {
    /// Lines with any of the rule's flags in the window.
    public var count: UInt64
    /// All responses of the cluster in the window.
    public var total: UInt64
    /// Flagged lines per second over the window.
    public var rate: Double
    /// The cluster's usual flagged rate (per second); nil before the baseline is trusted.
    public var baseline: Double?

    public var ratio: Double { total > 0 ? Double(count) / Double(total) : 0 }
}

/// One alert: a rule on one upstream cluster.
public struct Alert: Sendable {
    public var rule: String
    public var cluster: String
    public var state: AlertState
    /// alertname, upstream_cluster, response_flag, service, namespace (Istio names only), severity.
    public var labels: [(name: String, value: String)]
    /// summary, description, likely_cause, next_steps, runbook_url (when configured).
    public var annotations: [(name: String, value: String)]
    /// When the condition first held (pending began), seconds since 1970.
    public var activeAt: Double
    /// When it started firing; nil while pending.
    public var firedAt: Double?
    /// When it resolved; nil unless resolved.
    public var resolvedAt: Double?
    public var figures: AlertFigures
    public var diagnosis: Diagnosis?

    public func label(_ name: String) -> String? { labels.first { $0.name == name }?.value }
    public func annotation(_ name: String) -> String? { annotations.first { $0.name == name }?.value }
}

/// A change of state, for logs (and journald's MESSAGE_ID).
public struct AlertTransition: Sendable {
    public var alert: Alert
    /// nil: the alert is new (inactive before).
    public var from: AlertState?
}

/// What one evaluation produced.
public struct Evaluation: Sendable {
    /// Pending and firing alerts, by rule then cluster.
    public var active: [Alert]
    /// Alerts that resolved in this evaluation.
    public var resolved: [Alert]
    public var transitions: [AlertTransition]
}
