/// What one `StreamAccessLogsMessage` held besides its entries.
public struct StreamAccessLogsSummary: Equatable, Sendable {
    /// True when the message carried the stream's identifier (Envoy sends it on the first
    /// message of each stream only).
    public var hasIdentifier = false
    /// `identifier.log_name`: the access logger's `log_name`, as a String (once per stream,
    /// so the copy does not matter); nil when absent.
    public var logName: String? = nil
    /// How many HTTP entries and TCP entries the message held, well-formed or not.
    public var httpEntryCount = 0
    public var tcpEntryCount = 0

    public init() {}
}

/// Decodes Envoy's gRPC Access Log Service messages (`envoy.service.accesslog.v3`,
/// `StreamAccessLogsMessage`) into ``AccessRecord``s, in place: each text field of a record is
/// a view into the message's bytes, as a file line's fields are views into the read buffer.
///
/// The field numbers are Envoy's, checked against the Envoy 1.40 binary's own descriptors;
/// protos/envoy/accesslog_minimal.proto lists the fields read, and docs/formats.md §10.1 the
/// mapping onto the record. Fields not read are skipped by wire type, so newer Envoys that add
/// fields decode the same.
public struct EnvoyAccessLogDecoder: Sendable {
    /// The record fields decoded; the others stay absent (as with a text plan).
    public let fields: RecordFieldSet

    public init(fields: RecordFieldSet = .countingWithFailureDetails) {
        self.fields = fields
    }

    /// Decodes one `StreamAccessLogsMessage`, calling `entry` with each HTTP and TCP entry in
    /// order. An entry whose own bytes are not valid protobuf is reported as
    /// `.malformed(.badProtobuf)` and the next entry is read, because the message's framing
    /// around it is intact. When the message's own framing is broken, the entries before the
    /// break have been reported and the defect is thrown: the rest of the message is lost.
    public func decodeStreamAccessLogsMessage(
        _ message: UnsafeRawBufferPointer, entry: (ParseResult) -> Void
    ) throws(ProtobufWireDefect) -> StreamAccessLogsSummary {
        // Where an entry's `host:port` is written, as `%UPSTREAM_HOST%` prints it: on the stack,
        // valid while `entry` runs (the counts intern what they keep).
        var scratch = HostScratch()
        var result: Result<StreamAccessLogsSummary, ProtobufWireDefect> = .success(StreamAccessLogsSummary())
        withUnsafeMutableBytes(of: &scratch) { hostScratch in
            do throws(ProtobufWireDefect) {
                result = .success(try decodeMessage(message, hostScratch: hostScratch, entry: entry))
            } catch {
                result = .failure(error)
            }
        }
        return try result.get()
    }

    private func decodeMessage(
        _ message: UnsafeRawBufferPointer, hostScratch: UnsafeMutableRawBufferPointer, entry: (ParseResult) -> Void
    ) throws(ProtobufWireDefect) -> StreamAccessLogsSummary {
        var summary = StreamAccessLogsSummary()
        var reader = ProtobufWireReader(message)
        while let field = try reader.nextField() {
            switch field.number {
            case StreamAccessLogsMessageField.identifier:
                guard let identifier = try reader.lengthDelimited(ifWireType: field.wireType) else { continue }
                summary.hasIdentifier = true
                summary.logName = try Self.logName(in: identifier)
            case StreamAccessLogsMessageField.httpLogs, StreamAccessLogsMessageField.tcpLogs:
                guard let entries = try reader.lengthDelimited(ifWireType: field.wireType) else { continue }
                let isHTTP = field.number == StreamAccessLogsMessageField.httpLogs
                var entriesReader = ProtobufWireReader(entries)
                while let entryField = try entriesReader.nextField() {
                    // HTTPAccessLogEntries / TCPAccessLogEntries: repeated log_entry = 1.
                    guard entryField.number == 1 else {
                        try entriesReader.skip(entryField.wireType)
                        continue
                    }
                    guard let entryBytes = try entriesReader.lengthDelimited(ifWireType: entryField.wireType) else {
                        continue
                    }
                    if isHTTP { summary.httpEntryCount += 1 } else { summary.tcpEntryCount += 1 }
                    entry(decodeEntry(entryBytes, isHTTP: isHTTP, hostScratch: hostScratch))
                }
            default:
                try reader.skip(field.wireType)
            }
        }
        return summary
    }

