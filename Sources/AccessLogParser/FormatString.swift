/// The record fields flagwatch fills. A format operator maps to at most one of them; operators
/// that map to none are located (to find where the next field starts) but never decoded.
enum RecordField: UInt8, Sendable, CaseIterable {
    case startTime, responseCode, responseFlags, responseCodeDetails, transportFailureReason
    case upstreamCluster, upstreamHost, authority, duration, routeName, requestMethod
    case upstreamRequestAttemptCount
}

/// What bytes an operator's value can hold, which decides whether the literal after it (or
/// before it) reliably marks where it ends: it does when the literal holds a byte the value
/// never holds.
enum ValueClass: UInt8, Sendable {
    /// Never a space or a double quote: codes, flags, addresses, cluster names, numbers.
    case token
    /// No space, but maybe a quote: a client-chosen request path.
    case unspaced
    /// May hold spaces but no double quote: old-Envoy transport failure reasons.
    case spaced
    /// Anything, including `"`: header values such as the user agent, metadata.
    case free

    func neverContains(_ byte: UInt8) -> Bool {
        switch self {
        case .token: return byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\"")
        case .unspaced: return byte == UInt8(ascii: " ")
        case .spaced: return byte == UInt8(ascii: "\"")
        case .free: return false
        }
    }

    /// Whether the first (or last) occurrence of `literal` next to the value marks its end.
    func isDelimited(by literal: [UInt8]) -> Bool {
        literal.contains(where: neverContains)
    }
}

/// One `%OPERATOR%` of a format string.
struct FormatOperator: Sendable, Equatable {
    /// As written, without the percent signs, e.g. `REQ(:AUTHORITY)` (for error messages).
    var text: String
    var field: RecordField?
    var valueClass: ValueClass
    /// What the value must look like. Checked even for fields that are not decoded: a value of
    /// the wrong shape means the line is in another format (how `auto` tells formats apart).
    var check: ValueCheck
}

enum ValueCheck: UInt8, Sendable {
    case none
    /// Digits, or `-`: codes, byte counts, durations.
    case number
    /// An address as Envoy prints it: `10.0.0.1:80`, `[::1]:80`, `-`, `envoy://...`, `unix:...`.
    case address
    /// No `"` at either end: a token field never has one, a quoted neighbour always does.
    case unquoted
}

/// An error in a user-supplied Envoy format string, with the byte offset it was found at.
public struct FormatStringError: Error, CustomStringConvertible, Sendable, Equatable {
    public var message: String
    public var offset: Int
    public var description: String { "format string, at offset \(offset): \(message)" }
}

/// An Envoy text format string split into literals and operators:
/// `literals[0] op[0] literals[1] op[1] ... op[n-1] literals[n]`.
struct ParsedFormatString: Sendable {
    var literals: [[UInt8]]
    var operators: [FormatOperator]

