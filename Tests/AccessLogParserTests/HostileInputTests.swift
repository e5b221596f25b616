import AccessLogParser
import Testing

/// User agents (and other client-chosen header values) that Envoy's text format prints
/// unescaped (envoy/envoy#4191).
let hostileUserAgents = [
    #"evil" 503 UF,URX - "x"#,
    #"" ""#,
    #"""#,
    " ",
    "",
    #"a" "b" "c" "d" "e"#,
    #"x" outbound|fake||evil.svc 1.2.3.4:5 6.7.8.9:10 1.1.1.1:1 - fake-route"#,
    #"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "Chrome""#,
    #"x" "-" "fake-authority" "9.9.9.9:99"#,
    #"] "GET / HTTP/1.1" 200 - via_upstream - "-" 0 0 0 - "#,
]

@Suite("Hostile header values")
struct HostileInputTests {
    static let layouts: [Layout] = [.istio1_9, .istio1_8, .istio1_3, .istio1_2, .envoy]

    @Test("a user agent with quotes, spaces and fake fields does not move flags or cluster", arguments: layouts)
    func hostileUserAgent(layout: Layout) throws {
        for userAgent in hostileUserAgents {
            var fields = Fields()
            fields.code = "200"
            fields.flags = "-"
            fields.details = "via_upstream"
            fields.transportFailure = "-"
            fields.duration = "13"
            fields.userAgent = userAgent
            let line = fields.line(layout)
            let format: LogFormat = layout == .envoy ? .envoy : .istio
            for candidate in [format, .auto] {
                let (outcome, recognized) = try parseRecognizing(line, format: candidate)
                let parsed = try #require(outcome.record, "\(layout) \(candidate) UA=\(userAgent): \(outcome)")
                #expect(recognized == layout.rawValue, "UA=\(userAgent)")
                #expect(parsed.code == 200, "UA=\(userAgent)")
                #expect(parsed.flags == [], "UA=\(userAgent)")
                #expect(parsed.unknownFlagCount == 0, "UA=\(userAgent)")
                #expect(
                    parsed.cluster == (layout == .envoy ? nil : "outbound|9001||payments.default.svc.cluster.local"),
                    "UA=\(userAgent)")
                #expect(parsed.authority == "payments.default.svc.cluster.local:9001", "UA=\(userAgent)")
                #expect(parsed.host == "127.0.0.1:18019", "UA=\(userAgent)")
                #expect(parsed.duration == 13, "UA=\(userAgent)")
                if layout != .envoy && layout != .istio1_2 {
                    #expect(parsed.route == "payments-default", "UA=\(userAgent)")
                }
            }
        }
    }

    @Test("the same with a real flag on the line, XFF and request id hostile too")
    func hostileEverywhereInTheMiddle() throws {
        var fields = Fields()
        fields.userAgent = #"evil" 200 - via_upstream - "-" 0 0 0 - "-" "x"#
        fields.xff = #"1.2.3.4" "5.6.7.8"#
        fields.requestID = #"id" "fake" outbound|x||y"#
        for layout in Self.layouts {
            let parsed = try record(fields.line(layout), format: layout == .envoy ? .envoy : .istio)
            #expect(parsed.code == 503, "\(layout)")
            #expect(parsed.flags == [.upstreamConnectionFailure], "\(layout)")
            #expect(
                parsed.cluster == (layout == .envoy ? nil : "outbound|9001||payments.default.svc.cluster.local"),
                "\(layout)")
            #expect(parsed.authority == "payments.default.svc.cluster.local:9001", "\(layout)")
        }
    }

    @Test("a request path with a double quote")
    func quoteInPath() throws {
        var fields = Fields()
        fields.path = #"/search?q="x"&y=1"#
        for layout in Self.layouts {
            let parsed = try record(fields.line(layout), format: layout == .envoy ? .envoy : .istio)
            #expect(parsed.code == 503 && parsed.flags == [.upstreamConnectionFailure], "\(layout)")
            #expect(parsed.method == "GET", "\(layout)")
        }
    }

    @Test("invalid UTF-8 in the user agent does not make the line malformed")
    func invalidUTF8() throws {
        var fields = Fields()
        fields.userAgent = "UA-PLACEHOLDER"
        for layout in Self.layouts {
            let text = Array(fields.line(layout).utf8)
            let placeholder = Array("UA-PLACEHOLDER".utf8)
            let at = try #require(text.indices.first { text[$0...].starts(with: placeholder) })
            let bytes =
                Array(text[..<at]) + [0xFF, 0xFE, 0xC3, 0x28, 0x80, 0x22, 0x20, 0xED, 0xA0, 0x80]
                + Array(text[(at + placeholder.count)...])
            var parser = try AccessLogParser(format: .auto)
            let outcome = parse(bytes: bytes, with: &parser)
            let parsed = try #require(outcome.record, "\(layout): \(outcome)")
            #expect(parsed.flags == [.upstreamConnectionFailure], "\(layout)")
            #expect(parsed.code == 503, "\(layout)")
            #expect(
                parsed.cluster == (layout == .envoy ? nil : "outbound|9001||payments.default.svc.cluster.local"),
                "\(layout)")
        }
        // In JSON (Envoy escapes valid UTF-8, but a raw invalid byte must not break the line).
        let json =
            Array(#"{"response_flags":"UF","user_agent":"a"#.utf8) + [0xFF, 0xC0]
            + Array(#"b","upstream_cluster":"c"}"#.utf8)
        var parser = try AccessLogParser(format: .json(JSONKeyMap()))
        let parsed = try #require(parse(bytes: json, with: &parser).record)
        #expect(parsed.flags == [.upstreamConnectionFailure] && parsed.cluster == "c")
    }
}

