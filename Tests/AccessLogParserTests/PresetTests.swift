import AccessLogParser
import Testing

@Suite("Preset formats: envoy and istio text")
struct PresetTests {
    @Test("the preset strings are Envoy's and Istio's defaults (docs/formats.md §2, §3.1)")
    func presetStrings() {
        #expect(
            FormatPreset.envoyDefault
                == #"[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%""#
        )
        #expect(
            FormatPreset.istio
                == #"[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%"#
        )
        #expect(
            FormatPreset.istio1_8.contains(#"%RESPONSE_FLAGS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED%"#))
        #expect(
            FormatPreset.istio1_3.contains(
                #"%RESPONSE_FLAGS% "%DYNAMIC_METADATA(istio.mixer:status)%" "%UPSTREAM_TRANSPORT_FAILURE_REASON%""#))
        #expect(FormatPreset.istio1_3.hasSuffix("%REQUESTED_SERVER_NAME% %ROUTE_NAME%"))
        #expect(FormatPreset.istio1_2.hasSuffix("%DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME%"))
        #expect(!FormatPreset.istio1_2.contains("ROUTE_NAME"))
    }

    @Test("every preset compiles as a custom format string too")
    func presetsCompile() throws {
        for preset in [
            FormatPreset.envoyDefault, FormatPreset.istio, FormatPreset.istio1_8, FormatPreset.istio1_3,
            FormatPreset.istio1_2,
        ] {
            let plan = try TextFormatPlan(formatString: preset)
            #expect(plan.formatString == preset)
            #expect(plan.name == "custom")
        }
        #expect(try TextFormatPlan(formatString: FormatPreset.istio, name: "mine").name == "mine")
    }

    @Test("the line builder reproduces a real Istio 1.9+ line")
    func builderMatchesRealLine() {
        #expect(Fields().line(.istio1_9) == Fixtures.istioUF)
    }

    @Test("real Istio 1.9+ lines (Envoy 1.40 harness)")
    func realIstioLines() throws {
        let uf = try record(Fixtures.istioUF, format: .istio)
        #expect(uf.code == 503)
        #expect(uf.flags == [.upstreamConnectionFailure])
        #expect(uf.cluster == "outbound|9001||payments.default.svc.cluster.local")
        #expect(
            uf.details
                == "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}"
        )
        #expect(uf.transportFailure == "delayed_connect_error:_Connection_refused")
        #expect(uf.authority == "payments.default.svc.cluster.local:9001")
        #expect(uf.host == "127.0.0.1:18019")
        #expect(uf.duration == 0)
        #expect(uf.route == "payments-default")
        #expect(uf.method == "GET")
        #expect(uf.start == "2026-11-22T02:34:27.561Z")

        let ok = try record(Fixtures.istioOK, format: .istio)
        #expect(ok.code == 200 && ok.flags == [] && ok.details == "via_upstream" && ok.transportFailure == nil)
        #expect(ok.duration == 11 && ok.host == "127.0.0.1:18010" && ok.route == "reviews-default")

        let urx = try record(Fixtures.istioURXUF, format: .istio)
        #expect(urx.flags == [.upstreamConnectionFailure, .upstreamRetryLimitExceeded])
        #expect(urx.cluster == "outbound|9002||ledger.default.svc.cluster.local" && urx.duration == 20)

        let uo = try record(Fixtures.istioUOUF, format: .istio)
        #expect(uo.flags == [.upstreamConnectionFailure, .upstreamOverflow])

        let nr = try record(Fixtures.istioNR, format: .istio)
        #expect(nr.code == 404 && nr.flags == [.noRouteFound])
        #expect(nr.cluster == nil && nr.host == nil && nr.route == nil)
        #expect(nr.details == "route_not_found")

        let dpe = try record(Fixtures.istioDPE, format: .istio)
        #expect(dpe.code == 400 && dpe.flags == [.downstreamProtocolError])
        #expect(dpe.method == nil && dpe.authority == nil && dpe.cluster == nil && dpe.details == "http1.codec_error")

        let ut = try record(Fixtures.istioUT, format: .istio)
        #expect(ut.code == 504 && ut.flags == [.upstreamRequestTimeout] && ut.duration == 253)

        let dc = try record(Fixtures.istioDC, format: .istio)
        #expect(dc.code == 0 && dc.flags == [.downstreamConnectionTermination] && dc.duration == 150)
        #expect(dc.cluster == "outbound|8080||recommendations.default.svc.cluster.local")
    }

    /// A TLS failure as old Envoy printed it: spaces in the transport failure reason.
    static func oldEnvoyTLSFields() -> Fields {
        var fields = Fields()
        fields.start = "2020-06-10T08:21:45.098Z"
        fields.method = "POST"
        fields.path = "/v1/orders?id=7"
        fields.proto = "HTTP/2"
        fields.code = "503"
        fields.flags = "UF,URX"
        fields.details =
            "upstream_reset_before_response_started{connection_failure,TLS_error:_Secret_is_not_supplied_by_SDS}"
        fields.transportFailure = "TLS error: Secret is not supplied by SDS"
        fields.bytesReceived = "52"
        fields.bytesSent = "91"
        fields.duration = "37"
        fields.upstreamServiceTime = "-"
        fields.xff = "10.1.2.3"
        fields.userAgent = "grpc-go/1.29.1"
        fields.requestID = "5c7a0b36-4c1b-9d7c-8d5e-0a1b2c3d4e5f"
        fields.authority = "orders.shop.svc.cluster.local:8080"
        fields.host = "10.44.1.17:8080"
        fields.cluster = "outbound|8080||orders.shop.svc.cluster.local"
        fields.upstreamLocal = "-"
        fields.downstreamLocal = "10.0.31.4:8080"
        fields.downstreamRemote = "10.44.2.9:51234"
        fields.sni = "-"
        fields.route = "default"
        return fields
    }

    static let istioLayouts: [Layout] = [.istio1_9, .istio1_8, .istio1_3, .istio1_2]

    @Test("each Istio variant: every field, with `istio` and with `auto`", arguments: istioLayouts)
    func istioVariant(layout: Layout) throws {
        let fields = Self.oldEnvoyTLSFields()
        let line = fields.line(layout)
        for format in [LogFormat.istio, .auto] {
            let (outcome, recognized) = try parseRecognizing(line, format: format)
            let parsed = try #require(outcome.record, "\(layout) \(format): \(outcome)\n\(line)")
            #expect(recognized == layout.rawValue)
            #expect(parsed.code == 503)
            #expect(parsed.flags == [.upstreamConnectionFailure, .upstreamRetryLimitExceeded])
            #expect(parsed.unknownFlagCount == 0)
            #expect(parsed.cluster == "outbound|8080||orders.shop.svc.cluster.local")
            #expect(parsed.transportFailure == "TLS error: Secret is not supplied by SDS")
            #expect(parsed.authority == "orders.shop.svc.cluster.local:8080")
            #expect(parsed.host == "10.44.1.17:8080")
            #expect(parsed.duration == 37)
            #expect(parsed.method == "POST")
            #expect(parsed.start == "2020-06-10T08:21:45.098Z")
            switch layout {
            case .istio1_9:
                #expect(
                    parsed.details
                        == "upstream_reset_before_response_started{connection_failure,TLS_error:_Secret_is_not_supplied_by_SDS}"
                )
            default:
                #expect(parsed.details == nil)
            }
            #expect(parsed.route == (layout == .istio1_2 ? nil : "default"))
        }
    }

    @Test("each Istio variant with the common values: `-` fields, no transport failure", arguments: istioLayouts)
    func istioVariantPlain(layout: Layout) throws {
        var fields = Fields()
        fields.code = "200"
        fields.flags = "-"
        fields.transportFailure = "-"
        fields.details = "via_upstream"
        fields.duration = "5"
        fields.upstreamServiceTime = "4"
        fields.upstreamLocal = "127.0.0.1:55718"
        let (outcome, recognized) = try parseRecognizing(fields.line(layout), format: .istio)
        let parsed = try #require(outcome.record, "\(layout): \(outcome)")
        #expect(recognized == layout.rawValue)
        #expect(parsed.code == 200 && parsed.flags == [] && parsed.transportFailure == nil)
        #expect(parsed.cluster == "outbound|9001||payments.default.svc.cluster.local")
        #expect(parsed.duration == 5)
        #expect(parsed.route == (layout == .istio1_2 ? nil : "payments-default"))
    }

    @Test("Istio 1.23+: one trailing `;` on the cluster (alt_stat_name) is stripped", arguments: istioLayouts)
    func trailingSemicolon(layout: Layout) throws {
        var fields = Fields()
        fields.cluster = "outbound|9001||payments.default.svc.cluster.local;"
        let parsed = try record(fields.line(layout), format: .istio)
        #expect(parsed.cluster == "outbound|9001||payments.default.svc.cluster.local")
        fields.cluster = "inbound|8080||;"
        #expect(try record(fields.line(layout), format: .istio).cluster == "inbound|8080||")
        fields.cluster = "-"
        #expect(try record(fields.line(layout), format: .istio).cluster == nil)
    }

    @Test("Istio cluster name forms are kept as written")
    func clusterForms() throws {
        for cluster in [
            "outbound|9080|v2|reviews.default.svc.cluster.local", "inbound|8080||",
            "inbound|8080|http-8080|scrappers-service.default.svc.cluster.local",
            "outbound_.8000_._.httpbin.foo.svc.cluster.local", "PassthroughCluster", "BlackHoleCluster",
            "InboundPassthroughCluster", "xds-grpc",
        ] {
            var fields = Fields()
            fields.cluster = cluster
            #expect(try record(fields.line(.istio1_9), format: .istio).cluster == cluster)
        }
    }

    @Test("Istio TCP lines: `\"- - -\"` request line and code 0")
    func tcpLine() throws {
        var fields = Fields()
        fields.method = "-"
        fields.path = "-"
        fields.proto = "-"
        fields.code = "0"
        fields.flags = "UF,URX"
        fields.details = "-"
        fields.cluster = "outbound|5432||db.default.svc.cluster.local"
        fields.userAgent = "-"
        fields.authority = "-"
        fields.route = "-"
        let parsed = try record(fields.line(.istio1_9), format: .istio)
        #expect(parsed.code == 0 && parsed.codeClassIsNoResponse)
        #expect(parsed.method == nil && parsed.authority == nil && parsed.route == nil)
        #expect(parsed.flags == [.upstreamConnectionFailure, .upstreamRetryLimitExceeded])
        #expect(parsed.cluster == "outbound|5432||db.default.svc.cluster.local")
    }

    @Test("Envoy's default format: flags, code, host, authority; no cluster")
    func envoyDefault() throws {
        var fields = Self.oldEnvoyTLSFields()
        fields.upstreamServiceTime = "35"
        let line = fields.line(.envoy)
        for format in [LogFormat.envoy, .auto] {
            let (outcome, recognized) = try parseRecognizing(line, format: format)
            let parsed = try #require(outcome.record, "\(format): \(outcome)")
            #expect(recognized == "envoy")
            #expect(parsed.code == 503)
            #expect(parsed.flags == [.upstreamConnectionFailure, .upstreamRetryLimitExceeded])
            #expect(parsed.cluster == nil)
            #expect(parsed.details == nil && parsed.transportFailure == nil && parsed.route == nil)
            #expect(parsed.authority == "orders.shop.svc.cluster.local:8080")
            #expect(parsed.host == "10.44.1.17:8080")
            #expect(parsed.duration == 37)
            #expect(parsed.method == "POST")
            #expect(parsed.start == "2020-06-10T08:21:45.098Z")
        }
        // The exact line of Envoy's docs example shape.
        let docs =
            #"[2016-04-15T20:17:00.310Z] "POST /api/v1/locations HTTP/2" 204 - 154 0 226 100 "10.0.35.28" "nsq2http" "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2" "locations" "tcp://10.0.2.1:80""#
        let parsed = try record(docs, format: .envoy)
        #expect(parsed.code == 204 && parsed.flags == [] && parsed.duration == 226)
        #expect(parsed.host == "tcp://10.0.2.1:80" && parsed.authority == "locations" && parsed.cluster == nil)
    }

    @Test("a plain-Envoy line is not taken for Istio, nor an Istio line for Envoy")
    func presetsDoNotCrossMatch() throws {
        let envoyLine = Self.oldEnvoyTLSFields().line(.envoy)
        #expect(try parse(envoyLine, format: .istio).record == nil)
        #expect(try parse(Fixtures.istioUF, format: .envoy).record == nil)
    }

    @Test("`auto` follows a stream that switches format, and recognizedFormat says which")
    func autoSwitching() throws {
        var parser = try AccessLogParser(format: .auto)
        let tls = Self.oldEnvoyTLSFields()
        let sequence: [(String, String, String?)] = [
            (Fixtures.istioUF, "istio (1.9+)", "outbound|9001||payments.default.svc.cluster.local"),
            (Fixtures.jsonURXUF, "json", "outbound|9002||ledger.default.svc.cluster.local"),
            (tls.line(.istio1_8), "istio (1.8)", "outbound|8080||orders.shop.svc.cluster.local"),
            (tls.line(.istio1_3), "istio (1.3-1.7)", "outbound|8080||orders.shop.svc.cluster.local"),
            (tls.line(.envoy), "envoy", nil),
            (tls.line(.istio1_2), "istio (<=1.2)", "outbound|8080||orders.shop.svc.cluster.local"),
            (Fixtures.istioOK, "istio (1.9+)", "outbound|8080||reviews.default.svc.cluster.local"),
            (Fixtures.istioOK, "istio (1.9+)", "outbound|8080||reviews.default.svc.cluster.local"),
            (Fixtures.jsonNR, "json", nil),
        ]
        for (line, name, cluster) in sequence {
            let outcome = parse(line, with: &parser)
            let parsed = try #require(outcome.record, "\(name): \(outcome)")
            #expect(parser.recognizedFormat == name)
            #expect(parsed.cluster == cluster, "\(name)")
        }
        // A malformed line does not change what was recognised.
        #expect(parse(Fixtures.envoyAppLog, with: &parser) == .malformed(.notAccessLog))
        #expect(parser.recognizedFormat == "json")
    }

    @Test("`istio` follows an upgrade from one Istio variant to the next within one stream")
    func istioSwitching() throws {
        var parser = try AccessLogParser(format: .istio)
        let tls = Self.oldEnvoyTLSFields()
        for layout in [Layout.istio1_2, .istio1_3, .istio1_8, .istio1_9, .istio1_3, .istio1_2, .istio1_9] {
            let outcome = parse(tls.line(layout), with: &parser)
            let parsed = try #require(outcome.record, "\(layout): \(outcome)")
            #expect(parser.recognizedFormat == layout.rawValue)
            #expect(parsed.cluster == "outbound|8080||orders.shop.svc.cluster.local", "\(layout)")
            #expect(parsed.flags == [.upstreamConnectionFailure, .upstreamRetryLimitExceeded], "\(layout)")
        }
    }

    @Test("parse(_:) returns .record / .malformed")
    func parseResultAPI() throws {
        var parser = try AccessLogParser(format: .istio)
        let bytes = Array(Fixtures.istioURXUF.utf8)
        try bytes.withUnsafeBytes { buffer in
            guard case .record(let record) = parser.parse(buffer) else {
                Issue.record("expected a record")
                return
            }
            #expect(record.responseCode == 503)
            #expect(record.codeClass == 5)
            #expect(record.responseFlags == ResponseFlagSet([.upstreamRetryLimitExceeded, .upstreamConnectionFailure]))
            #expect(record.upstreamCluster.rawString == "outbound|9002||ledger.default.svc.cluster.local")
            #expect(!record.upstreamCluster.hasJSONEscapes)
            _ = try #require(record.durationMilliseconds)
        }
        let junk = Array("hello world".utf8)
        junk.withUnsafeBytes { buffer in
            guard case .malformed(let reason) = parser.parse(buffer) else {
                Issue.record("expected malformed")
                return
            }
            #expect(reason == .notAccessLog)
        }
    }

    @Test("codeClass: 0 for no response, else the hundreds digit")
    func codeClass() {
        var record = AccessRecord()
        for (code, expected) in [
            (0, 0), (99, 0), (100, 1), (204, 2), (302, 3), (429, 4), (503, 5), (599, 5), (600, 0), (999, 0),
        ] {
            record.responseCode = code
            #expect(record.codeClass == expected, "\(code)")
        }
    }
}

extension Parsed {
    var codeClassIsNoResponse: Bool { code / 100 == 0 }
}
