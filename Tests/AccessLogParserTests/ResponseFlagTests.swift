import AccessLogParser
import Testing

/// docs/formats.md §1.2: Envoy's core flags in `CoreResponseFlag` order, short and long names.
let expectedFlagTable: [(short: String, long: String)] = [
    ("LH", "FailedLocalHealthCheck"), ("UH", "NoHealthyUpstream"), ("UT", "UpstreamRequestTimeout"),
    ("LR", "LocalReset"), ("UR", "UpstreamRemoteReset"), ("UF", "UpstreamConnectionFailure"),
    ("UC", "UpstreamConnectionTermination"), ("UO", "UpstreamOverflow"), ("NR", "NoRouteFound"),
    ("DI", "DelayInjected"), ("FI", "FaultInjected"), ("RL", "RateLimited"),
    ("UAEX", "UnauthorizedExternalService"), ("RLSE", "RateLimitServiceError"),
    ("DC", "DownstreamConnectionTermination"), ("URX", "UpstreamRetryLimitExceeded"),
    ("SI", "StreamIdleTimeout"), ("IH", "InvalidEnvoyRequestHeaders"), ("DPE", "DownstreamProtocolError"),
    ("UMSDR", "UpstreamMaxStreamDurationReached"), ("RFCF", "ResponseFromCacheFilter"),
    ("NFCF", "NoFilterConfigFound"), ("DT", "DurationTimeout"), ("UPE", "UpstreamProtocolError"),
    ("NC", "NoClusterFound"), ("OM", "OverloadManagerTerminated"), ("DF", "DnsResolutionFailed"),
    ("DO", "DropOverload"), ("DR", "DownstreamRemoteReset"), ("UDO", "UnconditionalDropOverload"),
]

/// A minimal custom format that puts the flags field between two simple tokens.
let flagsProbeFormat = "%RESPONSE_CODE% %RESPONSE_FLAGS% %UPSTREAM_CLUSTER%"
let longFlagsProbeFormat = "%RESPONSE_CODE% %RESPONSE_FLAGS_LONG% %UPSTREAM_CLUSTER%"

func flagsRecord(_ flagsField: String, format: String = flagsProbeFormat) throws -> Outcome {
    try parse("503 \(flagsField) outbound|80||svc", format: .custom(format))
}

@Suite("Response flags")
struct ResponseFlagTests {
    @Test("the table has Envoy's 30 core flags with their short and long names, in enum order")
    func table() {
        #expect(ResponseFlag.allCases.count == 30)
        #expect(ResponseFlag.allCases.map(\.shortName) == expectedFlagTable.map(\.short))
        #expect(ResponseFlag.allCases.map(\.longName) == expectedFlagTable.map(\.long))
        #expect(ResponseFlag.allCases == ResponseFlag.allCases.sorted())
        #expect(Set(ResponseFlag.allCases.map(\.rawValue)).count == 30)
    }

    @Test("ResponseFlag(name:) finds short and long names and nothing else")
    func lookUpByName() {
        for (index, names) in expectedFlagTable.enumerated() {
            #expect(ResponseFlag(name: names.short) == ResponseFlag.allCases[index])
            #expect(ResponseFlag(name: names.long) == ResponseFlag.allCases[index])
        }
        for name in [
            "", "-", "uf", "U", "UFX", "XX", "UpstreamConnectionFailur", "upstreamconnectionfailure",
            "UpstreamConnectionFailureX", "UF ", "FailedLocalHealthCheckFailedLocalHealthCheck",
        ] {
            #expect(ResponseFlag(name: name) == nil, "\(name)")
        }
        #expect(ResponseFlag(name: "DO") == .dropOverload)
        #expect(ResponseFlag(name: "OverloadManagerTerminated") == .overloadManagerTerminated)
    }

    @Test("each flag alone, by its short name, in the Istio format", arguments: ResponseFlag.allCases)
    func shortNameAlone(flag: ResponseFlag) throws {
        var fields = Fields()
        fields.flags = flag.shortName
        let parsed = try record(fields.line(.istio1_9), format: .istio)
        #expect(parsed.flags == [flag])
        #expect(parsed.unknownFlagCount == 0)
        #expect(parsed.unknownFlags == [])
        #expect(parsed.flagsText == flag.shortName)
        #expect(parsed.cluster == "outbound|9001||payments.default.svc.cluster.local")
    }

