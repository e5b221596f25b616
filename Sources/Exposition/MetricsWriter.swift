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
                String(
                    part.drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" })
                        .reversed())
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

    public enum Kind: String, Sendable { case counter, gauge, info }

    /// Starts a family: its HELP and TYPE lines.
    public mutating func family(_ family: MetricFamily) {
        let familyName: String
        var typeName = family.kind.rawValue
        switch format {
        case .openMetrics:
            familyName =
                family.kind == .counter && family.name.hasSuffix("_total")
                ? String(family.name.dropLast(6)) : family.name
        case .prometheus:
            familyName = family.name
            if family.kind == .info { typeName = "gauge" }
        }
        append("# HELP \(familyName) ")
        appendEscapedHelp(family.help)
        append("\n# TYPE \(familyName) \(typeName)\n")
    }

    /// The sample of a family without labels.
    public mutating func sample(_ family: MetricFamily, _ value: Double) {
        sample(family, [], value)
    }

    /// One sample; `labelValues` go with the family's label names in order, escaped here.
    public mutating func sample(_ family: MetricFamily, _ labelValues: [String], _ value: Double) {
        assert(labelValues.count == family.labelNames.count, "\(family.name): \(labelValues.count) label values")
        append(family.name)
        if !labelValues.isEmpty { append(Self.labelBlock(Array(zip(family.labelNames, labelValues)))) }
        bytes.append(0x20)
        appendValue(value)
        bytes.append(0x0A)
    }

    /// One sample with a pre-escaped block for the family's first labels (`{upstream_cluster="..."}`,
    /// escaped once per cluster, not per sample), then `extraValues` for its last labels.
    public mutating func sample(
        _ family: MetricFamily, escapedLabels: String, extraValues: [String] = [], _ value: UInt64
    ) {
        append(family.name)
        if extraValues.isEmpty {
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
            let firstExtra = family.labelNames.count - extraValues.count
            assert(firstExtra > 0, "\(family.name): \(extraValues.count) extra label values")
            for (index, labelValue) in extraValues.enumerated() {
                if index > 0 { bytes.append(0x2C) }
                append(family.labelNames[firstExtra + index])
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
