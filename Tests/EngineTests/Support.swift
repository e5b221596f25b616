import Engine
import FlagCounting
import Foundation
import LogSources
import Logging
import SystemCalls

/// Istio's default text format, as the Envoy 1.40 harness run wrote it (FlagCountingTests has
/// the whole lines), with the fields the counts read filled in per line.
enum Lines {
    static func istio(code: Int, flags: String, details: String, reason: String = "-", cluster: String) -> String {
        #"[2026-11-22T02:34:27.561Z] "GET /api HTTP/1.1" \#(code) \#(flags) \#(details) - "\#(reason)" 0 98 0 - "-" "flag-harness" "daad7b68-4bb4-4f21-9762-5f4f56c34fee" "svc.default.svc.cluster.local:9001" "127.0.0.1:18019" \#(cluster) - 127.0.0.1:18000 127.0.0.1:56936 - default"#
    }

    static let reviews = "outbound|8080||reviews.default.svc.cluster.local"
    static let payments = "outbound|9001||payments.default.svc.cluster.local"
    static let ledger = "outbound|9002||ledger.default.svc.cluster.local"

    static let refused =
        "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}"
    static let ok = istio(code: 200, flags: "-", details: "via_upstream", cluster: reviews)
    static let upstreamFailure = istio(
        code: 503, flags: "UF", details: refused, reason: "delayed_connect_error:_Connection_refused", cluster: payments
    )
    static let retriedFailure = istio(
        code: 503, flags: "URX,UF", details: refused, reason: "delayed_connect_error:_Connection_refused",
        cluster: ledger)
    /// istio-proxy's agent log, interleaved with the access log in a container's output.
    static let agentLog = "2023-10-12T08:08:15.270118Z\tdebug\tenvoy pool [C17] destroying stream: 0 remaining"
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
        Dictionary(
            uniqueKeysWithValues: allClusters.map {
                ($0.name, ClusterSummary(requests: $0.requests, flags: $0.flagsByName))
            })
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
