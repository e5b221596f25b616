/// Which JSON key holds which record field. Istio's keys by default; any may be renamed, for
/// custom `json_format`s such as `{"upstreamCluster": ..., "resStatusCode": ...}`.
public struct JSONKeyMap: Sendable, Equatable {
    public var startTime = "start_time"
    public var responseCode = "response_code"
    public var responseFlags = "response_flags"
    public var responseCodeDetails = "response_code_details"
    public var upstreamTransportFailureReason = "upstream_transport_failure_reason"
    public var upstreamCluster = "upstream_cluster"
    public var upstreamHost = "upstream_host"
    public var authority = "authority"
    public var duration = "duration"
    public var routeName = "route_name"
    public var requestMethod = "method"
    public var upstreamRequestAttemptCount = "upstream_request_attempt_count"

    public init() {}

    /// The names accepted by ``setKey(_:forField:)``.
    public static let fieldNames = [
        "start_time", "response_code", "response_flags", "response_code_details",
        "upstream_transport_failure_reason", "upstream_cluster", "upstream_host", "authority",
        "duration", "route_name", "method", "upstream_request_attempt_count",
    ]

    /// Renames the key for a field named as in ``fieldNames``; false for an unknown field.
    public mutating func setKey(_ key: String, forField field: String) -> Bool {
        switch field {
        case "start_time": startTime = key
        case "response_code": responseCode = key
        case "response_flags": responseFlags = key
        case "response_code_details": responseCodeDetails = key
        case "upstream_transport_failure_reason": upstreamTransportFailureReason = key
        case "upstream_cluster": upstreamCluster = key
        case "upstream_host": upstreamHost = key
        case "authority": authority = key
        case "duration": duration = key
        case "route_name": routeName = key
        case "method": requestMethod = key
        case "upstream_request_attempt_count": upstreamRequestAttemptCount = key
        default: return false
        }
        return true
    }

    var entries: [(key: String, field: RecordField)] {
        [
            (startTime, .startTime), (responseCode, .responseCode), (responseFlags, .responseFlags),
            (responseCodeDetails, .responseCodeDetails), (upstreamTransportFailureReason, .transportFailureReason),
            (upstreamCluster, .upstreamCluster), (upstreamHost, .upstreamHost), (authority, .authority),
            (duration, .duration), (routeName, .routeName), (requestMethod, .requestMethod),
            (upstreamRequestAttemptCount, .upstreamRequestAttemptCount),
        ]
    }
}

/// Parses one JSON object per line (Envoy `json_format`, Istio `accessLogEncoding: JSON`):
/// keys in any order, typed values or strings (Istio ≤1.7 wrote every value as a string),
/// `null` for unset, nested objects and arrays skipped. Strings are not unescaped: a value
/// with escapes is handed on as a view with `hasJSONEscapes` set.
public final class JSONRecordParser: @unchecked Sendable {
    // @unchecked: the key table is written only in init.

    public let keys: JSONKeyMap
    /// Keys with escapes in the log are compared as written, which is what Envoy writes for
    /// plain ASCII keys.
    private let keyTable: RecordKeyTable
    private static let maxDepth = 64

    /// - Parameter fields: only these keys are looked at; the flags key always is.
    public init(keys: JSONKeyMap = JSONKeyMap(), fields: RecordFieldSet = .all) {
        self.keys = keys
        keyTable = RecordKeyTable(keys: keys, fields: fields)
    }

    func parse(_ line: UnsafeRawBufferPointer, into record: inout AccessRecord) -> MalformedReason? {
        guard let base = line.baseAddress else { return .emptyLine }
        var scanner = JSONScanner(base: base, count: line.count)
        scanner.skipWhitespace()
        guard scanner.peek() == UInt8(ascii: "{") else { return .notAccessLog }
        scanner.index += 1
        var sawFlags = false
        scanner.skipWhitespace()
        if scanner.peek() == UInt8(ascii: "}") {
            scanner.index += 1
        } else {
            while true {
                scanner.skipWhitespace()
                guard scanner.peek() == UInt8(ascii: "\""), let key = scanner.scanString() else { return .badJSON }
                scanner.skipWhitespace()
                guard scanner.peek() == UInt8(ascii: ":") else { return .badJSON }
                scanner.index += 1
                scanner.skipWhitespace()
                let field = keyTable.field(forKey: key.bytes)
                guard let value = scanner.scanValue(maxDepth: Self.maxDepth) else { return .badJSON }
                if let field {
                    if field == .responseFlags {
                        // null flags mean "none" to Envoy's typed JSON just as "-" does.
                        sawFlags = true
                    }
                    if let reason = assign(field, value, into: &record) { return reason }
                }
                scanner.skipWhitespace()
                guard let separator = scanner.peek() else { return .badJSON }
                scanner.index += 1
                if separator == UInt8(ascii: "}") { break }
                guard separator == UInt8(ascii: ",") else { return .badJSON }
            }
        }
        scanner.skipWhitespace()
        guard scanner.index == scanner.count else { return .badJSON }
        return sawFlags ? nil : .noFlagsField
    }

