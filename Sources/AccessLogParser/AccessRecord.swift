/// A view of some bytes of the buffer that was parsed: no copy is made.
///
/// Valid only while the buffer it points into is unchanged (until the caller refills its read
/// buffer, or until the parser's next call when the bytes had to be reassembled).
public struct FieldView {
    /// The field's bytes. Empty when the field is absent (`-` in text, `null` in JSON).
    public var bytes: UnsafeRawBufferPointer
    /// True when `bytes` is a JSON string body that still holds backslash escapes.
    public var hasJSONEscapes: Bool

    @inlinable
    public init(_ bytes: UnsafeRawBufferPointer, hasJSONEscapes: Bool = false) {
        self.bytes = bytes
        self.hasJSONEscapes = hasJSONEscapes
    }

    public static var absent: FieldView { FieldView(UnsafeRawBufferPointer(start: nil, count: 0)) }

    @inlinable public var isAbsent: Bool { bytes.isEmpty }

    /// The bytes as written, as a String (allocates; for output and tests, not the hot path).
    /// JSON escapes are not decoded here: the parser depends on nothing, and LineFraming's
    /// `JSONEscapes` decodes them for the rare consumer that meets one.
    public var rawString: String { String(decoding: bytes, as: UTF8.self) }
}

/// One access-log line, parsed. Every text field is a ``FieldView`` into the parsed buffer.
public struct AccessRecord {
    /// `%START_TIME%` as written (e.g. `2026-11-22T02:34:27.532Z`).
    public var startTime: FieldView = .absent
    /// `%RESPONSE_CODE%`; 0 when the request got no response (Envoy prints 0).
    public var responseCode: Int = 0
    /// The known flags of `%RESPONSE_FLAGS%` / `%RESPONSE_FLAGS_LONG%`.
    public var responseFlags: ResponseFlagSet = []
    /// How many codes in the flags field are not in Envoy's core table (custom flags).
    public var unknownFlagCount: Int = 0
    /// The flags field as written, so callers can name the unknown codes. For nginx and
    /// HAProxy lines, which have no flags field, the field the flags were read from (the
    /// error-log message, the termination state, the upstream fields).
    public var responseFlagsText: FieldView = .absent
    public var responseCodeDetails: FieldView = .absent
    public var upstreamTransportFailureReason: FieldView = .absent
    /// The upstream cluster, with Istio 1.23+'s trailing `;` removed. Absent for `-`/null.
    public var upstreamCluster: FieldView = .absent
    public var upstreamHost: FieldView = .absent
    public var authority: FieldView = .absent
    /// `%DURATION%` in milliseconds; nil when absent.
    public var durationMilliseconds: Int? = nil
    /// `%UPSTREAM_REQUEST_ATTEMPT_COUNT%`: tries made upstream (1 + retries); nil when absent.
    public var upstreamRequestAttempts: Int? = nil
    public var routeName: FieldView = .absent
    public var requestMethod: FieldView = .absent

    public init() {}

    /// The code class used for counting: 0 for "no response", else 1...5.
    @inlinable public var codeClass: Int {
        let hundreds = responseCode / 100
        return hundreds >= 1 && hundreds <= 5 ? hundreds : 0
    }

    /// Calls `body` with each code in the flags field that is not a known Envoy flag.
    public func forEachUnknownFlag(_ body: (UnsafeRawBufferPointer) -> Void) {
        guard unknownFlagCount > 0 else { return }
        ResponseFlagsField.forEachCode(in: responseFlagsText.bytes) { code in
            if ResponseFlag.lookUp(code) == nil { body(code) }
        }
    }
}

