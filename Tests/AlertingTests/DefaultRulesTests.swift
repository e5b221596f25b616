import AccessLogParser
import ConfigFile
import FlagCounting
import Foundation
import Testing

@testable import Alerting

@Suite("The shipped default rules")
struct DefaultRulesTests {
    static let shippedConfig = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("config/flagwatch.yaml").path

    @Test("each fires within two minutes when a healthy cluster starts failing on most of its requests, and not before")
    func fireWithinTwoMinutes() throws {
        let config = try ConfigLoader.load(path: Self.shippedConfig)
        let rules = AlertRule.rules(config)
        #expect(
            Set(rules.map(\.name)) == [
                "UpstreamConnectFailures", "NoHealthyUpstream", "NoRouteFound", "UpstreamOverflow", "UpstreamTimeouts",
            ])
        let shortNames = Set(rules.flatMap { $0.flags.map(\.shortName) })
        #expect(shortNames.isSuperset(of: ["UF", "URX", "UC", "UH", "NR", "UO", "UT"]))

        for rule in rules {
            let counts = FlagCounts(
                maxClusters: config.limits.maxClusters, windows: config.countedWindows.map { Int($0.seconds) },
                flagGroups: config.alertFlagGroups)
            let engine = try RuleEngine(rules: rules, diagnose: { _, _, _ in nil })
            var parser = try AccessLogParser(format: .custom("%RESPONSE_CODE% %RESPONSE_FLAGS% %UPSTREAM_CLUSTER%"))
            let cluster = rule.flags[0] == .noRouteFound ? "-" : "outbound|8080||api.default.svc.cluster.local"
            var now = 5_000_000
            func write(_ count: Int, _ text: String) {
                Array(text.utf8).withUnsafeBytes { buffer in
                    var record = AccessRecord()
                    for _ in 0..<count where parser.parse(buffer, into: &record) == nil { counts.count(record) }
                }
            }
            // 20 minutes healthy: 10 requests a second, a steady 20 a minute with the flag (above
            // min_count, under the ratio, at the baseline: must not page).
            var fired: [String] = []
            for second in 0..<(20 * 60) {
                now += 1
                counts.now = now
                write(10, "200 - \(cluster)")
                if second % 3 == 0 { write(1, "503 \(rule.flags[0].shortName) \(cluster)") }
                if second % 10 == 0 { fired += engine.evaluate(counts, now: Double(now)).active.map(\.rule) }
            }
            #expect(fired.isEmpty, "\(rule.name): paged while healthy: \(fired)")
            // Then 8 of 10 requests fail with the rule's first flag.
            var firedAfter: Int?
            for second in 1...180 {
                now += 1
                counts.now = now
                write(2, "200 - \(cluster)")
                write(8, "503 \(rule.flags[0].shortName) \(cluster)")
                if second % 10 == 0, firedAfter == nil,
                    engine.evaluate(counts, now: Double(now)).active.contains(where: {
                        $0.rule == rule.name && $0.state == .firing
                    })
                {
                    firedAfter = second
                }
            }
            let after = try #require(firedAfter, "\(rule.name) never fired")
            #expect(after <= 120, "\(rule.name) fired after \(after) s")
        }
    }
}