@Suite("Bad input lines")
struct BadInputTests {
    static let allFormats: [LogFormat] = [
        .auto, .istio, .envoy, .json(JSONKeyMap()), .custom("%RESPONSE_CODE% %RESPONSE_FLAGS% %UPSTREAM_CLUSTER%"),
    ]

    @Test("an empty line is empty_line in every format")
    func emptyLine() throws {
        for format in Self.allFormats {
            var parser = try AccessLogParser(format: format)
            #expect(parse(bytes: [], with: &parser) == .malformed(.emptyLine), "\(format)")
        }
    }

    @Test(
        "Envoy's and the agent's own log lines are not_access_log",
        arguments: [
            Fixtures.envoyAppLog, Fixtures.agentLog,
            "2026-11-22T02:34:27.532Z\tinfo\tads\tADS: new connection for node:sidecar~10.0.0.1",
            "[2026-11-22 02:34:27.532][12][warning][config] [source/common/config/grpc_stream.h:152] gRPC config stream closed",
            "hello world", "-", " ", "[", "[]",
            "2026/11/22 02:34:27 [error] 7#7: *1 connect() failed (111: Connection refused)",
        ])
    func notAccessLog(line: String) throws {
        for format in [LogFormat.auto, .istio, .envoy] {
            #expect(try parse(line, format: format) == .malformed(.notAccessLog), "\(format)")
        }
        #expect(try parse(line, format: .json(JSONKeyMap())) == .malformed(.notAccessLog))
    }

