import AsyncHTTPClient
import Foundation
import NIOCore
import Testing

@testable import Notifier

let alertmanagerBinary = ProcessInfo.processInfo.environment["ALERTMANAGER_BIN"] ?? "/usr/bin/prometheus-alertmanager"

/// Whether the Alertmanager binary is there; when it is not, one bounded attempt to install it
/// as `make test` would (scripts/install-deps.sh installs prometheus-alertmanager).
@Sendable func alertmanagerAvailable() async -> Bool {
    if FileManager.default.isExecutableFile(atPath: alertmanagerBinary) { return true }
    let script = repositoryRoot.appendingPathComponent("scripts/install-deps.sh").path
    guard getuid() == 0, let directory = try? ScratchDirectory() else { return false }
    defer { directory.remove() }
    _ = try? await runTool(["bash", script, "test"], in: directory, timeout: 300)
    return FileManager.default.isExecutableFile(atPath: alertmanagerBinary)
}

/// A real Alertmanager on 127.0.0.1 with a do-nothing receiver, clustering off.
final class RealAlertmanager {
    let child: ChildProcess
    let url: String

    init(directory: ScratchDirectory) async throws {
        let config = try directory.write(
            "alertmanager.yml",
            """
            route: {receiver: blackhole, group_wait: 1s, group_interval: 1s, repeat_interval: 1h}
            receivers: [{name: blackhole}]

            """)
        var lastError = ""
        // The port is free when chosen; another process could take it before Alertmanager
        // binds it, hence a few tries.
        for attempt in 1...3 {
            let port = try unusedLocalPort()
            let child = try ChildProcess(
                name: "alertmanager-\(attempt)",
                arguments: [
                    alertmanagerBinary, "--config.file=\(config)",
                    "--storage.path=\(directory.file("alertmanager-data-\(attempt)"))",
                    "--web.listen-address=127.0.0.1:\(port)", "--cluster.listen-address=",
                    "--log.level=warn",
                ],
                directory: directory)
            let url = "http://127.0.0.1:\(port)"
            if try await Self.waitUntilReady(url: url, child: child) {
                self.child = child
                self.url = url
                return
            }
            lastError = child.stderr()
            child.stop()
        }
        throw TestFailure.message("Alertmanager did not start:\n\(lastError)")
    }

    private static func waitUntilReady(url: String, child: ChildProcess) async throws -> Bool {
        let deadline = monotonicNow() + 20
        while monotonicNow() < deadline, child.isRunning {
            if let (status, _) = try? await get(url + "/-/ready"), status == 200 { return true }
            try await Task.sleep(for: .milliseconds(100))
        }
        return false
    }

    static func get(_ url: String) async throws -> (Int, [UInt8]) {
        let request = HTTPClientRequest(url: url)
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
        let body = try await response.body.collect(upTo: 4 << 20)
        return (Int(response.status.code), Array(body.readableBytesView))
    }

    /// GET /api/v2/alerts: the active alerts (resolved ones are not listed).
    func alerts() async throws -> [[String: Any]] {
        let (status, body) = try await Self.get(url + "/api/v2/alerts")
        guard status == 200, let alerts = try JSONSerialization.jsonObject(with: Data(body)) as? [[String: Any]]
        else {
            throw TestFailure.message("GET /api/v2/alerts: HTTP \(status) \(String(decoding: body, as: UTF8.self))")
        }
        return alerts
    }

    func stop() { child.stop() }
}