    private func assign(_ field: RecordField, _ value: JSONScanner.Value, into record: inout AccessRecord)
        -> MalformedReason?
    {
        switch value {
        case .null:
            return nil  // absent: the record's defaults already say so
        case .string(let bytes, let hasEscapes):
            return RecordAssignment.assign(field, textValue: bytes, hasJSONEscapes: hasEscapes, into: &record)
        case .number(let bytes):
            switch field {
            case .responseCode, .duration, .upstreamRequestAttemptCount:
                // Typed JSON: an integer; accept "503.0"-style renderings by their integer part.
                let integer = JSONScanner.integerPart(bytes)
                return RecordAssignment.assign(field, textValue: integer, into: &record)
            default:
                return RecordAssignment.assign(field, textValue: bytes, into: &record)
            }
        case .other:
            // true/false/object/array where a scalar was expected: a wrong type for a field
            // flagwatch needs is a malformed record, for the others it is ignored.
            switch field {
            case .responseFlags: return .badFlags
            case .responseCode: return .badResponseCode
            default: return nil
            }
        }
    }
}

/// A forward-only JSON tokenizer over a byte buffer; never reads past `count`.
struct JSONScanner {
    let base: UnsafeRawPointer
    let count: Int
    var index = 0

    enum Value {
        case string(UnsafeRawBufferPointer, hasEscapes: Bool)
        case number(UnsafeRawBufferPointer)
        case null
        /// true, false, an object or an array.
        case other
    }

    init(base: UnsafeRawPointer, count: Int) {
        self.base = base
        self.count = count
    }

    @inline(__always)
    func peek() -> UInt8? {
        index < count ? base.load(fromByteOffset: index, as: UInt8.self) : nil
    }

    @inline(__always)
    mutating func skipWhitespace() {
        while index < count {
            let byte = base.load(fromByteOffset: index, as: UInt8.self)
            guard byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D else { return }
            index += 1
        }
    }

    /// At a `"`: the string's body (escapes left in place) and moves past the closing quote.
    @inline(__always)
    mutating func scanString() -> (bytes: UnsafeRawBufferPointer, hasEscapes: Bool)? {
        index += 1
        let start = index
        var hasEscapes = false
        while index < count {
            let byte = base.load(fromByteOffset: index, as: UInt8.self)
            if byte == UInt8(ascii: "\"") {
                let body = UnsafeRawBufferPointer(start: base + start, count: index - start)
                index += 1
                return (body, hasEscapes)
            }
            if byte == UInt8(ascii: "\\") {
                hasEscapes = true
                guard index + 1 < count else { return nil }
                let escaped = base.load(fromByteOffset: index + 1, as: UInt8.self)
                switch escaped {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                    UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    index += 2
                case UInt8(ascii: "u"):
                    guard index + 6 <= count else { return nil }
                    for offset in 2..<6 where !isHexDigit(base.load(fromByteOffset: index + offset, as: UInt8.self)) {
                        return nil
                    }
                    index += 6
                default:
                    return nil
                }
                continue
            }
            // Raw control characters are not allowed inside JSON strings.
            if byte < 0x20 { return nil }
            index += 1
        }
        return nil
    }

    /// Any value; nil when it is not valid JSON.
    mutating func scanValue(maxDepth: Int) -> Value? {
        guard let byte = peek() else { return nil }
        switch byte {
        case UInt8(ascii: "\""):
            guard let string = scanString() else { return nil }
            return .string(string.bytes, hasEscapes: string.hasEscapes)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return scanNumber().map { .number($0) }
        case UInt8(ascii: "n"):
            return scanKeyword("null") ? .null : nil
        case UInt8(ascii: "t"):
            return scanKeyword("true") ? .other : nil
        case UInt8(ascii: "f"):
            return scanKeyword("false") ? .other : nil
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            return skipContainer(maxDepth: maxDepth) ? .other : nil
        default:
            return nil
        }
    }

