import AccessLogParser
import FlagCounting
import Testing

@testable import Exposition

/// `flagwatch_diagnosis_info`: which (cluster, flag) pairs get a series, when they vanish, the
/// bound, and the exact lines with hostile names escaped. The diagnoser is a stand-in here (the
/// executable passes Diagnosis' in); the end-to-end tests scrape the real one.
@Suite("flagwatch_diagnosis_info on the daemon's page")
struct DiagnosisInfoTests {
    static let payments = "outbound|9001||payments.default.svc.cluster.local"
    /// A cluster name with a quote, a backslash, a line feed and an escape character.
    static let hostileLine =
        #"{"response_flags":"UF","response_code":503,"upstream_cluster":"we\"ird\\x\nnext\u001b[31m"}"#
    static let flags: [ResponseFlag] = [.upstreamConnectionFailure, .upstreamRetryLimitExceeded, .noHealthyUpstream]

    /// Windows 1m and 5m; payments with a UF line at 1000 and a `URX,UF` line for ledger at 1000,
    /// the hostile cluster's UF line at 1030, a DC line (not an upstream failure) at 1030.
    static func failingCounts() throws -> FlagCounts {
        let counts = FlagCounts(windows: [60, 300])
        var parser = try AccessLogParser(format: .auto)
        counts.now = 1000
        count(Lines.istioUF, into: counts, with: &parser)
        count(Lines.istioURXUF, into: counts, with: &parser)
        counts.now = 1030
        count(hostileLine, into: counts, with: &parser)
        count(Lines.istioDC, into: counts, with: &parser)
        counts.now = 1040
        return counts
    }