    @Test("each flag alone, by its long name (%RESPONSE_FLAGS_LONG%)", arguments: ResponseFlag.allCases)
    func longNameAlone(flag: ResponseFlag) throws {
        let parsed = try #require(try flagsRecord(flag.longName, format: longFlagsProbeFormat).record)
        #expect(parsed.flags == [flag])
        #expect(parsed.unknownFlagCount == 0)
        #expect(parsed.cluster == "outbound|80||svc")
        // The long name is also accepted where %RESPONSE_FLAGS% is configured, and vice versa.
        #expect(try flagsRecord(flag.longName).record?.flags == [flag])
        #expect(try flagsRecord(flag.shortName, format: longFlagsProbeFormat).record?.flags == [flag])
    }

    @Test("each flag alone in the Envoy default format and in JSON", arguments: ResponseFlag.allCases)
    func aloneInOtherFormats(flag: ResponseFlag) throws {
        var fields = Fields()
        fields.flags = flag.shortName
        #expect(try record(fields.line(.envoy), format: .envoy).flags == [flag])
        let json = #"{"response_code":503,"response_flags":"\#(flag.longName)","upstream_cluster":"c"}"#
        #expect(try record(json, format: .json(JSONKeyMap())).flags == [flag])
    }

    @Test("`-` means no flag")
    func dashIsNone() throws {
        let parsed = try #require(try flagsRecord("-").record)
        #expect(parsed.flags == [])
        #expect(parsed.unknownFlagCount == 0)
        #expect(parsed.unknownFlags == [])
        #expect(try record(Fixtures.istioOK, format: .istio).flags == [])
    }

    @Test("comma-joined flags are a set: order does not matter")
    func orderDoesNotMatter() throws {
        let a = try #require(try flagsRecord("UF,URX").record)
        let b = try #require(try flagsRecord("URX,UF").record)
        #expect(a.flags == [.upstreamConnectionFailure, .upstreamRetryLimitExceeded])
        #expect(b.flags == a.flags)
        #expect(a.unknownFlagCount == 0 && b.unknownFlagCount == 0)

        let three = ["UO", "UF", "URX"]
        var seen: Set<[ResponseFlag]> = []
        for permutation in [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]] {
            let field = permutation.map { three[$0] }.joined(separator: ",")
            seen.insert(try #require(try flagsRecord(field).record).flags)
        }
        #expect(seen == [[.upstreamConnectionFailure, .upstreamOverflow, .upstreamRetryLimitExceeded]])
    }

    @Test("all 30 flags at once, in reverse order, short and long mixed")
    func allFlagsAtOnce() throws {
        let reversedShort = ResponseFlag.allCases.reversed().map(\.shortName).joined(separator: ",")
        #expect(try flagsRecord(reversedShort).record?.flags == ResponseFlag.allCases)
        let mixed = ResponseFlag.allCases.enumerated()
            .map { $0.offset % 2 == 0 ? $0.element.longName : $0.element.shortName }
            .joined(separator: ",")
        let parsed = try #require(try flagsRecord(mixed).record)
        #expect(parsed.flags == ResponseFlag.allCases)
        #expect(parsed.unknownFlagCount == 0)
        var set = ResponseFlagSet()
        for flag in ResponseFlag.allCases { set.insert(ResponseFlagSet(flag)) }
        #expect(ResponseFlagSet(ResponseFlag.allCases) == set)
        #expect(set.flags == ResponseFlag.allCases)
    }

    @Test("short and long names mixed in one field")
    func mixedShortAndLong() throws {
        let parsed = try #require(try flagsRecord("UpstreamConnectionFailure,URX").record)
        #expect(parsed.flags == [.upstreamConnectionFailure, .upstreamRetryLimitExceeded])
        let same = try #require(try flagsRecord("UF,UpstreamRetryLimitExceeded", format: longFlagsProbeFormat).record)
        #expect(same.flags == parsed.flags)
        // The same flag twice is still one flag.
        #expect(try flagsRecord("UF,UpstreamConnectionFailure,UF").record?.flags == [.upstreamConnectionFailure])
    }

