import AccessLogParser
import Testing

@Suite("Custom format strings")
struct FormatStringTests {
    @Test("LogFormat(argument:) names the presets; anything else is a format string")
    func logFormatArgument() {
        #expect(LogFormat(argument: "auto") == .auto)
        #expect(LogFormat(argument: "envoy") == .envoy)
        #expect(LogFormat(argument: "istio") == .istio)
        #expect(LogFormat(argument: "json") == .json(JSONKeyMap()))
        #expect(LogFormat(argument: "%RESPONSE_CODE% %RESPONSE_FLAGS%") == .custom("%RESPONSE_CODE% %RESPONSE_FLAGS%"))
        #expect(LogFormat(argument: "ISTIO") == .custom("ISTIO"))
    }

    @Test(
        "strftime START_TIME with spaces and %, a fallback header, long flags, metadata, a truncated header, `|` and ` cluster=` literals"
    )
    func unusualOperators() throws {
        let format =
            "%START_TIME(%Y/%m/%dT%H:%M:%S%z %s)%|%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%|%RESPONSE_CODE%|%RESPONSE_FLAGS_LONG%|%DYNAMIC_METADATA(foo:bar)%|%REQ(USER-AGENT):10%| cluster=%UPSTREAM_CLUSTER_RAW% dur=%DURATION%"
        let line =
            #"2026/11/22T02:34:27+0000 1795833267|/api/pay?x=1|503|UpstreamConnectionFailure,UpstreamRetryLimitExceeded|{"foo":"bar"}|Mozilla/5.| cluster=outbound|9001||payments.default.svc.cluster.local dur=12"#
        let parsed = try record(line, format: .custom(format))
        #expect(parsed.start == "2026/11/22T02:34:27+0000 1795833267")
        #expect(parsed.code == 503)
        #expect(parsed.flags == [.upstreamConnectionFailure, .upstreamRetryLimitExceeded])
        #expect(parsed.cluster == "outbound|9001||payments.default.svc.cluster.local")
        #expect(parsed.duration == 12)

        var parser = try AccessLogParser(format: .custom(format))
        _ = parse(line, with: &parser)
        #expect(parser.recognizedFormat == "custom")
    }

    @Test("literal key=value separators; a free header value in the middle with quotes and spaces")
    func keyValueFormat() throws {
        let format =
            #"cluster=%UPSTREAM_CLUSTER% code=%RESPONSE_CODE% flags=%RESPONSE_FLAGS% ua="%REQ(USER-AGENT)%" host=%UPSTREAM_HOST%"#
        let line = #"cluster=outbound|80||a.svc code=504 flags=UT,URX ua="curl "x" host=1.1.1.1:1 y" host=10.0.0.1:80"#
        let parsed = try record(line, format: .custom(format))
        #expect(parsed.cluster == "outbound|80||a.svc")
        #expect(parsed.code == 504)
        #expect(parsed.flags == [.upstreamRequestTimeout, .upstreamRetryLimitExceeded])
        #expect(parsed.host == "10.0.0.1:80")
        // The literal prefix must be there.
        #expect(try parse("upstream=x code=504 flags=UT", format: .custom(format)) == .malformed(.notAccessLog))
    }

    @Test("a format with the flags last and numeric fields checked")
    func flagsLast() throws {
        let format = "%UPSTREAM_CLUSTER% %RESPONSE_CODE% %DURATION% %BYTES_SENT% %RESPONSE_FLAGS%"
        let parsed = try record("svc-a 503 7 91 UF,URX", format: .custom(format))
        #expect(parsed.cluster == "svc-a" && parsed.code == 503 && parsed.duration == 7)
        #expect(parsed.flags == [.upstreamConnectionFailure, .upstreamRetryLimitExceeded])
        #expect(try record("svc-a - - - -", format: .custom(format)).code == 0)
        #expect(try parse("svc-a 503 7 9x UF", format: .custom(format)) == .malformed(.formatMismatch))
    }

