/// Which text format a scrape gets.
public enum ExpositionFormat: Sendable {
    /// Prometheus text format 0.0.4.
    case prometheus
    /// OpenMetrics 1.0.0 (counter families named without `_total`, `# EOF` at the end).
    case openMetrics

    public var contentType: String {
        switch self {
        case .prometheus: "text/plain; version=0.0.4; charset=utf-8"
        case .openMetrics: "application/openmetrics-text; version=1.0.0; charset=utf-8"
        }
    }

    /// The format a scraper asks for in its `Accept` header (OpenMetrics only if it says so).
    public init(accept: String?) {
        self = (accept ?? "").contains("application/openmetrics-text") ? .openMetrics : .prometheus
    }
}

/// Writes metric families into one byte buffer: no per-sample objects, so a scrape of tens of
/// thousands of series takes a few milliseconds.
public struct MetricsWriter {
    public private(set) var bytes: [UInt8] = []
    public let format: ExpositionFormat

    public init(format: ExpositionFormat, reservingCapacity capacity: Int = 64 * 1024) {
        self.format = format
        bytes.reserveCapacity(capacity)
    }

    public enum Kind: String { case counter, gauge, info }

    /// Starts a family. `name` is the sample name (with `_total` for counters).
    public mutating func family(_ name: String, _ kind: Kind, help: String) {
        let familyName: String
        var typeName = kind.rawValue
        switch format {
        case .openMetrics:
            familyName = kind == .counter && name.hasSuffix("_total") ? String(name.dropLast(6)) : name
        case .prometheus:
            familyName = name
            if kind == .info { typeName = "gauge" }
        }
        append("# HELP \(familyName) ")
        appendEscapedHelp(help)
        append("\n# TYPE \(familyName) \(typeName)\n")
    }

    /// One sample; `labels` are name/value pairs, values escaped here.
    public mutating func sample(_ name: String, _ labels: KeyValuePairs<String, String> = [:], _ value: Double) {
        append(name)
        appendLabels(labels.map { ($0.key, $0.value) })
        bytes.append(0x20)
        appendValue(value)
        bytes.append(0x0A)
    }

    /// One sample with a pre-escaped label block (`{a="b"}`), for labels repeated across
    /// samples (a cluster's name).
    public mutating func sample(_ name: String, escapedLabels: String, extra: [(String, String)] = [], _ value: UInt64) {
        append(name)
        if extra.isEmpty {
            append(escapedLabels)
        } else {
            var block = escapedLabels
            if block.isEmpty { block = "{" } else { block.removeLast(); block += "," }
            for (index, (key, labelValue)) in extra.enumerated() {
                if index > 0 { block += "," }
                block += key + "=\"" + Self.escapeLabelValue(labelValue) + "\""
            }
            append(block + "}")
        }
        bytes.append(0x20)
        append(String(value))
        bytes.append(0x0A)
    }

    public mutating func finish() {
        if format == .openMetrics { append("# EOF\n") }
    }

    /// `{name="value",...}` with values escaped.
    public static func labelBlock(_ labels: [(String, String)]) -> String {
        guard !labels.isEmpty else { return "" }
        return "{" + labels.map { $0.0 + "=\"" + escapeLabelValue($0.1) + "\"" }.joined(separator: ",") + "}"
    }

    /// Backslash, double quote and newline escaped, as both formats require.
    public static func escapeLabelValue(_ value: String) -> String {
        guard value.utf8.contains(where: { $0 == 0x5C || $0 == 0x22 || $0 == 0x0A }) else { return value }
        var escaped = ""
        for character in value {
            switch character {
            case "\\": escaped += "\\\\"
            case "\"": escaped += "\\\""
            case "\n": escaped += "\\n"
            default: escaped.append(character)
            }
        }
        return escaped
    }

    private mutating func appendLabels(_ labels: [(String, String)]) {
        guard !labels.isEmpty else { return }
        append(Self.labelBlock(labels))
    }

    private mutating func appendEscapedHelp(_ help: String) {
        for character in help {
            switch character {
            case "\\": append("\\\\")
            case "\n": append("\\n")
            default: append(String(character))
            }
        }
    }

    private mutating func appendValue(_ value: Double) {
        if value.isNaN {
            append("NaN")
        } else if value.isInfinite {
            append(value > 0 ? "+Inf" : "-Inf")
        } else if value == value.rounded(), abs(value) < 1e15 {
            append(String(Int64(value)))
        } else {
            append(String(value))
        }
    }

    @inline(__always)
    private mutating func append(_ text: String) {
        var text = text
        text.withUTF8 { bytes.append(contentsOf: $0) }
    }
}
