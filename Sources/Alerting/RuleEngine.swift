import AccessLogParser
import Diagnosis
import FlagCounting

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
#if canImport(Glibc)
    import Glibc  // exp
#elseif canImport(Darwin)
    import Darwin
#endif

/// Evaluates spike rules over the trailing-window counts, per upstream cluster, and keeps each
/// alert's state: inactive → pending (`for`) → firing → resolved once the condition has been
/// false for `resolve_after` (a condition that comes back before that keeps the alert firing:
/// no flapping).
///
/// Not thread-safe: the daemon's loop owns it, like the counts it reads.
public final class RuleEngine {
    /// Finds the likely cause of a cluster's flags (``Diagnoser/diagnose(_:cluster:among:)``;
    /// replaceable in tests).
    public typealias Diagnose = (FlagCounts, Int, [ResponseFlag]) -> Diagnosis?

    public let rules: [AlertRule]
    private let include: [ClusterPattern?]
    private let exclude: [ClusterPattern?]
    private let diagnose: Diagnose
    /// Per rule, cluster name → state. Entries exist while a cluster has a baseline worth
    /// keeping or an alert.
    private var series: [[String: Series]]
    /// Per rule, cluster name → whether the rule applies (regexes are slow; names repeat).
    private var matches: [[String: Bool]]
    private var startedAt: Double?
    private var lastEvaluation: Double?

    struct Series {
        /// Flagged lines per second, exponentially weighted; learned only while inactive.
        var baseline = 0.0
        var phase = Phase.inactive
        var alert: Alert?
    }

    enum Phase: Equatable {
        case inactive
        case pending(since: Double)
        /// `falseSince`: when the condition stopped holding (resolving unless it comes back).
        case firing(falseSince: Double?)
    }

    public init(rules: [AlertRule], diagnose: @escaping Diagnose) throws {
        self.rules = rules
        include = try rules.map { rule in try rule.include.map { pattern in try ClusterPattern(pattern) } }
        exclude = try rules.map { rule in try rule.exclude.map { pattern in try ClusterPattern(pattern) } }
        self.diagnose = diagnose
        series = Array(repeating: [:], count: rules.count)
        matches = Array(repeating: [:], count: rules.count)
    }

    /// The alerts now pending or firing.
    public var activeAlerts: [Alert] {
        series.flatMap { rule in rule.values.compactMap(\.alert) }.sorted {
            ($0.rule, $0.cluster) < ($1.rule, $1.cluster)
        }
    }

    /// Alerts per rule and state (pending, firing), for `flagwatch_alerts`.
    public func alertCounts() -> [(rule: String, state: AlertState, count: Int)] {
        var result: [(rule: String, state: AlertState, count: Int)] = []
        for (index, rule) in rules.enumerated() {
            var pending = 0
            var firing = 0
            for entry in series[index].values {
                switch entry.phase {
                case .pending: pending += 1
                case .firing: firing += 1
                case .inactive: break
                }
            }
            result.append((rule.name, .pending, pending))
            result.append((rule.name, .firing, firing))
        }
        return result
    }

