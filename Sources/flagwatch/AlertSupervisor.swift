import AccessLogParser
import Alerting
import ConfigFile
import Diagnosis
import Exposition
import FlagCounting
import Logging
import Notifier

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The daemon's alerting: builds the rules from the config, evaluates them on the loop, logs
/// transitions and hands alerts to the notifier. Lives on the daemon's loop thread.
final class AlertSupervisor {
    let engine: RuleEngine
    let evaluateEvery: Double
    /// Base of every alert's `generatorURL`: the daemon's status page.
    let externalURL: String
    private let logger: Logger
    /// Delivers firing and resolved alerts; nil without receivers.
    let notifier: Notifier?

    /// What the notifier is built from: a reload that leaves it alone keeps the notifier, with
    /// its queues and what each receiver was last sent.
    private let deliverySettings: DeliverySettings

    private struct DeliverySettings: Equatable {
        var alertmanagers: [String]
        var webhooks: [WebhookConfig]
        var timeout: Double
        var queueCapacity: Int
        var resendEvery: Double
        var webhookRepeatEvery: Double
        var externalURL: String
    }

    /// - Parameter previous: the supervisor of the configuration being replaced (a reload):
    ///   its rule states are taken over and its notifier kept when delivery did not change.
    ///   - boundPort: the port the listener got (the config may say 0, or systemd passed a socket).
    init?(config: FlagwatchConfig, logger: Logger, boundPort: Int? = nil, previous: AlertSupervisor? = nil) throws {
        guard let alerting = config.alerting else { return nil }
        let rules = AlertRule.rules(config)
        engine = try RuleEngine(rules: rules, diagnose: Diagnoser.diagnose)
        evaluateEvery = alerting.evaluateEvery.seconds
        externalURL = alerting.externalURL ?? Self.defaultExternalURL(listen: config.listen, boundPort: boundPort)
        self.logger = logger
        deliverySettings = DeliverySettings(
            alertmanagers: alerting.alertmanagers, webhooks: alerting.webhooks,
            timeout: alerting.notificationTimeout.seconds,
            queueCapacity: alerting.queueCapacity, resendEvery: alerting.resendEvery.seconds,
            webhookRepeatEvery: alerting.webhookRepeatEvery.seconds, externalURL: externalURL)
        if let previous, previous.deliverySettings == deliverySettings {
            notifier = previous.notifier
            previous.keepsNotifier = true
            return
        }
        let timeout = alerting.notificationTimeout.seconds
        var receivers = alerting.alertmanagers.map { url in
            ReceiverConfig(
                kind: .alertmanager, name: "alertmanager " + url, url: url, timeout: timeout,
                queueCapacity: alerting.queueCapacity)
        }
        for webhook in alerting.webhooks {
            var receiver = ReceiverConfig(
                kind: .webhook, name: webhook.receiverName, url: webhook.url, timeout: timeout,
                queueCapacity: alerting.queueCapacity)
            receiver.bearerTokenFile = webhook.bearerTokenFile
            receiver.hmacSecretFile = webhook.hmacSecretFile
            receiver.caFile = webhook.caFile
            receivers.append(receiver)
        }
        if receivers.isEmpty {
            notifier = nil
        } else {
            var options = NotifierOptions()
            options.resendInterval = alerting.resendEvery.seconds
            options.webhookRepeatInterval = alerting.webhookRepeatEvery.seconds
            options.externalURL = externalURL
            do {
                notifier = try Notifier(receivers: receivers, options: options, logger: logger)
            } catch {
                throw CommandFailure(message: "alerting: \(error)")
            }
        }
    }

    static func defaultExternalURL(listen: String, boundPort: Int?) -> String {
        guard var address = ListenAddress(listen) else { return "http://127.0.0.1:\(boundPort ?? 9817)/" }
        if let boundPort, let port = UInt16(exactly: boundPort) { address.port = port }
        let unspecified = ["0.0.0.0", "::", ""].contains(address.host)
        let host = unspecified ? (ProcessInfo.processInfo.hostName) : address.host
        return "http://\(host.contains(":") ? "[\(host)]" : host):\(address.port)/"
    }

