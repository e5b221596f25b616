import AccessLogParser
import Testing

/// Decodes one request with `decoder`, each record copied out into plain values.
func decodeRequest(
    _ bytes: [UInt8], decoder: inout OTLPLogsDecoder
) -> (units: Int?, defect: ProtobufWireDefect?, entries: [Outcome]) {
    bytes.withUnsafeBytes { buffer in
        var entries: [Outcome] = []
        do throws(ProtobufWireDefect) {
            let units = try decoder.decodeExportRequest(buffer) { result in
                switch result {
                case .record(let record): entries.append(.record(Parsed(record)))
                case .malformed(let reason): entries.append(.malformed(reason))
                }
            }
            return (units, nil, entries)
        } catch {
            return (nil, error, entries)
        }
    }
}

func decodeRequest(_ bytes: [UInt8], format: LogFormat = .istio, fields: RecordFieldSet = .all) throws
    -> (units: Int?, defect: ProtobufWireDefect?, entries: [Outcome])
{
    var decoder = try OTLPLogsDecoder(bodyFormat: format, fields: fields)
    return decodeRequest(bytes, decoder: &decoder)
}

func inspect(_ bytes: [UInt8], format: LogFormat = .istio) -> OTLPLogsInspection {
    bytes.withUnsafeBytes { OTLPLogsDecoder.inspect($0, keys: OTLPAttributeKeys(bodyFormat: format, fields: .all)) }
}

/// A length-delimited field of any length: the tag, the length as a varint, the bytes.
func protobufField(_ number: Int, _ body: [UInt8]) -> [UInt8] {
    var bytes = [UInt8(number << 3 | 2)]
    var length = body.count
    while length >= 0x80 {
        bytes.append(UInt8(length & 0x7F) | 0x80)
        length >>= 7
    }
    return bytes + [UInt8(length)] + body
}

/// A `KeyValue` whose value is a string `AnyValue`.
func stringAttribute(_ key: String, _ value: String) -> [UInt8] {
    protobufField(1, Array(key.utf8)) + protobufField(2, protobufField(1, Array(value.utf8)))
}

/// A `LogRecord` with the flags, code and cluster as attributes (field 6).
func attributeRecord(flags: String, code: String, cluster: String) -> [UInt8] {
    protobufField(6, stringAttribute("response_flags", flags))
        + protobufField(6, stringAttribute("response_code", code))
        + protobufField(6, stringAttribute("upstream_cluster", cluster))
}

/// `resource_logs { scope_logs { log_records ... } }` from the records' bytes.
func request(scopeBodies: [[UInt8]]) -> [UInt8] {
    protobufField(1, scopeBodies.flatMap { protobufField(2, $0) })
}

@Suite("OTLP logs: ExportLogsServiceRequest (docs/formats.md §10.3)")
struct OTLPLogsDecoderTests {
    @Test("attributes that name the fields give 3 records: every field read, long flag names and Istio's ';' too")
    func attributesOnly() throws {
        let decoded = try decodeRequest(OTLPLogsFixtures.attributesOnly)
        #expect(decoded.units == 3)
        #expect(decoded.defect == nil)
        #expect(decoded.entries.count == 3)

        let ok = try #require(decoded.entries[0].record)
        #expect(ok.code == 200)
        #expect(ok.flags == [])
        #expect(ok.cluster == "outbound|8080||reviews.default.svc.cluster.local")
        #expect(ok.host == "10.1.2.3:8080")
        #expect(ok.details == "via_upstream")
        #expect(ok.route == "reviews-default")
        #expect(ok.transportFailure == nil)

        let refused = try #require(decoded.entries[1].record)
        #expect(refused.code == 503)
        #expect(refused.shortFlags == ["UF"])
        #expect(refused.cluster == "outbound|9001||payments.default.svc.cluster.local")
        #expect(refused.host == "127.0.0.1:18019")
        #expect(
            refused.details
                == "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}"
        )
        #expect(refused.transportFailure == "delayed_connect_error:_Connection_refused")
        #expect(refused.route == "payments-default")

