// nginx and HAProxy lines (docs/formats.md §9) through the warm pipeline (`--format auto`),
// with the same zero-malloc thresholds as the Envoy pipelines (Benchmarks/Thresholds/). The
// corpora are 10,000 lines made from the templates of a real nginx 1.22 / HAProxy 2.6 run (the
// end-to-end tests' logs): every failure of the mapping tables, a few hundred upstreams, and
// connection ids, ports and timers that change from line to line as in a real log.

import AccessLogParser
import Benchmark

enum ProxyCorpora {
    static let lineCount = 10_000

    static func nginxError() -> Corpus {
        let messages = [
            "connect() failed (111: Connection refused) while connecting to upstream",
            "upstream timed out (110: Connection timed out) while reading response header from upstream",
            "upstream prematurely closed connection while reading response header from upstream",
            "recv() failed (104: Connection reset by peer) while reading response header from upstream",
            "upstream timed out (110: Connection timed out) while connecting to upstream",
            "SSL_do_handshake() failed (SSL: error:0A00010B:SSL routines::wrong version number) while SSL handshaking to upstream",
            "upstream server temporarily disabled while connecting to upstream",
        ]
        let lines = (0..<lineCount).map { index -> [UInt8] in
            let server = "10.0.\(index % 7).\(index % 251):\(8000 + index % 3)"
            let line =
                index % 11 == 0
                ? #"2026/12/06 20:25:55 [error] 29813#29813: *\#(index) no live upstreams while connecting to upstream, client: 127.0.0.1, server: shop.local, request: "GET /cart/\#(index) HTTP/1.1", upstream: "http://group\#(index % 13)/cart/\#(index)", host: "shop.local""#
                : #"2026/12/06 20:25:55 [error] 29813#29813: *\#(index) \#(messages[index % messages.count]), client: 127.0.0.1, server: shop.local, request: "GET /cart/\#(index) HTTP/1.1", upstream: "http://\#(server)/cart/\#(index)", host: "shop.local""#
            return Array(line.utf8)
        }
        return Corpus(name: "nginx-error", lines: lines)
    }

    static func nginxAccess() -> Corpus {
        let lines = (0..<lineCount).map { index -> [UInt8] in
            let group = "default-svc\(index % 97)-80"
            let tail: String
            switch index % 10 {
            case 0:
                tail =
                    "503 190 \"-\" \"curl/8.5.0\" 78 0.000 [\(group)] [] - - - - 5a3f9e2b1c7d4e6f8a9b0c1d2e3f\(index % 10_000)"
            case 1:
                tail =
                    "504 160 \"-\" \"curl/8.5.0\" 79 1.001 [\(group)] [] 10.244.1.\(index % 250):8080 0 1.001 504 6b4f0a3c2d8e5f7a9b1c0d2e\(index)"
            case 2:
                tail =
                    "502 157 \"-\" \"Python-urllib/3.11\" 126 0.000 [\(group)] [] 10.244.1.7:8080, 10.244.1.8:8080 0, 0 0.000, 0.000 502, 502 a9f73407eea5243\(index)"
            default:
                tail =
                    "200 17 \"-\" \"Mozilla/5.0 (X11; Linux x86_64)\" 78 0.004 [\(group)] [] 10.244.1.\(index % 250):8080 17 0.004 200 4f9d3a0c1b2e4d5f6a7b\(index)"
            }
            return Array(
                #"10.244.0.\#(index % 250) - - [06/Dec/2026:20:15:02 +0000] "GET /api/\#(index) HTTP/1.1" \#(tail)"#
                    .utf8)
        }
        return Corpus(name: "nginx", lines: lines)
    }

    static func haproxy() -> Corpus {
        let states = ["----", "----", "----", "----", "SC--", "sH--", "SH--", "sQ--", "CD--", "cR--", "PH--", "LR--"]
        let lines = (0..<lineCount).map { index -> [UInt8] in
            let state = states[index % states.count]
            let backend = "be_svc\(index % 89)"
            let server = state == "sQ--" || index % 37 == 0 ? "<NOSRV>" : "s\(index % 5)"
            let status =
                state == "----" || state == "LR--"
                ? "200" : state == "sH--" ? "504" : state.hasPrefix("c") || state.hasPrefix("C") ? "-1" : "503"
            let header = index % 2 == 0 ? "<134>Dec  6 20:26:16 haproxy[977]: " : ""
            let line =
                #"\#(header)127.0.0.1:\#(30000 + index % 30000) [06/Dec/2026:20:26:16.\#(100 + index % 900)] fe_http \#(backend)/\#(server) 0/0/\#(index % 3)/\#(index % 40)/\#(index % 1000) \#(status) 217 - - \#(state) 1/1/0/0/0 0/0 "GET /\#(backend)/\#(index) HTTP/1.1""#
            return Array(line.utf8)
        }
        return Corpus(name: "haproxy", lines: lines)
    }
}

let proxyFormatBenchmarks: @Sendable () -> Void = {
    let configuration = Benchmark.Configuration(
        metrics: [.throughput, .wallClock, .mallocCountTotal, bytesPerSecond],
        warmupIterations: ProxyCorpora.lineCount / 1_000 + 1,
        scalingFactor: .kilo,
        maxDuration: .seconds(3),
        maxIterations: 1_000_000,
        thresholds: [.mallocCountTotal: .init(absolute: [.p90: 0])]
    )
    let corpora: [(name: String, make: @Sendable () -> Corpus)] = [
        ("pipeline-auto-nginx-error", ProxyCorpora.nginxError),
        ("pipeline-auto-nginx-access", ProxyCorpora.nginxAccess),
        ("pipeline-auto-haproxy", ProxyCorpora.haproxy),
    ]
    for (name, make) in corpora {
        Benchmark(name, configuration: configuration) { benchmark, fixture in
            runPipeline(benchmark, fixture)
        } setup: {
            try PipelineFixture(make())
        }
    }
}
