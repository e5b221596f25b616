import AccessLogParser
import Diagnosis
import FlagCounting
import Foundation
import Testing

@testable import Alerting

/// A controllable world: counts with a 60 s window and the rule's flag group, a clock both the
/// counts and the engine read, and lines written as `CODE FLAGS CLUSTER`.
final class World {
    let counts: FlagCounts
    var parser: AccessLogParser
    let engine: RuleEngine
    var now = 1_000_000

    static let api = "outbound|8080||api.default.svc.cluster.local"
    static let web = "outbound|80||web.shop.svc.cluster.local"

    init(_ rule: AlertRule, windows: [Int] = [60], diagnose: @escaping RuleEngine.Diagnose = { _, _, _ in nil }) throws
    {
        counts = FlagCounts(windows: windows, flagGroups: [ResponseFlagSet(rule.flags)])
        parser = try AccessLogParser(format: .custom("%RESPONSE_CODE% %RESPONSE_FLAGS% %UPSTREAM_CLUSTER%"))
        engine = try RuleEngine(rules: [rule], diagnose: diagnose)
        counts.now = now
    }

    /// `count` lines in the current second.
    func write(_ count: Int, code: Int = 503, flags: String = "UF", cluster: String = World.api) {
        let line = Array("\(code) \(flags) \(cluster)".utf8)
        line.withUnsafeBytes { buffer in
            var record = AccessRecord()
            for _ in 0..<count {
                if parser.parse(buffer, into: &record) == nil { counts.count(record) }
            }
        }
    }

    /// Moves the clock on and evaluates.
    @discardableResult
    func evaluate(after seconds: Int = 0) -> Evaluation {
        now += seconds
        counts.now = now
        return engine.evaluate(counts, now: Double(now))
    }

    func state(_ cluster: String = World.api) -> AlertState? {
        engine.activeAlerts.first { $0.cluster == cluster }?.state
    }
}

func rule(
    flags: [ResponseFlag] = [.upstreamConnectionFailure], minCount: Int = 10, ratio: Double? = nil,
    spike: Double? = nil,
    pendingFor: Double = 0, resolveAfter: Double = 0, include: String? = nil, exclude: String? = nil,
    baseline: Double = 3600
) -> AlertRule {
    AlertRule(
        name: "UpstreamConnectFailures", flags: flags, include: include, exclude: exclude, windowIndex: 0,
        windowSeconds: 60,
        flagGroup: 0, minCount: minCount, ratio: ratio, spikeFactor: spike, pendingFor: pendingFor,
        resolveAfter: resolveAfter, severity: "critical", baselineSeconds: baseline)
}

@Suite("Rule engine: conditions, for, resolve, baseline")
struct RuleEngineTests {
    @Test("the gate alone: fires at min_count, not one below")
    func gateOnly() throws {
        let world = try World(rule(minCount: 10))
        world.write(9)
        #expect(world.evaluate().active.isEmpty)
        world.write(1)
        let evaluation = world.evaluate()
        #expect(evaluation.active.count == 1)
        #expect(world.state() == .firing)
        #expect(evaluation.transitions.count == 1 && evaluation.transitions[0].from == nil)
    }

    @Test("ratio: flagged / all responses in the window; a UF,URX line counts once")
    func ratio() throws {
        let world = try World(
            rule(flags: [.upstreamConnectionFailure, .upstreamRetryLimitExceeded], minCount: 5, ratio: 0.5))
        world.write(10, code: 200, flags: "-")
        world.write(9, flags: "UF,URX")
        #expect(world.evaluate().active.isEmpty, "9 of 19 is under 50 %")
        world.write(1, flags: "URX,UF")
        let alert = try #require(world.evaluate().active.first)
        #expect(alert.figures.count == 10 && alert.figures.total == 20)
        #expect(alert.figures.ratio == 0.5)
        // Below the gate the ratio does not matter.
        let quiet = try World(rule(minCount: 5, ratio: 0.5))
        quiet.write(4)
        #expect(quiet.evaluate().active.isEmpty)
    }

    @Test("spike: a cluster that always has a few UF does not page; the same count on a quiet cluster does")
    func spikeAgainstBaseline() throws {
        let world = try World(rule(minCount: 10, spike: 5, baseline: 3600))
        // Three hours of a steady 20 UF per minute on api (and nothing on web).
        var everPaged = false
        for _ in 0..<(3 * 60 * 6) {
            world.write(2)
            if !world.evaluate(after: 10).active.isEmpty { everPaged = true }
        }
        #expect(!everPaged, "a steady rate never pages, from the warm-up on")
        // The same 20 per minute appear on web, which never had any: 20/min >= 5 x 0.
        world.write(20, cluster: World.web)
        let evaluation = world.evaluate(after: 1)
        #expect(evaluation.active.map(\.cluster) == [World.web])
        #expect(evaluation.active.first?.figures.baseline == 0)
        // api at more than 5x its usual rate pages too.
        world.write(100)
        #expect(world.evaluate(after: 1).active.map(\.cluster).sorted() == [World.api, World.web].sorted())
    }

