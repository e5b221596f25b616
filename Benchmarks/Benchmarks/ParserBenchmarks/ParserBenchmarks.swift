// flagwatch parser benchmarks: throughput per line, bytes per second and mallocs per line.
//
// Every benchmark works through an in-memory corpus of 100,000 varied lines (Corpus.swift)
// built once per process before anything is measured. One iteration handles the next 1,000
// lines of the corpus (the cursor wraps), and the scaling factor is `.kilo`, so the scaled
// figures (marked `*` in the output) read per line: `Throughput` is lines/s, `Time` is ns per
// line, `Malloc (total)` is mallocs per line. `Bytes / s` is the input consumed per second.
//
// Everything that allocates by design — the corpus, the parser's format plans, the pipeline's
// 4 MiB framing buffer, the counters — is built in `setup`, outside the measured region, and
// lives across iterations the way it lives across lines in `flagwatch scan`. The parse and
// warm-pipeline benchmarks must then allocate nothing: their `mallocCountTotal` tolerance is
// 0 and Benchmarks/Thresholds/ holds a p90 of 0 for them, so `thresholds check` (run.sh) fails
// on any allocation in the measured region.
//
// Before the first benchmark the corpora are parsed once and compared with what the generator
// meant (codes, flags, clusters, and the pipeline's counts); a mismatch is printed to stderr
// and fails the benchmarks.
//
// RarePaths.swift adds two benchmarks for lines that take the counting stage's rare paths;
// they allocate per line today and have no zero threshold (see there).

import AccessLogParser
import Benchmark
import FlagCounting
import LineFraming

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

let bytesPerSecond = BenchmarkMetric.custom("Bytes / s", polarity: .prefersLarger, useScalingFactor: false)