    /// Evaluates every rule on every cluster at wall-clock time `now` (seconds since 1970); the
    /// counts' own clock (`counts.now`) must already be current.
    public func evaluate(_ counts: FlagCounts, now: Double) -> Evaluation {
        let started = startedAt ?? now
        startedAt = started
        let elapsed = lastEvaluation.map { max(0, now - $0) } ?? 0
        lastEvaluation = now
        var resolved: [Alert] = []
        var transitions: [AlertTransition] = []

        for (ruleIndex, rule) in rules.enumerated() {
            if matches[ruleIndex].count > 2 * counts.clusters.count + 64 { matches[ruleIndex].removeAll() }
            var seen = Set<String>()
            for cluster in 0..<counts.clusters.count {
                let name = counts.clusters.names[cluster]
                guard applies(ruleIndex, to: name) else { continue }
                let count = counts.windowCount(cluster: cluster, flagGroup: rule.flagGroup, window: rule.windowIndex)
                let entry = series[ruleIndex][name]
                if count == 0 && entry == nil { continue }
                seen.insert(name)
                var current = entry ?? Series()
                let total = counts.windowCount(cluster: cluster, flag: nil, window: rule.windowIndex)
                let rate = Double(count) / Double(rule.windowSeconds)
                let figures = AlertFigures(
                    count: count, total: total, rate: rate,
                    baseline: estimate(current.baseline, rule: rule, uptime: now - started))
                let holds = condition(rule, figures)
                step(
                    &current, rule: rule, holds: holds, now: now, figures: figures, resolved: &resolved,
                    transitions: &transitions
                ) {
                    self.makeAlert(rule, cluster: cluster, name: name, counts: counts, figures: figures, now: now)
                }
                if case .inactive = current.phase {
                    // Learn the usual rate only while quiet, so a spike is not learned as normal.
                    let weight = elapsed > 0 ? 1 - exp(-elapsed / rule.baselineSeconds) : 0
                    current.baseline += weight * (rate - current.baseline)
                }
                if current.alert != nil {
                    current.alert?.figures = figures
                    if let diagnosis = diagnose(counts, cluster, rule.flags) {
                        current.alert?.diagnosis = diagnosis
                    }
                    if let alert = current.alert { current.alert?.annotations = annotations(rule, alert: alert) }
                }
                series[ruleIndex][name] = forgettable(current) ? nil : current
            }
            // Clusters gone from the counts (expired) or without flags now: the condition is false.
            for (name, var current) in series[ruleIndex] where !seen.contains(name) {
                let figures = AlertFigures(
                    count: 0, total: 0, rate: 0, baseline: estimate(current.baseline, rule: rule, uptime: now - started)
                )
                step(
                    &current, rule: rule, holds: false, now: now, figures: figures, resolved: &resolved,
                    transitions: &transitions
                ) {
                    Alert(
                        rule: rule.name, cluster: name, state: .pending, labels: [], annotations: [], activeAt: now,
                        figures: figures)
                }
                if case .inactive = current.phase {
                    let weight = elapsed > 0 ? 1 - exp(-elapsed / rule.baselineSeconds) : 0
                    current.baseline -= weight * current.baseline
                }
                series[ruleIndex][name] = forgettable(current) ? nil : current
            }
        }
        return Evaluation(active: activeAlerts, resolved: resolved, transitions: transitions)
    }

    /// Takes over what `previous` learned and decided, after a configuration reload: for every
    /// rule kept by name with the same flags and window, the clusters' baselines and their
    /// pending or firing alerts (new thresholds apply from the next evaluation); the warm-up
    /// clock too. Returns the alerts of rules that are gone, resolved at `now`, so receivers
    /// hear that they ended.
    public func adoptState(from previous: RuleEngine, now: Double) -> [Alert] {
        startedAt = previous.startedAt
        lastEvaluation = previous.lastEvaluation
        var ended: [Alert] = []
        for (oldIndex, oldRule) in previous.rules.enumerated() {
            let kept = rules.firstIndex {
                $0.name == oldRule.name && $0.flags == oldRule.flags && $0.windowSeconds == oldRule.windowSeconds
            }
            if let kept {
                series[kept] = previous.series[oldIndex]
                continue
            }
            for entry in previous.series[oldIndex].values {
                guard var alert = entry.alert, case .firing = entry.phase else { continue }
                alert.state = .resolved
                alert.resolvedAt = now
                ended.append(alert)
            }
        }
        return ended
    }

    /// The baseline to compare with, or nil during the warm-up. The average starts at zero when
    /// the engine starts (a cluster without lines has a rate of zero), so it is divided by the
    /// weight all observations have so far (as Adam's bias correction does): after ten minutes
    /// of a 1 h horizon it is the rate of those ten minutes, not 15 % of it.
    func estimate(_ raw: Double, rule: AlertRule, uptime: Double) -> Double? {
        guard uptime >= rule.baselineWarmup else { return nil }
        let observedWeight = 1 - exp(-uptime / rule.baselineSeconds)
        return observedWeight > 0 ? raw / observedWeight : raw
    }

