import FlagCounting

/// A cluster's diagnosis as the scan report prints it (the Diagnosis module, which makes it,
/// is downstream of this one).
public struct ScanDiagnosis: Sendable, Equatable {
    /// The flag's short name (`UF`).
    public var flag: String
    /// The cause's short label (`backend down`).
    public var cause: String
    /// One sentence with the evidence.
    public var likelyCause: String
    public var nextSteps: [String]
    /// `one host`, `all hosts` or `unknown`.
    public var scope: String
    /// The upstream hosts of the flag's lines, most lines first.
    public var hosts: [UpstreamHostCount]

    public init(
        flag: String, cause: String, likelyCause: String, nextSteps: [String], scope: String = "unknown",
        hosts: [UpstreamHostCount] = []
    ) {
        self.flag = flag
        self.cause = cause
        self.likelyCause = likelyCause
        self.nextSteps = nextSteps
        self.scope = scope
        self.hosts = hosts
    }
}

/// Renders ``FlagCounts`` for `flagwatch scan`: JSON, a table, or Prometheus text.
public struct ScanReport {
    public let counts: FlagCounts
    /// By cluster name: the clusters with a diagnosis.
    public let diagnoses: [String: ScanDiagnosis]

    /// - Parameter diagnose: the diagnosis of a cluster id, if it has one.
    public init(counts: FlagCounts, diagnose: (Int) -> ScanDiagnosis? = { _ in nil }) {
        self.counts = counts
        var diagnoses: [String: ScanDiagnosis] = [:]
        for id in 0..<counts.clusters.count {
            if let diagnosis = diagnose(id) { diagnoses[counts.clusters.names[id]] = diagnosis }
        }
        self.diagnoses = diagnoses
    }

    /// Clusters sorted by the most flags first, then by requests, then by name.
    public var clustersByFlagsDescending: [FlagCounts.ClusterCounts] {
        counts.allClusters.sorted {
            ($0.flaggedTotal, $0.requests, $1.name) > ($1.flaggedTotal, $1.requests, $0.name)
        }
    }

    /// Exactly one JSON object:
    /// `{"lines":N,"malformed":{"reason":N},"clusters":{"name":{"requests":N,"codes":{"2xx":N},"flags":{"UF":N}}}}`;
    /// a cluster with a diagnosis also has
    /// `"diagnosis":{"flag":"UF","cause":"backend down","likely_cause":"...","next_steps":["..."],`
    /// `"scope":"one host","hosts":[{"host":"10.8.3.14:8080","count":18}]}`.
    /// Clusters and counts are sorted and zero counts left out, so the output is stable and diffable.
    public func json() -> String {
        var out = "{\"lines\":\(counts.lines),\"malformed\":{"
        let malformed = counts.malformed.map { ($0.key.rawValue, $0.value) }.sorted { $0.0 < $1.0 }
        out += malformed.map { "\(jsonString($0.0)):\($0.1)" }.joined(separator: ",")
        out += "},\"clusters\":{"
        let clusters = counts.allClusters.sorted { $0.name < $1.name }
        out += clusters.map { cluster in
            var entry = "\(jsonString(cluster.name)):{\"requests\":\(cluster.requests),\"codes\":{"
            entry += cluster.codes.enumerated().filter { $0.element > 0 }
                .map { "\(jsonString(FlagCounts.codeClassNames[$0.offset])):\($0.element)" }.joined(separator: ",")
            entry += "},\"flags\":{"
            entry += cluster.flagsByName.sorted { $0.key < $1.key }
                .map { "\(jsonString($0.key)):\($0.value)" }.joined(separator: ",")
            entry += "}"
            if let diagnosis = diagnoses[cluster.name] {
                entry +=
                    ",\"diagnosis\":{\"flag\":\(jsonString(diagnosis.flag)),\"cause\":\(jsonString(diagnosis.cause)),"
                entry += "\"likely_cause\":\(jsonString(diagnosis.likelyCause)),\"next_steps\":["
                entry += diagnosis.nextSteps.map(jsonString).joined(separator: ",") + "],"
                entry += "\"scope\":\(jsonString(diagnosis.scope)),\"hosts\":["
                entry +=
                    diagnosis.hosts.map { "{\"host\":\(jsonString($0.host)),\"count\":\($0.count)}" }
                    .joined(separator: ",") + "]}"
            }
            return entry + "}"
        }.joined(separator: ",")
        return out + "}}"
    }

    /// The Prometheus text format (0.0.4): the response and line totals of the daemon's page,
    /// with its families and HELP texts (``MetricFamily``); `source` labels the line totals.
    public func prometheus(source: String) -> String {
        let labels = ClusterLabelCache()
        labels.refresh(counts)
        var lineTotals = SourceMetrics(name: source)
        lineTotals.lines = UInt64(counts.lines)
        for (defect, count) in counts.malformed { lineTotals.malformed[defect.rawValue] = UInt64(count) }
        var writer = MetricsWriter(format: .prometheus)
        writer.writeResponseTotals(counts, labels: labels)
        writer.writeLineTotals([lineTotals])
        writer.finish()
        return String(decoding: writer.bytes, as: UTF8.self)
    }

    /// A table for people: the most flagged clusters first, malformed lines at the bottom.
    public func table(recognizedFormats: [String] = []) -> String {
        let clusters = clustersByFlagsDescending
        var rows: [[String]] = [
            ["UPSTREAM CLUSTER", "REQUESTS", "0", "1xx", "2xx", "3xx", "4xx", "5xx", "FLAGS", "LIKELY CAUSE"]
        ]
        for cluster in clusters {
            let flags = cluster.flagsByName.sorted { ($0.value, $1.key) > ($1.value, $0.key) }
                .map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            let cause = diagnoses[cluster.name].map { "\($0.cause) (\($0.flag))" } ?? "-"
            // Names, flag texts and causes come from log lines: no control character reaches the terminal.
            rows.append(
                [UntrustedText.printable(cluster.name), String(cluster.requests)] + cluster.codes.map(String.init)
                    + [flags.isEmpty ? "-" : UntrustedText.printable(flags), UntrustedText.printable(cause)])
        }
        var out = TextTable.render(rows, rightAligned: Set(1...7))
        let malformedTotal = counts.malformedTotal
        out += "\nlines: \(counts.lines)  parsed: \(counts.lines - malformedTotal)  malformed: \(malformedTotal)"
        if !recognizedFormats.isEmpty { out += "  format: \(recognizedFormats.joined(separator: ", "))" }
        out += "\n"
        for (defect, count) in counts.malformed.sorted(by: { ($0.value, $1.key.rawValue) > ($1.value, $0.key.rawValue) }
        ) {
            out += "  malformed \(defect.rawValue): \(count)\n"
        }
        return out
    }
}

/// A JSON string literal (see ``UntrustedText/jsonLiteral(_:)``).
func jsonString(_ value: String) -> String {
    UntrustedText.jsonLiteral(value)
}

enum TextTable {
    static func render(_ rows: [[String]], rightAligned: Set<Int>) -> String {
        guard let columns = rows.map(\.count).max() else { return "" }
        var widths = [Int](repeating: 0, count: columns)
        for row in rows {
            for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) }
        }
        return rows.map { row in
            row.enumerated().map { index, cell in
                let padding = String(repeating: " ", count: widths[index] - cell.count)
                if index == row.count - 1 && !rightAligned.contains(index) { return cell }
                return rightAligned.contains(index) ? padding + cell : cell + padding
            }.joined(separator: "  ")
        }.joined(separator: "\n") + "\n"
    }
}
