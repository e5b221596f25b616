/// The format of an access-log stream, as the user names it.
public enum LogFormat: Sendable, Equatable {
    /// Recognise the preset (JSON, an Istio text variant, Envoy's default) from the lines.
    case auto
    case envoy
    /// Istio's default text format, any version.
    case istio
    case json(JSONKeyMap)
    /// A user's Envoy format string.
    case custom(String)

    /// Parses a `--format` / `format:` value: `auto`, `envoy`, `istio`, `json`, or a format string.
    public init(argument: String, jsonKeys: JSONKeyMap = JSONKeyMap()) {
        switch argument {
        case "auto": self = .auto
        case "envoy": self = .envoy
        case "istio": self = .istio
        case "json": self = .json(jsonKeys)
        default: self = .custom(argument)
        }
    }
}

/// Parses access-log lines of one stream into ``AccessRecord``s.
///
/// One parser per stream: with `auto` and `istio` it remembers which variant the last line
/// matched and tries that one first, so recognising the format costs nothing after the first
/// line, and a stream that switches format (an Istio upgrade) is still followed.
public struct AccessLogParser {
    private let candidates: [Candidate]
    /// The candidate that matched last; tried first.
    private var current = 0

    enum Candidate {
        case text(TextFormatPlan)
        case json(JSONRecordParser)

        var name: String {
            switch self {
            case .text(let plan): plan.name
            case .json: "json"
            }
        }
    }

    public init(format: LogFormat) throws(FormatStringError) {
        switch format {
        case .custom(let string):
            candidates = [.text(try TextFormatPlan(formatString: string))]
        case .envoy:
            candidates = [.text(FormatPreset.compile(FormatPreset.envoyDefault, name: "envoy"))]
        case .istio:
            candidates = FormatPreset.istioVariants.map { .text(FormatPreset.compile($0.format, name: $0.name)) }
        case .json(let keys):
            candidates = [.json(JSONRecordParser(keys: keys))]
        case .auto:
            candidates =
                [.json(JSONRecordParser())]
                + FormatPreset.istioVariants.map { .text(FormatPreset.compile($0.format, name: $0.name)) }
                + [.text(FormatPreset.compile(FormatPreset.envoyDefault, name: "envoy"))]
        }
    }

    /// The name of the format the last parsed line matched, e.g. `istio (1.9+)` or `json`.
    public var recognizedFormat: String { candidates[current].name }

    /// Parses one line, without its newline, into `record` (which is reset first); nil on
    /// success. The record's fields point into `line`. Filling a caller-owned record instead of
    /// returning one keeps the ~300-byte record from being copied per line.
    public mutating func parse(_ line: UnsafeRawBufferPointer, into record: inout AccessRecord) -> MalformedReason? {
        if line.isEmpty { return .emptyLine }
        record = AccessRecord()
        guard let firstReason = Self.run(candidates[current], line, &record) else { return nil }
        guard candidates.count > 1 else { return firstReason }
        // The remembered variant failed: try the others, JSON only for lines that start like it.
        let looksLikeJSON = line[0] == UInt8(ascii: "{")
        var bestReason = firstReason
        for index in candidates.indices where index != current {
            if case .json = candidates[index], !looksLikeJSON { continue }
            record = AccessRecord()
            guard let reason = Self.run(candidates[index], line, &record) else {
                current = index
                return nil
            }
            if bestReason == .notAccessLog { bestReason = reason }
        }
        if looksLikeJSON, case .text = candidates[current] {
            // A JSON-looking line that no JSON candidate accepted: say why in JSON terms.
            for candidate in candidates {
                if case .json = candidate, let reason = Self.run(candidate, line, &record) { return reason }
            }
        }
        return bestReason
    }

    /// Parses one line, without its newline. The record's fields point into `line`.
    public mutating func parse(_ line: UnsafeRawBufferPointer) -> ParseResult {
        var record = AccessRecord()
        if let reason = parse(line, into: &record) { return .malformed(reason) }
        return .record(record)
    }

    @inline(__always)
    private static func run(_ candidate: Candidate, _ line: UnsafeRawBufferPointer, _ record: inout AccessRecord) -> MalformedReason? {
        // The candidates array keeps the plans alive; calling through a guaranteed reference
        // spares a retain/release pair per line.
        switch candidate {
        case .text(let plan):
            Unmanaged.passUnretained(plan)._withUnsafeGuaranteedRef { $0.parse(line, into: &record) }
        case .json(let parser):
            Unmanaged.passUnretained(parser)._withUnsafeGuaranteedRef { $0.parse(line, into: &record) }
        }
    }
}
