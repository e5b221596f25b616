import AccessLogParser
import FlagCounting

/// The body of a response Envoy made itself (a local reply): what a client, curl or a gRPC
/// error message shows in a 503 storm, e.g. `upstream connect error or disconnect/reset before
/// headers. retried and the latest reset reason: remote connection failure`. It names the flags
/// the access log writes for the request, and the reset reason and transport failure reason
/// that go into its `%RESPONSE_CODE_DETAILS%` and `%UPSTREAM_TRANSPORT_FAILURE_REASON%`.
///
/// The texts are Envoy 1.40's router and filters (docs/cli.md, "A reply body"):
/// the end-to-end tests read them off real replies.
public struct EnvoyReplyBody: Sendable, Equatable {
    /// The recognised text, from where Envoy's words start (a pasted `rpc error: ... desc =`
    /// or curl prefix dropped), without surrounding blanks.
    public var text: String
    /// The flags the access log carries for such a reply, in Envoy's order of meaning (URX
    /// first when the router retried). Empty for a reply Envoy gives without a flag.
    public var flags: [ResponseFlag]
    /// The status Envoy sends with it by default (a route or filter may change it).
    public var defaultStatus: Int
    /// The router's reset reason (`remote connection failure`), nil for the other replies.
    public var resetReason: String?
    /// Whether the router retried before giving up (`retried and the latest reset reason`).
    public var retried: Bool
    /// The transport failure reason (`TLS_error:...`, `delayed connect error: 111`), if any.
    public var transportFailureReason: String?
    /// What `%RESPONSE_CODE_DETAILS%` says for it, as Envoy writes it in the access log.
    public var responseCodeDetails: String
    /// What the reply means, in a sentence.
    public var meaning: String

    /// The router's prefix for a stream reset before the upstream's response headers.
    static let resetPrefix = "upstream connect error or disconnect/reset before headers. "

    /// Recognises Envoy's words anywhere in `pasted` (the first ones found); nil when it holds
    /// none of them.
    public static func recognize(_ pasted: String) -> EnvoyReplyBody? {
        if let reply = recognizePlain(pasted) { return reply }
        // A gRPC client that prints the raw `grpc-message` trailer shows it percent-encoded
        // (`upstream%20connect%20error...`).
        guard pasted.contains("%20"), let decoded = percentDecoded(pasted) else { return nil }
        return recognizePlain(decoded)
    }