        let longNames = try #require(decoded.entries[2].record)
        #expect(longNames.code == 503)
        #expect(Set(longNames.shortFlags) == ["UF", "URX"])
        #expect(longNames.unknownFlagCount == 0)
        #expect(longNames.cluster == "outbound|9001||payments.default.svc.cluster.local")
    }

    @Test(
        "a body that is Istio's text line (with its newline) parses with format istio: 200, then UF, then not_access_log"
    )
    func bodyOnlyIstio() throws {
        let decoded = try decodeRequest(OTLPLogsFixtures.bodyOnlyIstio, format: .istio)
        #expect(decoded.units == 3)
        #expect(decoded.entries.count == 3)
        let ok = try #require(decoded.entries[0].record)
        #expect(ok.code == 200)
        #expect(ok.flags == [])
        #expect(ok.cluster == "outbound|8080||reviews.default.svc.cluster.local")
        #expect(ok.route == "reviews-default")
        let refused = try #require(decoded.entries[1].record)
        #expect(refused.code == 503)
        #expect(refused.shortFlags == ["UF"])
        #expect(refused.cluster == "outbound|9001||payments.default.svc.cluster.local")
        #expect(refused.transportFailure == "delayed_connect_error:_Connection_refused")
        #expect(decoded.entries[2] == .malformed(.notAccessLog))
    }

    @Test("format auto recognises Istio's body lines as a file stream would, and says which variant")
    func bodyAuto() throws {
        var decoder = try OTLPLogsDecoder(bodyFormat: .auto, fields: .all)
        let decoded = decodeRequest(OTLPLogsFixtures.bodyOnlyIstio, decoder: &decoder)
        #expect(decoded.entries.compactMap(\.record).map(\.code) == [200, 503])
        #expect(decoder.recognizedBodyFormat == "istio (1.9+)")
    }

    @Test("a body in a format the source does not name is a malformed record, by the file parser's reason")
    func bodyWrongFormat() throws {
        let decoded = try decodeRequest(OTLPLogsFixtures.bodyOnlyIstio, format: .json(JSONKeyMap()))
        #expect(decoded.entries == [.malformed(.notAccessLog), .malformed(.notAccessLog), .malformed(.notAccessLog)])
    }

    @Test(
        "attributes naming the flags win over the body; attributes without flags leave it to the body; a kvlist body reads like attributes"
    )
    func attributesAndBody() throws {
        let decoded = try decodeRequest(OTLPLogsFixtures.attributesAndBody)
        #expect(decoded.entries.count == 3)
        let fromAttributes = try #require(decoded.entries[0].record)
        #expect(fromAttributes.code == 503)
        #expect(fromAttributes.shortFlags == ["UH"])
        #expect(fromAttributes.cluster == "outbound|8080||ratings.default.svc.cluster.local")
        #expect(fromAttributes.route == nil)
        let fromBody = try #require(decoded.entries[1].record)
        #expect(fromBody.code == 503)
        #expect(fromBody.shortFlags == ["UF"])
        #expect(fromBody.cluster == "outbound|9001||payments.default.svc.cluster.local")
        let fromList = try #require(decoded.entries[2].record)
        #expect(fromList.code == 504)
        #expect(fromList.shortFlags == ["UT"])
        #expect(fromList.cluster == "outbound|8080||slow.default.svc.cluster.local")
    }

    @Test(
        "int_value codes count; a code outside 0...999, an int flag or a bool code is malformed by reason; no flags key is no_flags_field"
    )
    func typedValues() throws {
        let decoded = try decodeRequest(OTLPLogsFixtures.typedValues)
        #expect(decoded.entries.count == 7)
        let typed = try #require(decoded.entries[0].record)
        #expect(typed.code == 503)
        #expect(typed.shortFlags == ["UF"])
        #expect(typed.cluster == "a")
        #expect(typed.duration == 1002)
        #expect(decoded.entries[1] == .malformed(.badResponseCode))
        #expect(decoded.entries[2] == .malformed(.badResponseCode))
        #expect(decoded.entries[3] == .malformed(.badFlags))
        #expect(decoded.entries[4] == .malformed(.badResponseCode))
        let unsetFlags = try #require(decoded.entries[5].record)
        #expect(unsetFlags.code == 204)
        #expect(unsetFlags.flags == [])
        #expect(unsetFlags.cluster == nil)
        #expect(decoded.entries[6] == .malformed(.noFlagsField))
    }

    @Test("2 resources of 2 scopes each give their 7 records in order")
    func manyResources() throws {
        let decoded = try decodeRequest(OTLPLogsFixtures.manyResources)
        #expect(decoded.units == 7)
        let records = decoded.entries.compactMap(\.record)
        #expect(records.count == 7)
        #expect(records.map(\.cluster) == ["r1s1", "r1s2", "r1s2", nil, "r2s1", "r2s1", "r2s2"])
        #expect(records.map(\.code) == [200, 503, 503, 404, 200, 503, 201])
        #expect(records.map(\.shortFlags) == [[], ["UF"], ["UF"], ["NR"], [], ["UO"], []])
    }

    @Test("a broken log record is 1 bad_protobuf between its 2 intact neighbours; inspect counts 3 units, 1 rejected")
    func brokenRecord() throws {
        let good = attributeRecord(flags: "UF", code: "503", cluster: "a")
        // An attribute whose declared length runs past the record's end.
        let broken: [UInt8] = [0x32, 0x09, 0x0A, 0x01]
        let bytes = request(scopeBodies: [
            protobufField(2, good) + protobufField(2, broken) + protobufField(2, good)
        ])
        let decoded = try decodeRequest(bytes)
        #expect(decoded.defect == nil)
        #expect(decoded.entries.map(\.reason) == [nil, .badProtobuf, nil])
        #expect(inspect(bytes) == OTLPLogsInspection(units: 3, rejected: 1))
        #expect(bytes.withUnsafeBytes { OTLPLogsDecoder.unitCount(in: $0) } == 3)
    }

    @Test(
        "a scope whose framing breaks after 1 record gives that record and 1 bad_protobuf; the next scope still counts")
    func brokenScope() throws {
        let good = attributeRecord(flags: "-", code: "200", cluster: "b")
        // Scope 1: a record, then a tag with no value. Scope 2: a record.
        let scopeOne = protobufField(2, good) + [0x12]
        let scopeTwo = protobufField(2, good)
        let bytes = protobufField(1, protobufField(2, scopeOne) + protobufField(2, scopeTwo))
        let decoded = try decodeRequest(bytes)
        #expect(decoded.defect == nil)
        #expect(decoded.entries.map(\.reason) == [nil, .badProtobuf, nil])
        #expect(inspect(bytes) == OTLPLogsInspection(units: 3, rejected: 1))
    }

    @Test(
        "a request whose own framing breaks reports the record before the break, then throws; inspect counts the break")
    func brokenRequest() throws {
        let good = attributeRecord(flags: "UF", code: "503", cluster: "a")
        let bytes = request(scopeBodies: [protobufField(2, good)]) + [0x0A, 0x40, 0x00]
        let decoded = try decodeRequest(bytes)
        #expect(decoded.defect == .truncated)
        #expect(decoded.entries.map(\.reason) == [nil])
        #expect(inspect(bytes) == OTLPLogsInspection(units: 2, rejected: 1))
        #expect(bytes.withUnsafeBytes { OTLPLogsDecoder.unitCount(in: $0) } == 2)
    }

    @Test("a record with neither flag attributes nor a body is no_flags_field; an empty request has no units")
    func emptyRecords() throws {
        let bytes = request(scopeBodies: [protobufField(2, protobufField(6, stringAttribute("user_agent", "curl")))])
        #expect(try decodeRequest(bytes).entries == [.malformed(.noFlagsField)])
        #expect(try decodeRequest([]).units == 0)
        #expect(inspect([]) == OTLPLogsInspection())
    }

    @Test("for each fixture, inspect counts the units the decode reports and rejects exactly its bad_protobuf ones")
    func inspectAgreesWithDecode() throws {
        let fixtures = [
            OTLPLogsFixtures.attributesOnly, OTLPLogsFixtures.bodyOnlyIstio, OTLPLogsFixtures.attributesAndBody,
            OTLPLogsFixtures.typedValues, OTLPLogsFixtures.manyResources,
        ]
        for fixture in fixtures {
            let decoded = try decodeRequest(fixture)
            #expect(inspect(fixture) == OTLPLogsInspection(units: decoded.entries.count, rejected: 0))
        }
    }

    @Test("counting fields: failure details only on flagged records, the route left absent, the host read")
    func countingFields() throws {
        let decoded = try decodeRequest(OTLPLogsFixtures.attributesOnly, fields: .countingWithFailureDetails)
        let ok = try #require(decoded.entries[0].record)
        #expect(ok.details == nil)
        #expect(ok.host == "10.1.2.3:8080", "the host is read on every entry: hosts answering 2xx tell one bad host")
        #expect(ok.route == nil)
        #expect(ok.cluster == "outbound|8080||reviews.default.svc.cluster.local")
        let refused = try #require(decoded.entries[1].record)
        #expect(refused.details?.hasPrefix("upstream_reset_before_response_started") == true)
        #expect(refused.transportFailure == "delayed_connect_error:_Connection_refused")
    }

    @Test("with format json, json_keys rename the attribute keys too")
    func renamedKeys() throws {
        var keys = JSONKeyMap()
        let renamedFlags = keys.setKey("flags", forField: "response_flags")
        let renamedCode = keys.setKey("status", forField: "response_code")
        #expect(renamedFlags && renamedCode)
        let record =
            protobufField(6, stringAttribute("flags", "UF"))
            + protobufField(6, stringAttribute("status", "503"))
        let decoded = try decodeRequest(request(scopeBodies: [protobufField(2, record)]), format: .json(keys))
        #expect(decoded.entries.map(\.record?.code) == [503])
        #expect(decoded.entries.map(\.record?.shortFlags) == [["UF"]])
    }
}
