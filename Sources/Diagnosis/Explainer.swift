import AccessLogParser
import FlagCounting
import LineFraming

/// A line's fields that say what failed, and the diagnosis of the line.
public struct LineExplanation: Sendable, Equatable {
    /// The format the line matched, e.g. `istio (1.9+)`.
    public var format: String
    public var responseCode: Int
    public var flags: [ResponseFlag]
    /// Codes in the flags field that Envoy's table lacks (custom flags), as written.
    public var unknownFlags: [String]
    /// The upstream cluster (`-` when the line has none, as scan counts it).
    public var upstreamCluster: String
    public var upstreamHost: String?
    public var responseCodeDetails: String?
    public var upstreamTransportFailureReason: String?
    /// The same diagnosis `scan` and the alerts give for the line's cluster; nil without flags.
    public var diagnosis: Diagnosis?
    /// What each of the line's flags means.
    public var explanations: [FlagExplanation]
}

/// Why a line could not be explained.
public enum LineExplanationError: Error, Equatable {
    /// The line is not an access-log line of the format (the reason scan would count it under).
    case malformed(String)
    /// The format string given does not compile.
    case badFormat(String)
}

/// Builds what `flagwatch explain` prints: the meaning of flags, or the diagnosis of one line.
public enum Explainer {
    /// The flags of a comma list of short or long names, any case (`uf,URX`,
    /// `UpstreamConnectionFailure`); the first name the table lacks otherwise.
    public static func flags(named list: String) -> Result<[ResponseFlag], UnknownFlag> {
        var flags: [ResponseFlag] = []
        for part in list.split(separator: ",", omittingEmptySubsequences: false) {
            let name = String(part.filter { $0 != " " })
            guard let flag = flag(named: name) else { return .failure(UnknownFlag(name: name)) }
            if !flags.contains(flag) { flags.append(flag) }
        }
        return .success(flags)
    }

    /// The flag whose short or long name is `name`, ignoring case.
    public static func flag(named name: String) -> ResponseFlag? {
        let folded = name.lowercased()
        return ResponseFlag.allCases.first { $0.shortName.lowercased() == folded || $0.longName.lowercased() == folded }
    }

    /// A name that is no flag, with the flags it may have meant.
    public struct UnknownFlag: Error, Equatable {
        public var name: String

        /// Flags whose name is within a typo or two of `name`, or whose long name contains it;
        /// the closest first, at most five.
        public var suggestions: [ResponseFlag] {
            let folded = name.lowercased()
            guard !folded.isEmpty else { return [] }
            var scored: [(flag: ResponseFlag, distance: Int)] = []
            for flag in ResponseFlag.allCases {
                let short = flag.shortName.lowercased()
                let long = flag.longName.lowercased()
                let distance = min(editDistance(folded, short), editDistance(folded, long))
                let allowed = folded.count <= 4 ? 1 : max(2, folded.count / 4)
                if distance <= allowed {
                    scored.append((flag, distance))
                } else if folded.count >= 4 && long.contains(folded) {
                    scored.append((flag, allowed + 1))
                }
            }
            return scored.sorted { ($0.distance, $0.flag) < ($1.distance, $1.flag) }.prefix(5).map(\.flag)
        }
    }

    /// The explanation of one access-log line: parsed as `scan` parses it (container wrapper
    /// stripped, the format recognised), counted into fresh counts and diagnosed by
    /// ``Diagnoser`` exactly as `scan` diagnoses a cluster, so the cause text is the same.
    public static func explain(
        line: String, format: LogFormat, containerFormat: ContainerFormat = .auto
    ) throws(LineExplanationError) -> LineExplanation {
        var parser: AccessLogParser
        do {
            parser = try AccessLogParser(format: format, fields: .all)
        } catch {
            throw .badFormat(error.description)
        }
        var bytes = Array(line.utf8)
        // A pasted line may keep its newline.
        while let last = bytes.last, last == 0x0A || last == 0x0D { bytes.removeLast() }
        let unwrapper = ContainerUnwrapper(format: containerFormat, maxLineLength: max(bytes.count, 1))
        let result = bytes.withUnsafeBytes { raw -> Result<LineExplanation, LineExplanationError> in
            let content: UnsafeRawBufferPointer
            switch unwrapper.unwrap(raw) {
            case .line(let unwrapped): content = unwrapped
            case .partial: return .failure(.malformed("partial container line (CRI P): the rest is on the next line"))
            case .malformed(let defect): return .failure(.malformed(defect.rawValue))
            }
            var record = AccessRecord()
            if let reason = parser.parse(content, into: &record) { return .failure(.malformed(reason.rawValue)) }
            let counts = FlagCounts()
            counts.count(record)
            var unknown: [String] = []
            record.forEachUnknownFlag { unknown.append(String(decoding: $0, as: UTF8.self)) }
            let flags = record.responseFlags.flags
            return .success(
                LineExplanation(
                    format: parser.recognizedFormat, responseCode: record.responseCode, flags: flags,
                    unknownFlags: unknown, upstreamCluster: counts.clusters.count > 0 ? counts.clusters.names[0] : "-",
                    upstreamHost: text(record.upstreamHost), responseCodeDetails: text(record.responseCodeDetails),
                    upstreamTransportFailureReason: text(record.upstreamTransportFailureReason),
                    diagnosis: flags.isEmpty ? nil : Diagnoser.diagnose(counts, cluster: 0).map(oneLine),
                    explanations: flags.map(FlagExplanation.init)))
        }
        return try result.get()
    }

    /// One line (or one reply body) cannot tell one bad host from all of them.
    static func oneLine(_ diagnosis: Diagnosis) -> Diagnosis {
        var diagnosis = diagnosis
        diagnosis.scope = .unknown
        return diagnosis
    }

    /// A field as text, JSON escapes decoded; nil when absent.
    private static func text(_ field: FieldView) -> String? {
        guard !field.isAbsent else { return nil }
        guard field.hasJSONEscapes else { return field.rawString }
        return String(decoding: JSONEscapes.decode(field.bytes), as: UTF8.self)
    }
}

/// Levenshtein distance over the names' bytes (ASCII, a few dozen at most).
func editDistance(_ left: String, _ right: String) -> Int {
    let left = Array(left.utf8)
    let right = Array(right.utf8)
    guard !left.isEmpty else { return right.count }
    guard !right.isEmpty else { return left.count }
    var previous = Array(0...right.count)
    for (row, leftByte) in left.enumerated() {
        var current = [row + 1] + Array(repeating: 0, count: right.count)
        for (column, rightByte) in right.enumerated() {
            let substitution = previous[column] + (leftByte == rightByte ? 0 : 1)
            current[column + 1] = min(substitution, previous[column + 1] + 1, current[column] + 1)
        }
        previous = current
    }
    return previous[right.count]
}