let benchmarks: @Sendable () -> Void = {
    let metrics: [BenchmarkMetric] = [.throughput, .wallClock, .mallocCountTotal, bytesPerSecond]
    // No metric that samples the OS (cpu*, peakMemory*, syscalls): the framework reads /proc
    // for those between its malloc snapshots, which shows up as mallocs in every iteration.
    Benchmark.defaultConfiguration = .init(
        metrics: metrics,
        warmupIterations: 10,
        scalingFactor: .kilo,
        maxDuration: .seconds(3),
        maxIterations: 1_000_000,
        thresholds: [.mallocCountTotal: .init(absolute: [.p90: 0])]
    )

    // (a) The Istio text parser over Istio 1.9+ TEXT lines.
    Benchmark("parse-istio-text") { benchmark, fixture in
        runParse(benchmark, fixture)
    } setup: {
        try ParseFixture(Corpora.verified().text, format: .istio)
    }

    // (a') The same lines with `--format auto` (flagwatch's default): JSON first, then every
    // Istio variant and Envoy's default; after the first line the matching plan is tried first.
    Benchmark("parse-auto-text") { benchmark, fixture in
        runParse(benchmark, fixture)
    } setup: {
        try ParseFixture(Corpora.verified().text, format: .auto)
    }

    // (b) The JSON parser over the same records as Istio JSON lines.
    Benchmark("parse-json") { benchmark, fixture in
        runParse(benchmark, fixture)
    } setup: {
        try ParseFixture(Corpora.verified().json, format: .json(JSONKeyMap()))
    }

    // (a'') and (b') With only the fields counting needs (code, flags, cluster), as
    // StreamPipeline builds its parser: plans that skip the fields nobody reads.
    Benchmark("parse-istio-text-counting") { benchmark, fixture in
        runParse(benchmark, fixture)
    } setup: {
        try ParseFixture(Corpora.verified().text, format: .istio, fields: .counting)
    }
    Benchmark("parse-json-counting") { benchmark, fixture in
        runParse(benchmark, fixture)
    } setup: {
        try ParseFixture(Corpora.verified().json, format: .json(JSONKeyMap()), fields: .counting)
    }

    // (c) The whole per-line path of `flagwatch scan`: framing, container unwrap (auto),
    // parse (auto), counting. The pipeline is warm: the warm-up passes over the whole corpus
    // once, so every cluster is interned and the counters have grown before measuring.
    let warmPass = Benchmark.Configuration(
        metrics: metrics,
        warmupIterations: Corpora.lineCount / 1_000 + 1,
        scalingFactor: .kilo,
        maxDuration: .seconds(3),
        maxIterations: 1_000_000,
        thresholds: [.mallocCountTotal: .init(absolute: [.p90: 0])]
    )
    Benchmark("pipeline-auto-text", configuration: warmPass) { benchmark, fixture in
        runPipeline(benchmark, fixture)
    } setup: {
        try PipelineFixture(Corpora.verified().text)
    }

    // (c, in place) The same lines framed in place (`count(inPlace:)`, what `flagwatch scan`
    // does over a memory-mapped file): no copy into the framer's buffer.
    Benchmark("pipeline-inplace-auto-text", configuration: warmPass) { benchmark, fixture in
        runPipeline(benchmark, fixture, inPlace: true)
    } setup: {
        try PipelineFixture(Corpora.verified().text)
    }

    // (c') The same with every line wrapped by containerd/CRI-O (`<ts> stdout F <line>`).
    Benchmark("pipeline-auto-cri-text", configuration: warmPass) { benchmark, fixture in
        runPipeline(benchmark, fixture)
    } setup: {
        try PipelineFixture(Corpora.verified().criText)
    }

    // (c'') JSON lines in docker's json-file wrapper: every line is unescaped into the
    // unwrapper's reusable buffer before parsing.
    Benchmark("pipeline-auto-docker-json", configuration: warmPass) { benchmark, fixture in
        runPipeline(benchmark, fixture)
    } setup: {
        try PipelineFixture(Corpora.verified().dockerJSON)
    }

    // (c''') A fresh pipeline and counts per iteration, fed the whole 100k-line corpus: what
    // the first pass costs (cluster interning, counter growth). Allocates by design; the
    // figure to read is Malloc (total) per 100k lines. No zero threshold.
    Benchmark(
        "pipeline-cold-100k-lines",
        configuration: .init(
            metrics: metrics, warmupIterations: 1, scalingFactor: .one, maxDuration: .seconds(3), maxIterations: 50,
            thresholds: [:])
    ) { benchmark, corpus in
        let counts = FlagCounts()
        let pipeline = try! StreamPipeline(format: .auto, containerFormat: .auto, counts: counts)
        let clock = ContinuousClock()
        benchmark.startMeasurement()
        let start = clock.now
        pipeline.feed(corpus.lines(from: 0, to: corpus.lineCount))
        let elapsed = start.duration(to: clock.now)
        benchmark.stopMeasurement()
        precondition(counts.lines == corpus.lineCount && counts.malformedTotal == 0, "cold pipeline miscounted")
        benchmark.measurement(bytesPerSecond, rate(corpus.byteCount, elapsed))
    } setup: {
        try Corpora.verified().text
    }

    rarePathBenchmarks()
    proxyFormatBenchmarks()
}

// MARK: - fixtures

/// A parser and a cursor into a corpus, alive across iterations.
final class ParseFixture: @unchecked Sendable {
    let corpus: Corpus
    var parser: AccessLogParser
    var record = AccessRecord()
    var cursor = 0
    var malformed = 0

    init(_ corpus: Corpus, format: LogFormat, fields: RecordFieldSet = .all) throws {
        self.corpus = corpus
        parser = try AccessLogParser(format: format, fields: fields)
    }
}

