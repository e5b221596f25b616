#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The request bodies: Alertmanager's API v2 `postableAlerts` and its webhook payload, version 4.
enum Payloads {
    /// RFC 3339 in UTC with milliseconds, which Alertmanager's Go time parser accepts.
    static func rfc3339(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    /// Go's zero `time.Time`, which Alertmanager writes as a firing alert's `endsAt` in webhook
    /// payloads; receivers written for Alertmanager may test for exactly this string.
    static let goZeroTime = "0001-01-01T00:00:00Z"

    private static func makeEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        // Sorted keys make equal alerts produce equal bytes (and signatures); slashes are left
        // alone because URLs are common in labels and annotations.
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    // MARK: Alertmanager API v2

    private struct AlertmanagerAlert: Encodable {
        var labels: [String: String]
        var annotations: [String: String]
        var startsAt: String
        var endsAt: String
        var generatorURL: String
    }

    /// The body of `POST /api/v2/alerts`. Firing alerts get `endsAt` = now + `firingValidity`
    /// (Prometheus: 4 × resend interval) at the moment of sending, so an alert that waited in a
    /// queue during an outage is not sent already expired.
    ///
    /// `endsAt` is never before `startsAt` (a wall clock stepped back between firing and
    /// resolving, or a startsAt ahead of this host's clock): Alertmanager answers such an alert
    /// with 400 "start time must be before end time" for the whole request, and the notifier
    /// then counts every alert in the batch as failed and dropped.
    static func alertmanagerBody(
        _ alerts: [PostableAlert], now: Date, firingValidity: TimeInterval
    ) throws -> [UInt8] {
        let wireAlerts = alerts.map { alert in
            AlertmanagerAlert(
                labels: alert.labels,
                annotations: alert.annotations,
                startsAt: rfc3339(alert.startsAt),
                endsAt: rfc3339(max(alert.endsAt ?? now.addingTimeInterval(firingValidity), alert.startsAt)),
                generatorURL: alert.generatorURL
            )
        }
        return Array(try makeEncoder().encode(wireAlerts))
    }

    // MARK: Webhook, Alertmanager's payload version 4

    private struct WebhookAlert: Encodable {
        var status: String
        var labels: [String: String]
        var annotations: [String: String]
        var startsAt: String
        var endsAt: String
        var generatorURL: String
        var fingerprint: String
    }

    private struct WebhookMessage: Encodable {
        var version = "4"
        var groupKey: String
        var truncatedAlerts = 0
        var status: String
        var receiver: String
        var groupLabels: [String: String]
        var commonLabels: [String: String]
        var commonAnnotations: [String: String]
        var externalURL: String
        var alerts: [WebhookAlert]
    }

    /// The label Alertmanager's default route groups by, and so do the webhook POSTs.
    static let groupingLabel = "alertname"

    /// One POST body for alerts that share an alertname.
    static func webhookBody(
        alertname: String, alerts: [PostableAlert], receiver: String, externalURL: String
    ) throws -> [UInt8] {
        let message = WebhookMessage(
            groupKey: "{}:{\(groupingLabel)=\(goQuoted(alertname))}",
            status: alerts.contains { !$0.isResolved } ? "firing" : "resolved",
            receiver: receiver,
            groupLabels: [groupingLabel: alertname],
            commonLabels: common(alerts.map(\.labels)),
            commonAnnotations: common(alerts.map(\.annotations)),
            externalURL: externalURL,
            alerts: alerts.map { alert in
                WebhookAlert(
                    status: alert.isResolved ? "resolved" : "firing",
                    labels: alert.labels,
                    annotations: alert.annotations,
                    startsAt: rfc3339(alert.startsAt),
                    endsAt: alert.endsAt.map { rfc3339(max($0, alert.startsAt)) } ?? goZeroTime,
                    generatorURL: alert.generatorURL,
                    fingerprint: alert.fingerprint.description
                )
            }
        )
        return Array(try makeEncoder().encode(message))
    }

    /// The pairs every one of the sets has (Alertmanager's commonLabels / commonAnnotations).
    static func common(_ sets: [[String: String]]) -> [String: String] {
        guard var shared = sets.first else { return [:] }
        for set in sets.dropFirst() {
            shared = shared.filter { set[$0.key] == $0.value }
        }
        return shared
    }

    /// The value quoted as Go's `%q` does for printable text (Alertmanager builds group keys
    /// with it).
    private static func goQuoted(_ value: String) -> String {
        var quoted = "\""
        for character in value.unicodeScalars {
            switch character {
            case "\"": quoted += "\\\""
            case "\\": quoted += "\\\\"
            case "\n": quoted += "\\n"
            case "\t": quoted += "\\t"
            default: quoted.unicodeScalars.append(character)
            }
        }
        return quoted + "\""
    }
}