    /// One evaluation: returns what changed, after logging it.
    @discardableResult
    func evaluate(_ counts: FlagCounts, now: Double) -> Evaluation {
        let evaluation = engine.evaluate(counts, now: now)
        if let notifier {
            // Firing alerts (pending ones are not sent, as in Prometheus) and those just resolved.
            let firing = evaluation.active.filter { $0.state == .firing }
            notifier.update((firing + evaluation.resolved).map(postable))
        }
        for transition in evaluation.transitions {
            let alert = transition.alert
            var metadata: Logger.Metadata = [
                "alertname": "\(alert.rule)", "upstream_cluster": "\(alert.cluster)",
                "state": "\(alert.state.rawValue)",
                "response_flag": "\(alert.label("response_flag") ?? "")",
            ]
            if let cause = alert.diagnosis?.cause { metadata["likely_cause"] = "\(cause.rawValue)" }
            let from = transition.from?.rawValue ?? "inactive"
            metadata["previous_state"] = "\(from)"
            switch alert.state {
            case .pending: metadata["message_id"] = "\(LogMessageID.alertPending)"
            case .firing: metadata["message_id"] = "\(LogMessageID.alertFiring)"
            case .resolved: metadata["message_id"] = "\(LogMessageID.alertResolved)"
            }
            let text =
                "alert \(alert.rule) on \(alert.cluster): \(from) -> \(alert.state.rawValue)"
                + (alert.state == .resolved ? "" : ": \(alert.annotation("summary") ?? "")")
            let message = Logger.Message(stringLiteral: text)
            if alert.state == .firing {
                logger.warning(message, metadata: metadata)
            } else {
                logger.notice(message, metadata: metadata)
            }
        }
        return evaluation
    }

    /// An alert as Alertmanager takes it: `startsAt` when it fired, `endsAt` when it resolved
    /// (the notifier sets a fresh one on each send of a firing alert).
    func postable(_ alert: Alert) -> PostableAlert {
        PostableAlert(
            labels: Dictionary(alert.labels.map { ($0.name, $0.value) }, uniquingKeysWith: { first, _ in first }),
            annotations: Dictionary(
                alert.annotations.map { ($0.name, $0.value) }, uniquingKeysWith: { first, _ in first }),
            startsAt: Date(timeIntervalSince1970: alert.firedAt ?? alert.activeAt),
            endsAt: alert.resolvedAt.map { Date(timeIntervalSince1970: $0) },
            generatorURL: externalURL + "#alerts")
    }

    /// Set when a reload's supervisor took the notifier over: this one must not stop it.
    private var keepsNotifier = false

    /// Delivers what is pending (bounded), then stops the HTTP client.
    func shutdown(within seconds: Double) {
        guard !keepsNotifier else { return }
        notifier?.shutdown(within: seconds)
    }

    /// The daemon's stop, part one (at SIGTERM): the last deliveries start, bounded by `seconds`.
    func beginShutdown(within seconds: Double) {
        guard !keepsNotifier else { return }
        notifier?.beginShutdown(within: seconds)
    }

    /// Part two (after the loop): waits for that bound, then stops the HTTP client.
    func finishShutdown() {
        guard !keepsNotifier else { return }
        notifier?.finishShutdown()
    }

    /// After a reload: takes over `previous`'s rule states; alerts of rules that are gone are
    /// sent as resolved.
    func adoptState(from previous: AlertSupervisor, now: Double) {
        let ended = engine.adoptState(from: previous.engine, now: now)
        for alert in ended {
            logger.notice(
                "alert \(alert.rule) on \(alert.cluster): firing -> resolved: the rule was removed by a reload")
        }
        if let notifier, !ended.isEmpty {
            notifier.update((engine.activeAlerts.filter { $0.state == .firing } + ended).map(postable))
        }
    }