    /// A series' state, for tests.
    func series(rule: Int, cluster: String) -> Series? { series[rule][cluster] }

    /// The gate, then the ratio or the spike (only the gate when neither is configured).
    func condition(_ rule: AlertRule, _ figures: AlertFigures) -> Bool {
        guard figures.count >= UInt64(rule.minCount) else { return false }
        if rule.ratio == nil && rule.spikeFactor == nil { return true }
        if let ratio = rule.ratio, figures.total > 0, figures.ratio >= ratio { return true }
        if let factor = rule.spikeFactor, let baseline = figures.baseline, figures.rate >= factor * baseline {
            return true
        }
        return false
    }

    private func step(
        _ current: inout Series, rule: AlertRule, holds: Bool, now: Double, figures: AlertFigures,
        resolved: inout [Alert], transitions: inout [AlertTransition], newAlert: () -> Alert
    ) {
        switch current.phase {
        case .inactive:
            guard holds else { return }
            var alert = newAlert()
            alert.activeAt = now
            if rule.pendingFor <= 0 {
                alert.state = .firing
                alert.firedAt = now
                current.phase = .firing(falseSince: nil)
            } else {
                alert.state = .pending
                current.phase = .pending(since: now)
            }
            current.alert = alert
            transitions.append(AlertTransition(alert: alert, from: nil))
        case .pending(let since):
            if !holds {
                current.phase = .inactive
                current.alert = nil
            } else if now - since >= rule.pendingFor {
                current.phase = .firing(falseSince: nil)
                current.alert?.state = .firing
                current.alert?.firedAt = now
                current.alert?.figures = figures
                if let alert = current.alert { transitions.append(AlertTransition(alert: alert, from: .pending)) }
            }
        case .firing(let falseSince):
            if holds {
                current.phase = .firing(falseSince: nil)
                return
            }
            let since = falseSince ?? now
            if now - since >= rule.resolveAfter {
                current.phase = .inactive
                if var alert = current.alert {
                    alert.state = .resolved
                    alert.resolvedAt = now
                    resolved.append(alert)
                    transitions.append(AlertTransition(alert: alert, from: .firing))
                }
                current.alert = nil
            } else {
                current.phase = .firing(falseSince: since)
            }
        }
    }

    /// An inactive series whose baseline is negligible is dropped (memory follows the clusters
    /// that actually have flags).
    private func forgettable(_ current: Series) -> Bool {
        if case .inactive = current.phase { return current.baseline < 1e-6 }
        return false
    }

    private func applies(_ ruleIndex: Int, to name: String) -> Bool {
        if let known = matches[ruleIndex][name] { return known }
        var result = true
        // Linear in the name's length (ClusterPattern), and once per name: the verdict is kept.
        if let include = include[ruleIndex] { result = include.isFound(in: name) }
        if result, let exclude = exclude[ruleIndex] { result = !exclude.isFound(in: name) }
        matches[ruleIndex][name] = result
        return result
    }

    private func makeAlert(
        _ rule: AlertRule, cluster: Int, name: String, counts: FlagCounts, figures: AlertFigures, now: Double
    ) -> Alert {
        let diagnosis = diagnose(counts, cluster, rule.flags)
        // The dominant flag, fixed for the alert's life: it is part of the alert's identity.
        let flag = diagnosis?.flag ?? dominantFlag(rule, cluster: cluster, counts: counts)
        let istio = IstioClusterName(name)
        var labels: [(name: String, value: String)] = [
            ("alertname", rule.name), ("upstream_cluster", name), ("response_flag", flag.shortName),
        ]
        if !istio.service.isEmpty { labels.append(("service", istio.service)) }
        if !istio.namespace.isEmpty { labels.append(("namespace", istio.namespace)) }
        labels.append(("severity", rule.severity))
        var alert = Alert(
            rule: rule.name, cluster: name, state: .pending, labels: labels, annotations: [], activeAt: now,
            figures: figures, diagnosis: diagnosis)
        alert.annotations = annotations(rule, alert: alert)
        return alert
    }

