/// Envoy's core response flags (`CoreResponseFlag`), in enum order.
///
/// The raw value is the flag's bit in ``ResponseFlagSet``; it is internal to flagwatch and never
/// appears in logs. Codes that are not in this table (custom flags registered by extensions,
/// flags newer than this table) are kept by the parser as unknown codes, not dropped.
public enum ResponseFlag: UInt8, CaseIterable, Sendable, Comparable {
    case failedLocalHealthCheck = 0  // LH
    case noHealthyUpstream  // UH
    case upstreamRequestTimeout  // UT
    case localReset  // LR
    case upstreamRemoteReset  // UR
    case upstreamConnectionFailure  // UF
    case upstreamConnectionTermination  // UC
    case upstreamOverflow  // UO
    case noRouteFound  // NR
    case delayInjected  // DI
    case faultInjected  // FI
    case rateLimited  // RL
    case unauthorizedExternalService  // UAEX
    case rateLimitServiceError  // RLSE
    case downstreamConnectionTermination  // DC
    case upstreamRetryLimitExceeded  // URX
    case streamIdleTimeout  // SI
    case invalidEnvoyRequestHeaders  // IH
    case downstreamProtocolError  // DPE
    case upstreamMaxStreamDurationReached  // UMSDR
    case responseFromCacheFilter  // RFCF
    case noFilterConfigFound  // NFCF
    case durationTimeout  // DT
    case upstreamProtocolError  // UPE
    case noClusterFound  // NC
    case overloadManagerTerminated  // OM
    case dnsResolutionFailed  // DF
    case dropOverload  // DO
    case downstreamRemoteReset  // DR
    case unconditionalDropOverload  // UDO

    /// The code `%RESPONSE_FLAGS%` prints, e.g. `UF`.
    public var shortName: String { Self.names[Int(rawValue)].short }
    /// The name `%RESPONSE_FLAGS_LONG%` prints (Envoy 1.28+), e.g. `UpstreamConnectionFailure`.
    public var longName: String { Self.names[Int(rawValue)].long }
    /// What Envoy's docs say the flag means, e.g. "Upstream connection failure, in addition to 503".
    public var meaning: String { Self.names[Int(rawValue)].meaning }
    /// Whether TCP proxies set the flag too (else it is HTTP only).
    public var isSetForTCP: Bool { Self.names[Int(rawValue)].tcp }
    /// The first Envoy release with the flag: `1.28`, or `≤1.5` when it was already there.
    public var sinceEnvoy: String { Self.names[Int(rawValue)].since }

    public static func < (lhs: ResponseFlag, rhs: ResponseFlag) -> Bool { lhs.rawValue < rhs.rawValue }

    /// Looks a code up by its short or long name.
    public init?(name: String) {
        var name = name
        let found = name.withUTF8 { ResponseFlag.lookUp(UnsafeRawBufferPointer($0)) }
        guard let found else { return nil }
        self = found
    }

    /// Envoy's table of core flags (docs/formats.md §1.2, from Envoy's docs and release notes),
    /// one row per flag in enum order: the codes the parser looks up, and what `flagwatch
    /// explain` says of each. `since` is the first Envoy release with the flag (`≤1.5`: already
    /// in that release, an upper bound); `tcp` is whether TCP proxies set it too.
    static let names: [(short: String, long: String, meaning: String, tcp: Bool, since: String)] = [
        (
            "LH", "FailedLocalHealthCheck", "Local service failed health check request, in addition to 503", false,
            "≤1.5"
        ),
        (
            "UH", "NoHealthyUpstream", "No healthy upstream hosts in the upstream cluster, in addition to 503", true,
            "≤1.5"
        ),
        ("UT", "UpstreamRequestTimeout", "Upstream request timeout, in addition to 504", false, "≤1.5"),
        ("LR", "LocalReset", "Connection local reset, in addition to 503", false, "≤1.5"),
        ("UR", "UpstreamRemoteReset", "Upstream remote reset, in addition to 503", false, "≤1.5"),
        ("UF", "UpstreamConnectionFailure", "Upstream connection failure, in addition to 503", true, "≤1.5"),
        ("UC", "UpstreamConnectionTermination", "Upstream connection termination, in addition to 503", false, "≤1.5"),
        ("UO", "UpstreamOverflow", "Upstream overflow (circuit breaking), in addition to 503", true, "≤1.5"),
        (
            "NR", "NoRouteFound",
            "No route for the request (404), or no matching filter chain for a downstream connection", true, "≤1.5"
        ),
        ("DI", "DelayInjected", "Request delayed by fault injection", false, "≤1.5"),
        ("FI", "FaultInjected", "Request aborted with a response code by fault injection", false, "≤1.5"),
        ("RL", "RateLimited", "Rate-limited locally by the HTTP rate limit filter (429)", false, "≤1.7"),
        ("UAEX", "UnauthorizedExternalService", "Denied by the external authorization service", false, "≤1.7"),
        ("RLSE", "RateLimitServiceError", "Rejected because of an error in the rate limit service", false, "1.8"),
        ("DC", "DownstreamConnectionTermination", "Downstream connection termination", false, "1.9"),
        (
            "URX", "UpstreamRetryLimitExceeded", "Upstream retry limit (HTTP) or max connect attempts (TCP) reached",
            true, "1.10"
        ),
        ("SI", "StreamIdleTimeout", "Stream idle timeout, in addition to 408 or 504", false, "1.10"),
        (
            "IH", "InvalidEnvoyRequestHeaders", "Invalid value in a strictly checked x-envoy-* header (400)", false,
            "1.11"
        ),
        ("DPE", "DownstreamProtocolError", "Downstream request had an HTTP protocol error", false, "1.12"),
        (
            "UMSDR", "UpstreamMaxStreamDurationReached", "Upstream request reached its max stream duration", false,
            "1.15"
        ),
        ("RFCF", "ResponseFromCacheFilter", "Response served from an Envoy cache filter", false, "1.15"),
        ("NFCF", "NoFilterConfigFound", "Filter config not received within the warming deadline", false, "1.16"),
        (
            "DT", "DurationTimeout", "max_connection_duration or max_downstream_connection_duration exceeded", true,
            "1.16"
        ),
        ("UPE", "UpstreamProtocolError", "Upstream response had an HTTP protocol error", false, "1.18"),
        ("NC", "NoClusterFound", "Upstream cluster not found", true, "1.18"),
        ("OM", "OverloadManagerTerminated", "Terminated by the Overload Manager", false, "1.19"),
        ("DF", "DnsResolutionFailed", "Terminated because of a DNS resolution failure", false, "1.22"),
        ("DO", "DropOverload", "Dropped by EDS drop_overloads, with 503", false, "1.29"),
        (
            "DR", "DownstreamRemoteReset",
            "Downstream remote codec reset (details http2.remote_reset or http2.remote_refuse)", false, "1.30"
        ),
        ("UDO", "UnconditionalDropOverload", "Dropped because drop_overloads is 100 %, with 503", false, "1.34"),
    ]