    @Test("RESPONSE_CODE_DETAILS(ALLOW_WHITESPACES) and transport failure reasons with spaces")
    func spacedFields() throws {
        let format =
            #"%RESPONSE_CODE% %RESPONSE_FLAGS% "%RESPONSE_CODE_DETAILS(ALLOW_WHITESPACES)%" "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %UPSTREAM_CLUSTER%"#
        let line =
            #"503 UF "upstream reset before response started{connection failure}" "TLS error: 268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED" outbound|443||x"#
        let parsed = try record(line, format: .custom(format))
        #expect(parsed.details == "upstream reset before response started{connection failure}")
        #expect(
            parsed.transportFailure == "TLS error: 268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED")
        #expect(parsed.cluster == "outbound|443||x")
    }

    @Test("a format pasted from YAML/JSON: `\\\"` for quotes and a trailing `\\n`")
    func pastedFromYAML() throws {
        let pasted =
            #"[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% \"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %UPSTREAM_CLUSTER% %ROUTE_NAME%\n"#
        let line =
            #"[2026-11-22T02:34:27.561Z] "GET /x HTTP/1.1" 503 UF "TLS error: Secret is not supplied by SDS" outbound|80||a.svc r1"#
        let parsed = try record(line, format: .custom(pasted))
        #expect(parsed.code == 503 && parsed.flags == [.upstreamConnectionFailure])
        #expect(parsed.transportFailure == "TLS error: Secret is not supplied by SDS")
        #expect(parsed.cluster == "outbound|80||a.svc" && parsed.route == "r1")
        #expect(parsed.start == "2026-11-22T02:34:27.561Z" && parsed.method == "GET")
        #expect(try TextFormatPlan(formatString: pasted).formatString == pasted)

        // The Istio default as it appears in a YAML double-quoted scalar.
        let istioYAML = FormatPreset.istio.replacing("\"", with: "\\\"") + "\\n"
        #expect(
            try record(Fixtures.istioUF, format: .custom(istioYAML)) == (try record(Fixtures.istioUF, format: .istio)))
        #expect(
            try record(Fixtures.istioURXUF, format: .custom(istioYAML))
                == (try record(Fixtures.istioURXUF, format: .istio)))

        // A real trailing newline (a YAML block scalar) is ignored as well, and CRLF too.
        #expect(
            try record(Fixtures.istioUF, format: .custom(FormatPreset.istio + "\n")).cluster
                == "outbound|9001||payments.default.svc.cluster.local")
        #expect(
            try record(Fixtures.istioUF, format: .custom(FormatPreset.istio + "\r\n")).cluster
                == "outbound|9001||payments.default.svc.cluster.local")
    }

    @Test("the Istio 1.9–1.22 format (%UPSTREAM_CLUSTER%) as a custom format")
    func istio1_22Custom() throws {
        let format = FormatPreset.istio.replacing("%UPSTREAM_CLUSTER_RAW%", with: "%UPSTREAM_CLUSTER%")
        #expect(try record(Fixtures.istioUF, format: .custom(format)) == (try record(Fixtures.istioUF, format: .istio)))
    }

    @Test(
        "compile errors, with the offset of the problem",
        arguments: [
            ("%RESPONSE_CODE% %UPSTREAM_CLUSTER%", 0, "RESPONSE_FLAGS"),
            ("no operators at all", 0, "no %COMMAND%"),
            ("", 0, "no %COMMAND%"),
            ("%RESPONSE_CODE% %RESPONSE_FLAGS", 16, "not closed"),
            ("%RESPONSE_FLAGS% 100%", 20, "does not start"),
            ("%RESPONSE_FLAGS% %% %UPSTREAM_CLUSTER%", 17, "does not start"),
            ("%RESPONSE_FLAGS% %req(user-agent)%", 17, "does not start"),
            ("%RESPONSE_CODE%%RESPONSE_FLAGS%", 15, "no text"),
            ("%RESPONSE_FLAGS% %BYTES_RECEIVED%%BYTES_SENT%", 33, "no text"),
            ("%RESPONSE_FLAGS% %REQ(USER-AGENT%", 17, "closing ')'"),
            ("%RESPONSE_FLAGS% %REQ(USER-AGENT):%", 17, "maximum length"),
            ("%RESPONSE_FLAGS% %REQ(USER-AGENT):x%", 17, "maximum length"),
            ("%RESPONSE_FLAGS% %START_TIME", 17, "not closed"),
        ])
    func compileErrors(format: String, offset: Int, messagePart: String) throws {
        let error = try #require(throws: FormatStringError.self) { try TextFormatPlan(formatString: format) }
        #expect(error.offset == offset)
        #expect(error.message.contains(messagePart), "\(error.message)")
        #expect(error.description == "format string, at offset \(offset): \(error.message)")
        // The parser refuses the format the same way.
        let parserError = try #require(throws: FormatStringError.self) { try AccessLogParser(format: .custom(format)) }
        #expect(parserError == error)
    }

    @Test("%REQ(...):N% truncation and the fallback-header syntax compile")
    func operatorSyntax() throws {
        _ = try TextFormatPlan(formatString: "%REQ(USER-AGENT):10% %RESPONSE_FLAGS%")
        _ = try TextFormatPlan(formatString: "%RESPONSE_FLAGS% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH):256%")
        _ = try TextFormatPlan(formatString: "%RESPONSE_FLAGS_LONG%")
        _ = try TextFormatPlan(
            formatString: "%START_TIME(%s.%3f)% %RESPONSE_FLAGS% %DYNAMIC_METADATA(envoy.lb:canary):20%")
        _ = try TextFormatPlan(formatString: "%RESPONSE_FLAGS% %CEL(request.headers['x'])% %FILTER_STATE(a.b:PLAIN)%")
    }
}
