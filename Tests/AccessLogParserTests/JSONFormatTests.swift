import AccessLogParser
import LineFraming
import Testing

let istioJSON = LogFormat.json(JSONKeyMap())

@Suite("JSON access logs")
struct JSONFormatTests {
    @Test("real Istio JSON lines (typed values, null, sorted keys)")
    func realLines() throws {
        let urx = try record(Fixtures.jsonURXUF, format: istioJSON)
        #expect(urx.code == 503)
        #expect(urx.flags == [.upstreamConnectionFailure, .upstreamRetryLimitExceeded])
        #expect(urx.cluster == "outbound|9002||ledger.default.svc.cluster.local")
        #expect(
            urx.details
                == "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}"
        )
        #expect(urx.transportFailure == "delayed_connect_error:_Connection_refused")
        #expect(urx.authority == "ledger.default.svc.cluster.local:9002")
        #expect(urx.host == "127.0.0.1:18019")
        #expect(urx.duration == 20)
        #expect(urx.route == "ledger-retry")
        #expect(urx.method == "GET")
        #expect(urx.start == "2026-11-22T02:34:27.575Z")
        #expect(!urx.clusterHasEscapes)

        let ok = try record(Fixtures.jsonOK, format: istioJSON)
        #expect(ok.code == 200 && ok.flags == [] && ok.transportFailure == nil && ok.duration == 11)

        let nr = try record(Fixtures.jsonNR, format: istioJSON)
        #expect(nr.code == 404 && nr.flags == [.noRouteFound])
        #expect(nr.cluster == nil && nr.host == nil && nr.route == nil && nr.duration == 0)