    /// How many entries `message` holds, without decoding them: what a receiver counts as
    /// dropped when it has no room for the message. Stops at the first framing defect (the
    /// entries counted up to there are returned).
    public static func entryCount(in message: UnsafeRawBufferPointer) -> Int {
        var count = 0
        var reader = ProtobufWireReader(message)
        do throws(ProtobufWireDefect) {
            while let field = try reader.nextField() {
                let holdsEntries =
                    field.number == StreamAccessLogsMessageField.httpLogs
                    || field.number == StreamAccessLogsMessageField.tcpLogs
                guard holdsEntries else {
                    try reader.skip(field.wireType)
                    continue
                }
                guard let entries = try reader.lengthDelimited(ifWireType: field.wireType) else { continue }
                var entriesReader = ProtobufWireReader(entries)
                while let entryField = try entriesReader.nextField() {
                    if entryField.number == 1 && entryField.wireType == .lengthDelimited { count += 1 }
                    try entriesReader.skip(entryField.wireType)
                }
            }
        } catch {
            return count
        }
        return count
    }

    /// Decodes one `HTTPAccessLogEntry` (or, with `isHTTP` false, one `TCPAccessLogEntry`, which
    /// has no response: its code is 0, as Envoy prints for TCP in a file). With a `hostScratch`
    /// (``decodeStreamAccessLogsMessage(_:entry:)`` passes one) the upstream host is written
    /// there as `host:port`; without, it is the address alone.
    public func decodeEntry(
        _ bytes: UnsafeRawBufferPointer, isHTTP: Bool, hostScratch: UnsafeMutableRawBufferPointer? = nil
    ) -> ParseResult {
        var record = AccessRecord()
        do throws(ProtobufWireDefect) {
            var reader = ProtobufWireReader(bytes)
            while let field = try reader.nextField() {
                switch field.number {
                case 1:  // common_properties (both entry kinds)
                    guard let common = try reader.lengthDelimited(ifWireType: field.wireType) else { continue }
                    try Self.readCommon(common, into: &record, hostScratch: hostScratch)
                case 4 where isHTTP:  // HTTPAccessLogEntry.response
                    guard let response = try reader.lengthDelimited(ifWireType: field.wireType) else { continue }
                    try Self.readResponse(response, into: &record)
                default:
                    try reader.skip(field.wireType)
                }
            }
        } catch {
            return .malformed(.badProtobuf)
        }
        // The text parsers take 0...999 (three digits); a larger code is no HTTP status.
        guard record.responseCode <= 999 else { return .malformed(.badResponseCode) }
        record.keepOnly(fields)
        return .record(record)
    }

    private static func logName(in identifier: UnsafeRawBufferPointer) throws(ProtobufWireDefect) -> String? {
        var reader = ProtobufWireReader(identifier)
        var name: String? = nil
        while let field = try reader.nextField() {
            if field.number == 2, let bytes = try reader.lengthDelimited(ifWireType: field.wireType) {
                name = String(decoding: bytes, as: UTF8.self)
            } else {
                try reader.skip(field.wireType)
            }
        }
        return name
    }

    /// `AccessLogCommon`: the cluster, the flags, the transport failure, the route, the
    /// upstream address, the duration and the upstream attempt count.
    static func readCommon(
        _ bytes: UnsafeRawBufferPointer, into record: inout AccessRecord,
        hostScratch: UnsafeMutableRawBufferPointer? = nil
    ) throws(ProtobufWireDefect) {
        var reader = ProtobufWireReader(bytes)
        // `duration` is %DURATION%; an Envoy older than the field sends the same interval as
        // `time_to_last_downstream_tx_byte` (start to last byte out), so that one stands in.
        var duration: Int? = nil
        var lastDownstreamTxByte: Int? = nil
        defer { record.durationMilliseconds = duration ?? lastDownstreamTxByte }
        while let field = try reader.nextField() {
            switch field.number {
            case AccessLogCommonField.duration:
                guard let value = try reader.lengthDelimited(ifWireType: field.wireType) else { continue }
                duration = try durationMilliseconds(in: value)
            case AccessLogCommonField.timeToLastDownstreamTxByte:
                guard let value = try reader.lengthDelimited(ifWireType: field.wireType) else { continue }
                lastDownstreamTxByte = try durationMilliseconds(in: value)
            case AccessLogCommonField.upstreamRequestAttemptCount:
                guard let value = try reader.varint(ifWireType: field.wireType) else { continue }
                // A uint32 on the wire; clamped so that a hostile varint cannot trap.
                record.upstreamRequestAttempts = Int(min(value, UInt64(UInt32.max)))
            case AccessLogCommonField.upstreamRemoteAddress:
                guard let address = try reader.lengthDelimited(ifWireType: field.wireType) else { continue }
                if let (host, port) = try socketAddress(in: address) {
                    record.upstreamHost = FieldView(hostAndPort(host, port, into: hostScratch) ?? host)
                }
            case AccessLogCommonField.upstreamCluster:
                guard let cluster = try reader.lengthDelimited(ifWireType: field.wireType) else { continue }
                record.upstreamCluster = FieldView(cluster)
            case AccessLogCommonField.responseFlags:
                guard let flags = try reader.lengthDelimited(ifWireType: field.wireType) else { continue }
                try readResponseFlags(flags, into: &record)
            case AccessLogCommonField.upstreamTransportFailureReason:
                guard let reason = try reader.lengthDelimited(ifWireType: field.wireType) else { continue }
                record.upstreamTransportFailureReason = FieldView(reason)
            case AccessLogCommonField.routeName:
                guard let route = try reader.lengthDelimited(ifWireType: field.wireType) else { continue }
                record.routeName = FieldView(route)
            default:
                try reader.skip(field.wireType)
            }
        }
    }