    @Test("baseline learning: the weighted average approaches the steady rate over its horizon")
    func baselineLearning() throws {
        let world = try World(rule(minCount: 1000, spike: 5, baseline: 600))
        // One line every 10 s (0.1/s; each evaluation's 60 s window holds 6), for 10 minutes:
        // the corrected estimate is the rate already; the raw average is still 1 - 1/e of it.
        for _ in 0..<60 {
            world.now += 10
            world.counts.now = world.now
            world.write(1)
            world.evaluate()
        }
        let early = try #require(world.engine.series(rule: 0, cluster: World.api)?.baseline)
        #expect(abs(early - 0.1 * (1 - exp(-1.0))) < 0.01, "raw \(early)")
        let corrected = try #require(world.engine.estimate(early, rule: world.engine.rules[0], uptime: 590))
        #expect(abs(corrected - 0.1) < 0.01, "corrected \(corrected)")
        // After 6 horizons the raw average is within a few percent of the rate.
        for _ in 0..<300 {
            world.now += 10
            world.counts.now = world.now
            world.write(1)
            world.evaluate()
        }
        let learned = try #require(world.engine.series(rule: 0, cluster: World.api)?.baseline)
        #expect(abs(learned - 0.1) < 0.005, "baseline \(learned)")
    }

    @Test("the spike condition waits for the baseline's warm-up; the ratio does not")
    func warmup() throws {
        let spikeOnly = try World(rule(minCount: 10, spike: 5, baseline: 3600))
        spikeOnly.write(50)
        #expect(spikeOnly.evaluate().active.isEmpty, "at start the baseline is not trusted")
        let withRatio = try World(rule(minCount: 10, ratio: 0.5, spike: 5, baseline: 3600))
        withRatio.write(50)
        #expect(withRatio.evaluate().active.count == 1)
    }

    @Test("for: pending until the condition has held that long; a pending alert that stops holding goes away unsent")
    func pendingFor() throws {
        let world = try World(rule(minCount: 10, pendingFor: 30))
        world.write(10)
        #expect(world.evaluate().active.first?.state == .pending)
        world.write(10)
        #expect(world.evaluate(after: 20).active.first?.state == .pending)
        world.write(10)
        let firing = world.evaluate(after: 10)
        #expect(firing.active.first?.state == .firing)
        #expect(firing.transitions.first?.from == .pending)
        #expect(firing.active.first?.activeAt == 1_000_000)
        #expect(firing.active.first?.firedAt == 1_000_030)

        let blip = try World(rule(minCount: 10, pendingFor: 30))
        blip.write(10)
        #expect(blip.evaluate().active.first?.state == .pending)
        let gone = blip.evaluate(after: 61)  // the 10 lines left the 60 s window
        #expect(gone.active.isEmpty)
        #expect(gone.resolved.isEmpty, "a pending alert never fired: nothing resolves")
    }

    @Test("resolve_after: short gaps keep it firing (no flapping); it resolves after the condition stayed false")
    func resolveAfter() throws {
        let world = try World(rule(minCount: 10, resolveAfter: 120))
        world.write(10)
        #expect(world.evaluate().active.first?.state == .firing)
        // The window empties at +61; the condition is false for 50 s, then holds again.
        world.evaluate(after: 61)
        #expect(world.state() == .firing)
        world.evaluate(after: 50)
        #expect(world.state() == .firing)
        world.write(10)
        #expect(world.evaluate(after: 1).resolved.isEmpty)
        // Then false for good: firing until 120 s after it became false.
        world.evaluate(after: 61)  // false from here
        #expect(world.evaluate(after: 119).resolved.isEmpty)
        let evaluation = world.evaluate(after: 1)
        let resolved = try #require(evaluation.resolved.first)
        #expect(resolved.state == .resolved)
        #expect(resolved.resolvedAt == Double(world.now))
        #expect(resolved.activeAt == 1_000_000)
        #expect(evaluation.active.isEmpty)
        #expect(evaluation.transitions.first?.from == .firing)
        // And it can fire again as a new alert.
        world.write(10)
        let again = world.evaluate(after: 1)
        #expect(again.active.first?.activeAt == Double(world.now))
    }

    @Test("include / exclude are searched in the cluster name")
    func clusterSelection() throws {
        let world = try World(rule(minCount: 1, include: "\\.svc\\.cluster\\.local$", exclude: "^outbound\\|80\\|"))
        world.write(1)
        world.write(1, cluster: World.web)
        world.write(1, cluster: "BlackHoleCluster")
        #expect(world.evaluate().active.map(\.cluster) == [World.api])
    }

