import AccessLogParser
import Exposition
import FlagCounting
import LineFraming
import Testing

/// Parses `line` with `parser` and counts it (a record or its malformed reason).
func count(_ line: String, into counts: FlagCounts, with parser: inout AccessLogParser) {
    Array(line.utf8).withUnsafeBytes { buffer in
        var record = AccessRecord()
        if let reason = parser.parse(buffer, into: &record) {
            counts.count(LineDefect(reason))
        } else {
            counts.count(record)
        }
    }
}

func counts(of lines: [String], format: LogFormat = .auto) throws -> FlagCounts {
    let counts = FlagCounts()
    var parser = try AccessLogParser(format: format)
    for line in lines { count(line, into: counts, with: &parser) }
    return counts
}

@Suite("FlagCounts and ScanReport")
struct FlagCountsTests {
    @Test("an empty count renders as the empty shape")
    func empty() {
        let counts = FlagCounts()
        #expect(report(counts) == #"{"lines":0,"malformed":{},"clusters":{}}"#)
        #expect(
            counts.lines == 0 && counts.malformedTotal == 0 && counts.malformed.isEmpty && counts.allClusters.isEmpty)
    }

    @Test("exact JSON: UF,URX counts once under each flag; no-cluster lines under `-`; zero counts omitted")
    func exactJSON() throws {
        let counts = try counts(of: [Lines.istioURXUF, Lines.jsonURXUF, Lines.istioNR, Lines.jsonNR, Lines.istioOK])
        #expect(
            report(counts)
                == #"{"lines":5,"malformed":{},"clusters":{"-":{"requests":2,"codes":{"4xx":2},"flags":{"NR":2}},"outbound|8080||reviews.default.svc.cluster.local":{"requests":1,"codes":{"2xx":1},"flags":{}},"outbound|9002||ledger.default.svc.cluster.local":{"requests":2,"codes":{"5xx":2},"flags":{"UF":2,"URX":2}}}}"#
        )
        let ledger = try #require(
            counts.allClusters.first { $0.name == "outbound|9002||ledger.default.svc.cluster.local" })
        #expect(ledger.requests == 2)
        #expect(ledger.codes == [0, 0, 0, 0, 0, 2])
        #expect(ledger.flags == [.upstreamConnectionFailure: 2, .upstreamRetryLimitExceeded: 2])
        #expect(ledger.unknownFlags == [:])
        #expect(ledger.flagsByName == ["UF": 2, "URX": 2])
        #expect(ledger.flaggedTotal == 4)
        #expect(FlagCounts.noCluster == "-")
        #expect(FlagCounts.codeClassNames == ["0", "1xx", "2xx", "3xx", "4xx", "5xx"])
    }

    @Test("lines = parsed + malformed; malformed by reason, sorted, zero reasons omitted")
    func malformedCounts() throws {
        let counts = try counts(of: [
            Lines.istioUF, "", Lines.agentLog, #"{"response_flags":"UF""#, #"{"response_code":503}"#,
            Lines.envoyAppLog, "{\"response_flags\":\"UF,,X\"}", "{\"response_code\":\"5x3\",\"response_flags\":\"-\"}",
        ])
        counts.count(.tooLong)
        counts.count(LineDefect(ContainerDefect.badCRILine))
        counts.count(LineDefect(ContainerDefect.badDockerLine))
        counts.count(LineDefect(ContainerDefect.tooLong))
        #expect(counts.lines == 12)
        #expect(counts.malformedTotal == 11)
        #expect(
            counts.malformed == [
                .record(.emptyLine): 1, .record(.notAccessLog): 2, .record(.badJSON): 1,
                .record(.noFlagsField): 1, .record(.badFlags): 1, .record(.badResponseCode): 1,
                .tooLong: 2, .container(.badCRILine): 1, .container(.badDockerLine): 1,
            ])
        #expect(
            report(counts)
                == #"{"lines":12,"malformed":{"bad_cri_line":1,"bad_docker_line":1,"bad_flags":1,"bad_json":1,"bad_response_code":1,"empty_line":1,"no_flags_field":1,"not_access_log":2,"too_long":2},"clusters":{"outbound|9001||payments.default.svc.cluster.local":{"requests":1,"codes":{"5xx":1},"flags":{"UF":1}}}}"#
        )
    }

    @Test("every code class and the no-response class")
    func codeClasses() throws {
        let format = LogFormat.custom("%RESPONSE_CODE% %RESPONSE_FLAGS% %UPSTREAM_CLUSTER%")
        let counts = try counts(
            of: [
                "0 DC c", "- DC c", "101 - c", "200 - c", "204 - c", "302 - c", "429 RL c", "503 UF c", "504 UT c",
                "999 - c",
            ], format: format)
        #expect(
            report(counts)
                == #"{"lines":10,"malformed":{},"clusters":{"c":{"requests":10,"codes":{"0":3,"1xx":1,"2xx":2,"3xx":1,"4xx":1,"5xx":2},"flags":{"DC":2,"RL":1,"UF":1,"UT":1}}}}"#
        )
    }

    @Test("every flag is counted under its short name, long names too")
    func everyFlag() throws {
        let format = LogFormat.custom("%RESPONSE_CODE% %RESPONSE_FLAGS% %UPSTREAM_CLUSTER%")
        var lines = ResponseFlag.allCases.map { "503 \($0.shortName) short" }
        lines += ResponseFlag.allCases.map { "503 \($0.longName) long" }
        lines.append("503 \(ResponseFlag.allCases.map(\.shortName).joined(separator: ",")) all")
        let counts = try counts(of: lines, format: format)
        let expectedFlags = ResponseFlag.allCases.map(\.shortName).sorted().map { #""\#($0)":1"# }.joined(
            separator: ",")
        #expect(
            report(counts)
                == #"{"lines":61,"malformed":{},"clusters":{"all":{"requests":1,"codes":{"5xx":1},"flags":{\#(expectedFlags)}},"long":{"requests":30,"codes":{"5xx":30},"flags":{\#(expectedFlags)}},"short":{"requests":30,"codes":{"5xx":30},"flags":{\#(expectedFlags)}}}}"#
        )
    }

    @Test("unknown codes are counted by their own text, per cluster")
    func unknownFlags() throws {
        let format = LogFormat.custom("%RESPONSE_CODE% %RESPONSE_FLAGS% %UPSTREAM_CLUSTER%")
        let counts = try counts(of: ["503 UF,XA a", "503 XA,XB a", "503 XA b", "200 - b"], format: format)
        let a = counts.counts(forCluster: try #require(counts.clusters.lookUp("a")))
        #expect(a.unknownFlags == ["XA": 2, "XB": 1])
        #expect(a.flags == [.upstreamConnectionFailure: 1])
        #expect(a.flaggedTotal == 4)
        #expect(
            report(counts)
                == #"{"lines":4,"malformed":{},"clusters":{"a":{"requests":2,"codes":{"5xx":2},"flags":{"UF":1,"XA":2,"XB":1}},"b":{"requests":2,"codes":{"2xx":1,"5xx":1},"flags":{"XA":1}}}}"#
        )
    }

    @Test(
        "JSON cluster names with escapes are decoded, counted with their plain spelling, and re-escaped in the report")
    func escapedClusterNames() throws {
        let counts = try counts(
            of: [
                #"{"response_flags":"UF","response_code":503,"upstream_cluster":"outbound|80||a\u002eb"}"#,
                #"{"response_flags":"UF","response_code":503,"upstream_cluster":"outbound|80||a.b"}"#,
                #"{"response_flags":"UH","response_code":503,"upstream_cluster":"we\"ird\\name\u00e9\ttab"}"#,
                #"{"response_flags":"-","response_code":200,"upstream_cluster":"\u0001ctl"}"#,
            ], format: .json(JSONKeyMap()))
        #expect(counts.allClusters.map(\.name) == ["outbound|80||a.b", "we\"ird\\name\u{e9}\ttab", "\u{1}ctl"])
        #expect(
            report(counts)
                == #"{"lines":4,"malformed":{},"clusters":{"\u0001ctl":{"requests":1,"codes":{"2xx":1},"flags":{}},"outbound|80||a.b":{"requests":2,"codes":{"5xx":2},"flags":{"UF":2}},"we\"ird\\name\#u{e9}\ttab":{"requests":1,"codes":{"5xx":1},"flags":{"UH":1}}}}"#
        )
    }

    @Test("merge adds another FlagCounts' counts, matching clusters by name")
    func merge() throws {
        let a = try counts(of: [Lines.istioUF, Lines.istioNR, "", Lines.istioUFCustom])
        let b = try counts(of: [
            Lines.istioURXUF, Lines.istioUF, Lines.agentLog, Lines.istioDC, Lines.istioOK, Lines.envoyAppLog,
        ])
        a.merge(b)
        #expect(report(a) == Lines.mixedReport)
        let whole = try counts(of: Lines.mixed)
        #expect(report(whole) == Lines.mixedReport)
        #expect(a.lines == whole.lines && a.malformed == whole.malformed)
    }

    @Test("table output lists the most flagged clusters first and the malformed reasons")
    func table() throws {
        let counts = try counts(of: Lines.mixed)
        let table = ScanReport(counts: counts).table(recognizedFormats: ["istio (1.9+)"])
        let rows = table.split(separator: "\n").map(String.init)
        #expect(rows[0].hasPrefix("UPSTREAM CLUSTER"))
        #expect(rows[1].hasPrefix("outbound|9001||payments.default.svc.cluster.local"))
        #expect(rows[0].hasSuffix("FLAGS           LIKELY CAUSE"))
        // Without a diagnosis (the Diagnosis module fills them in for scan) the cause is `-`.
        #expect(rows[1].hasSuffix("UF=3 XCUSTOM=1  -"))
        #expect(rows[2].hasPrefix("outbound|9002||ledger.default.svc.cluster.local"))
        #expect(table.contains("lines: 10  parsed: 7  malformed: 3  format: istio (1.9+)"))
        #expect(table.contains("  malformed not_access_log: 2\n  malformed empty_line: 1\n"))
        #expect(
            ScanReport(counts: counts).clustersByFlagsDescending.map(\.name) == [
                "outbound|9001||payments.default.svc.cluster.local", "outbound|9002||ledger.default.svc.cluster.local",
                "-", "outbound|8080||recommendations.default.svc.cluster.local",
                "outbound|8080||reviews.default.svc.cluster.local",
            ])
    }

    @Test("LineDefect maps every parser and container reason to the same label value")
    func lineDefects() {
        for reason in MalformedReason.allCases { #expect(LineDefect(reason).rawValue == reason.rawValue) }
        for defect in ContainerDefect.allCases { #expect(LineDefect(defect).rawValue == defect.rawValue) }
        #expect(
            LineDefect.allCases.map(\.rawValue) == [
                "empty_line", "not_access_log", "format_mismatch", "no_flags_field", "bad_flags", "bad_response_code",
                "bad_json", "bad_protobuf", "too_long", "bad_cri_line", "bad_docker_line",
            ])
    }
}

