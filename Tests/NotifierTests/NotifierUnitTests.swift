import Foundation
import Testing

@testable import Notifier

/// The parts with no socket: configuration checks, the coalescing queue, the payload encoding.
@Suite("Notifier parts")
struct NotifierUnitTests {
    static func alert(_ cluster: String, endsAt: Date? = nil, summary: String = "s") -> PostableAlert {
        PostableAlert(
            labels: ["alertname": "A", "upstream_cluster": cluster], annotations: ["summary": summary],
            startsAt: Date(timeIntervalSince1970: 1_790_000_000), endsAt: endsAt)
    }

    @Test("configuration errors name the receiver or the file")
    func configurationErrors() throws {
        let directory = try ScratchDirectory()
        defer { directory.remove() }
        let empty = try directory.write("empty", " \n")
        let notPEM = try directory.write("ca.txt", "not a certificate\n")

        func error(_ receivers: [ReceiverConfig], options: NotifierOptions = fastOptions) -> String {
            do {
                _ = try Notifier(receivers: receivers, options: options, logger: testLogger)
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        let missing = directory.file("missing-token")
        #expect(
            error([ReceiverConfig(kind: .webhook, name: "w", url: "http://127.0.0.1:1/", bearerTokenFile: missing)])
                .contains("cannot read bearer token file \(missing)"))
        #expect(
            error([ReceiverConfig(kind: .webhook, name: "w", url: "http://127.0.0.1:1/", hmacSecretFile: empty)])
                == "HMAC secret file \(empty) is empty")
        #expect(
            error([ReceiverConfig(kind: .webhook, name: "w", url: "http://127.0.0.1:1/", caFile: notPEM)])
                .hasPrefix("cannot read CA file \(notPEM): not PEM certificates"))
        #expect(
            error([ReceiverConfig(kind: .webhook, name: "w", url: "ftp://127.0.0.1/")])
                == "receiver w: url ftp://127.0.0.1/ is not an http:// or https:// URL")
        #expect(
            error([
                ReceiverConfig(kind: .webhook, name: "same", url: "http://127.0.0.1:1/"),
                ReceiverConfig(kind: .alertmanager, name: "same", url: "http://127.0.0.1:2/"),
            ]) == "receiver same: the name is used twice")
        #expect(
            error([ReceiverConfig(kind: .webhook, name: "w", url: "http://127.0.0.1:1/", queueCapacity: 0)])
                == "receiver w: queue capacity must be at least 1")
        var badOptions = fastOptions
        badOptions.maximumBackoff = 0.01
        #expect(error([], options: badOptions).hasPrefix("receiver *: intervals must be positive"))
    }

    @Test("the queue keeps one entry per alert, the latest state")
    func queueCoalesces() {
        var queue = PendingAlerts(capacity: 10)
        queue.insert(Self.alert("a", summary: "1"))
        queue.insert(Self.alert("b"))
        queue.insert(Self.alert("a", summary: "2"))
        #expect(queue.count == 2)
        let oldest = queue.oldest(limit: 10)
        #expect(oldest.map(\.alert.labels["upstream_cluster"]) == ["b", "a"])
        #expect(oldest.last?.alert.annotations["summary"] == "2")
    }

    @Test("a full queue drops the oldest resolved alert first, then the oldest firing one")
    func queueDropsResolvedFirst() {
        var queue = PendingAlerts(capacity: 3)
        queue.insert(Self.alert("firing-old"))
        queue.insert(Self.alert("resolved", endsAt: Date(timeIntervalSince1970: 1_790_000_100)))
        queue.insert(Self.alert("firing-mid"))
        #expect(queue.insert(Self.alert("firing-new")).map(\.labels["upstream_cluster"]) == ["resolved"])
        #expect(queue.insert(Self.alert("firing-newest")).map(\.labels["upstream_cluster"]) == ["firing-old"])
        #expect(queue.count == 3)
    }

    @Test("an entry replaced while its request was in flight stays queued")
    func queueKeepsNewerState() {
        var queue = PendingAlerts(capacity: 10)
        queue.insert(Self.alert("a", summary: "1"))
        queue.insert(Self.alert("b"))
        let inFlight = queue.oldest(limit: 10)
        queue.insert(Self.alert("a", summary: "2"))
        queue.removeIfUnchanged(inFlight)
        #expect(queue.oldest(limit: 10).map(\.alert.annotations["summary"]) == ["2"])
    }

    @Test("the queue stays bounded over many distinct alerts")
    func queueBoundedUnderChurn() {
        var queue = PendingAlerts(capacity: 50)
        var dropped = 0
        for index in 0..<10_000 {
            let resolvedAt = index % 3 == 0 ? Date(timeIntervalSince1970: 1_790_000_100) : nil
            dropped += queue.insert(Self.alert("c\(index % 700)", endsAt: resolvedAt)).count
            #expect(queue.count <= 50)
        }
        #expect(queue.count == 50)
        #expect(dropped > 0)
    }

    @Test("the fingerprint is Alertmanager's (FNV-1a over sorted names and values)")
    func fingerprint() {
        // The empty label set hashes to the FNV-64a offset basis.
        #expect(AlertFingerprint(labels: [:]).description == "cbf29ce484222325")
        #expect(
            AlertFingerprint(labels: ["b": "2", "a": "1"]) == AlertFingerprint(labels: ["a": "1", "b": "2"]))
        #expect(AlertFingerprint(labels: ["a": "1"]) != AlertFingerprint(labels: ["a": "2"]))
    }

    @Test("endsAt before startsAt is sent as startsAt (Alertmanager rejects the whole batch otherwise)")
    func endsAtNotBeforeStartsAt() throws {
        let startsAt = Date(timeIntervalSince1970: 1_790_000_000)
        var early = Self.alert("a", endsAt: startsAt.addingTimeInterval(-30))
        early.startsAt = startsAt
        let body = try Payloads.alertmanagerBody([early], now: Date(), firingValidity: 240)
        let decoded = try #require(try JSONSerialization.jsonObject(with: Data(body)) as? [[String: Any]])
        #expect(sameMillisecond(timeValue(decoded.first?["endsAt"]), startsAt))
        #expect(sameMillisecond(timeValue(decoded.first?["startsAt"]), startsAt))

        // A firing alert whose startsAt lies ahead of this host's clock: endsAt is not earlier.
        let future = PostableAlert(labels: ["alertname": "A"], startsAt: Date().addingTimeInterval(3600))
        let futureBody = try Payloads.alertmanagerBody([future], now: Date(), firingValidity: 240)
        let futureDecoded = try #require(
            try JSONSerialization.jsonObject(with: Data(futureBody)) as? [[String: Any]])
        let futureStarts = try #require(timeValue(futureDecoded.first?["startsAt"]))
        let futureEnds = try #require(timeValue(futureDecoded.first?["endsAt"]))
        #expect(futureEnds >= futureStarts)

        let webhook = try Payloads.webhookBody(alertname: "A", alerts: [early], receiver: "r", externalURL: "")
        let message = try #require(try JSONSerialization.jsonObject(with: Data(webhook)) as? [String: Any])
        let webhookAlert = try #require((message["alerts"] as? [[String: Any]])?.first)
        #expect(sameMillisecond(timeValue(webhookAlert["endsAt"]), startsAt))
    }

    @Test(
        "hostile cluster names and details round-trip through Alertmanager and webhook bodies, with no raw control byte"
    )
    func hostileTextInPayloads() throws {
        let hostile = ["q\"\u{301}}x", "a\r\nb", "nul\u{0}byte", "esc\u{1B}[31m", "back\\\u{301}", "del\u{7F}"]
        for name in hostile {
            let alert = Self.alert(name, summary: "details: " + name)
            let bodies = [
                try Payloads.alertmanagerBody([alert], now: Date(), firingValidity: 240),
                try Payloads.webhookBody(alertname: "A", alerts: [alert], receiver: "r", externalURL: ""),
            ]
            for body in bodies {
                #expect(!body.contains { $0 < 0x20 }, "raw control byte for \(name.debugDescription)")
            }
            let decoded = try #require(try JSONSerialization.jsonObject(with: Data(bodies[0])) as? [[String: Any]])
            #expect((decoded.first?["labels"] as? [String: String])?["upstream_cluster"] == name)
            #expect((decoded.first?["annotations"] as? [String: String])?["summary"] == "details: " + name)
            let message = try #require(try JSONSerialization.jsonObject(with: Data(bodies[1])) as? [String: Any])
            let webhookAlert = try #require((message["alerts"] as? [[String: Any]])?.first)
            #expect((webhookAlert["labels"] as? [String: String])?["upstream_cluster"] == name)
        }
    }

    @Test("alerts without labels are not queued; updates after shutdown are ignored")
    func unlabelledAndAfterShutdown() async throws {
        let down = try RefusingPort()
        defer { down.release() }
        let notifier = try Notifier(
            receivers: [ReceiverConfig(kind: .alertmanager, name: "am", url: down.url)],
            options: fastOptions, logger: testLogger)
        notifier.update([PostableAlert(labels: [:], startsAt: Date())])
        #expect(notifier.statistics(of: "am")?.queueLength == 0)
        await shutDown(notifier, within: 0)
        notifier.update([Self.alert("a")])
        #expect(notifier.statistics(of: "am")?.queueLength == 0)
        // A second shutdown is a no-op.
        await shutDown(notifier, within: 0)
    }
}