    /// Parses a format string as written in an Envoy `text_format` / `text_format_source` or
    /// Istio `accessLogFormat`. Also accepts it pasted straight out of a YAML or JSON source,
    /// with `\"` for quotes and a trailing `\n`.
    init(_ format: String) throws(FormatStringError) {
        var bytes = Array(format.utf8)
        Self.unescapePastedSource(&bytes)
        // Lines reach the parser without their newline; a format ending in one describes that.
        while let last = bytes.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") {
            bytes.removeLast()
        }
        var literals: [[UInt8]] = []
        var operators: [FormatOperator] = []
        var literal: [UInt8] = []
        var index = 0
        while index < bytes.count {
            guard bytes[index] == UInt8(ascii: "%") else {
                literal.append(bytes[index])
                index += 1
                continue
            }
            let (op, next) = try Self.parseOperator(bytes, at: index)
            if !operators.isEmpty && literal.isEmpty {
                throw FormatStringError(
                    message: "%\(operators[operators.count - 1].text)% and %\(op.text)% have no text "
                        + "between them, so where one ends cannot be told from the log line",
                    offset: index)
            }
            literals.append(literal)
            literal = []
            operators.append(op)
            index = next
        }
        literals.append(literal)
        guard !operators.isEmpty else {
            throw FormatStringError(message: "no %COMMAND% operator in the format string", offset: 0)
        }
        guard operators.contains(where: { $0.field == .responseFlags }) else {
            throw FormatStringError(
                message: "the format has no %RESPONSE_FLAGS% or %RESPONSE_FLAGS_LONG%, which flagwatch counts",
                offset: 0)
        }
        self.literals = literals
        self.operators = operators
    }

    /// `\"` → `"`, and a literal two-character `\n` at the end → newline: what a format string
    /// looks like when copied from a YAML double-quoted scalar or a JSON document.
    private static func unescapePastedSource(_ bytes: inout [UInt8]) {
        guard bytes.contains(UInt8(ascii: "\\")) else { return }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "\\") && index + 1 < bytes.count {
                let next = bytes[index + 1]
                if next == UInt8(ascii: "\"") {
                    out.append(next)
                    index += 2
                    continue
                }
                if next == UInt8(ascii: "n") && index + 2 == bytes.count {
                    out.append(UInt8(ascii: "\n"))
                    index += 2
                    continue
                }
            }
            out.append(bytes[index])
            index += 1
        }
        bytes = out
    }

    /// Parses `%NAME%`, `%NAME(arg)%`, `%NAME(arg):len%` starting at the `%` at `start`.
    private static func parseOperator(_ bytes: [UInt8], at start: Int) throws(FormatStringError) -> (
        FormatOperator, Int
    ) {
        var index = start + 1
        let nameStart = index
        while index < bytes.count, isNameByte(bytes[index]) { index += 1 }
        guard index > nameStart else {
            throw FormatStringError(
                message: "'%' does not start a command operator such as %RESPONSE_FLAGS%", offset: start)
        }
        let name = String(decoding: bytes[nameStart..<index], as: UTF8.self)
        var argument: String?
        if index < bytes.count && bytes[index] == UInt8(ascii: "(") {
            // The argument runs to the first ')' followed by '%' or ':': strftime arguments hold '%'.
            var close = index + 1
            while close < bytes.count {
                if bytes[close] == UInt8(ascii: ")"),
                    close + 1 < bytes.count,
                    bytes[close + 1] == UInt8(ascii: "%") || bytes[close + 1] == UInt8(ascii: ":")
                {
                    break
                }
                close += 1
            }
            guard close < bytes.count else {
                throw FormatStringError(message: "%\(name)( has no closing ')'", offset: start)
            }
            argument = String(decoding: bytes[(index + 1)..<close], as: UTF8.self)
            index = close + 1
        }
        if index < bytes.count && bytes[index] == UInt8(ascii: ":") {
            index += 1
            let digitsStart = index
            while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
                index += 1
            }
            guard index > digitsStart else {
                throw FormatStringError(message: "%\(name):... needs a maximum length in digits", offset: start)
            }
        }
        guard index < bytes.count && bytes[index] == UInt8(ascii: "%") else {
            throw FormatStringError(message: "%\(name) is not closed by '%'", offset: start)
        }
        let text = String(decoding: bytes[(start + 1)..<index], as: UTF8.self)
        return (classify(name: name, argument: argument, text: text), index + 1)
    }

    private static func isNameByte(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
            || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "_")
    }

    /// Operators whose values Envoy itself produces without spaces or quotes.
    private static let tokenOperators: Set<String> = [
        "PROTOCOL", "UPSTREAM_PROTOCOL", "RESPONSE_CODE", "RESPONSE_FLAGS", "RESPONSE_FLAGS_LONG",
        "UPSTREAM_CLUSTER", "UPSTREAM_CLUSTER_RAW", "UPSTREAM_HOST", "UPSTREAM_HOST_NAME",
        "UPSTREAM_LOCAL_ADDRESS", "UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT", "UPSTREAM_LOCAL_PORT",
        "UPSTREAM_REMOTE_ADDRESS", "UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT", "UPSTREAM_REMOTE_PORT",
        "DOWNSTREAM_LOCAL_ADDRESS", "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT", "DOWNSTREAM_LOCAL_PORT",
        "DOWNSTREAM_REMOTE_ADDRESS", "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT", "DOWNSTREAM_REMOTE_PORT",
        "DOWNSTREAM_DIRECT_REMOTE_ADDRESS", "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT",
        "REQUESTED_SERVER_NAME", "ROUTE_NAME", "VIRTUAL_CLUSTER_NAME", "HOSTNAME", "GRPC_STATUS",
        "GRPC_STATUS_NUMBER", "CONNECTION_ID", "UPSTREAM_CONNECTION_ID", "STREAM_ID",
        "RESPONSE_CODE_DETAILS", "UPSTREAM_FILTER_STATE", "START_TIME", "START_TIME_LOCAL",
        "EMIT_TIME", "DOWNSTREAM_TLS_VERSION", "DOWNSTREAM_TLS_CIPHER", "DOWNSTREAM_TLS_SESSION_ID",
        "DOWNSTREAM_PEER_FINGERPRINT_256", "DOWNSTREAM_PEER_SERIAL", "UPSTREAM_TLS_VERSION",
        "UPSTREAM_TLS_CIPHER", "UPSTREAM_TLS_SESSION_ID", "UPSTREAM_PEER_FINGERPRINT_256",
        "UPSTREAM_PEER_SERIAL", "DOWNSTREAM_TRANSPORT_FAILURE_REASON",
    ]

    private static let numericOperators: Set<String> = [
        "RESPONSE_CODE", "BYTES_RECEIVED", "BYTES_SENT", "DURATION", "REQUEST_DURATION",
        "REQUEST_TX_DURATION", "RESPONSE_DURATION", "RESPONSE_TX_DURATION",
        "UPSTREAM_REQUEST_ATTEMPT_COUNT", "UPSTREAM_WIRE_BYTES_RECEIVED", "UPSTREAM_WIRE_BYTES_SENT",
        "UPSTREAM_HEADER_BYTES_RECEIVED", "UPSTREAM_HEADER_BYTES_SENT", "DOWNSTREAM_WIRE_BYTES_RECEIVED",
        "DOWNSTREAM_WIRE_BYTES_SENT", "DOWNSTREAM_HEADER_BYTES_RECEIVED", "DOWNSTREAM_HEADER_BYTES_SENT",
        "BYTES_RETRANSMITTED", "PACKETS_RETRANSMITTED",
    ]

    /// Operators that print an address (checked for shape; see ``ValueCheck/address``).
    private static let addressOperators: Set<String> = [
        "UPSTREAM_LOCAL_ADDRESS", "UPSTREAM_REMOTE_ADDRESS", "DOWNSTREAM_LOCAL_ADDRESS",
        "DOWNSTREAM_REMOTE_ADDRESS", "DOWNSTREAM_DIRECT_REMOTE_ADDRESS",
    ]

    /// Operators whose values Envoy produces without quotes but possibly with spaces.
    private static let spacedOperators: Set<String> = [
        "UPSTREAM_TRANSPORT_FAILURE_REASON", "CONNECTION_TERMINATION_DETAILS",
    ]

    private static func classify(name: String, argument: String?, text: String) -> FormatOperator {
        let numeric = numericOperators.contains(name)
        switch name {
        case "REQ", "RESP", "TRAILER":
            return classifyHeader(argument ?? "", isRequest: name == "REQ", text: text)
        case "RESPONSE_CODE":
            return FormatOperator(text: text, field: .responseCode, valueClass: .token, check: .number)
        case "RESPONSE_FLAGS", "RESPONSE_FLAGS_LONG":
            return FormatOperator(text: text, field: .responseFlags, valueClass: .token, check: .unquoted)
        case "RESPONSE_CODE_DETAILS":
            // ALLOW_WHITESPACES keeps Envoy from turning spaces into '_'.
            return FormatOperator(
                text: text, field: .responseCodeDetails, valueClass: argument == nil ? .token : .spaced, check: .none)
        case "UPSTREAM_TRANSPORT_FAILURE_REASON":
            return FormatOperator(text: text, field: .transportFailureReason, valueClass: .spaced, check: .none)
        case "UPSTREAM_CLUSTER", "UPSTREAM_CLUSTER_RAW":
            return FormatOperator(text: text, field: .upstreamCluster, valueClass: .token, check: .unquoted)
        case "UPSTREAM_HOST", "UPSTREAM_REMOTE_ADDRESS":
            return FormatOperator(text: text, field: .upstreamHost, valueClass: .token, check: .unquoted)
        case "DURATION":
            return FormatOperator(text: text, field: .duration, valueClass: .token, check: .number)
        case "UPSTREAM_REQUEST_ATTEMPT_COUNT":
            return FormatOperator(text: text, field: .upstreamRequestAttemptCount, valueClass: .token, check: .number)
        case "ROUTE_NAME":
            return FormatOperator(text: text, field: .routeName, valueClass: .token, check: .unquoted)
        case "START_TIME", "START_TIME_LOCAL":
            // A custom strftime pattern may print spaces; the default never does.
            let spaced = argument.map { $0.contains(" ") } ?? false
            return FormatOperator(
                text: text, field: .startTime, valueClass: spaced ? .spaced : .token, check: spaced ? .none : .unquoted)
        case "DYNAMIC_METADATA" where argument == "istio.mixer:status":
            // Istio 1.3-1.7's mixer status: Envoy-produced text, never quoted.
            return FormatOperator(text: text, field: nil, valueClass: .spaced, check: .none)
        default:
            if numeric || tokenOperators.contains(name) {
                let check: ValueCheck = numeric ? .number : addressOperators.contains(name) ? .address : .unquoted
                return FormatOperator(text: text, field: nil, valueClass: .token, check: check)
            }
            if spacedOperators.contains(name) {
                return FormatOperator(text: text, field: nil, valueClass: .spaced, check: .none)
            }
            // Metadata, filter state, CEL, environment, anything newer: assume the worst.
            return FormatOperator(text: text, field: nil, valueClass: .free, check: .none)
        }
    }

    /// Header values are whatever the client sent, except for the few Envoy validates or sets.
    private static func classifyHeader(_ header: String, isRequest: Bool, text: String) -> FormatOperator {
        let upper = header.uppercased()
        // `X-ENVOY-ORIGINAL-PATH?:PATH` names a header and its fallback.
        let names = upper.split(separator: "?").map(String.init)
        func any(_ candidates: Set<String>) -> Bool { names.contains(where: candidates.contains) }
        if isRequest && any([":METHOD"]) {
            return FormatOperator(text: text, field: .requestMethod, valueClass: .token, check: .unquoted)
        }
        if isRequest && any([":AUTHORITY", "HOST"]) {
            // Envoy's codecs reject an authority with spaces or quotes.
            return FormatOperator(text: text, field: .authority, valueClass: .token, check: .unquoted)
        }
        if any([":PATH", "X-ENVOY-ORIGINAL-PATH"]) {
            // A request target has no spaces; it is client-chosen, so a quote is not ruled out.
            return FormatOperator(text: text, field: nil, valueClass: .unspaced, check: .none)
        }
        if any([":SCHEME", ":STATUS", "GRPC-STATUS", "CONTENT-LENGTH"]) {
            return FormatOperator(text: text, field: nil, valueClass: .token, check: .unquoted)
        }
        if !isRequest && any(["X-ENVOY-UPSTREAM-SERVICE-TIME"]) {
            return FormatOperator(text: text, field: nil, valueClass: .token, check: .number)
        }
        return FormatOperator(text: text, field: nil, valueClass: .free, check: .none)
    }
}