func runParse(_ benchmark: Benchmark, _ fixture: ParseFixture) {
    let clock = ContinuousClock()
    let start = clock.now
    let corpus = fixture.corpus
    var parser = fixture.parser
    var record = fixture.record
    var cursor = fixture.cursor
    var malformed = 0
    var bytes = 0
    var checksum = 0
    for _ in benchmark.scaledIterations {
        let line = corpus.line(cursor)
        bytes &+= line.count &+ 1
        if parser.parse(line, into: &record) == nil {
            checksum &+= record.responseCode &+ Int(record.responseFlags.rawValue) &+ record.upstreamCluster.bytes.count
        } else {
            malformed &+= 1
        }
        cursor &+= 1
        if cursor == corpus.lineCount { cursor = 0 }
    }
    let elapsed = start.duration(to: clock.now)
    benchmark.stopMeasurement()
    blackHole(checksum)
    fixture.parser = parser
    fixture.record = record
    fixture.cursor = cursor
    fixture.malformed += malformed
    if malformed > 0 { benchmark.error("\(malformed) lines of the \(corpus.name) corpus did not parse") }
    benchmark.measurement(bytesPerSecond, rate(bytes, elapsed))
}

/// A long-lived pipeline (one stream) and a cursor into a corpus.
final class PipelineFixture: @unchecked Sendable {
    let corpus: Corpus
    let counts = FlagCounts()
    let pipeline: StreamPipeline
    var cursor = 0

    init(_ corpus: Corpus) throws {
        self.corpus = corpus
        pipeline = try StreamPipeline(format: .auto, containerFormat: .auto, counts: counts)
    }
}

func runPipeline(_ benchmark: Benchmark, _ fixture: PipelineFixture, inPlace: Bool = false, reportBytes: Bool = true) {
    let clock = ContinuousClock()
    let start = clock.now
    let corpus = fixture.corpus
    let wanted = benchmark.configuration.scalingFactor.rawValue
    var cursor = fixture.cursor
    var bytes = 0
    var remaining = wanted
    while remaining > 0 {
        // Whole lines only, as a read would deliver them modulo the partial last line.
        let end = min(corpus.lineCount, cursor + remaining)
        let chunk = corpus.lines(from: cursor, to: end)
        if inPlace {
            fixture.pipeline.count(inPlace: chunk)
        } else {
            fixture.pipeline.feed(chunk)
        }
        bytes += chunk.count
        remaining -= end - cursor
        cursor = end == corpus.lineCount ? 0 : end
    }
    let elapsed = start.duration(to: clock.now)
    benchmark.stopMeasurement()
    fixture.cursor = cursor
    if fixture.counts.malformedTotal > 0 {
        benchmark.error(
            "\(fixture.counts.malformedTotal) lines of the \(corpus.name) corpus were malformed in the pipeline")
    }
    if reportBytes { benchmark.measurement(bytesPerSecond, rate(bytes, elapsed)) }
}

func rate(_ bytes: Int, _ elapsed: Duration) -> Int {
    let (seconds, attoseconds) = elapsed.components
    let nanoseconds = Double(seconds) * 1e9 + Double(attoseconds) / 1e9
    return nanoseconds > 0 ? Int(Double(bytes) * 1e9 / nanoseconds) : 0
}

// MARK: - checking the corpora against the generator

struct CorpusMismatch: Error, CustomStringConvertible {
    var description: String
}

extension Corpora {
    private static let verification: String? = {
        let clock = ContinuousClock()
        let start = clock.now
        let corpora = shared
        let generated = clock.now
        let result = corpora.verify()
        standardError(
            "ParserBenchmarks: corpora generated in \(start.duration(to: generated)), verified in \(generated.duration(to: clock.now))\n"
        )
        return result
    }()

    /// The corpora, after checking once that flagwatch parses them as generated.
    static func verified() throws -> Corpora {
        if let problem = verification { throw CorpusMismatch(description: problem) }
        return shared
    }