    /// `%XX` escapes decoded; nil when one is broken or the result is not UTF-8.
    static func percentDecoded(_ text: String) -> String? {
        var bytes: [UInt8] = []
        var input = Array(text.utf8)[...]
        func hex(_ byte: UInt8) -> UInt8? {
            switch byte {
            case 0x30...0x39: return byte - 0x30
            case 0x41...0x46: return byte - 0x41 + 10
            case 0x61...0x66: return byte - 0x61 + 10
            default: return nil
            }
        }
        while let byte = input.popFirst() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard input.count >= 2, let high = hex(input[input.startIndex]),
                let low = hex(input[input.startIndex + 1])
            else { return nil }
            bytes.append(high << 4 | low)
            input = input.dropFirst(2)
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func recognizePlain(_ pasted: String) -> EnvoyReplyBody? {
        if let start = pasted.firstRange(of: resetPrefix) {
            return reset(String(pasted[start.lowerBound...]))
        }
        let trimmed = pasted.trimmingBlanks()
        for reply in fixedReplies where trimmed.hasSuffix(reply.text) {
            let before = trimmed.dropLast(reply.text.count)
            // The text must stand alone or end a pasted prefix (`desc = no healthy upstream`,
            // `error: no healthy upstream`).
            guard before.isEmpty || before.hasSuffix("= ") || before.hasSuffix(": ") else { continue }
            return EnvoyReplyBody(
                text: reply.text, flags: reply.flags, defaultStatus: reply.status, resetReason: nil, retried: false,
                transportFailureReason: nil, responseCodeDetails: reply.details, meaning: reply.meaning)
        }
        return nil
    }

    /// `upstream connect error or disconnect/reset before headers. [retried and the latest ]reset
    /// reason: R[, transport failure reason: T]` (Envoy's router, `Filter::onUpstreamReset`).
    private static func reset(_ body: String) -> EnvoyReplyBody? {
        var rest = body.dropFirst(resetPrefix.count)
        let retried = rest.hasPrefix("retried and the latest ")
        if retried { rest = rest.dropFirst("retried and the latest ".count) }
        guard rest.hasPrefix("reset reason: ") else { return nil }
        rest = rest.dropFirst("reset reason: ".count)
        var reason = String(rest).trimmingBlanks()
        var transport: String? = nil
        if let separator = reason.firstRange(of: ", transport failure reason: ") {
            transport = String(reason[separator.upperBound...]).trimmingBlanks()
            reason = String(reason[..<separator.lowerBound])
        }
        let flag = resetFlags.first { reason == $0.reason }?.flag
        var flags: [ResponseFlag] = []
        if retried { flags.append(.upstreamRetryLimitExceeded) }
        if let flag { flags.append(flag) }
        // The access log writes the reasons with underscores for spaces:
        // upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_111}.
        let underscored = { (text: String) in String(text.map { $0 == " " ? "_" : $0 }) }
        var details = "upstream_reset_before_response_started{" + underscored(reason)
        if let transport { details += "|" + underscored(transport) }
        details += "}"
        var meaning =
            "Envoy's router gave up on the request before the upstream sent response headers"
            + (retried ? ", after retrying" : "") + ": the last try ended with \(reason)"
        if let transport { meaning += " (\(transport))" }
        if flag == nil { meaning += "; flagwatch knows no flag for this reset reason" }
        return EnvoyReplyBody(
            text: body.trimmingBlanks(), flags: flags, defaultStatus: flag == .upstreamProtocolError ? 502 : 503,
            resetReason: reason, retried: retried, transportFailureReason: transport, responseCodeDetails: details,
            meaning: meaning)
    }

    /// Envoy's reset reasons (`Http::Utility::resetReasonToString`) and the flag each one sets.
    static let resetFlags: [(reason: String, flag: ResponseFlag)] = [
        ("remote connection failure", .upstreamConnectionFailure),
        ("local connection failure", .upstreamConnectionFailure),
        ("connection failure", .upstreamConnectionFailure),  // Envoy before 1.27
        ("connection timeout", .upstreamConnectionFailure),
        ("connection termination", .upstreamConnectionTermination),
        ("remote reset", .upstreamRemoteReset),
        ("remote refused stream reset", .upstreamRemoteReset),
        ("local reset", .localReset),
        ("local refused stream reset", .localReset),
        ("overflow", .upstreamOverflow),
        ("protocol error", .upstreamProtocolError),
        ("overload manager reset", .overloadManagerTerminated),
    ]

    /// The other local replies: a fixed text each.
    static let fixedReplies: [(text: String, flags: [ResponseFlag], status: Int, details: String, meaning: String)] = [
        (
            "no healthy upstream", [.noHealthyUpstream], 503, "no_healthy_upstream",
            "the cluster had no healthy endpoint to send the request to: none at all, or every one failed its health check or was ejected as an outlier"
        ),
        (
            "upstream request timeout", [.upstreamRequestTimeout], 504, "response_timeout",
            "the upstream did not answer within the route's timeout"
        ),
        (
            "upstream max stream duration reached", [.upstreamMaxStreamDurationReached], 504,
            "upstream_max_stream_duration_reached",
            "the upstream stream lasted longer than the cluster's max_stream_duration"
        ),
        (
            "stream timeout", [.streamIdleTimeout], 504, "stream_idle_timeout",
            "nothing moved on the stream for the stream idle timeout"
        ),
        (
            "fault filter abort", [.faultInjected], 503, "fault_filter_abort",
            "the fault filter aborted the request on purpose (a VirtualService fault or the fault filter's config)"
        ),
        (
            "local_rate_limited", [.rateLimited], 429, "local_rate_limited",
            "the local rate limit filter refused the request"
        ),
        (
            "envoy overloaded", [.overloadManagerTerminated], 503, "overload",
            "the overload manager refused the request: Envoy itself ran out of memory or connections"
        ),
        (
            "downstream duration timeout", [], 504, "max_duration_timeout",
            "the request lasted longer than the route's max_stream_duration; Envoy writes no flag for it"
        ),
    ]
}

extension String {
    fileprivate func trimmingBlanks() -> String {
        // "\r\n" is one Character.
        let isBlank = { (c: Character) in c == " " || c == "\n" || c == "\r" || c == "\r\n" || c == "\t" }
        return String(drop(while: isBlank).reversed().drop(while: isBlank).reversed())
    }
}

extension Substring {
    fileprivate func trimmingBlanks() -> String { String(self).trimmingBlanks() }
}

/// What `flagwatch explain` says of a reply body: its flags and the diagnosis the access log
/// line of such a request would get.
public struct ReplyBodyExplanation: Sendable, Equatable {
    public var body: EnvoyReplyBody
    /// The diagnosis of one access-log line with the body's flags, details and transport
    /// failure reason; nil without flags.
    public var diagnosis: Diagnosis?
    public var explanations: [FlagExplanation]
}

extension Explainer {
    /// Explains Envoy's reply body in `pasted`; nil when it holds no reply Envoy makes.
    public static func explain(replyBody pasted: String) -> ReplyBodyExplanation? {
        guard let body = EnvoyReplyBody.recognize(pasted) else { return nil }
        var diagnosis: Diagnosis? = nil
        if !body.flags.isEmpty {
            let counts = FlagCounts()
            let details = Array(body.responseCodeDetails.utf8)
            let transport = Array((body.transportFailureReason ?? "").utf8)
            details.withUnsafeBytes { detailBytes in
                transport.withUnsafeBytes { transportBytes in
                    var record = AccessRecord()
                    record.responseCode = body.defaultStatus
                    record.responseFlags = ResponseFlagSet(body.flags)
                    record.responseCodeDetails = FieldView(detailBytes)
                    record.upstreamTransportFailureReason = FieldView(transportBytes)
                    counts.count(record)
                }
            }
            diagnosis = Diagnoser.diagnose(counts, cluster: 0).map {
                var one = oneLine($0)
                // A reply names no cluster: the cause's next steps for an Istio service, with
                // placeholders, instead of those of a line without a cluster (routing).
                one.nextSteps =
                    FlagExplanation(one.flag).causes.first { $0.cause == one.cause.rawValue }?.nextSteps ?? []
                return one
            }
        }
        return ReplyBodyExplanation(
            body: body, diagnosis: diagnosis, explanations: body.flags.map(FlagExplanation.init))
    }
}