    private func dominantFlag(_ rule: AlertRule, cluster: Int, counts: FlagCounts) -> ResponseFlag {
        var best = rule.flags[0]
        var bestCount: UInt64 = 0
        for flag in rule.flags {
            let count = counts.windowCount(cluster: cluster, flag: flag, window: rule.windowIndex)
            if count > bestCount {
                best = flag
                bestCount = count
            }
        }
        return best
    }

    func annotations(_ rule: AlertRule, alert: Alert) -> [(name: String, value: String)] {
        let figures = alert.figures
        let flag = alert.label("response_flag") ?? rule.flags[0].shortName
        let window = Self.duration(rule.windowSeconds)
        let flagList = rule.flags.map(\.shortName).joined(separator: ",")
        let percent = Self.format(figures.ratio * 100, digits: 1)
        var description =
            "\(figures.count) of \(figures.total) responses on \(alert.cluster) in the last \(window) had \(flagList) (\(percent) %, "
            + "\(Self.format(figures.rate * 60, digits: 2))/min)"
        if let baseline = figures.baseline {
            description += "; baseline \(Self.format(baseline * 60, digits: 2))/min"
        } else {
            description += "; baseline still being learned"
        }
        var conditions: [String] = ["min_count \(rule.minCount)"]
        if let ratio = rule.ratio { conditions.append("ratio >= \(Self.format(ratio * 100, digits: 1)) %") }
        if let factor = rule.spikeFactor { conditions.append("rate >= \(Self.format(factor, digits: 1))x baseline") }
        description += ". Rule: " + conditions.joined(separator: ", ") + "."
        var result: [(name: String, value: String)] = [
            ("summary", "\(flag) spike on \(alert.cluster): \(figures.count) in \(window) (\(percent) % of responses)"),
            ("description", description),
        ]
        if let diagnosis = alert.diagnosis {
            result.append(("likely_cause", diagnosis.likelyCause))
            result.append(("next_steps", diagnosis.nextSteps.joined(separator: "\n")))
            result.append(("scope", diagnosis.scope.rawValue))
        }
        if let runbook = rule.runbookURL { result.append(("runbook_url", runbook)) }
        return result
    }

    static func duration(_ seconds: Int) -> String {
        if seconds % 3600 == 0 { return "\(seconds / 3600)h" }
        if seconds % 60 == 0 { return "\(seconds / 60)m" }
        return "\(seconds)s"
    }

    /// `value` with exactly `digits` decimals, rounded half to even as printf's `%.Nf` does for
    /// exact ties (FoundationEssentials has no `String(format:)`).
    static func format(_ value: Double, digits: Int) -> String {
        guard value.isFinite else { return value.isNaN ? "nan" : (value < 0 ? "-inf" : "inf") }
        let digits = max(0, min(digits, 9))
        var scale: Int64 = 1
        for _ in 0..<digits { scale *= 10 }
        // magnitude × scale = product + residual exactly (fma); the rounding decision is made on
        // that exact value, as printf does on the exact binary value (2.675 → "2.67").
        let factor = Double(scale)
        let product = value.magnitude * factor
        guard product < 9.0e15 else { return "\(value)" }
        let residual = (-product).addingProduct(value.magnitude, factor)
        var floor = product.rounded(.down)
        if product == floor && residual < 0 { floor -= 1 }
        let aboveHalf = (product - floor) - 0.5  // exact: both below 2^53, one unit apart at most
        var units = Int64(floor)
        if aboveHalf > -residual || (aboveHalf == -residual && units % 2 == 1) { units += 1 }
        let sign = value < 0 && units != 0 ? "-" : ""
        guard digits > 0 else { return sign + String(units) }
        let fraction = String(units % scale)
        return sign + String(units / scale) + "." + String(repeating: "0", count: digits - fraction.count) + fraction
    }
}