    private mutating func scanKeyword(_ keyword: StaticString) -> Bool {
        let length = keyword.utf8CodeUnitCount
        guard index + length <= count, memoryEqual(base + index, UnsafeRawPointer(keyword.utf8Start), length) else {
            return false
        }
        index += length
        return true
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    private mutating func scanNumber() -> UnsafeRawBufferPointer? {
        let start = index
        if peek() == UInt8(ascii: "-") { index += 1 }
        guard scanDigits() > 0 else { return nil }
        if peek() == UInt8(ascii: ".") {
            index += 1
            guard scanDigits() > 0 else { return nil }
        }
        if let byte = peek(), byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") {
            index += 1
            if let sign = peek(), sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") { index += 1 }
            guard scanDigits() > 0 else { return nil }
        }
        return UnsafeRawBufferPointer(start: base + start, count: index - start)
    }

    private mutating func scanDigits() -> Int {
        let start = index
        while let byte = peek(), byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") { index += 1 }
        return index - start
    }

    /// Skips a nested object or array without recursion; validates its structure.
    private mutating func skipContainer(maxDepth: Int) -> Bool {
        // One bit per open container: 1 = object, 0 = array.
        var kinds: UInt64 = 0
        var depth = 0
        // In an object, whether the next token must be a key.
        var expectKey = false
        // Whether the object was just opened: only then may `}` stand where a key is expected.
        var justOpened = false
        while true {
            skipWhitespace()
            guard let byte = peek() else { return false }
            if expectKey {
                if byte == UInt8(ascii: "}") {
                    // An empty object closes here; after a ',' a key must follow.
                    guard justOpened else { return false }
                    index += 1
                    kinds >>= 1
                    depth -= 1
                    expectKey = false
                } else {
                    guard byte == UInt8(ascii: "\""), scanString() != nil else { return false }
                    skipWhitespace()
                    guard peek() == UInt8(ascii: ":") else { return false }
                    index += 1
                    expectKey = false
                    continue
                }
            } else if byte == UInt8(ascii: "{") || byte == UInt8(ascii: "[") {
                depth += 1
                guard depth <= min(maxDepth, 64) else { return false }
                let isObject = byte == UInt8(ascii: "{")
                kinds = (kinds << 1) | (isObject ? 1 : 0)
                index += 1
                skipWhitespace()
                if isObject {
                    expectKey = true
                    justOpened = true
                    continue
                }
                guard peek() == UInt8(ascii: "]") else { continue }
                index += 1
                kinds >>= 1
                depth -= 1
            } else {
                // A scalar inside the container.
                switch byte {
                case UInt8(ascii: "\""): guard scanString() != nil else { return false }
                case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                    guard scanNumber() != nil else { return false }
                case UInt8(ascii: "n"): guard scanKeyword("null") else { return false }
                case UInt8(ascii: "t"): guard scanKeyword("true") else { return false }
                case UInt8(ascii: "f"): guard scanKeyword("false") else { return false }
                default: return false
                }
            }
            // After a complete value (or a container that just closed): `,` or a closer.
            while true {
                if depth == 0 { return true }
                skipWhitespace()
                guard let next = peek() else { return false }
                let inObject = kinds & 1 == 1
                if next == UInt8(ascii: ",") {
                    index += 1
                    expectKey = inObject
                    justOpened = false
                    break
                }
                guard next == (inObject ? UInt8(ascii: "}") : UInt8(ascii: "]")) else { return false }
                index += 1
                kinds >>= 1
                depth -= 1
            }
        }
    }

    static func integerPart(_ number: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        var end = 0
        while end < number.count, number[end] != UInt8(ascii: "."), number[end] != UInt8(ascii: "e"),
            number[end] != UInt8(ascii: "E")
        {
            end += 1
        }
        return UnsafeRawBufferPointer(rebasing: number[0..<end])
    }
}

@inline(__always)
func isHexDigit(_ byte: UInt8) -> Bool {
    (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f"))
        || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "F"))
}