extension AccessRecord {
    /// Clears the fields not in `fields`, for decoders that read a whole message anyway (the
    /// received entries): their records then hold what a text plan asked for the same fields
    /// would hold, so counting treats a received entry exactly as a line.
    mutating func keepOnly(_ fields: RecordFieldSet) {
        if !fields.contains(.responseCode) { responseCode = 0 }
        if !fields.contains(.upstreamCluster) { upstreamCluster = .absent }
        if !fields.contains(.upstreamHost) { upstreamHost = .absent }
        if !fields.contains(.routeName) { routeName = .absent }
        if !fields.contains(.startTime) { startTime = .absent }
        if !fields.contains(.authority) { authority = .absent }
        if !fields.contains(.duration) { durationMilliseconds = nil }
        if !fields.contains(.upstreamRequestAttemptCount) { upstreamRequestAttempts = nil }
        if !fields.contains(.requestMethod) { requestMethod = .absent }
        let detailsWanted = !fields.contains(.failureDetailsOnlyWhenFlagged) || !responseFlags.isEmpty
        if !detailsWanted { durationMilliseconds = nil }
        if !detailsWanted { upstreamRequestAttempts = nil }
        if !detailsWanted || !fields.contains(.responseCodeDetails) { responseCodeDetails = .absent }
        if !detailsWanted || !fields.contains(.upstreamTransportFailureReason) {
            upstreamTransportFailureReason = .absent
        }
    }
}

/// Which ``AccessRecord`` fields a parser decodes. A text plan reads each line only as far as
/// these fields require, so asking for fewer makes parsing faster; the others stay absent.
public struct RecordFieldSet: OptionSet, Sendable {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    init(_ field: RecordField) { rawValue = 1 << UInt16(field.rawValue) }

    public static let startTime = RecordFieldSet(.startTime)
    public static let responseCode = RecordFieldSet(.responseCode)
    /// The flags are always decoded: every record needs them.
    public static let responseFlags = RecordFieldSet(.responseFlags)
    public static let responseCodeDetails = RecordFieldSet(.responseCodeDetails)
    public static let upstreamTransportFailureReason = RecordFieldSet(.transportFailureReason)
    public static let upstreamCluster = RecordFieldSet(.upstreamCluster)
    public static let upstreamHost = RecordFieldSet(.upstreamHost)
    public static let authority = RecordFieldSet(.authority)
    public static let duration = RecordFieldSet(.duration)
    public static let routeName = RecordFieldSet(.routeName)
    public static let requestMethod = RecordFieldSet(.requestMethod)
    public static let upstreamRequestAttemptCount = RecordFieldSet(.upstreamRequestAttemptCount)

    public static let all = RecordFieldSet(rawValue: (1 << 12) - 1)
    /// What counting codes and flags per cluster needs.
    public static let counting: RecordFieldSet = [.responseCode, .responseFlags, .upstreamCluster]

    /// Not a field but an option: decode ``responseCodeDetails`` and
    /// ``upstreamTransportFailureReason`` only on lines with a flag (the others leave them
    /// absent). Most lines have none, and a text plan then stops reading right after the flags,
    /// as it does for ``counting``.
    public static let failureDetailsOnlyWhenFlagged = RecordFieldSet(rawValue: 1 << 15)
    /// Counting plus the failure details of flagged lines (details, transport failure reason,
    /// duration, attempts, upstream host): what the per-cluster breakdowns (and so the
    /// diagnosis) need. Text plans read those fields only on flagged lines; JSON and the
    /// received entries read them on every line.
    public static let countingWithFailureDetails: RecordFieldSet = counting.union([
        .responseCodeDetails, .upstreamTransportFailureReason, .duration, .upstreamRequestAttemptCount,
        .upstreamHost, .failureDetailsOnlyWhenFlagged,
    ])
}

/// Why a line was not turned into a record. The raw values are the `reason` label values.
public enum MalformedReason: String, CaseIterable, Sendable {
    /// An empty line.
    case emptyLine = "empty_line"
    /// The line does not look like an access-log line at all (e.g. Envoy's own log output
    /// mixed into a container's stdout).
    case notAccessLog = "not_access_log"
    /// The line starts like the format but a literal or a field does not match it.
    case formatMismatch = "format_mismatch"
    /// The record has no response-flags field (JSON key missing).
    case noFlagsField = "no_flags_field"
    /// The flags field holds something that is not a comma-joined list of flag codes.
    case badFlags = "bad_flags"
    /// The response code is not a number in 0...999.
    case badResponseCode = "bad_response_code"
    /// A line that starts with `{` but is not one valid JSON object.
    case badJSON = "bad_json"
    /// A received entry (gRPC access-log service, OTLP) whose protobuf bytes are not valid.
    case badProtobuf = "bad_protobuf"
}

/// The outcome of parsing one line.
public enum ParseResult {
    case record(AccessRecord)
    case malformed(MalformedReason)
}
