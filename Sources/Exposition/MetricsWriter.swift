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

    /// The format a scraper asks for in its `Accept` header: OpenMetrics if it lists it with a
    /// q-value above 0 and at least as high as any text/plain (or */*) it also lists.
    public init(accept: String?) {
        var openMetrics = 0.0
        var text = 0.0
        for item in (accept ?? "").split(separator: ",") {
            let parameters = item.split(separator: ";").map { part in
                String(part.drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
            }
            guard let type = parameters.first?.lowercased() else { continue }
            var quality = 1.0
            for parameter in parameters.dropFirst() where parameter.lowercased().hasPrefix("q=") {
                quality = Double(parameter.dropFirst(2)) ?? 0
            }
            switch type {
            case "application/openmetrics-text": openMetrics = max(openMetrics, quality)
            case "text/plain", "*/*", "text/*": text = max(text, quality)
            default: break
            }
        }
        self = openMetrics > 0 && openMetrics >= text ? .openMetrics : .prometheus
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
            var labels = escapedLabels
            labels.withUTF8 { utf8 in
                if utf8.isEmpty {
                    bytes.append(0x7B)
                } else {
                    bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[0..<(utf8.count - 1)]))
                    bytes.append(0x2C)
                }
            }
            for (index, (key, labelValue)) in extra.enumerated() {
                if index > 0 { bytes.append(0x2C) }
                append(key)
                bytes.append(0x3D)
                bytes.append(0x22)
                append(Self.escapeLabelValue(labelValue))
                bytes.append(0x22)
            }
            bytes.append(0x7D)
        }
        bytes.append(0x20)
        appendDecimal(value)
        bytes.append(0x0A)
    }

    @inline(__always)
    private mutating func appendDecimal(_ value: UInt64) {
        if value < 10 {
            bytes.append(0x30 + UInt8(value))
            return
        }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: enough for 20 digits
        var count = 0
        var rest = value
        withUnsafeMutableBytes(of: &digits) { buffer in
            while rest > 0 {
                buffer[23 - count] = 0x30 + UInt8(rest % 10)
                rest /= 10
                count += 1
            }
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[(24 - count)...]))
        }
    }

    public mutating func finish() {
        if format == .openMetrics { append("# EOF\n") }
    }

    /// `{name="value",...}` with values escaped.
    public static func labelBlock(_ labels: [(String, String)]) -> String {
        guard !labels.isEmpty else { return "" }
        return "{" + labels.map { $0.0 + "=\"" + escapeLabelValue($0.1) + "\"" }.joined(separator: ",") + "}"
    }

    /// A label value as both formats require it, escaped on bytes (see ``UntrustedText``).
    public static func escapeLabelValue(_ value: String) -> String {
        UntrustedText.labelValue(value)
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
