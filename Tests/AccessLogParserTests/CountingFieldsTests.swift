import AccessLogParser
import Testing

/// The pipeline parses with only ``RecordFieldSet/counting`` (code, flags, cluster), so the
/// plans read each line only as far as those fields. These tests check that reading less gives
/// the same counts as reading everything, on the same inputs as the full-record tests.
func countingParse(_ line: String, format: LogFormat) throws -> Outcome {
    var parser = try AccessLogParser(format: format, fields: .counting)
    return parse(line, with: &parser)
}

@Suite("Counting fields only (what StreamPipeline decodes)")
struct CountingFieldsTests {
    static let layouts: [Layout] = [.istio1_9, .istio1_8, .istio1_3, .istio1_2, .envoy]

    static func formats(for layout: Layout) -> [LogFormat] { layout == .envoy ? [.envoy, .auto] : [.istio, .auto] }

    @Test("code, flags and cluster as with every field; the other fields are not decoded", arguments: layouts)
    func sameCountingFields(layout: Layout) throws {
        var plain = Fields()
        plain.code = "200"
        plain.flags = "-"
        plain.transportFailure = "-"
        for fields in [PresetTests.oldEnvoyTLSFields(), plain, Fields()] {
            let line = fields.line(layout)
            for format in Self.formats(for: layout) {
                let full = try #require(try parse(line, format: format).record, "\(layout) \(format)")
                let counting = try #require(try countingParse(line, format: format).record, "\(layout) \(format)")
                #expect(counting.code == full.code, "\(layout) \(format)")
                #expect(counting.flags == full.flags, "\(layout) \(format)")
                #expect(counting.unknownFlagCount == full.unknownFlagCount, "\(layout) \(format)")
                #expect(counting.cluster == full.cluster, "\(layout) \(format)")
                #expect(
                    counting.host == nil && counting.route == nil && counting.duration == nil
                        && counting.authority == nil,
                    "\(layout) \(format): \(counting)")
            }
        }
    }

    @Test("hostile user agents, counting fields only", arguments: layouts)
    func hostileUserAgentsCounting(layout: Layout) throws {
        for userAgent in hostileUserAgents {
            var fields = Fields()
            fields.code = "200"
            fields.flags = "-"
            fields.userAgent = userAgent
            for format in Self.formats(for: layout) {
                let parsed = try #require(
                    try countingParse(fields.line(layout), format: format).record, "\(layout) UA=\(userAgent)")
                #expect(parsed.code == 200 && parsed.flags == [], "\(layout) UA=\(userAgent)")
                #expect(
                    parsed.cluster == (layout == .envoy ? nil : "outbound|9001||payments.default.svc.cluster.local"),
                    "\(layout) UA=\(userAgent)")
            }
        }
    }

    @Test("an Istio stream changing version, counting fields only")
    func versionChanges() throws {
        var parser = try AccessLogParser(format: .istio, fields: .counting)
        let tls = PresetTests.oldEnvoyTLSFields()
        for layout in [Layout.istio1_2, .istio1_3, .istio1_8, .istio1_9, .istio1_3, .istio1_2, .istio1_9] {
            let parsed = try #require(parse(tls.line(layout), with: &parser).record, "\(layout)")
            #expect(parsed.cluster == "outbound|8080||orders.shop.svc.cluster.local", "\(layout)")
            #expect(parsed.flags == [.upstreamConnectionFailure, .upstreamRetryLimitExceeded], "\(layout)")
            #expect(parsed.code == 503, "\(layout)")
        }
    }

    @Test(
        "malformed lines are malformed for the same reason",
        arguments: [
            Fixtures.envoyAppLog, Fixtures.agentLog, "hello", "[", "",
            #"{"response_flags":"UF""#, #"{"response_code":503}"#, #"{"response_flags":"UF,,X"}"#,
            #"{"response_code":"5x3","response_flags":"-"}"#,
            String(Fixtures.istioUF.prefix(200)), String(Fixtures.istioUF.prefix(60)),
            Fixtures.istioUF.replacing(" 503 UF ", with: " 5x3 UF "),
            Fixtures.istioUF.replacing(" 503 UF ", with: " 503 UF,,URX "),
        ])
    func sameMalformedReasons(line: String) throws {
        for format in [LogFormat.auto, .istio, .json(JSONKeyMap())] {
            let full = try parse(line, format: format)
            let counting = try countingParse(line, format: format)
            #expect(full.reason != nil, "\(format): \(full)")
            #expect(counting == full, "\(format)")
        }
    }

    @Test("the flags are always decoded, whatever fields are asked for")
    func flagsAlwaysDecoded() throws {
        for fields in [RecordFieldSet(), [.upstreamHost], [.routeName, .duration]] {
            var parser = try AccessLogParser(format: .istio, fields: fields)
            let parsed = try #require(parse(Fixtures.istioURXUF, with: &parser).record)
            #expect(parsed.flags == [.upstreamConnectionFailure, .upstreamRetryLimitExceeded])
            #expect(parsed.cluster == nil)
            var json = try AccessLogParser(format: .json(JSONKeyMap()), fields: fields)
            #expect(
                parse(Fixtures.jsonURXUF, with: &json).record?.flags == [
                    .upstreamConnectionFailure, .upstreamRetryLimitExceeded,
                ])
        }
        var parser = try AccessLogParser(format: .istio, fields: [.routeName, .duration])
        let parsed = try #require(parse(Fixtures.istioURXUF, with: &parser).record)
        #expect(parsed.route == "ledger-retry" && parsed.duration == 20)
        #expect(RecordFieldSet.counting == [.responseCode, .responseFlags, .upstreamCluster])
    }
}

