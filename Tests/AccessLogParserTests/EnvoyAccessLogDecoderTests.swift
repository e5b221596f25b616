import AccessLogParser
import Testing

/// Decodes one message with `decoder`, each entry copied out into plain values.
func decodeMessage(
    _ bytes: [UInt8], decoder: EnvoyAccessLogDecoder = EnvoyAccessLogDecoder(fields: .all)
) -> (summary: StreamAccessLogsSummary?, defect: ProtobufWireDefect?, entries: [Outcome]) {
    bytes.withUnsafeBytes { buffer in
        var entries: [Outcome] = []
        do throws(ProtobufWireDefect) {
            let summary = try decoder.decodeStreamAccessLogsMessage(buffer) { result in
                switch result {
                case .record(let record): entries.append(.record(Parsed(record)))
                case .malformed(let reason): entries.append(.malformed(reason))
                }
            }
            return (summary, nil, entries)
        } catch {
            return (nil, error, entries)
        }
    }
}

/// Appends a length-delimited field: the tag, the length as a varint, the bytes.
func lengthDelimitedField(_ number: Int, _ body: [UInt8]) -> [UInt8] {
    precondition(body.count < 128, "one-byte lengths only")
    return [UInt8(number << 3 | 2), UInt8(body.count)] + body
}

/// A varint field: the tag, then the value in 7-bit groups, low first.
func varintField(_ number: Int, _ value: UInt64) -> [UInt8] {
    var bytes: [UInt8] = [UInt8(number << 3)]
    var rest = value
    while rest >= 0x80 {
        bytes.append(UInt8(rest & 0x7F) | 0x80)
        rest >>= 7
    }
    return bytes + [UInt8(rest)]
}

/// A two-byte tag for field numbers 16...2047 (AccessLogCommon's 23 and 24).
func tag(_ number: Int, wireType: Int) -> [UInt8] {
    let key = number << 3 | wireType
    return key < 0x80 ? [UInt8(key)] : [UInt8(key & 0x7F) | 0x80, UInt8(key >> 7)]
}

/// One HTTP entry in a StreamAccessLogsMessage whose AccessLogCommon holds `common` (already
/// encoded) plus the UF flag and the cluster `c`.
func messageWithCommon(_ common: [UInt8]) -> [UInt8] {
    let flags = tag(16, wireType: 2) + [2] + varintField(6, 1)  // response_flags { upstream_connection_failure }
    let cluster = lengthDelimitedField(15, Array("c".utf8))
    return lengthDelimitedField(2, lengthDelimitedField(1, lengthDelimitedField(1, cluster + flags + common)))
}

/// `google.protobuf.Duration` as AccessLogCommon field `number`.
func durationField(_ number: Int, seconds: UInt64, nanos: UInt64) -> [UInt8] {
    let body = varintField(1, seconds) + varintField(2, nanos)
    precondition(body.count < 128)
    return tag(number, wireType: 2) + [UInt8(body.count)] + body
}

@Suite("Envoy gRPC access-log service messages (docs/formats.md §10)")
struct EnvoyAccessLogDecoderTests {
    @Test("a stream's first message gives its log name and its 3 HTTP entries with every field read")
    func firstMessage() throws {
        let decoded = decodeMessage(EnvoyALSFixtures.firstMessageHttp)
        let summary = try #require(decoded.summary)
        #expect(summary.hasIdentifier)
        #expect(summary.logName == "flagwatch_als")
        #expect(summary.httpEntryCount == 3)
        #expect(summary.tcpEntryCount == 0)
        #expect(decoded.entries.count == 3)

        let ok = try #require(decoded.entries[0].record)
        #expect(ok.code == 200)
        #expect(ok.flags == [])
        #expect(ok.cluster == "outbound|8080||reviews.default.svc.cluster.local")
        #expect(ok.host == "10.1.2.3:8080")
        #expect(ok.route == "default")
        #expect(ok.details == "via_upstream")
        #expect(ok.transportFailure == nil)
        #expect(ok.flagsText == nil)
        #expect(ok.unknownFlagCount == 0)

        let refused = try #require(decoded.entries[1].record)
        #expect(refused.code == 503)
        #expect(refused.shortFlags == ["UF"])
        #expect(refused.cluster == "outbound|9001||payments.default.svc.cluster.local")
        #expect(refused.host == "127.0.0.1:9001")
        #expect(refused.route == "payments")
        #expect(refused.details == "upstream_reset_before_response_started{remote_connection_failure}")
        #expect(refused.transportFailure == "delayed connect error: Connection refused")

        let retried = try #require(decoded.entries[2].record)
        #expect(retried.code == 503)
        #expect(Set(retried.shortFlags) == ["UF", "URX"])
        #expect(retried.cluster == "outbound|9002||ledger.default.svc.cluster.local")
        #expect(retried.host == nil)
    }