@Suite("ClusterInterner")
struct ClusterInternerTests {
    func intern(_ interner: ClusterInterner, _ name: String) -> Int {
        Array(name.utf8).withUnsafeBytes { interner.intern($0) }
    }

    @Test("ids are dense, stable and found again")
    func stableIDs() {
        let interner = ClusterInterner()
        #expect(intern(interner, "outbound|9001||payments.default.svc.cluster.local") == 0)
        #expect(intern(interner, "-") == 1)
        #expect(intern(interner, "outbound|9001||payments.default.svc.cluster.local") == 0)
        #expect(intern(interner, "outbound|9001||payments.default.svc.cluster.locaL") == 2)
        #expect(intern(interner, "") == 3)
        #expect(intern(interner, "") == 3)
        #expect(interner.count == 4)
        #expect(
            interner.names == [
                "outbound|9001||payments.default.svc.cluster.local", "-",
                "outbound|9001||payments.default.svc.cluster.locaL", "",
            ])
        #expect(interner.lookUp("-") == 1)
        #expect(interner.lookUp("") == 3)
        #expect(interner.lookUp("nope") == nil)
    }

    @Test("names that differ only at 8-byte word boundaries or in length are distinct")
    func nearNames() {
        let interner = ClusterInterner(initialCapacity: 1)
        let names = [
            "abcdefgh", "abcdefgi", "abcdefghX", "abcdefgh\u{0}", "abcdefg", "abcdefghabcdefgh", "abcdefghabcdefgi",
            "abcdefghabcdefgh1", "a", "b", "\u{0}", "\u{0}\u{0}", "outbound|80||x", "outbound|81||x",
        ]
        for (index, name) in names.enumerated() { #expect(intern(interner, name) == index, "\(name.debugDescription)") }
        for (index, name) in names.enumerated() {
            #expect(intern(interner, name) == index)
            #expect(interner.lookUp(name) == index)
        }
    }

    @Test("many clusters force table growth; every id stays stable", arguments: [1, 256])
    func growth(initialCapacity: Int) {
        let interner = ClusterInterner(initialCapacity: initialCapacity)
        let names = (0..<5000).map { "outbound|\(8000 + $0 % 7)|v\($0 % 3)|svc-\($0).ns-\($0 % 11).svc.cluster.local" }
        for (index, name) in names.enumerated() { #expect(intern(interner, name) == index) }
        #expect(interner.count == 5000)
        #expect(interner.names == names)
        var mismatches = 0
        for (index, name) in names.enumerated().reversed() {
            if intern(interner, name) != index || interner.lookUp(name) != index { mismatches += 1 }
        }
        #expect(mismatches == 0)
        #expect(interner.count == 5000)
        #expect(interner.lookUp("outbound|8000|v0|svc-5000.ns-6.svc.cluster.local") == nil)
    }

    @Test("interning reads the bytes, not the address: the same name from different buffers")
    func differentBuffers() {
        let interner = ClusterInterner()
        let line = Array("xx outbound|80||a.svc yy outbound|80||a.svc".utf8)
        line.withUnsafeBytes { buffer in
            let first = UnsafeRawBufferPointer(rebasing: buffer[3..<21])
            let second = UnsafeRawBufferPointer(rebasing: buffer[25..<43])
            #expect(interner.intern(first) == 0)
            #expect(interner.intern(second) == 0)
        }
        #expect(interner.names == ["outbound|80||a.svc"])
    }

    @Test("many clusters through FlagCounts keep their counts")
    func manyClustersCounted() throws {
        let format = LogFormat.custom("%RESPONSE_CODE% %RESPONSE_FLAGS% %UPSTREAM_CLUSTER%")
        var lines: [String] = []
        for round in 0..<3 { for index in 0..<700 { lines.append("503 \(round == 0 ? "UF" : "-") c\(index)") } }
        let counts = try counts(of: lines, format: format)
        #expect(counts.allClusters.count == 700)
        for cluster in counts.allClusters {
            #expect(cluster.requests == 3 && cluster.codes[5] == 3 && cluster.flags == [.upstreamConnectionFailure: 1])
        }
    }
}

@Suite("Prometheus exposition")
struct PrometheusTests {
    @Test("response flag, response and line counters with escaped label values")
    func render() throws {
        let counts = try counts(of: [
            Lines.istioUF, Lines.istioUF, Lines.istioURXUF, Lines.istioNR, Lines.agentLog, "",
            #"{"response_flags":"UF","response_code":503,"upstream_cluster":"we\"ird\\x|y"}"#,
            #"{"response_flags":"UF,XCUSTOM","response_code":503,"upstream_cluster":"we\"ird\\x|y"}"#,
        ])
        let text = ScanReport(counts: counts).prometheus(source: "scan")
        let lines = Set(text.split(separator: "\n").map(String.init))
        for expected in [
            #"flagwatch_response_flags_total{upstream_cluster="outbound|9001||payments.default.svc.cluster.local",response_flag="UF"} 2"#,
            #"flagwatch_response_flags_total{upstream_cluster="outbound|9002||ledger.default.svc.cluster.local",response_flag="UF"} 1"#,
            #"flagwatch_response_flags_total{upstream_cluster="outbound|9002||ledger.default.svc.cluster.local",response_flag="URX"} 1"#,
            #"flagwatch_response_flags_total{upstream_cluster="-",response_flag="NR"} 1"#,
            #"flagwatch_response_flags_total{upstream_cluster="we\"ird\\x|y",response_flag="UF"} 2"#,
            #"flagwatch_response_flags_total{upstream_cluster="we\"ird\\x|y",response_flag="XCUSTOM"} 1"#,
            #"flagwatch_responses_total{upstream_cluster="outbound|9001||payments.default.svc.cluster.local",code_class="5xx"} 2"#,
            #"flagwatch_responses_total{upstream_cluster="-",code_class="4xx"} 1"#,
            #"flagwatch_lines_total{source="scan"} 8"#,
            #"flagwatch_lines_malformed_total{source="scan",reason="not_access_log"} 1"#,
            #"flagwatch_lines_malformed_total{source="scan",reason="empty_line"} 1"#,
            #"flagwatch_lines_malformed_total{source="scan",reason="too_long"} 0"#,
            "# TYPE flagwatch_response_flags_total counter",
        ] {
            #expect(lines.contains(expected), "missing: \(expected)\n\(text)")
        }
        // Zero flag counts are not exported; every sample line is well-formed.
        #expect(!text.contains(#"response_flag="UH""#))
        #expect(!text.contains(#"code_class="2xx""#))
        #expect(text.hasSuffix("\n"))
        for line in lines where !line.hasPrefix("#") {
            #expect(line.hasPrefix("flagwatch_"), "\(line)")
        }
    }
}