@Suite("Failure details only on flagged lines")
struct FlaggedOnlyDetailsTests {
    @Test(
        "details and reason are decoded on flagged lines and left absent on the others, in every layout",
        arguments: CountingFieldsTests.layouts)
    func flaggedOnly(layout: Layout) throws {
        let flagged = PresetTests.oldEnvoyTLSFields()
        var plain = Fields()
        plain.code = "200"
        plain.flags = "-"
        for format in CountingFieldsTests.formats(for: layout) {
            var parser = try AccessLogParser(format: format, fields: .countingWithFailureDetails)
            let full = try #require(try parse(flagged.line(layout), format: format).record)
            let withFlags = try #require(parse(flagged.line(layout), with: &parser).record, "\(layout) \(format)")
            #expect(
                withFlags.details == full.details && withFlags.transportFailure == full.transportFailure,
                "\(layout) \(format)")
            #expect(withFlags.cluster == full.cluster && withFlags.flags == full.flags && withFlags.code == full.code)
            let withoutFlags = try #require(parse(plain.line(layout), with: &parser).record, "\(layout) \(format)")
            #expect(
                withoutFlags.details == nil && withoutFlags.transportFailure == nil,
                "\(layout) \(format): \(withoutFlags)")
            #expect(withoutFlags.code == 200 && withoutFlags.flags == [])
        }
    }

    @Test("JSON decodes them on every line (keys come in any order); flagged lines as with every field")
    func json() throws {
        var parser = try AccessLogParser(format: .json(JSONKeyMap()), fields: .countingWithFailureDetails)
        let parsed = try #require(parse(Fixtures.jsonURXUF, with: &parser).record)
        let full = try #require(try parse(Fixtures.jsonURXUF, format: .json(JSONKeyMap())).record)
        #expect(
            parsed.details == full.details && parsed.transportFailure == full.transportFailure && parsed.details != nil)
    }

    @Test("the counting set is unchanged; the option adds the two detail fields")
    func sets() {
        #expect(RecordFieldSet.countingWithFailureDetails.isSuperset(of: .counting))
        #expect(
            RecordFieldSet.countingWithFailureDetails.contains([.responseCodeDetails, .upstreamTransportFailureReason]))
        #expect(!RecordFieldSet.all.contains(.failureDetailsOnlyWhenFlagged))
    }
}