    /// `ResponseFlags`: one field per flag. A boolean counts when true; `unauthorized_details`
    /// (a message) counts when present, as Envoy sets it only with UAEX. Fields this table does
    /// not know (a newer Envoy's flags) are skipped: docs/formats.md §10.1.
    static func readResponseFlags(_ bytes: UnsafeRawBufferPointer, into record: inout AccessRecord)
        throws(ProtobufWireDefect)
    {
        var reader = ProtobufWireReader(bytes)
        while let field = try reader.nextField() {
            let flag = field.number < flagByResponseFlagsField.count ? flagByResponseFlagsField[field.number] : nil
            guard let flag else {
                try reader.skip(field.wireType)
                continue
            }
            switch field.wireType {
            case .varint:
                if try reader.readVarint() != 0 { record.responseFlags.insert(ResponseFlagSet(flag)) }
            case .lengthDelimited where field.number == unauthorizedDetailsField:
                _ = try reader.readLengthDelimited()
                record.responseFlags.insert(ResponseFlagSet(flag))
            default:
                try reader.skip(field.wireType)
            }
        }
    }

    /// `HTTPResponseProperties`: the code (a `UInt32Value` wrapper: absent means no response)
    /// and its details.
    static func readResponse(_ bytes: UnsafeRawBufferPointer, into record: inout AccessRecord)
        throws(ProtobufWireDefect)
    {
        var reader = ProtobufWireReader(bytes)
        while let field = try reader.nextField() {
            switch field.number {
            case 1:  // response_code: google.protobuf.UInt32Value
                guard let wrapper = try reader.lengthDelimited(ifWireType: field.wireType) else { continue }
                var wrapperReader = ProtobufWireReader(wrapper)
                while let valueField = try wrapperReader.nextField() {
                    if valueField.number == 1, let value = try wrapperReader.varint(ifWireType: valueField.wireType) {
                        // Clamped so that a hostile value cannot trap; > 999 is rejected above.
                        record.responseCode = Int(min(value, 1_000))
                    } else {
                        try wrapperReader.skip(valueField.wireType)
                    }
                }
            case 6:  // response_code_details
                guard let details = try reader.lengthDelimited(ifWireType: field.wireType) else { continue }
                record.responseCodeDetails = FieldView(details)
            default:
                try reader.skip(field.wireType)
            }
        }
    }

    /// `google.protobuf.Duration` (`seconds` 1, int64; `nanos` 2, int32) in whole milliseconds,
    /// as `%DURATION%` prints it; nil for a negative one. A hostile value is clamped (a year at
    /// most), never trapped on.
    static func durationMilliseconds(in duration: UnsafeRawBufferPointer) throws(ProtobufWireDefect) -> Int? {
        var reader = ProtobufWireReader(duration)
        var seconds: UInt64 = 0
        var nanos: UInt64 = 0
        while let field = try reader.nextField() {
            switch field.number {
            case 1: seconds = try reader.varint(ifWireType: field.wireType) ?? seconds
            case 2: nanos = try reader.varint(ifWireType: field.wireType) ?? nanos
            default: try reader.skip(field.wireType)
            }
        }
        // Negative int64/int32 values arrive as 10-byte varints with the top bit set.
        guard seconds < 1 << 63, nanos < 1 << 31 else { return nil }
        let maxSeconds: UInt64 = 366 * 86_400
        return Int(min(seconds, maxSeconds)) * 1_000 + Int(min(nanos, 999_999_999)) / 1_000_000
    }

    /// `envoy.config.core.v3.Address`: the `address` (2) and `port_value` (3, 0 when absent) of
    /// its `socket_address` (1). A pipe or internal address gives nil.
    static func socketAddress(in address: UnsafeRawBufferPointer) throws(ProtobufWireDefect)
        -> (host: UnsafeRawBufferPointer, port: UInt64)?
    {
        var reader = ProtobufWireReader(address)
        var host: UnsafeRawBufferPointer? = nil
        var port: UInt64 = 0
        while let field = try reader.nextField() {
            guard field.number == 1 else {
                try reader.skip(field.wireType)
                continue
            }
            guard let socketAddress = try reader.lengthDelimited(ifWireType: field.wireType) else { continue }
            var socketReader = ProtobufWireReader(socketAddress)
            while let socketField = try socketReader.nextField() {
                switch socketField.number {
                case 2: host = try socketReader.lengthDelimited(ifWireType: socketField.wireType) ?? host
                case 3: port = try socketReader.varint(ifWireType: socketField.wireType) ?? port
                default: try socketReader.skip(socketField.wireType)
                }
            }
        }
        return host.map { ($0, port) }
    }