    /// `GET /api/v1/alerts`: the pending and firing alerts, in the shape of Prometheus' own
    /// `/api/v1/alerts` (plus flagwatch's figures).
    func alertsJSON() -> [UInt8] {
        struct Entry: Encodable {
            var labels: [String: String]
            var annotations: [String: String]
            var state: String
            var activeAt: String
            var firedAt: String?
            var value: String
            var figures: Figures
        }
        struct Figures: Encodable {
            var count: UInt64
            var total: UInt64
            var ratio: Double
            var ratePerMinute: Double
            var baselinePerMinute: Double?
            var likelyCause: String?
            /// `one host`, `all hosts` or `unknown`, and the flagged lines' hosts, most first.
            var scope: String?
            var hosts: [Host]?
        }
        struct Host: Encodable {
            var host: String
            var count: Int
        }
        struct Body: Encodable {
            var status = "success"
            var data: [String: [Entry]]
        }
        let entries = engine.activeAlerts.map { alert in
            Entry(
                labels: Dictionary(alert.labels.map { ($0.name, $0.value) }, uniquingKeysWith: { first, _ in first }),
                annotations: Dictionary(
                    alert.annotations.map { ($0.name, $0.value) }, uniquingKeysWith: { first, _ in first }),
                state: alert.state.rawValue, activeAt: Self.timestamp(alert.activeAt),
                firedAt: alert.firedAt.map(Self.timestamp),
                value: String(alert.figures.count),
                figures: Figures(
                    count: alert.figures.count, total: alert.figures.total, ratio: alert.figures.ratio,
                    ratePerMinute: alert.figures.rate * 60, baselinePerMinute: alert.figures.baseline.map { $0 * 60 },
                    likelyCause: alert.diagnosis?.cause.rawValue, scope: alert.diagnosis?.scope.rawValue,
                    hosts: alert.diagnosis?.hosts.map { Host(host: $0.host, count: $0.count) }))
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let body = (try? encoder.encode(Body(data: ["alerts": entries]))) ?? Data(#"{"status":"error"}"#.utf8)
        return Array(body) + [0x0A]
    }

    /// The alerts for the status page.
    func statusRows() -> [StatusPage.AlertRow] {
        engine.activeAlerts.map { alert in
            StatusPage.AlertRow(
                alertname: alert.rule, cluster: alert.cluster, flag: alert.label("response_flag") ?? "",
                state: alert.state.rawValue, since: Self.pageTime(alert.firedAt ?? alert.activeAt),
                summary: alert.annotation("summary") ?? "", cause: alert.diagnosis?.cause.rawValue ?? "",
                likelyCause: alert.annotation("likely_cause") ?? "", nextSteps: alert.annotation("next_steps") ?? "",
                // Issue 17 item 4 (an alert's trend), when merged: trend: StatusPage.Trend(...)
                trend: nil)
        }
    }

    /// `2026-12-06 23:28:45 UTC`: to the second, for people (the JSON keeps milliseconds).
    static func pageTime(_ seconds: Double) -> String {
        let text = Date(timeIntervalSince1970: seconds.rounded(.down)).formatted(Date.ISO8601FormatStyle())
        return text.replacing("T", with: " ").replacing("Z", with: " UTC")
    }

    func metrics() -> AlertingMetrics {
        var metrics = AlertingMetrics()
        metrics.alerts = engine.alertCounts().map { ($0.rule, $0.state.rawValue, $0.count) }
        for receiver in notifier?.statistics() ?? [] {
            metrics.receivers.append(
                AlertingMetrics.Receiver(
                    name: receiver.name, queueLength: receiver.queueLength,
                    results: [("success", receiver.sent), ("failure", receiver.failed), ("dropped", receiver.dropped)]))
        }
        return metrics
    }

    static func timestamp(_ seconds: Double) -> String {
        Date(timeIntervalSince1970: seconds).formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
}
