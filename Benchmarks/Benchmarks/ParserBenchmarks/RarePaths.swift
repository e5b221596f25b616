// Lines that take the rare paths of the counting stage. Not part of the zero-malloc contract
// (no file in Benchmarks/Thresholds/): they are here to show what those paths cost per line.
// Measured with ordo-one/benchmark 1.38.1 on Swift 6.3.1 (`--allocation-stacks`):
//
//  * rare-long-unknown-flag: a flags code that is not in Envoy's table and longer than 15
//    bytes (a custom flag's long name) costs one malloc per line: FlagCounts.count builds a
//    `String(decoding:)` for the dictionary key on every occurrence (FlagCounts.swift, the
//    `unknownFlags[cluster, default: [:]][String(decoding: code, ...)]` line). Codes up to
//    15 bytes fit a small String and allocate nothing.
//  * rare-json-escaped-cluster: a JSON cluster name holding a backslash escape costs one malloc
//    per line: FlagCounts.clusterID assigns `JSONEscapes.decode(field.bytes)`, which returns a
//    new [UInt8] each time, to `unescapeScratch` (FlagCounts.swift, `clusterID`).

import AccessLogParser
import Benchmark
import FlagCounting

let rarePathBenchmarks: @Sendable () -> Void = {
    let cases: [(name: String, line: String)] = [
        (
            "rare-long-unknown-flag",
            #"[2026-11-21T00:00:00.000Z] "GET / HTTP/1.1" 503 UF,SomeCustomExtensionFlag via_upstream - "-" 0 0 1 1 "-" "curl/8.5.0" "5c1c0f1e-7a43-4d8e-9c55-0d6a2f0e9b11" "reviews:9080" "10.1.2.3:9080" outbound|9080||reviews.prod.svc.cluster.local 10.1.2.4:41234 10.96.1.2:9080 10.1.2.5:51234 - default"#
        ),
        (
            "rare-json-escaped-cluster",
            #"{"start_time":"2026-11-21T00:00:00.000Z","response_code":503,"response_flags":"UF","upstream_cluster":"outbound|9080||reviews.prod.svc.cluster.local\/v1","duration":3}"#
        ),
    ]
    for (name, line) in cases {
        Benchmark(
            name,
            configuration: .init(
                metrics: [.throughput, .wallClock, .mallocCountTotal], warmupIterations: 10, scalingFactor: .kilo,
                maxDuration: .seconds(1), maxIterations: 100_000, thresholds: [:])
        ) { benchmark, fixture in
            runPipeline(benchmark, fixture, reportBytes: false)
        } setup: {
            try PipelineFixture(Corpus(name: name, lines: Array(repeating: Array(line.utf8), count: 1_000)))
        }
    }
}
