import Engine
import FlagCounting
import Foundation
import LogSources
import Logging
import SystemCalls

/// Real lines from the Envoy 1.40 harness run (as in FlagCountingTests), one per kind counted.
enum Lines {
    static let ok =
        #"[2026-11-22T02:34:27.532Z] "GET /reviews/1 HTTP/1.1" 200 - via_upstream - "-" 0 14 11 10 "-" "flag-harness/ok" "0d8e5a88-130d-4223-9294-7eee8276b7f5" "reviews.default.svc.cluster.local:8080" "127.0.0.1:18010" outbound|8080||reviews.default.svc.cluster.local 127.0.0.1:55718 127.0.0.1:18000 127.0.0.1:56922 - reviews-default"#
    static let upstreamFailure =
        #"[2026-11-22T02:34:27.561Z] "GET /api/pay HTTP/1.1" 503 UF upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused} - "delayed_connect_error:_Connection_refused" 0 98 0 - "-" "flag-harness/uf" "daad7b68-4bb4-4f21-9762-5f4f56c34fee" "payments.default.svc.cluster.local:9001" "127.0.0.1:18019" outbound|9001||payments.default.svc.cluster.local - 127.0.0.1:18000 127.0.0.1:56936 - payments-default"#
    static let retriedFailure =
        #"[2026-11-22T02:34:27.575Z] "GET /entries HTTP/1.1" 503 URX,UF upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused} - "delayed_connect_error:_Connection_refused" 0 121 20 - "-" "flag-harness/urx" "655c152b-a540-4740-a28e-b685780f0d66" "ledger.default.svc.cluster.local:9002" "127.0.0.1:18019" outbound|9002||ledger.default.svc.cluster.local - 127.0.0.1:18000 127.0.0.1:56958 - ledger-retry"#
    /// istio-proxy's agent log, interleaved with the access log in a container's output.
    static let agentLog = "2023-10-12T08:08:15.270118Z\tdebug\tenvoy pool external/envoy/source/common/conn_pool/conn_pool_base.cc:215\t[C17] destroying stream: 0 remaining"

    static let reviews = "outbound|8080||reviews.default.svc.cluster.local"
    static let payments = "outbound|9001||payments.default.svc.cluster.local"
    static let ledger = "outbound|9002||ledger.default.svc.cluster.local"
}

/// A fresh directory of log files under the system temporary directory.
struct LogDirectory {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "flagwatch-engine-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }

    /// Appends each line with its newline (creating the file).
    func append(_ lines: [String], to name: String) throws {
        let url = URL(fileURLWithPath: path + "/" + name)
        let data = Data(lines.map { $0 + "\n" }.joined().utf8)
        guard let handle = try? FileHandle(forWritingTo: url) else { return try data.write(to: url) }
        handle.seekToEndOfFile()
        handle.write(data)
        try handle.close()
    }

    func rename(_ name: String, to newName: String) throws {
        try FileManager.default.moveItem(atPath: path + "/" + name, toPath: path + "/" + newName)
    }
}

/// Runs `loop` until `done` holds (checked every 10 ms) or 5 s pass, whichever is first.
func run(_ loop: PollLoop, until done: @escaping () -> Bool) {
    let deadline = monotonicSeconds() + 5
    let check = loop.every(0.01) {
        if done() || monotonicSeconds() > deadline { loop.stop() }
    }
    loop.run()
    loop.cancel(check)
    loop.resume()
}

extension FlagCounts {
    /// Per cluster name: requests and every flag by short name.
    var byCluster: [String: ClusterSummary] {
        Dictionary(uniqueKeysWithValues: allClusters.map { ($0.name, ClusterSummary(requests: $0.requests, flags: $0.flagsByName)) })
    }
}

struct ClusterSummary: Equatable {
    var requests: Int
    var flags: [String: Int]
}

extension Engine {
    /// A source's lines and malformed lines by reason, as the metrics show them.
    func lines(of source: String) -> (lines: UInt64, malformed: [String: UInt64])? {
        guard let tally = sourceActivity().first(where: { $0.name == source })?.lines else { return nil }
        var malformed: [String: UInt64] = [:]
        for defect in LineDefect.allCases where tally.malformedCount(defect) > 0 {
            malformed[defect.rawValue] = tally.malformedCount(defect)
        }
        return (tally.lines, malformed)
    }
}

let quietLogger: Logger = {
    var logger = Logger(label: "engine-tests")
    logger.logLevel = .critical
    return logger
}()
