import AccessLogParser
import FlagCounting
import Prometheus

/// The counts in the Prometheus text format, with the metric names the daemon serves.
public enum PrometheusText {
    static var responses: MetricNameDescriptor { descriptor("responses", "total", "Responses per upstream cluster and code class (0 = no response).") }
    static var responseFlags: MetricNameDescriptor { descriptor(
        "response_flags", "total", "Responses per upstream cluster carrying each Envoy response flag (short name).") }
    static var lines: MetricNameDescriptor { descriptor("lines", "total", "Complete log lines read, parsed or malformed.") }
    static var linesMalformed: MetricNameDescriptor { descriptor("lines_malformed", "total", "Log lines skipped as malformed, by reason.") }

    /// `flagwatch_<name>_<unit>`.
    static func descriptor(_ name: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "flagwatch", metricName: name, unitName: unit, helpText: help)
    }

    /// Renders `counts`; `source` labels the line counters (e.g. `scan`).
    public static func render(_ counts: FlagCounts, source: String) -> String {
        let registry = PrometheusCollectorRegistry()
        for cluster in counts.allClusters {
            // swift-prometheus escapes backslash, quote and LF on bytes; the other control
            // characters it would pass through raw (see UntrustedText).
            let name = UntrustedText.replacingControls(cluster.name, keeping: [0x0A])
            for (index, value) in cluster.codes.enumerated() where value > 0 {
                registry.makeCounter(
                    descriptor: responses,
                    labels: [("upstream_cluster", name), ("code_class", FlagCounts.codeClassNames[index])]
                ).increment(by: Int64(value))
            }
            for (flag, value) in cluster.flagsByName.sorted(by: { $0.key < $1.key }) {
                registry.makeCounter(
                    descriptor: responseFlags, labels: [("upstream_cluster", name), ("response_flag", UntrustedText.replacingControls(flag, keeping: [0x0A]))]
                ).increment(by: Int64(value))
            }
        }
        registry.makeCounter(descriptor: lines, labels: [("source", source)]).increment(by: Int64(counts.lines))
        for defect in LineDefect.allCases {
            registry.makeCounter(descriptor: linesMalformed, labels: [("source", source), ("reason", defect.rawValue)])
                .increment(by: Int64(counts.malformed[defect] ?? 0))
        }
        return registry.emitToString()
    }
}
