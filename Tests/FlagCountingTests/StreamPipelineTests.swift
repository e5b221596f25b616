import AccessLogParser
import Exposition
import FlagCounting
import LineFraming
import Testing

@Suite("StreamPipeline")
struct StreamPipelineTests {
    @Test("a mixed Istio stream gives the exact report")
    func mixedStream() throws {
        let counts = try run([bytes(Lines.mixed)])
        #expect(report(counts) == Lines.mixedReport)
        #expect(counts.lines == 10)
        #expect(counts.malformedTotal == 3)
        #expect(counts.malformed == [.record(.emptyLine): 1, .record(.notAccessLog): 2])
        // The same with the istio preset.
        #expect(report(try run([bytes(Lines.mixed)], format: .istio)) == Lines.mixedReport)
    }

    @Test(
        "splitting the input at every byte offset, or byte by byte, gives identical counts (small buffers force compaction)",
        arguments: [(512, 600), (2048, 4096)])
    func everySplit(maxLineLength: Int, bufferSize: Int) throws {
        try expectSameReportForEverySplit(
            bytes(Lines.mixed), expected: Lines.mixedReport,
            maxLineLength: maxLineLength, bufferSize: bufferSize)
    }

    @Test("irregular chunk sizes give identical counts")
    func irregularChunks() throws {
        let input = bytes(Lines.mixed)
        for size in [2, 3, 7, 64, 127, 333, 1000] {
            let chunks = stride(from: 0, to: input.count, by: size).map {
                Array(input[$0..<min($0 + size, input.count)])
            }
            for delivery in Delivery.allCases {
                #expect(
                    report(try run(chunks, maxLineLength: 512, bufferSize: 700, delivery: delivery))
                        == Lines.mixedReport, "size \(size) \(delivery)")
            }
        }
    }

    @Test("a final line without a newline is not counted until its newline arrives")
    func finalLineWaits() throws {
        let counts = FlagCounts()
        let pipeline = try StreamPipeline(format: .auto, containerFormat: .none, counts: counts)
        let first = Array((Lines.istioOK + "\n" + Lines.istioUF).utf8)
        first.withUnsafeBytes { pipeline.feed($0) }
        #expect(counts.lines == 1)
        #expect(pipeline.framer.pendingByteCount == Lines.istioUF.utf8.count)
        #expect(!report(counts).contains("payments"))
        Array("\n".utf8).withUnsafeBytes { pipeline.feed($0) }
        #expect(counts.lines == 2)
        #expect(
            report(counts).contains(
                #""outbound|9001||payments.default.svc.cluster.local":{"requests":1,"codes":{"5xx":1},"flags":{"UF":1}}"#
            ))
        #expect(pipeline.recognizedFormat == "istio (1.9+)")
    }

    @Test("with a time window only lines that started in it count; the others are tallied by why")
    func timeWindow() throws {
        // istioOK starts at 02:34:27.532, istioUF at 02:34:27.561, jsonNR at 02:34:27.647:
        // all in second 1_795_314_867. A line of another second, and one without a time.
        let later = Lines.istioUF.replacing("2026-11-22T02:34:27.561Z", with: "2026-11-22T02:35:00.000Z")
        let untimed = Lines.istioOK.replacing("2026-11-22T02:34:27.532Z", with: "yesterday")
        let input = bytes([Lines.istioOK, Lines.istioUF, Lines.jsonNR, later, untimed, "not an access log line"])
        let counts = FlagCounts()
        let pipeline = try StreamPipeline(
            format: .auto, containerFormat: .none, counts: counts,
            window: TimeWindow(since: 1_795_314_867, until: 1_795_314_868))
        input.withUnsafeBytes { pipeline.feed($0) }
        // Three in the window, and the malformed line, which has no time to judge.
        #expect(counts.lines == 4)
        #expect(counts.malformedTotal == 1)
        #expect(pipeline.linesOutsideWindow == 1)
        #expect(pipeline.linesWithoutTime == 1)
        #expect(report(counts).contains(#""outbound|9001||payments.default.svc.cluster.local":{"requests":1,"#))
        // An open end: since alone.
        let sinceCounts = FlagCounts()
        let since = try StreamPipeline(
            format: .auto, containerFormat: .none, counts: sinceCounts, window: TimeWindow(since: 1_795_314_868))
        input.withUnsafeBytes { since.feed($0) }
        #expect(sinceCounts.lines - sinceCounts.malformedTotal == 1)
        #expect(since.linesOutsideWindow == 3)
    }

    @Test("CRLF line endings count the same as LF")
    func crlf() throws {
        try expectSameReportForEverySplit(
            bytes(Lines.mixed, separator: "\r\n"), expected: Lines.mixedReport,
            maxLineLength: 512, bufferSize: 600, stride: 3)
    }

    @Test("a line over the cap is skipped whole as too_long and the next line is still parsed")
    func tooLong() throws {
        let long = Lines.istioUF.replacing("flag-harness/uf", with: String(repeating: "A", count: 600))
        let input = bytes([Lines.istioURXUF, long, Lines.istioUF])
        let expected =
            #"{"lines":3,"malformed":{"too_long":1},"clusters":{"#
            + #""outbound|9001||payments.default.svc.cluster.local":{"requests":1,"codes":{"5xx":1},"flags":{"UF":1}},"#
            + #""outbound|9002||ledger.default.svc.cluster.local":{"requests":1,"codes":{"5xx":1},"flags":{"UF":1,"URX":1}}}}"#
        try expectSameReportForEverySplit(input, expected: expected, maxLineLength: 512, bufferSize: 1024)
        try expectSameReportForEverySplit(input, expected: expected, maxLineLength: 512, bufferSize: 64, stride: 5)
    }

    @Test("CRI-wrapped stream with P/F chunks, stdout and stderr interleaved, split at every offset")
    func criStream() throws {
        let ts = "2016-10-06T00:17:09.669794202Z"
        let ufHead = String(Lines.istioUF.prefix(150))
        let ufTail = String(Lines.istioUF.dropFirst(150))
        let okHead = String(Lines.istioOK.prefix(40))
        let okMid = String(Lines.istioOK.dropFirst(40).prefix(200))
        let okTail = String(Lines.istioOK.dropFirst(240))
        let wrapped = [
            "\(ts) stdout P \(ufHead)",
            "\(ts) stderr P \(okHead)",
            "\(ts) stderr P \(okMid)",
            "\(ts) stdout F \(ufTail)",
            "2020-01-26T03:17:29.346494690+00:00 stdout F \(Lines.istioURXUF)",
            "\(ts) stdout F ",
            "\(ts) stderr F \(okTail)",
            "\(ts) stdout F \(Lines.agentLog)",
            "not a cri line",
            "\(ts) stdout F:x \(Lines.istioNR)",
        ]
        let expected =
            #"{"lines":7,"malformed":{"bad_cri_line":1,"empty_line":1,"not_access_log":1},"clusters":{"#
            + #""-":{"requests":1,"codes":{"4xx":1},"flags":{"NR":1}},"#
            + #""outbound|8080||reviews.default.svc.cluster.local":{"requests":1,"codes":{"2xx":1},"flags":{}},"#
            + #""outbound|9001||payments.default.svc.cluster.local":{"requests":1,"codes":{"5xx":1},"flags":{"UF":1}},"#
            + #""outbound|9002||ledger.default.svc.cluster.local":{"requests":1,"codes":{"5xx":1},"flags":{"UF":1,"URX":1}}}}"#
        let input = bytes(wrapped)
        #expect(report(try run([input], container: .cri)) == expected)
        try expectSameReportForEverySplit(
            input, expected: expected, container: .cri, maxLineLength: 512, bufferSize: 600)
        // With `auto` the non-CRI line is a raw line, not a defect.
        let autoExpected = expected.replacing(
            #""bad_cri_line":1,"empty_line":1,"not_access_log":1"#,
            with: #""empty_line":1,"not_access_log":2"#)
        #expect(report(try run([input], container: .auto)) == autoExpected)
    }

    @Test("CRI partial chunks joined past the cap count as too_long; the next line is counted")
    func criTooLong() throws {
        let ts = "2016-10-06T00:17:09.669794202Z"
        // Each wrapped chunk (and the 483-byte URX line) fits the cap; the joined line (about 900 bytes) does not.
        let long = Lines.istioUF.replacing("flag-harness/uf", with: String(repeating: "u", count: 500))
        let parts = stride(from: 0, to: long.count, by: 100).map { String(long.dropFirst($0).prefix(100)) }
        var wrapped = parts.dropLast().map { "\(ts) stdout P \($0)" }
        wrapped.append("\(ts) stdout F \(parts.last!)")
        wrapped.append("\(ts) stdout F \(Lines.istioURXUF)")
        let counts = try run([bytes(wrapped)], container: .cri, maxLineLength: 500)
        #expect(counts.lines == 2)
        #expect(counts.malformed == [.tooLong: 1])
        #expect(report(counts).contains(#""outbound|9002||ledger.default.svc.cluster.local""#))
        #expect(!report(counts).contains("payments"))
    }

    @Test("docker json-file stream, with a split long line, split at every offset")
    func dockerStream() throws {
        func escape(_ text: String) -> String { text.replacing("\"", with: "\\\"") }
        let head = String(Lines.istioUF.prefix(123))
        let tail = String(Lines.istioUF.dropFirst(123))
        let wrapped = [
            #"{"log":"\#(escape(Lines.istioURXUF))\n","stream":"stdout","time":"2019-05-29T15:32:47.807717111Z"}"#,
            #"{"log":"\#(escape(head))","stream":"stdout","time":"2019-05-29T15:32:47.807717111Z"}"#,
            #"{"log":"\#(escape(Lines.agentLog).replacing("\t", with: "\\t"))\n","stream":"stderr","time":"2019-05-29T15:32:47.807717111Z"}"#,
            #"{"log":"\#(escape(tail))\n","stream":"stdout","time":"2019-05-29T15:32:47.807717111Z"}"#,
            #"{"log":"\#(escape(Lines.jsonNR))\n","stream":"stdout","time":"2019-05-29T15:32:47.807717111Z"}"#,
            "garbage",
        ]
        let expected =
            #"{"lines":5,"malformed":{"bad_docker_line":1,"not_access_log":1},"clusters":{"#
            + #""-":{"requests":1,"codes":{"4xx":1},"flags":{"NR":1}},"#
            + #""outbound|9001||payments.default.svc.cluster.local":{"requests":1,"codes":{"5xx":1},"flags":{"UF":1}},"#
            + #""outbound|9002||ledger.default.svc.cluster.local":{"requests":1,"codes":{"5xx":1},"flags":{"UF":1,"URX":1}}}}"#
        let input = bytes(wrapped)
        #expect(report(try run([input], container: .docker)) == expected)
        try expectSameReportForEverySplit(
            input, expected: expected, container: .docker, maxLineLength: 1024, bufferSize: 1100)
    }

    @Test("a stream whose Istio version changes keeps counting the right clusters (counting fields)")
    func istioVersionChange() throws {
        // Istio ≤1.2 (no route name), then 1.3–1.7 (mixer status + route name), then 1.9+.
        let v12 =
            #"[2019-06-10T08:21:45.098Z] "GET /v1/orders HTTP/1.1" 503 UF "-" "-" 0 91 37 - "-" "curl/7.64.0" "5c7a0b36-4c1b-9d7c-8d5e-0a1b2c3d4e5f" "orders:8080" "10.44.1.17:8080" outbound|8080||orders.shop.svc.cluster.local 10.44.2.5:40122 10.0.31.4:8080 10.44.2.9:51234 -"#
        let v13 =
            #"[2020-06-10T08:21:45.098Z] "GET /v1/orders HTTP/1.1" 503 UF "-" "-" 0 91 37 - "-" "curl/7.64.0" "5c7a0b36-4c1b-9d7c-8d5e-0a1b2c3d4e5f" "orders:8080" "10.44.1.17:8080" outbound|8080||orders.shop.svc.cluster.local 10.44.2.5:40122 10.0.31.4:8080 10.44.2.9:51234 - default"#
        let expected =
            #"{"lines":5,"malformed":{},"clusters":{"#
            + #""outbound|8080||orders.shop.svc.cluster.local":{"requests":4,"codes":{"5xx":4},"flags":{"UF":4}},"#
            + #""outbound|9001||payments.default.svc.cluster.local":{"requests":1,"codes":{"5xx":1},"flags":{"UF":1}}}}"#
        for format in [LogFormat.istio, .auto] {
            let actual = report(try run([bytes([v12, v12, v13, v13, Lines.istioUF])], format: format))
            #expect(actual == expected, "\(format)")
        }
    }

    static let variantLines: [(String, String)] = [
        ("istio (1.9+)", Lines.istioUF),
        (
            "istio (1.8)",
            #"[2020-11-10T08:21:45.098Z] "GET /v1/orders HTTP/1.1" 503 UF "TLS error: Secret is not supplied by SDS" 0 91 37 - "-" "curl/7.64.0" "5c7a0b36-4c1b-9d7c-8d5e-0a1b2c3d4e5f" "orders:8080" "10.44.1.17:8080" outbound|8080||orders.shop.svc.cluster.local - 10.0.31.4:8080 10.44.2.9:51234 - default"#
        ),
        (
            "istio (1.3-1.7)",
            #"[2020-06-10T08:21:45.098Z] "GET /v1/orders HTTP/1.1" 503 UF "-" "TLS error: Secret is not supplied by SDS" 0 91 37 - "-" "curl/7.64.0" "5c7a0b36-4c1b-9d7c-8d5e-0a1b2c3d4e5f" "orders:8080" "10.44.1.17:8080" outbound|8080||orders.shop.svc.cluster.local - 10.0.31.4:8080 10.44.2.9:51234 - default"#
        ),
        (
            "istio (<=1.2)",
            #"[2019-06-10T08:21:45.098Z] "GET /v1/orders HTTP/1.1" 503 UF "-" "TLS error: Secret is not supplied by SDS" 0 91 37 - "-" "curl/7.64.0" "5c7a0b36-4c1b-9d7c-8d5e-0a1b2c3d4e5f" "orders:8080" "10.44.1.17:8080" outbound|8080||orders.shop.svc.cluster.local - 10.0.31.4:8080 10.44.2.9:51234 -"#
        ),
        (
            "envoy",
            #"[2016-04-15T20:17:00.310Z] "POST /api/v1/locations HTTP/2" 503 UF 154 0 226 - "10.0.35.28" "nsq2http" "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2" "locations" "tcp://10.0.2.1:80""#
        ),
        ("json", Lines.jsonURXUF),
    ]

    @Test("recognizedFormat names each preset's variant (shown by `scan` as format:)", arguments: variantLines)
    func recognizedFormat(name: String, line: String) throws {
        for format in [LogFormat.auto] + (name.hasPrefix("istio") ? [LogFormat.istio] : []) {
            let counts = FlagCounts()
            let pipeline = try StreamPipeline(format: format, containerFormat: .none, counts: counts)
            bytes([line]).withUnsafeBytes { pipeline.feed($0) }
            #expect(counts.lines == 1 && counts.malformedTotal == 0)
            #expect(pipeline.recognizedFormat == name, "\(format)")
            let cluster = counts.allClusters.first?.name
            #expect(
                cluster
                    == (name == "envoy"
                        ? "-"
                        : name == "json"
                            ? "outbound|9002||ledger.default.svc.cluster.local"
                            : name == "istio (1.9+)"
                                ? "outbound|9001||payments.default.svc.cluster.local"
                                : "outbound|8080||orders.shop.svc.cluster.local"))
        }
    }

    @Test("kubectl --timestamps prefixed lines with the auto wrapper")
    func kubectlPrefix() throws {
        let lines = [Lines.istioUF, Lines.istioURXUF, Lines.jsonNR].map { "2026-11-22T02:34:27.561234567Z \($0)" }
        let counts = try run([bytes(lines)], container: .auto)
        #expect(counts.lines == 3 && counts.malformedTotal == 0)
        #expect(
            counts.allClusters.map(\.name) == [
                "outbound|9001||payments.default.svc.cluster.local",
                "outbound|9002||ledger.default.svc.cluster.local", "-",
            ])
    }

    @Test("readAndCount reads through a closure until it returns 0")
    func readAndCount() throws {
        let counts = FlagCounts()
        let pipeline = try StreamPipeline(
            format: .istio, containerFormat: .none, maxLineLength: 512, bufferSize: 600, counts: counts)
        let source = bytes(Lines.mixed)
        var offset = 0
        while true {
            let n = pipeline.readAndCount { (buffer: UnsafeMutableRawBufferPointer) -> Int in
                let n = min(buffer.count, source.count - offset, 97)
                for index in 0..<n { buffer[index] = source[offset + index] }
                offset += n
                return n
            }
            if n == 0 { break }
        }
        #expect(report(counts) == Lines.mixedReport)
    }

    @Test("several pipelines can share one FlagCounts")
    func sharedCounts() throws {
        let counts = FlagCounts()
        let a = try StreamPipeline(format: .istio, containerFormat: .none, counts: counts)
        let b = try StreamPipeline(format: .json(JSONKeyMap()), containerFormat: .none, counts: counts)
        bytes([Lines.istioUF, Lines.istioURXUF]).withUnsafeBytes { a.feed($0) }
        bytes([Lines.jsonURXUF, Lines.jsonNR]).withUnsafeBytes { b.feed($0) }
        #expect(
            report(counts)
                == #"{"lines":4,"malformed":{},"clusters":{"-":{"requests":1,"codes":{"4xx":1},"flags":{"NR":1}},"outbound|9001||payments.default.svc.cluster.local":{"requests":1,"codes":{"5xx":1},"flags":{"UF":1}},"outbound|9002||ledger.default.svc.cluster.local":{"requests":2,"codes":{"5xx":2},"flags":{"UF":2,"URX":2}}}}"#
        )
        #expect(a.recognizedFormat == "istio (1.9+)")
        #expect(b.recognizedFormat == "json")
    }

    @Test("a bad custom format is refused when the pipeline is made")
    func badFormat() {
        #expect(throws: FormatStringError.self) {
            _ = try StreamPipeline(format: .custom("%RESPONSE_CODE%"), containerFormat: .none, counts: FlagCounts())
        }
    }
}
