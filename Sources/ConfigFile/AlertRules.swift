import AccessLogParser
import Alerting

// The config's `alerting.rules[]` mapped onto the rule engine's own values: the engine knows
// nothing of YAML, and this module is downstream of it.

extension AlertRule {
    /// The config's rules, resolved against the counts the daemon keeps: rule `i` reads flag
    /// group `i` (``FlagwatchConfig/alertFlagGroups``) and its window among
    /// ``FlagwatchConfig/countedWindows``.
    public static func rules(_ config: FlagwatchConfig) -> [AlertRule] {
        guard let alerting = config.alerting else { return [] }
        let windows = config.countedWindows
        return alerting.rules.enumerated().map { index, rule in
            AlertRule(
                name: rule.name, flags: rule.flags, include: rule.include, exclude: rule.exclude,
                // countedWindows holds every rule's window (it is built from them).
                windowIndex: windows.firstIndex(of: rule.window) ?? 0, windowSeconds: Int(rule.window.seconds),
                flagGroup: index,
                minCount: rule.minCount, ratio: rule.ratio, spikeFactor: rule.spikeFactor,
                pendingFor: rule.pendingFor.seconds, resolveAfter: rule.resolveAfter.seconds, severity: rule.severity,
                baselineSeconds: (rule.baseline ?? alerting.baseline).seconds, runbookURL: rule.runbookURL)
        }
    }
}

extension FlagwatchConfig {
    /// The flag groups the counts keep for the rules: one per rule, in rule order.
    public var alertFlagGroups: [ResponseFlagSet] {
        (alerting?.rules ?? []).map { ResponseFlagSet($0.flags) }
    }
}