    @Test("labels and annotations: names from the Istio cluster, the dominant flag, figures")
    func labelsAndAnnotations() throws {
        let diagnosis = Diagnosis(
            flag: .upstreamConnectionFailure, cause: .backendDown,
            likelyCause: "backend down: 12 of 12 UF were connection refused",
            nextSteps: ["kubectl get endpointslice -n default"])
        let world = try World(rule(flags: [.upstreamConnectionFailure, .upstreamRetryLimitExceeded], minCount: 10)) {
            _, _, _ in diagnosis
        }
        world.write(12, flags: "UF,URX")
        world.write(3, code: 200, flags: "-")
        let alert = try #require(world.evaluate().active.first)
        #expect(
            alert.labels.map(\.name) == [
                "alertname", "upstream_cluster", "response_flag", "service", "namespace", "severity",
            ])
        #expect(alert.label("alertname") == "UpstreamConnectFailures")
        #expect(alert.label("upstream_cluster") == World.api)
        #expect(alert.label("response_flag") == "UF")
        #expect(alert.label("service") == "api")
        #expect(alert.label("namespace") == "default")
        #expect(alert.label("severity") == "critical")
        #expect(alert.annotation("likely_cause") == diagnosis.likelyCause)
        #expect(alert.annotation("next_steps") == "kubectl get endpointslice -n default")
        #expect(alert.annotation("trend") == nil && alert.annotation("first_seen_failing") == nil)
        let description = try #require(alert.annotation("description"))
        #expect(description.contains("12 of 15 responses"))
        #expect(description.contains("80.0 %"))
        // Without a diagnosis the dominant flag comes from the window counts.
        let plain = try World(rule(flags: [.upstreamConnectionFailure, .upstreamRetryLimitExceeded], minCount: 1))
        plain.write(3, flags: "URX")
        plain.write(1, flags: "UF")
        #expect(plain.evaluate().active.first?.label("response_flag") == "URX")
    }

    @Test("an alert carries the trend and when the cluster was first seen failing, and follows them")
    func trendAnnotations() throws {
        let world = try World(rule(minCount: 10), windows: [60, 300], diagnose: Diagnoser.diagnose)
        let started = world.now
        world.write(12)
        var alert = try #require(world.evaluate().active.first)
        #expect(alert.diagnosis?.trend == .rising)
        #expect(alert.diagnosis?.firstSeenFailing == started)
        #expect(alert.annotation("trend") == "rising")
        #expect(alert.annotation("first_seen_failing") == "1970-01-12T13:46:40Z")
        #expect(alert.annotation("likely_cause") != nil)
        // The same 12 a minute for four minutes: as many in the last minute as in each before.
        for _ in 0..<4 {
            world.now += 60
            world.counts.now = world.now
            world.write(12)
            alert = try #require(world.evaluate().active.first)
        }
        #expect(alert.annotation("trend") == "steady")
        #expect(alert.annotation("first_seen_failing") == "1970-01-12T13:46:40Z")
    }

    @Test("figures in annotations have a fixed number of decimals, rounded like printf's %.Nf")
    func fixedDecimals() {
        #expect(RuleEngine.format(80, digits: 1) == "80.0")
        #expect(RuleEngine.format(0.5, digits: 2) == "0.50")
        #expect(RuleEngine.format(0.125, digits: 2) == "0.12")  // an exact tie: to even
        #expect(RuleEngine.format(0.375, digits: 2) == "0.38")
        #expect(RuleEngine.format(2.675, digits: 2) == "2.67")  // 2.67499999... in binary
        #expect(RuleEngine.format(1234.5678, digits: 1) == "1234.6")
        #expect(RuleEngine.format(0.04, digits: 1) == "0.0")
        #expect(RuleEngine.format(-1.25, digits: 1) == "-1.2")
        #expect(RuleEngine.format(7, digits: 0) == "7")
        #expect(RuleEngine.format(.infinity, digits: 1) == "inf")
        #expect(RuleEngine.format(.nan, digits: 1) == "nan")
    }

    @Test("a cluster that disappears from the counts resolves like one whose condition went false")
    func expiredCluster() throws {
        let world = try World(rule(minCount: 5, resolveAfter: 30))
        world.write(5)
        world.evaluate()
        world.counts.now += 3600
        world.counts.expireClusters(idleSeconds: 1800)
        #expect(world.counts.clusters.count == 0)
        world.evaluate(after: 3600)
        let evaluation = world.evaluate(after: 30)
        #expect(evaluation.resolved.map(\.cluster) == [World.api])
    }

    @Test("alert counts per rule and state, zeros included")
    func alertCounts() throws {
        let world = try World(rule(minCount: 1, pendingFor: 60))
        world.write(1)
        world.evaluate()
        let counts = world.engine.alertCounts()
        #expect(
            counts.map { "\($0.rule) \($0.state.rawValue) \($0.count)" } == [
                "UpstreamConnectFailures pending 1", "UpstreamConnectFailures firing 0",
            ])
    }
}