    /// Short codes packed little-endian into a UInt64 (at most 5 bytes), so a lookup is a
    /// handful of integer compares instead of string comparisons.
    private static let packedShortNames: [UInt64] = names.map { pack($0.short.utf8) }

    /// Long names grouped by length: index = length, value = flags with a long name that long.
    private static let longNamesByLength: [[(bytes: [UInt8], flag: ResponseFlag)]] = {
        var table = [[(bytes: [UInt8], flag: ResponseFlag)]](repeating: [], count: 40)
        for flag in ResponseFlag.allCases {
            let bytes = Array(flag.longName.utf8)
            table[bytes.count].append((bytes, flag))
        }
        return table
    }()

    private static func pack<S: Sequence<UInt8>>(_ bytes: S) -> UInt64 {
        var packed: UInt64 = 0
        var shift: UInt64 = 0
        for byte in bytes {
            packed |= UInt64(byte) << shift
            shift += 8
        }
        return packed
    }

    /// Finds the flag named by `code` (short or long name); nil for a code this table lacks.
    @inlinable
    public static func lookUp(_ code: UnsafeRawBufferPointer) -> ResponseFlag? {
        if code.count <= 5 { return lookUpShort(code) }
        return lookUpLong(code)
    }

    @usableFromInline
    static func lookUpShort(_ code: UnsafeRawBufferPointer) -> ResponseFlag? {
        guard !code.isEmpty else { return nil }
        var packed: UInt64 = 0
        for index in 0..<code.count {
            packed |= UInt64(code[index]) << (UInt64(index) * 8)
        }
        return packedShortNames.withUnsafeBufferPointer { table in
            for index in 0..<table.count where table[index] == packed {
                return ResponseFlag(rawValue: UInt8(index))
            }
            return nil
        }
    }

    @usableFromInline
    static func lookUpLong(_ code: UnsafeRawBufferPointer) -> ResponseFlag? {
        guard code.count < longNamesByLength.count else { return nil }
        for candidate in longNamesByLength[code.count] {
            let equal = candidate.bytes.withUnsafeBytes { name in
                name.elementsEqual(code)
            }
            if equal { return candidate.flag }
        }
        return nil
    }
}

/// A set of ``ResponseFlag``s, one bit each: what one access-log line's flags field names.
public struct ResponseFlagSet: OptionSet, Sendable, Hashable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public init(_ flag: ResponseFlag) { self.rawValue = 1 << UInt32(flag.rawValue) }

    public init<S: Sequence<ResponseFlag>>(_ flags: S) {
        self.rawValue = 0
        for flag in flags { insert(ResponseFlagSet(flag)) }
    }

    public func contains(_ flag: ResponseFlag) -> Bool { rawValue & (1 << UInt32(flag.rawValue)) != 0 }

    /// The flags in enum order.
    public var flags: [ResponseFlag] { ResponseFlag.allCases.filter { contains($0) } }

    /// Calls `body` for each flag in the set without allocating.
    @inlinable
    public func forEach(_ body: (ResponseFlag) -> Void) {
        var bits = rawValue
        while bits != 0 {
            let bit = UInt8(bits.trailingZeroBitCount)
            bits &= bits - 1
            if let flag = ResponseFlag(rawValue: bit) { body(flag) }
        }
    }
}