    /// nil when every line parses to what the generator meant, else what went wrong.
    func verify() -> String? {
        var problems: [String] = []
        func check(_ corpus: Corpus, _ format: LogFormat, _ formatName: String, fields: RecordFieldSet = .all) {
            var parser = try! AccessLogParser(format: format, fields: fields)
            var record = AccessRecord()
            var bad = 0
            for index in 0..<corpus.lineCount {
                let line = corpus.line(index)
                let want = expected[index]
                var problem: String?
                if let reason = parser.parse(line, into: &record) {
                    problem = "malformed (\(reason.rawValue))"
                } else if record.responseCode != want.code {
                    problem = "code \(record.responseCode), want \(want.code)"
                } else if record.responseFlags != Self.flagSet(want.flags) || record.unknownFlagCount != 0 {
                    problem = "flags \(record.responseFlags.flags.map(\.shortName)), want \(want.flags)"
                } else if (record.upstreamCluster.isAbsent ? "-" : record.upstreamCluster.rawString) != want.clusterKey
                {
                    problem = "cluster \(record.upstreamCluster.rawString), want \(want.clusterKey)"
                }
                if let problem {
                    bad += 1
                    if bad <= 5 {
                        problems.append(
                            "\(corpus.name) line \(index + 1): \(problem): \(String(decoding: line, as: UTF8.self))")
                    }
                }
            }
            if bad > 0 {
                problems.append("\(corpus.name) with --format \(formatName): \(bad) of \(corpus.lineCount) lines wrong")
            }
        }
        check(text, .istio, "istio")
        check(text, .auto, "auto")
        check(json, .json(JSONKeyMap()), "json")
        check(json, .auto, "auto")
        check(text, .istio, "istio, counting fields", fields: .counting)
        check(text, .auto, "auto, counting fields", fields: .counting)
        check(json, .json(JSONKeyMap()), "json, counting fields", fields: .counting)

        // The pipeline's counts against the generator's, per cluster.
        var requests: [String: Int] = [:]
        var flagCounts: [String: [ResponseFlag: Int]] = [:]
        for want in expected {
            requests[want.clusterKey, default: 0] += 1
            Self.flagSet(want.flags).forEach { flagCounts[want.clusterKey, default: [:]][$0, default: 0] += 1 }
        }
        for (corpus, inPlace) in [(text, false), (text, true), (json, false), (criText, false), (dockerJSON, false)] {
            let counts = FlagCounts()
            let pipeline = try! StreamPipeline(format: .auto, containerFormat: .auto, counts: counts)
            // In slices that end mid-line, as reads do.
            let all = corpus.lines(from: 0, to: corpus.lineCount)
            var offset = 0
            while offset < all.count {
                let slice = UnsafeRawBufferPointer(rebasing: all[offset..<min(all.count, offset + 1_000_003)])
                if inPlace { pipeline.count(inPlace: slice) } else { pipeline.feed(slice) }
                offset += slice.count
            }
            var gotRequests: [String: Int] = [:]
            var gotFlags: [String: [ResponseFlag: Int]] = [:]
            for cluster in counts.allClusters where cluster.requests > 0 {
                gotRequests[cluster.name] = cluster.requests
                if !cluster.flags.isEmpty { gotFlags[cluster.name] = cluster.flags }
            }
            if counts.lines != corpus.lineCount || counts.malformedTotal != 0 || gotRequests != requests
                || gotFlags != flagCounts
            {
                problems.append(
                    "pipeline\(inPlace ? " (in place)" : "") over \(corpus.name): \(counts.lines) lines, \(counts.malformedTotal) malformed "
                        + "(\(counts.malformed)), requests per cluster \(gotRequests == requests ? "match" : "differ"), "
                        + "flags per cluster \(gotFlags == flagCounts ? "match" : "differ")")
            }
        }
        guard !problems.isEmpty else {
            standardError(
                "ParserBenchmarks: corpora verified: \(text.lineCount) lines each; istio text \(text.byteCount) B, "
                    + "json \(json.byteCount) B, CRI text \(criText.byteCount) B, "
                    + "docker json \(dockerJSON.byteCount) B\n")
            return nil
        }
        let report = "the corpus does not parse as generated:\n" + problems.joined(separator: "\n")
        standardError("ParserBenchmarks: " + report + "\n")
        return report
    }

    static func flagSet(_ flags: String) -> ResponseFlagSet {
        guard flags != "-" else { return [] }
        return ResponseFlagSet(flags.split(separator: ",").map { ResponseFlag(name: String($0))! })
    }
}

func standardError(_ message: String) {
    var message = message
    message.withUTF8 { bytes in _ = write(2, bytes.baseAddress, bytes.count) }
}