        let dc = try record(Fixtures.jsonDC, format: istioJSON)
        #expect(dc.code == 0 && dc.flags == [.downstreamConnectionTermination] && dc.duration == 150)
    }

    @Test("keys in any order give the same record")
    func keyOrder() throws {
        let pairs = [
            #""response_flags":"UF,URX""#, #""response_code":503"#, #""upstream_cluster":"outbound|80||a.b.svc""#,
            #""duration":42"#, #""route_name":"r1""#, #""method":"PUT""#, #""authority":"a.b:80""#,
            #""upstream_host":"10.0.0.1:80""#, #""start_time":"2026-01-01T00:00:00.000Z""#,
            #""response_code_details":"via_upstream""#, #""upstream_transport_failure_reason":null"#,
            #""user_agent":"curl/8""#,
        ]
        let reference = try record("{" + pairs.joined(separator: ",") + "}", format: istioJSON)
        #expect(reference.code == 503 && reference.duration == 42 && reference.cluster == "outbound|80||a.b.svc")
        #expect(reference.flags == [.upstreamConnectionFailure, .upstreamRetryLimitExceeded])
        #expect(reference.method == "PUT" && reference.route == "r1" && reference.transportFailure == nil)
        var generator = SplitMix(seed: 7)
        for _ in 0..<20 {
            var shuffled = pairs
            shuffled.shuffle(using: &generator)
            #expect(try record("{" + shuffled.joined(separator: ",") + "}", format: istioJSON) == reference)
        }
        // Whitespace between tokens, as a pretty printer would put it (but on one line).
        let spaced =
            "{ " + pairs.reversed().map { $0.replacing("\":", with: "\" :\t") }.joined(separator: " ,  ") + " }"
        #expect(try record(spaced, format: istioJSON) == reference)
    }

    @Test("null means absent; null flags mean no flag")
    func nulls() throws {
        let line =
            #"{"response_code":0,"response_flags":null,"upstream_cluster":null,"upstream_host":null,"duration":null,"route_name":null,"method":null,"authority":null,"start_time":null,"response_code_details":null,"upstream_transport_failure_reason":null}"#
        let parsed = try record(line, format: istioJSON)
        #expect(parsed.code == 0 && parsed.flags == [] && parsed.unknownFlagCount == 0)
        #expect(parsed.cluster == nil && parsed.host == nil && parsed.duration == nil && parsed.route == nil)
        #expect(parsed.method == nil && parsed.authority == nil && parsed.start == nil && parsed.details == nil)
    }

    @Test("nested objects and arrays are skipped; keys inside them are not record fields")
    func nestedSkipped() throws {
        let line =
            #"{"upstream":{"host":"x","response_flags":"UH","deep":[1,2.5,-3e2,{"response_code":200,"a":[[],{}]},null,true,false,"s\"]"]},"response_code":503,"tags":["UF",{"k":"v"}],"response_flags":"UF","empty":{},"list":[],"upstream_cluster":"c1"}"#
        let parsed = try record(line, format: istioJSON)
        #expect(parsed.code == 503)
        #expect(parsed.flags == [.upstreamConnectionFailure])
        #expect(parsed.cluster == "c1")
        // The flags key only inside a nested object: the record has no flags field.
        #expect(
            try parse(#"{"meta":{"response_flags":"UF"},"response_code":503}"#, format: istioJSON)
                == .malformed(.noFlagsField))
        // A nested value where a field flagwatch ignores is wanted is fine.
        #expect(
            try record(#"{"response_flags":"-","upstream_host":{"ip":"10.0.0.1"},"route_name":[1]}"#, format: istioJSON)
                .host == nil)
        // Deep nesting that still fits.
        let deep = String(repeating: "[", count: 20) + String(repeating: "]", count: 20)
        #expect(
            try record(#"{"x":\#(deep),"response_flags":"UF"}"#, format: istioJSON).flags == [
                .upstreamConnectionFailure
            ])
    }

    @Test("absurd nesting is rejected, not a crash")
    func absurdNesting() throws {
        let deep = String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000)
        #expect(try parse(#"{"x":\#(deep),"response_flags":"UF"}"#, format: istioJSON) == .malformed(.badJSON))
        let deepObjects = String(repeating: #"{"a":"#, count: 5000) + "1" + String(repeating: "}", count: 5000)
        #expect(try parse(#"{"x":\#(deepObjects),"response_flags":"UF"}"#, format: istioJSON) == .malformed(.badJSON))
    }

    @Test("Istio ≤1.7: every value a string, `-` for unset")
    func allStrings() throws {
        let line =
            #"{"upstream_cluster":"outbound|9080||reviews.default.svc.cluster.local","response_code":"503","duration":"12","response_flags":"UF,URX","upstream_host":"-","istio_policy_status":"-","route_name":"-","start_time":"2020-05-05T10:00:00.000Z","method":"GET","authority":"reviews:9080","upstream_transport_failure_reason":"TLS error: Secret is not supplied by SDS","bytes_received":"0"}"#
        let parsed = try record(line, format: istioJSON)
        #expect(parsed.code == 503)
        #expect(parsed.duration == 12)
        #expect(parsed.flags == [.upstreamConnectionFailure, .upstreamRetryLimitExceeded])
        #expect(parsed.cluster == "outbound|9080||reviews.default.svc.cluster.local")
        #expect(parsed.host == nil && parsed.route == nil)
        #expect(parsed.transportFailure == "TLS error: Secret is not supplied by SDS")
        #expect(parsed.start == "2020-05-05T10:00:00.000Z")

        let noResponse = try record(
            #"{"response_code":"-","response_flags":"-","upstream_cluster":"-","duration":"-"}"#, format: istioJSON)
        #expect(
            noResponse.code == 0 && noResponse.flags == [] && noResponse.cluster == nil && noResponse.duration == nil)
        #expect(try record(#"{"response_code":"0","response_flags":"DC"}"#, format: istioJSON).code == 0)
    }

    @Test("typed numbers: integers, and doubles by their integer part")
    func typedNumbers() throws {
        #expect(
            try record(#"{"response_code":503.0,"duration":17.0,"response_flags":"-"}"#, format: istioJSON).code == 503)
        #expect(
            try record(#"{"response_code":503.0,"duration":17.0,"response_flags":"-"}"#, format: istioJSON).duration
                == 17)
        #expect(
            try record(#"{"response_code":200,"duration":0,"response_flags":"-"}"#, format: istioJSON).duration == 0)
    }

    @Test("Istio 1.23.0–1.24.1 JSON: trailing `;` on upstream_cluster stripped")
    func jsonSemicolon() throws {
        let parsed = try record(
            #"{"response_flags":"UF","upstream_cluster":"outbound|8080||api.default.svc.cluster.local;"}"#,
            format: istioJSON)
        #expect(parsed.cluster == "outbound|8080||api.default.svc.cluster.local")
    }

    @Test("string values with escapes are handed on raw with hasJSONEscapes, decodable by JSONEscapes")
    func escapes() throws {
        let line =
            #"{"response_flags":"UF","upstream_cluster":"outbound|80||we\"ird\\name\u00e9","user_agent":"a \"quoted\" agent","route_name":"r"}"#
        let outcome = try parse(line, format: istioJSON)
        let parsed = try #require(outcome.record)
        #expect(parsed.cluster == #"outbound|80||we\"ird\\name\u00e9"#)
        #expect(parsed.clusterHasEscapes)
        #expect(parsed.route == "r")
        let cluster = Array(#"outbound|80||we\"ird\\name\u00e9"#.utf8).withUnsafeBytes {
            String(decoding: JSONEscapes.decode($0), as: UTF8.self)
        }
        #expect(cluster == "outbound|80||we\"ird\\name\u{e9}")
    }

    @Test("custom key names via JSONKeyMap.setKey")
    func customKeys() throws {
        var keys = JSONKeyMap()
        let accepted = [
            keys.setKey("upstreamCluster", forField: "upstream_cluster"),
            keys.setKey("resStatusCode", forField: "response_code"),
            keys.setKey("flags", forField: "response_flags"),
            keys.setKey("took_ms", forField: "duration"),
            keys.setKey("upstream.host", forField: "upstream_host"),
            keys.setKey("x", forField: "cluster"),
            keys.setKey("x", forField: "user_agent"),
        ]
        #expect(accepted == [true, true, true, true, true, false, false])
        #expect(keys.upstreamCluster == "upstreamCluster" && keys.responseCode == "resStatusCode")
        #expect(JSONKeyMap.fieldNames.count == 12)
        for field in JSONKeyMap.fieldNames {
            var map = JSONKeyMap()
            let known = map.setKey("k_" + field, forField: field)
            #expect(known, "\(field)")
            #expect(map != JSONKeyMap())
        }

        let line =
            #"{"resStatusCode":503,"upstreamCluster":"checkout","flags":"URX,UF","took_ms":9,"upstream.host":"10.1.1.1:80","response_code":200,"upstream_cluster":"wrong"}"#
        let parsed = try record(line, format: .json(keys))
        #expect(parsed.code == 503)
        #expect(parsed.cluster == "checkout")
        #expect(parsed.flags == [.upstreamConnectionFailure, .upstreamRetryLimitExceeded])
        #expect(parsed.duration == 9)
        #expect(parsed.host == "10.1.1.1:80")
        // The default flags key no longer counts.
        #expect(
            try parse(#"{"response_flags":"UF","resStatusCode":503}"#, format: .json(keys)) == .malformed(.noFlagsField)
        )
        // LogFormat(argument:) passes the key map on.
        #expect(LogFormat(argument: "json", jsonKeys: keys) == .json(keys))
    }

    @Test("auto recognises JSON, typed and all-string")
    func autoJSON() throws {
        for line in [
            Fixtures.jsonOK, Fixtures.jsonNR, #"{"response_code":"503","response_flags":"UF","upstream_cluster":"c"}"#,
        ] {
            let (outcome, recognized) = try parseRecognizing(line)
            #expect(outcome.record != nil, "\(outcome)")
            #expect(recognized == "json")
        }
    }
}

/// A small deterministic generator for shuffles.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