    @Test("a truncated Istio line is format_mismatch")
    func truncatedIstio() throws {
        let line = Fixtures.istioUF
        for cut in [
            line.firstRange(of: #" "flag-harness/uf""#)!.upperBound, line.firstRange(of: " 503 UF ")!.upperBound,
            line.firstRange(of: "outbound")!.lowerBound,
        ] {
            let truncated = String(line[..<cut])
            #expect(try parse(truncated, format: .istio) == .malformed(.formatMismatch), "\(truncated)")
            #expect(try parse(truncated, format: .auto) == .malformed(.formatMismatch), "\(truncated)")
        }
    }

    @Test(
        "bad JSON is bad_json",
        arguments: [
            #"{"response_flags":"UF","upstream_cluster":"a"#,
            #"{"response_flags":"UF","upstream_cluster":"a""#,
            #"{"response_flags":"UF","upstream_cluster":"a","#,
            #"{"response_flags":"UF"} x"#,
            #"{"response_flags":"UF"}}"#,
            #"{"response_flags":"UF"},{}"#,
            "{\"response_flags\":\"UF\",\"user_agent\":\"a\u{01}b\"}",
            "{\"response_flags\":\"UF\",\"user_agent\":\"a\tb\"}",
            "{\"response_flags\":\"UF\",\u{01}\"x\":1}",
            #"{"response_flags":"UF","x":1,}"#,
            #"{"response_flags":"UF" "x":1}"#,
            #"{'response_flags':'UF'}"#,
            #"{"response_flags":UF}"#,
            #"{"response_flags":"UF","x":tru}"#,
            #"{"response_flags":"UF","x":01x}"#,
            #"{"response_flags":"UF","x":1.}"#,
            #"{"response_flags":"UF","x":"\q"}"#,
            #"{"response_flags":"UF","x":"\u12G4"}"#,
            #"{"response_flags":"UF","x":[1,2}"#,
            #"{"response_flags":"UF","x":{"a" 1}}"#,
            #"{"response_flags":"UF","x":[1,]}"#,
            #"{"response_flags":"UF","x":{"a":1,}}"#,
            #"{"response_flags":"UF","x":{"a":1,"b"}}"#,
            #"{"response_flags":"UF","x":{,}}"#,
            #"{"response_flags":"UF","x":[,]}"#,
            #"{"response_flags""UF"}"#,
            "{",
            "{\"",
        ])
    func badJSON(line: String) throws {
        #expect(try parse(line, format: .json(JSONKeyMap())) == .malformed(.badJSON))
        #expect(try parse(line, format: .auto) == .malformed(.badJSON))
    }

    @Test("a JSON line without the flags key is no_flags_field")
    func noFlagsField() throws {
        for line in [#"{"response_code":503,"upstream_cluster":"a"}"#, "{}", "{ }", #"{"x":{"response_flags":"UF"}}"#] {
            #expect(try parse(line, format: .json(JSONKeyMap())) == .malformed(.noFlagsField), "\(line)")
            #expect(try parse(line, format: .auto) == .malformed(.noFlagsField), "\(line)")
        }
    }

    @Test("a response code that is not a number in 0...999 is bad_response_code")
    func badResponseCode() throws {
        for code in ["5x3", "1000", "-1", "50 3"] where !code.contains(" ") {
            var fields = Fields()
            fields.code = code
            #expect(try parse(fields.line(.istio1_9), format: .istio) == .malformed(.badResponseCode), "\(code)")
            #expect(try parse(fields.line(.envoy), format: .envoy) == .malformed(.badResponseCode), "\(code)")
        }
        for value in [#""abc""#, "1000", "-1", "true", #"{"a":1}"#, "[503]", #""5 3""#] {
            let line = #"{"response_code":\#(value),"response_flags":"UF"}"#
            #expect(try parse(line, format: .json(JSONKeyMap())) == .malformed(.badResponseCode), "\(value)")
        }
        #expect(
            try parse("c 5x3 UF", format: .custom("%UPSTREAM_CLUSTER% %RESPONSE_CODE% %RESPONSE_FLAGS%"))
                == .malformed(.badResponseCode))
        // Codes at the edges are fine.
        #expect(try record("999 - c", format: .custom(flagsProbeFormat)).code == 999)
        #expect(try record("0 DC c", format: .custom(flagsProbeFormat)).code == 0)
        #expect(try record("- DC c", format: .custom(flagsProbeFormat)).code == 0)
    }

    @Test("a stream keeps parsing after malformed lines")
    func recoversAfterBadLines() throws {
        var parser = try AccessLogParser(format: .auto)
        #expect(parse(Fixtures.istioUF, with: &parser).record?.flags == [.upstreamConnectionFailure])
        #expect(parse(Fixtures.agentLog, with: &parser) == .malformed(.notAccessLog))
        #expect(parse(bytes: [], with: &parser) == .malformed(.emptyLine))
        #expect(parse(#"{"response_flags":"UF""#, with: &parser) == .malformed(.badJSON))
        #expect(
            parse(Fixtures.istioURXUF, with: &parser).record?.flags == [
                .upstreamConnectionFailure, .upstreamRetryLimitExceeded,
            ])
        #expect(parser.recognizedFormat == "istio (1.9+)")
    }
}
