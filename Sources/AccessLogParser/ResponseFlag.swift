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

    public static func < (lhs: ResponseFlag, rhs: ResponseFlag) -> Bool { lhs.rawValue < rhs.rawValue }

    /// Looks a code up by its short or long name.
    public init?(name: String) {
        var name = name
        let found = name.withUTF8 { ResponseFlag.lookUp(UnsafeRawBufferPointer($0)) }
        guard let found else { return nil }
        self = found
    }

    static let names: [(short: String, long: String)] = [
        ("LH", "FailedLocalHealthCheck"),
        ("UH", "NoHealthyUpstream"),
        ("UT", "UpstreamRequestTimeout"),
        ("LR", "LocalReset"),
        ("UR", "UpstreamRemoteReset"),
        ("UF", "UpstreamConnectionFailure"),
        ("UC", "UpstreamConnectionTermination"),
        ("UO", "UpstreamOverflow"),
        ("NR", "NoRouteFound"),
        ("DI", "DelayInjected"),
        ("FI", "FaultInjected"),
        ("RL", "RateLimited"),
        ("UAEX", "UnauthorizedExternalService"),
        ("RLSE", "RateLimitServiceError"),
        ("DC", "DownstreamConnectionTermination"),
        ("URX", "UpstreamRetryLimitExceeded"),
        ("SI", "StreamIdleTimeout"),
        ("IH", "InvalidEnvoyRequestHeaders"),
        ("DPE", "DownstreamProtocolError"),
        ("UMSDR", "UpstreamMaxStreamDurationReached"),
        ("RFCF", "ResponseFromCacheFilter"),
        ("NFCF", "NoFilterConfigFound"),
        ("DT", "DurationTimeout"),
        ("UPE", "UpstreamProtocolError"),
        ("NC", "NoClusterFound"),
        ("OM", "OverloadManagerTerminated"),
        ("DF", "DnsResolutionFailed"),
        ("DO", "DropOverload"),
        ("DR", "DownstreamRemoteReset"),
        ("UDO", "UnconditionalDropOverload"),
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