    @Test("a later message has no identifier; NR without a cluster, DC without a code (0), UAEX from its message")
    func laterMessage() throws {
        let decoded = decodeMessage(EnvoyALSFixtures.noRouteAndNoResponse)
        let summary = try #require(decoded.summary)
        #expect(!summary.hasIdentifier)
        #expect(summary.logName == nil)
        #expect(summary.httpEntryCount == 3)
        let records = decoded.entries.compactMap(\.record)
        #expect(records.count == 3)
        #expect(records.map(\.code) == [404, 0, 403])
        #expect(records.map(\.shortFlags) == [["NR"], ["DC"], ["UAEX"]])
        let reviews = "outbound|8080||reviews.default.svc.cluster.local"
        #expect(records.map(\.cluster) == [nil, reviews, reviews])
        #expect(records.map(\.details) == ["route_not_found", "downstream_remote_disconnect", "ext_authz_denied"])
        // A pipe address is not a host.
        #expect(records[1].host == nil)
    }

    @Test("each of the 28 ResponseFlags fields of Envoy 1.40 gives its own flag, in field order")
    func everyFlagField() throws {
        let decoded = decodeMessage(EnvoyALSFixtures.everyFlag)
        #expect(decoded.summary?.httpEntryCount == 29)
        let records = decoded.entries.compactMap(\.record)
        #expect(records.count == 29)
        let expected = [
            "LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "RL", "UAEX", "RLSE", "DC", "URX",
            "SI", "IH", "DPE", "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC", "OM", "DF", "DR",
        ]
        #expect(records.prefix(28).map(\.shortFlags) == expected.map { [$0] })
        #expect(
            records.prefix(28).map(\.code) == [
                503, 503, 504, 503, 503, 503, 503, 503, 404, 200, 503, 429, 403, 500, 0, 503, 408, 400, 400, 408,
                200, 500, 0, 502, 503, 503, 503, 0,
            ])
        // A flag from a newer Envoy (field 40) is skipped; the known flag beside it still counts.
        #expect(records[28].shortFlags == ["UO"])
        #expect(records[28].unknownFlagCount == 0)
    }

    @Test("Envoy 1.40's ResponseFlags cover every core flag but DO and UDO")
    func flagsWithoutAField() {
        let decoded = decodeMessage(EnvoyALSFixtures.everyFlag)
        var seen = ResponseFlagSet()
        for entry in decoded.entries { for flag in entry.record?.flags ?? [] { seen.insert(ResponseFlagSet(flag)) } }
        let missing = ResponseFlag.allCases.filter { !seen.contains($0) }
        #expect(missing.map(\.shortName) == ["DO", "UDO"])
    }

    @Test("2 TCP entries count under code 0, the second with UF")
    func tcpEntries() throws {
        let decoded = decodeMessage(EnvoyALSFixtures.tcpLogs)
        let summary = try #require(decoded.summary)
        #expect(summary.tcpEntryCount == 2)
        #expect(summary.httpEntryCount == 0)
        let records = decoded.entries.compactMap(\.record)
        #expect(records.map(\.code) == [0, 0])
        #expect(records.map(\.shortFlags) == [[], ["UF"]])
        #expect(
            records.map(\.cluster) == [
                "outbound|5432||db.default.svc.cluster.local", "outbound|5433||db.default.svc.cluster.local",
            ])
        #expect(records.map(\.host) == ["10.1.2.4:5432", nil])
    }

    @Test("a response code of 1000 is bad_response_code and the 2 entries around it are read")
    func badResponseCode() {
        let decoded = decodeMessage(EnvoyALSFixtures.badResponseCode)
        #expect(decoded.entries.count == 3)
        #expect(decoded.entries[0].record?.code == 200)
        #expect(decoded.entries[1] == .malformed(.badResponseCode))
        #expect(decoded.entries[2].record?.code == 503)
        #expect(decoded.entries[2].record?.cluster == "c")
    }

    @Test("the counting fields leave the route absent and read the host; details only on flagged entries")
    func onlyTheFieldsAsked() {
        let decoder = EnvoyAccessLogDecoder(fields: .countingWithFailureDetails)
        let records = decodeMessage(EnvoyALSFixtures.firstMessageHttp, decoder: decoder).entries.compactMap(\.record)
        #expect(records.count == 3)
        #expect(records.map(\.route) == [nil, nil, nil])
        #expect(records.map(\.host) == ["10.1.2.3:8080", "127.0.0.1:9001", nil])
        #expect(records[0].details == nil)
        #expect(records[1].details == "upstream_reset_before_response_started{remote_connection_failure}")
        #expect(records[1].transportFailure == "delayed connect error: Connection refused")
        #expect(records.map(\.code) == [200, 503, 503])
    }

    @Test("duration (23) gives %DURATION%'s milliseconds and upstream_request_attempt_count (24) the tries")
    func durationAndAttempts() throws {
        // 10 s 1.9 ms: Istio's connect timeout, as Envoy 1.40 reports a dropped SYN's UF.
        let common = durationField(23, seconds: 10, nanos: 1_900_000) + tag(24, wireType: 0) + [3]
        let entry = try #require(decodeMessage(messageWithCommon(common)).entries.first?.record)
        #expect(entry.shortFlags == ["UF"])
        #expect(entry.duration == 10_001)
        #expect(entry.attempts == 3)
    }

    @Test("without duration, time_to_last_downstream_tx_byte (12) stands in; with both, duration wins")
    func durationFallback() throws {
        let older = durationField(12, seconds: 0, nanos: 998_000_000)
        #expect(decodeMessage(messageWithCommon(older)).entries.first?.record?.duration == 998)
        let both = durationField(12, seconds: 0, nanos: 998_000_000) + durationField(23, seconds: 1, nanos: 0)
        #expect(decodeMessage(messageWithCommon(both)).entries.first?.record?.duration == 1_000)
        // Field order on the wire does not matter.
        let reversed = durationField(23, seconds: 1, nanos: 0) + durationField(12, seconds: 0, nanos: 998_000_000)
        #expect(decodeMessage(messageWithCommon(reversed)).entries.first?.record?.duration == 1_000)
        // Neither: no duration, as for a text line without %DURATION%.
        let none = try #require(decodeMessage(messageWithCommon([])).entries.first?.record)
        #expect(none.duration == nil && none.attempts == nil)
    }

    @Test("a negative duration is absent; a huge one and a huge attempt count are clamped, not trapped on")
    func hostileDurations() throws {
        let negative = durationField(23, seconds: UInt64(bitPattern: -5), nanos: 0)
        #expect(decodeMessage(messageWithCommon(negative)).entries.first?.record?.duration == nil)
        let huge =
            durationField(23, seconds: UInt64(Int64.max), nanos: UInt64(Int32.max))
            + tag(24, wireType: 0) + Array(varintField(1, UInt64.max).dropFirst())
        let entry = try #require(decodeMessage(messageWithCommon(huge)).entries.first?.record)
        #expect(entry.duration == 366 * 86_400 * 1_000 + 999)
        #expect(entry.attempts == Int(UInt32.max))
        // A duration whose wire type is wrong is skipped, like any other field.
        let wrongType = tag(23, wireType: 0) + [7]
        #expect(decodeMessage(messageWithCommon(wrongType)).entries.first?.record?.duration == nil)
    }

    @Test("with the counting fields, duration and tries are kept on flagged entries only")
    func durationOnlyWhenFlagged() throws {
        let decoder = EnvoyAccessLogDecoder(fields: .countingWithFailureDetails)
        let common = durationField(23, seconds: 2, nanos: 0) + tag(24, wireType: 0) + [2]
        let flagged = try #require(decodeMessage(messageWithCommon(common), decoder: decoder).entries.first?.record)
        #expect(flagged.duration == 2_000 && flagged.attempts == 2)
        let cluster = lengthDelimitedField(15, Array("c".utf8))
        let unflagged = lengthDelimitedField(2, lengthDelimitedField(1, lengthDelimitedField(1, cluster + common)))
        let plain = try #require(decodeMessage(unflagged, decoder: decoder).entries.first?.record)
        #expect(plain.duration == nil && plain.attempts == nil)
    }

    @Test("the upstream host is written host:port as %UPSTREAM_HOST% prints it, IPv6 in brackets")
    func hostAndPort() throws {
        /// A length-delimited field of any length (the length as a varint).
        func field(_ number: Int, _ body: [UInt8]) -> [UInt8] {
            tag(number, wireType: 2) + Array(varintField(1, UInt64(body.count)).dropFirst()) + body
        }
        func host(_ address: String, port: UInt64?) throws -> String? {
            var socket = field(2, Array(address.utf8))
            if let port { socket += varintField(3, port) }
            let flags = tag(16, wireType: 2) + [2] + varintField(6, 1)
            let common = field(15, Array("c".utf8)) + flags + field(13, field(1, socket))
            let message = field(2, field(1, field(1, common)))
            return try #require(decodeMessage(message).entries.first?.record).host
        }
        #expect(try host("10.8.3.14", port: 8080) == "10.8.3.14:8080")
        #expect(try host("::1", port: 9080) == "[::1]:9080")
        #expect(try host("fd00:10:244::1b", port: 65_535) == "[fd00:10:244::1b]:65535")
        // No port (0 is proto3's absent), or one no TCP port can be: the address alone.
        #expect(try host("10.8.3.14", port: nil) == "10.8.3.14")
        #expect(try host("10.8.3.14", port: 70_000) == "10.8.3.14")
        // A name too long for the scratch keeps its name without the port.
        let long = String(repeating: "h", count: 125)
        #expect(try host(long, port: 443) == long)
        #expect(try host(String(repeating: "h", count: 100), port: 443) == String(repeating: "h", count: 100) + ":443")
    }

    @Test("an entry with broken bytes is bad_protobuf and the next entry is still read")
    func brokenEntry() {
        // http_logs { log_entry { <a varint tag with no value> } log_entry { upstream_cluster "b" } }
        let broken = lengthDelimitedField(1, [0x08])
        let good = lengthDelimitedField(1, lengthDelimitedField(1, lengthDelimitedField(15, Array("b".utf8))))
        let message = lengthDelimitedField(2, broken + good)
        let decoded = decodeMessage(message)
        #expect(decoded.defect == nil)
        #expect(decoded.summary?.httpEntryCount == 2)
        #expect(decoded.entries.count == 2)
        #expect(decoded.entries[0] == .malformed(.badProtobuf))
        #expect(decoded.entries[1].record?.cluster == "b")
    }

    @Test("a message cut short reports the entries before the cut and then its defect")
    func truncatedMessage() {
        let message = EnvoyALSFixtures.firstMessageHttp
        // Cut inside the http_logs field: its length runs past the end.
        let decoded = decodeMessage(Array(message.dropLast(10)))
        #expect(decoded.defect == .truncated)
        #expect(decoded.entries.count == 0)
    }

    @Test("every prefix of every fixture decodes or fails without trapping, and garbage does too")
    func hostileBytes() {
        let fixtures = [
            EnvoyALSFixtures.firstMessageHttp, EnvoyALSFixtures.noRouteAndNoResponse, EnvoyALSFixtures.everyFlag,
            EnvoyALSFixtures.tcpLogs, EnvoyALSFixtures.badResponseCode,
        ]
        var decodedPrefixes = 0
        for fixture in fixtures {
            for length in 0...fixture.count {
                _ = decodeMessage(Array(fixture.prefix(length)))
                decodedPrefixes += 1
            }
        }
        #expect(decodedPrefixes == fixtures.map { $0.count + 1 }.reduce(0, +))
        // An 11-byte varint, a group (wire type 3), field number 0, a length past the end.
        #expect(decodeMessage([0x08] + [UInt8](repeating: 0xFF, count: 10) + [0x01]).defect == .overlongVarint)
        #expect(decodeMessage([0x0B]).defect == .unsupportedWireType)
        #expect(decodeMessage([0x02, 0x00]).defect == .invalidFieldNumber)
        #expect(decodeMessage([0x12, 0x7F, 0x00]).defect == .truncated)
        // Fields of the wrong wire type where a message is expected are skipped, not misread.
        #expect(decodeMessage([0x10, 0x01, 0x1D, 0x01, 0x02, 0x03, 0x04]).entries.count == 0)
        #expect(decodeMessage([0x10, 0x01, 0x1D, 0x01, 0x02, 0x03, 0x04]).defect == nil)
    }
}

@Suite("Counting a message's entries without decoding them")
struct EnvoyAccessLogEntryCountTests {
    @Test("entryCount gives 3, 3, 29, 2 and 3 for the fixtures, and 0 for garbage")
    func entryCounts() {
        let fixtures = [
            EnvoyALSFixtures.firstMessageHttp, EnvoyALSFixtures.noRouteAndNoResponse, EnvoyALSFixtures.everyFlag,
            EnvoyALSFixtures.tcpLogs, EnvoyALSFixtures.badResponseCode,
        ]
        let counts = fixtures.map { fixture in
            fixture.withUnsafeBytes { EnvoyAccessLogDecoder.entryCount(in: $0) }
        }
        #expect(counts == [3, 3, 29, 2, 3])
        let garbage: [UInt8] = [0xFF, 0xFF, 0xFF]
        #expect(garbage.withUnsafeBytes { EnvoyAccessLogDecoder.entryCount(in: $0) } == 0)
    }
}
