/// The format of an access-log stream, as the user names it.
public enum LogFormat: Sendable, Equatable {
    /// Recognise the preset (JSON, an Istio text variant, Envoy's default, nginx, HAProxy) from
    /// the lines.
    case auto
    case envoy
    /// Istio's default text format, any version.
    case istio
    case json(JSONKeyMap)
    /// A user's Envoy format string.
    case custom(String)
    /// nginx's error log: its upstream failures as Envoy flags (docs/formats.md §9.1).
    case nginxError
    /// nginx's access log: `combined`, and ingress-nginx's `upstreaminfo` (§9.2).
    case nginx
    /// HAProxy's `option httplog` and `option tcplog` lines (§9.3).
    case haproxy

    /// Parses a `--format` / `format:` value: `auto`, `envoy`, `istio`, `json`, `nginx-error`,
    /// `nginx`, `haproxy`, or a format string.
    public init(argument: String, jsonKeys: JSONKeyMap = JSONKeyMap()) {
        switch argument {
        case "auto": self = .auto
        case "envoy": self = .envoy
        case "istio": self = .istio
        case "json": self = .json(jsonKeys)
        case "nginx-error": self = .nginxError
        case "nginx": self = .nginx
        case "haproxy": self = .haproxy
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
    /// Owns the plans and parsers that decode the fields asked for.
    private let candidates: [Candidate]
    /// The same, unretained, for the per-line calls: copying these touches no reference count.
    private let runners: [Runner]
    /// The same formats compiled to decode every field, used to choose among the candidates
    /// (on the first line, and when the chosen one stops matching).
    private let choosingCandidates: [Candidate]
    private let choosers: [Runner]
    /// The candidate chosen; its fast runner parses every line it matches.
    private var current = 0
    private var hasChosen = false

    enum Runner {
        case text(Unmanaged<TextFormatPlan>)
        case json(Unmanaged<JSONRecordParser>)
        case edge(EdgeFormat)
    }

    enum Candidate {
        case text(TextFormatPlan)
        case json(JSONRecordParser)
        case edge(EdgeFormat)

        var name: String {
            switch self {
            case .text(let plan): plan.name
            case .json: "json"
            case .edge(let format): format.rawValue
            }
        }
    }

    /// The formats of other proxies, read by hand-written parsers rather than plans: they hold
    /// no state, so a candidate is just the name of one.
    enum EdgeFormat: String {
        case nginxError = "nginx-error"
        case nginx = "nginx"
        case haproxy = "haproxy"
    }

    /// - Parameter fields: the record fields to decode (the rest stay absent); fewer is faster.
    public init(format: LogFormat, fields: RecordFieldSet = .all) throws(FormatStringError) {
        let fields = fields.union(.responseFlags)
        candidates = try Self.candidates(for: format, fields: fields)
        runners = candidates.map(Self.runner)
        // Plans that decode fewer fields stop reading before the place where variants differ
        // (Istio 1.8 and 1.9+ differ only after the flags), so a full plan picks the variant.
        if candidates.count > 1 && fields != .all {
            choosingCandidates = try Self.candidates(for: format, fields: .all)
        } else {
            choosingCandidates = candidates
        }
        choosers = choosingCandidates.map(Self.runner)
    }

    private static func candidates(for format: LogFormat, fields: RecordFieldSet) throws(FormatStringError)
        -> [Candidate]
    {
        switch format {
        case .custom(let string):
            return [.text(try TextFormatPlan(formatString: string, fields: fields))]
        case .envoy:
            return [.text(FormatPreset.compile(FormatPreset.envoyDefault, name: "envoy", fields: fields))]
        case .istio:
            return FormatPreset.istioVariants.map {
                .text(FormatPreset.compile($0.format, name: $0.name, fields: fields))
            }
        case .json(let keys):
            return [.json(JSONRecordParser(keys: keys, fields: fields))]
        case .nginxError:
            return [.edge(.nginxError)]
        case .nginx:
            return [.edge(.nginx)]
        case .haproxy:
            return [.edge(.haproxy)]
        case .auto:
            // The other proxies' formats last: their lines start unlike Envoy's (a date, an
            // address), so an Envoy stream never reaches them once its plan is chosen.
            return [.json(JSONRecordParser(fields: fields))]
                + FormatPreset.istioVariants.map {
                    .text(FormatPreset.compile($0.format, name: $0.name, fields: fields))
                }
                + [.text(FormatPreset.compile(FormatPreset.envoyDefault, name: "envoy", fields: fields))]
                + [.edge(.nginxError), .edge(.haproxy), .edge(.nginx)]
        }
    }

    private static func runner(_ candidate: Candidate) -> Runner {
        switch candidate {
        case .text(let plan): .text(Unmanaged.passUnretained(plan))
        case .json(let parser): .json(Unmanaged.passUnretained(parser))
        case .edge(let format): .edge(format)
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
        if hasChosen || runners.count == 1 {
            guard let reason = Self.run(runners[current], line, &record) else { return nil }
            if runners.count == 1 { return reason }
        }
        // Choose (again): the full plans, the last choice first; JSON only for lines that start
        // like it.
        let looksLikeJSON = line[0] == UInt8(ascii: "{")
        var bestReason: MalformedReason?
        for step in choosers.indices {
            let index = (current + step) % choosers.count
            if case .json = choosers[index], !looksLikeJSON { continue }
            record = AccessRecord()
            guard let reason = Self.run(choosers[index], line, &record) else {
                current = index
                hasChosen = true
                // Re-read with the chosen fast plan so the record holds just the fields asked
                // for; its checks are a subset of the full plan's, so it accepts the line too.
                record = AccessRecord()
                return Self.run(runners[index], line, &record)
            }
            if case .json = choosers[index] {
                // A JSON-looking line that JSON rejects: say why in JSON terms.
                return reason
            }
            if bestReason == nil || bestReason == .notAccessLog { bestReason = reason }
        }
        return bestReason ?? .notAccessLog
    }

    /// Parses one line, without its newline. The record's fields point into `line`.
    public mutating func parse(_ line: UnsafeRawBufferPointer) -> ParseResult {
        var record = AccessRecord()
        if let reason = parse(line, into: &record) { return .malformed(reason) }
        return .record(record)
    }

    @inline(__always)
    private static func run(_ runner: Runner, _ line: UnsafeRawBufferPointer, _ record: inout AccessRecord)
        -> MalformedReason?
    {
        // `candidates` keeps the plans alive for the parser's lifetime.
        switch runner {
        case .text(let plan): plan._withUnsafeGuaranteedRef { $0.parse(line, into: &record) }
        case .json(let parser): parser._withUnsafeGuaranteedRef { $0.parse(line, into: &record) }
        case .edge(.nginxError): NginxErrorLineParser.parse(line, into: &record)
        case .edge(.nginx): NginxAccessLineParser.parse(line, into: &record)
        case .edge(.haproxy): HAProxyLineParser.parse(line, into: &record)
        }
    }
}