    @Test("unknown codes are kept and counted, not dropped")
    func unknownCodes() throws {
        let parsed = try #require(try flagsRecord("UF,XYZ,URX,CustomFlagLongName").record)
        #expect(parsed.flags == [.upstreamConnectionFailure, .upstreamRetryLimitExceeded])
        #expect(parsed.unknownFlagCount == 2)
        #expect(parsed.unknownFlags == ["XYZ", "CustomFlagLongName"])
        #expect(parsed.flagsText == "UF,XYZ,URX,CustomFlagLongName")

        let onlyUnknown = try #require(try flagsRecord("ZZ").record)
        #expect(onlyUnknown.flags == [])
        #expect(onlyUnknown.unknownFlagCount == 1)
        #expect(onlyUnknown.unknownFlags == ["ZZ"])

        // Near misses of real names are unknown, not mistaken for the real flag.
        let nearMisses = try #require(try flagsRecord("U,UFF,UpstreamConnectionFailures,Uf,X_1").record)
        #expect(nearMisses.flags == [])
        #expect(nearMisses.unknownFlags == ["U", "UFF", "UpstreamConnectionFailures", "Uf", "X_1"])
        #expect(nearMisses.unknownFlagCount == 5)

        // In an Istio line and in JSON too.
        var fields = Fields()
        fields.flags = "NEWFLAG,UF"
        let istio = try record(fields.line(.istio1_9), format: .istio)
        #expect(istio.flags == [.upstreamConnectionFailure])
        #expect(istio.unknownFlags == ["NEWFLAG"])
        let json = try record(#"{"response_flags":"UF,NEWFLAG","upstream_cluster":"c"}"#, format: .json(JSONKeyMap()))
        #expect(json.flags == [.upstreamConnectionFailure])
        #expect(json.unknownFlags == ["NEWFLAG"])
    }

    @Test(
        "fields that are not a comma-joined list of codes are bad_flags",
        arguments: [
            "UF,,URX", "UF,", ",UF", ",", "U-F", "-,UF", "UF,-", "UF;", "UF|URX", "--", "UF.URX", "\u{e9}", "U+F",
            "U\"F",
        ])
    func invalidFlags(field: String) throws {
        #expect(try flagsRecord(field) == .malformed(.badFlags))
    }

    @Test("a flags field with a quote at either end is not counted (another format's quoted field)")
    func quotedFlags() throws {
        #expect(try flagsRecord(#"UF""#).record == nil)
        #expect(try flagsRecord(#""UF"#).record == nil)
        #expect(try flagsRecord(#""-""#).record == nil)
    }

    @Test("invalid flag fields in Istio text and JSON are bad_flags")
    func invalidFlagsInPresets() throws {
        var fields = Fields()
        fields.flags = "UF,,URX"
        #expect(try parse(fields.line(.istio1_9), format: .istio) == .malformed(.badFlags))
        for value in [#""UF URX""#, #""UF,""#, "true", #"{"a":1}"#, #"["UF"]"#] {
            let line = #"{"response_code":503,"response_flags":\#(value),"upstream_cluster":"c"}"#
            #expect(try parse(line, format: .json(JSONKeyMap())) == .malformed(.badFlags), "\(value)")
        }
    }

    @Test("ResponseFlagSet basics")
    func flagSet() {
        var set: ResponseFlagSet = []
        #expect(set.flags == [])
        set.insert(ResponseFlagSet(.upstreamRetryLimitExceeded))
        set.insert(ResponseFlagSet(.failedLocalHealthCheck))
        set.insert(ResponseFlagSet(.unconditionalDropOverload))
        #expect(set.contains(.upstreamRetryLimitExceeded))
        #expect(!set.contains(.upstreamConnectionFailure))
        #expect(set.flags == [.failedLocalHealthCheck, .upstreamRetryLimitExceeded, .unconditionalDropOverload])
        var visited: [ResponseFlag] = []
        set.forEach { visited.append($0) }
        #expect(visited == set.flags)
    }
}