    /// The family's lines of the daemon's page.
    static func familyLines(_ counts: FlagCounts, _ diagnoses: [DiagnosisInfo]) -> [String] {
        let bytes = DaemonMetrics.render(
            counts: counts, windowNames: ["1m", "5m"], labels: ClusterLabelCache(), sources: [], process: nil,
            version: "1.2.3", format: .prometheus, diagnoses: diagnoses)
        return String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init)
            .filter { $0.contains("flagwatch_diagnosis_info") }
    }

    @Test("each upstream-failure flag of a cluster in the first window has a series of 1, hostile names escaped")
    func exactLines() throws {
        let counts = try Self.failingCounts()
        var asked: [String] = []
        let diagnoses = DiagnosisInfo.current(counts, flags: Self.flags) { cluster, flag in
            asked.append("\(cluster) \(flag.shortName)")
            return cluster == 1 && flag == .upstreamRetryLimitExceeded
                ? ("retries \"exhausted\"\\\n", "all hosts") : ("backend down", "one host")
        }
        // In cluster order, then the flags' order; DC is not asked about.
        #expect(asked == ["0 UF", "1 UF", "1 URX", "2 UF"])
        let ledger = "outbound|9002||ledger.default.svc.cluster.local"
        #expect(
            Self.familyLines(counts, diagnoses) == [
                "# HELP flagwatch_diagnosis_info The likely cause and scope flagwatch diagnoses for each upstream-failure flag of a cluster in its first window (1 while diagnosed).",
                "# TYPE flagwatch_diagnosis_info gauge",
                #"flagwatch_diagnosis_info{upstream_cluster="\#(Self.payments)",response_flag="UF",cause="backend down",scope="one host"} 1"#,
                #"flagwatch_diagnosis_info{upstream_cluster="\#(ledger)",response_flag="UF",cause="backend down",scope="one host"} 1"#,
                #"flagwatch_diagnosis_info{upstream_cluster="\#(ledger)",response_flag="URX",cause="retries \"exhausted\"\\\n",scope="all hosts"} 1"#,
                #"flagwatch_diagnosis_info{upstream_cluster="we\"ird\\x\nnext\#u{FFFD}[31m",response_flag="UF",cause="backend down",scope="one host"} 1"#,
            ])
    }

    @Test("a series vanishes once the first window holds none of its flag, though longer windows still do")
    func vanishesWithTheWindow() throws {
        let counts = try Self.failingCounts()
        let diagnose: (Int, ResponseFlag) -> (cause: String, scope: String)? = { _, _ in ("backend down", "unknown") }
        counts.now = 1065  // payments' and ledger's lines are 65 s old, the hostile cluster's 35 s
        #expect(DiagnosisInfo.current(counts, flags: Self.flags, diagnose: diagnose).map(\.cluster) == [2])
        counts.now = 1095
        #expect(DiagnosisInfo.current(counts, flags: Self.flags, diagnose: diagnose).isEmpty)
        #expect(counts.windowCount(cluster: 2, flag: .upstreamConnectionFailure, window: 1) == 1)
        #expect(
            Self.familyLines(counts, DiagnosisInfo.current(counts, flags: Self.flags, diagnose: diagnose)) == [
                "# HELP flagwatch_diagnosis_info The likely cause and scope flagwatch diagnoses for each upstream-failure flag of a cluster in its first window (1 while diagnosed).",
                "# TYPE flagwatch_diagnosis_info gauge",
            ])
    }

    @Test("no series where the diagnoser has no diagnosis, nor without trailing windows")
    func noDiagnosisNoSeries() throws {
        let failing = try Self.failingCounts()
        #expect(
            DiagnosisInfo.current(failing, flags: Self.flags) { cluster, _ in cluster == 0 ? nil : ("x", "y") }
                .map(\.cluster) == [1, 1, 2])
        let unwindowed = try counts(of: [Lines.istioUF])  // as `scan` keeps them
        #expect(DiagnosisInfo.current(unwindowed, flags: Self.flags) { _, _ in ("x", "y") }.isEmpty)
    }

    @Test("past the limit, the pairs with the most lines in the first window keep their series, in cluster order")
    func bounded() throws {
        let counts = FlagCounts(windows: [60])
        var parser = try AccessLogParser(format: .auto)
        counts.now = 1000
        // Clusters a, b, c, d with 1, 3, 2, 2 UF lines; b has a UH line too.
        for (name, lines) in [("a", 1), ("b", 3), ("c", 2), ("d", 2)] {
            for _ in 0..<lines {
                count(
                    #"{"response_flags":"UF","response_code":503,"upstream_cluster":"\#(name)"}"#, into: counts,
                    with: &parser)
            }
        }
        count(#"{"response_flags":"UH","response_code":503,"upstream_cluster":"b"}"#, into: counts, with: &parser)
        var asked = 0
        let diagnoses = DiagnosisInfo.current(counts, flags: Self.flags, limit: 3) { _, _ in
            asked += 1
            return ("backend down", "all hosts")
        }
        // b's UF (3), then c's and d's (2 each, the lower id first on the tie): only those diagnosed.
        #expect(
            diagnoses.map { "\(counts.clusters.names[$0.cluster]) \($0.flag.shortName)" } == ["b UF", "c UF", "d UF"])
        #expect(asked == 3)
        #expect(DiagnosisInfo.current(counts, flags: Self.flags, limit: 5) { _, _ in ("x", "y") }.count == 5)
        #expect(DiagnosisInfo.maxSeries == 1000)
    }

    @Test("the cache diagnoses a pair again only after a new line of its cluster or maxAge seconds")
    func cache() throws {
        let counts = try Self.failingCounts()
        var parser = try AccessLogParser(format: .auto)
        let cache = DiagnosisInfoCache(maxAge: 10)
        var asked: [String] = []
        var cause = "backend down"
        func scrape() -> [String] {
            cache.current(counts, flags: Self.flags) { cluster, flag in
                asked.append("\(cluster) \(flag.shortName)")
                return (cause, "all hosts")
            }.map { "\($0.cluster) \($0.flag.shortName) \($0.cause)" }
        }
        #expect(scrape() == ["0 UF backend down", "1 UF backend down", "1 URX backend down", "2 UF backend down"])
        #expect(asked == ["0 UF", "1 UF", "1 URX", "2 UF"])
        asked = []
        cause = "mTLS mismatch"
        counts.now = 1045
        #expect(scrape() == ["0 UF backend down", "1 UF backend down", "1 URX backend down", "2 UF backend down"])
        #expect(asked.isEmpty)
        // A line for ledger (cluster 1): only its pairs are diagnosed again.
        count(Lines.istioURXUF, into: counts, with: &parser)
        #expect(scrape() == ["0 UF backend down", "1 UF mTLS mismatch", "1 URX mTLS mismatch", "2 UF backend down"])
        #expect(asked == ["1 UF", "1 URX"])
        // 10 s after they were made, the others are made again.
        asked = []
        counts.now = 1050
        #expect(scrape() == ["0 UF mTLS mismatch", "1 UF mTLS mismatch", "1 URX mTLS mismatch", "2 UF mTLS mismatch"])
        #expect(asked == ["0 UF", "2 UF"])
        // Cached or not, a series goes with its flag from the first window (payments' and the
        // hostile cluster's lines are over 60 s old); ledger's is 50 s old, its pairs made again.
        asked = []
        counts.now = 1095
        #expect(scrape() == ["1 UF mTLS mismatch", "1 URX mTLS mismatch"])
        #expect(asked == ["1 UF", "1 URX"])
    }
}