@Suite("Notifier against a real Alertmanager")
struct AlertmanagerTests {
    @Test(
        "posted alerts appear in GET /api/v2/alerts with labels and annotations; a resolved one leaves the active list",
        .enabled(
            "prometheus-alertmanager is not installed and could not be installed (scripts/install-deps.sh test)",
            alertmanagerAvailable))
    func realAlertmanager() async throws {
        let directory = try ScratchDirectory()
        defer { directory.remove() }
        let alertmanager = try await RealAlertmanager(directory: directory)
        defer { alertmanager.stop() }
        // A second "Alertmanager" (the recording receiver): every Alertmanager gets every alert.
        let second = try await TestReceiver(directory: directory, name: "second-alertmanager")
        defer { second.stop() }

        let notifier = try Notifier(
            receivers: [
                ReceiverConfig(kind: .alertmanager, name: "real", url: alertmanager.url + "/"),
                ReceiverConfig(kind: .alertmanager, name: "second", url: second.url("")),
            ],
            options: fastOptions, logger: testLogger)
        let startsAt = wholeMilliseconds(Date().addingTimeInterval(-120))
        let generatorURL = "http://flagwatch.test:9817/#alerts"
        let connect = PostableAlert(
            labels: [
                "alertname": "UpstreamConnectFailures",
                "upstream_cluster": "outbound|8080||api.default.svc.cluster.local",
                "response_flag": "UF", "severity": "critical",
            ],
            annotations: ["summary": "UF on api: 40% of requests", "likely_cause": "upstream refuses connections"],
            startsAt: startsAt, generatorURL: generatorURL)
        let noRoute = PostableAlert(
            labels: ["alertname": "NoRoute", "upstream_cluster": "BlackHoleCluster", "response_flag": "NR"],
            annotations: ["summary": "NR"], startsAt: startsAt, generatorURL: generatorURL)
        // Two alerts Alertmanager rejects: no labels at all, and a resolve time before the start
        // (a wall clock stepped back). It stores the valid alerts of a request but answers 400
        // for the whole of it, which the notifier would count as every alert failed and dropped.
        let unlabelled = PostableAlert(labels: [:], startsAt: startsAt)
        let backwards = PostableAlert(
            labels: ["alertname": "Backwards", "upstream_cluster": "x"], startsAt: startsAt,
            endsAt: startsAt.addingTimeInterval(-60))
        notifier.update([connect, noRoute, unlabelled, backwards])

        var listed: [[String: Any]] = []
        let bothListed = try await eventuallyAsync(timeout: 60) {
            listed = try await alertmanager.alerts()
            return listed.count == 2
        }
        #expect(bothListed, "Alertmanager lists \(listed)")
        for sent in [connect, noRoute] {
            let entry = try #require(listed.first { ($0["labels"] as? [String: String]) == sent.labels })
            #expect(entry["annotations"] as? [String: String] == sent.annotations)
            #expect(entry["generatorURL"] as? String == generatorURL)
            #expect(sameMillisecond(timeValue(entry["startsAt"]), startsAt))
            // The webhook payload's fingerprint is the one Alertmanager computes.
            #expect(entry["fingerprint"] as? String == sent.fingerprint.description)
            #expect((entry["status"] as? [String: Any])?["state"] as? String == "active")
            // endsAt = send time + 4 × resend interval (60 s here).
            let endsAt = try #require(timeValue(entry["endsAt"]))
            #expect(abs(endsAt.timeIntervalSinceNow - 240) < 30)
        }
        let real = try #require(notifier.statistics(of: "real"))
        #expect(real.dropped == 0)
        #expect(real.failed == 0)

        // The connect alert resolves now; the other keeps firing.
        var resolved = connect
        resolved.endsAt = wholeMilliseconds(Date())
        notifier.update([resolved, noRoute])
        let onlyNoRoute = try await eventuallyAsync(timeout: 60) {
            listed = try await alertmanager.alerts()
            return listed.count == 1 && (listed[0]["labels"] as? [String: String]) == noRoute.labels
        }
        #expect(onlyNoRoute, "Alertmanager lists \(listed)")
        #expect(await eventually(timeout: 60) { notifier.statistics().allSatisfy { $0.queueLength == 0 } })
        await shutDown(notifier, within: 1)
        #expect(notifier.statistics(of: "real")?.dropped == 0)

        // The second Alertmanager got the same alerts in its own requests.
        var secondAlerts: [[String: Any]] = []
        for request in try second.requests() {
            #expect(request.path == "/api/v2/alerts")
            secondAlerts += try #require(try request.json() as? [[String: Any]])
        }
        let secondLabels = secondAlerts.compactMap { $0["labels"] as? [String: String] }
        #expect(secondLabels.contains(connect.labels) && secondLabels.contains(noRoute.labels))
        #expect(!secondLabels.contains([:]))
    }
}

/// `eventually` for an async, throwing condition.
func eventuallyAsync(
    timeout: Double, interval: Double = 0.2, _ condition: () async throws -> Bool
) async throws -> Bool {
    let deadline = monotonicNow() + timeout
    while true {
        if try await condition() { return true }
        if monotonicNow() >= deadline { return false }
        try await Task.sleep(for: .seconds(interval))
    }
}