    /// `host:port` as `%UPSTREAM_HOST%` prints it (`[::1]:8080` for IPv6), written into
    /// `scratch`; nil (the host alone then) without a scratch, a port, or room for both.
    static func hostAndPort(
        _ host: UnsafeRawBufferPointer, _ port: UInt64, into scratch: UnsafeMutableRawBufferPointer?
    ) -> UnsafeRawBufferPointer? {
        guard let scratch, port > 0, port <= 65_535, !host.isEmpty else { return nil }
        let bracketed = host.contains(UInt8(ascii: ":"))
        var digitCount = 1
        var rest = port / 10
        while rest > 0 {
            digitCount += 1
            rest /= 10
        }
        let length = host.count + (bracketed ? 2 : 0) + 1 + digitCount
        guard length <= scratch.count else { return nil }
        var at = 0
        if bracketed {
            scratch[at] = UInt8(ascii: "[")
            at += 1
        }
        UnsafeMutableRawBufferPointer(rebasing: scratch[at..<(at + host.count)]).copyMemory(from: host)
        at += host.count
        if bracketed {
            scratch[at] = UInt8(ascii: "]")
            at += 1
        }
        scratch[at] = UInt8(ascii: ":")
        at += digitCount + 1
        // The port's digits, last one first.
        rest = port
        for position in stride(from: at - 1, to: at - 1 - digitCount, by: -1) {
            scratch[position] = UInt8(truncatingIfNeeded: 0x30 + rest % 10)
            rest /= 10
        }
        return UnsafeRawBufferPointer(rebasing: scratch[0..<at])
    }

    /// `ResponseFlags`' field numbers (Envoy 1.40) → flags; index = field number.
    static let flagByResponseFlagsField: [ResponseFlag?] = [
        nil,  // 0: no field
        .failedLocalHealthCheck,  // 1 failed_local_healthcheck
        .noHealthyUpstream,  // 2 no_healthy_upstream
        .upstreamRequestTimeout,  // 3 upstream_request_timeout
        .localReset,  // 4 local_reset
        .upstreamRemoteReset,  // 5 upstream_remote_reset
        .upstreamConnectionFailure,  // 6 upstream_connection_failure
        .upstreamConnectionTermination,  // 7 upstream_connection_termination
        .upstreamOverflow,  // 8 upstream_overflow
        .noRouteFound,  // 9 no_route_found
        .delayInjected,  // 10 delay_injected
        .faultInjected,  // 11 fault_injected
        .rateLimited,  // 12 rate_limited
        .unauthorizedExternalService,  // 13 unauthorized_details (a message)
        .rateLimitServiceError,  // 14 rate_limit_service_error
        .downstreamConnectionTermination,  // 15 downstream_connection_termination
        .upstreamRetryLimitExceeded,  // 16 upstream_retry_limit_exceeded
        .streamIdleTimeout,  // 17 stream_idle_timeout
        .invalidEnvoyRequestHeaders,  // 18 invalid_envoy_request_headers
        .downstreamProtocolError,  // 19 downstream_protocol_error
        .upstreamMaxStreamDurationReached,  // 20 upstream_max_stream_duration_reached
        .responseFromCacheFilter,  // 21 response_from_cache_filter
        .noFilterConfigFound,  // 22 no_filter_config_found
        .durationTimeout,  // 23 duration_timeout
        .upstreamProtocolError,  // 24 upstream_protocol_error
        .noClusterFound,  // 25 no_cluster_found
        .overloadManagerTerminated,  // 26 overload_manager
        .dnsResolutionFailed,  // 27 dns_resolution_failure
        .downstreamRemoteReset,  // 28 downstream_remote_reset
    ]
    static let unauthorizedDetailsField = 13
}

/// Room for `[` + the longest IPv6 text (45) + `]:65535`, and hostnames up to 120 bytes.
struct HostScratch {
    var bytes:
        (
            UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
            UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64
        ) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
}

/// `StreamAccessLogsMessage`'s field numbers.
enum StreamAccessLogsMessageField {
    static let identifier = 1
    static let httpLogs = 2
    static let tcpLogs = 3
}

/// `AccessLogCommon`'s field numbers that are read.
enum AccessLogCommonField {
    static let timeToLastDownstreamTxByte = 12
    static let upstreamRemoteAddress = 13
    static let upstreamCluster = 15
    static let responseFlags = 16
    static let upstreamTransportFailureReason = 18
    static let routeName = 19
    static let duration = 23
    static let upstreamRequestAttemptCount = 24
}
