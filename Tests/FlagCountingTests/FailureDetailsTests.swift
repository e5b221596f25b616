import AccessLogParser
import Exposition
import FlagCounting
import LineFraming
import Testing

/// Counts `lines` through a StreamPipeline with its default fields (flagged-only details).
func pipelineCounts(_ lines: [String], into counts: FlagCounts = FlagCounts(), format: LogFormat = .auto) throws
    -> FlagCounts
{
    let pipeline = try StreamPipeline(format: format, containerFormat: .none, counts: counts)
    Array(lines.map { $0 + "\n" }.joined().utf8).withUnsafeBytes { pipeline.feed($0) }
    return counts
}

/// `Lines.istioUF` with other details and transport failure reason.
func ufLine(details: String, reason: String, cluster: String = "outbound|9001||payments.default.svc.cluster.local")
    -> String
{
    Lines.istioUF
        .replacing(
            "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused} - \"delayed_connect_error:_Connection_refused\"",
            with: "\(details) - \"\(reason)\""
        )
        .replacing("outbound|9001||payments.default.svc.cluster.local", with: cluster)
}

let refusedDetails =
    "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}"
let refusedReason = "delayed_connect_error:_Connection_refused"
let paymentsCluster = "outbound|9001||payments.default.svc.cluster.local"

@Suite("Failure details per cluster and flag")
struct FailureDetailsTests {
    @Test("flagged lines keep their details and reason, under each of their flags; unflagged lines none")
    func breakdown() throws {
        let counts = try pipelineCounts([
            Lines.istioUF, Lines.istioOK, Lines.istioUF, Lines.istioURXUF, Lines.jsonURXUF, Lines.istioNR,
            ufLine(details: "upstream_reset_before_response_started{connection_timeout}", reason: "-"),
        ])
        let payments = try #require(counts.clusters.lookUp(paymentsCluster))
        #expect(
            counts.failureDetails(cluster: payments, flag: .upstreamConnectionFailure) == [
                FailureDetail(details: refusedDetails, transportFailureReason: refusedReason, count: 2),
                FailureDetail(
                    details: "upstream_reset_before_response_started{connection_timeout}", transportFailureReason: nil,
                    count: 1),
            ])
        let ledger = try #require(counts.clusters.lookUp("outbound|9002||ledger.default.svc.cluster.local"))
        let expected = [FailureDetail(details: refusedDetails, transportFailureReason: refusedReason, count: 2)]
        #expect(counts.failureDetails(cluster: ledger, flag: .upstreamConnectionFailure) == expected)
        #expect(counts.failureDetails(cluster: ledger, flag: .upstreamRetryLimitExceeded) == expected)
        #expect(counts.failureDetails(cluster: ledger, flag: .noHealthyUpstream) == [])
        let noCluster = try #require(counts.clusters.lookUp("-"))
        #expect(
            counts.failureDetails(cluster: noCluster, flag: .noRouteFound) == [
                FailureDetail(details: "route_not_found", transportFailureReason: nil, count: 1)
            ])
        let reviews = try #require(counts.clusters.lookUp("outbound|8080||reviews.default.svc.cluster.local"))
        for flag in ResponseFlag.allCases { #expect(counts.failureDetails(cluster: reviews, flag: flag) == []) }
    }

    @Test("at most 16 pairs per cluster and flag: the 16th is __other__ and counts the rest")
    func pairCap() throws {
        var lines: [String] = []
        for index in 0..<40 {
            for _ in 0...(index < 15 ? 40 - index : 0) {
                lines.append(ufLine(details: "detail_\(index)", reason: "reason_\(index)"))
            }
        }
        let counts = try pipelineCounts(lines)
        let details = counts.failureDetails(
            cluster: try #require(counts.clusters.lookUp(paymentsCluster)), flag: .upstreamConnectionFailure)
        #expect(details.count == 16)
        #expect(details.reduce(0) { $0 + $1.count } == lines.count)
        #expect(details[0] == FailureDetail(details: "detail_0", transportFailureReason: "reason_0", count: 41))
        let other = try #require(details.first { $0.details == FlagCounts.otherFailureDetail })
        #expect(other.transportFailureReason == FlagCounts.otherFailureDetail && other.count == 25)
    }

    @Test("at most 256 distinct texts overall; long texts are cut at 256 bytes")
    func textCap() throws {
        var lines: [String] = []
        for cluster in 0..<200 {
            lines.append(
                ufLine(
                    details: "d\(cluster)", reason: "r\(cluster)",
                    cluster: "outbound|80||s\(cluster).ns.svc.cluster.local"))
        }
        lines.append(ufLine(details: String(repeating: "x", count: 1000), reason: "-"))
        let counts = try pipelineCounts(lines)
        let first = try #require(counts.clusters.lookUp("outbound|80||s0.ns.svc.cluster.local"))
        #expect(
            counts.failureDetails(cluster: first, flag: .upstreamConnectionFailure) == [
                FailureDetail(details: "d0", transportFailureReason: "r0", count: 1)
            ])
        let last = try #require(counts.clusters.lookUp("outbound|80||s199.ns.svc.cluster.local"))
        let other = FlagCounts.otherFailureDetail
        #expect(
            counts.failureDetails(cluster: last, flag: .upstreamConnectionFailure) == [
                FailureDetail(details: other, transportFailureReason: other, count: 1)
            ])
        // 1 (__other__) + 255 texts: d0, r0, ... up to d127 (d127 is the 255th text, r127 is over).
        let at127 = try #require(counts.clusters.lookUp("outbound|80||s127.ns.svc.cluster.local"))
        #expect(
            counts.failureDetails(cluster: at127, flag: .upstreamConnectionFailure) == [
                FailureDetail(details: "d127", transportFailureReason: other, count: 1)
            ])

        let long = try pipelineCounts([ufLine(details: String(repeating: "x", count: 1000), reason: "-")])
        let payments = try #require(long.clusters.lookUp(paymentsCluster))
        #expect(
            long.failureDetails(cluster: payments, flag: .upstreamConnectionFailure).first?.details
                == String(repeating: "x", count: 256))
    }

    @Test("rotation: the breakdown is the current plus the previous period; texts are freed once full")
    func rotation() throws {
        let counts = try pipelineCounts(Array(repeating: Lines.istioUF, count: 3))
        let payments = try #require(counts.clusters.lookUp(paymentsCluster))
        counts.rotateFailureDetails()
        _ = try pipelineCounts(
            [ufLine(details: "upstream_reset_before_response_started{connection_timeout}", reason: "-")], into: counts)
        #expect(counts.failureDetails(cluster: payments, flag: .upstreamConnectionFailure).map(\.count) == [3, 1])
        counts.rotateFailureDetails()
        #expect(
            counts.failureDetails(cluster: payments, flag: .upstreamConnectionFailure) == [
                FailureDetail(
                    details: "upstream_reset_before_response_started{connection_timeout}", transportFailureReason: nil,
                    count: 1)
            ])
        counts.rotateFailureDetails()
        #expect(counts.failureDetails(cluster: payments, flag: .upstreamConnectionFailure) == [])
        // Fill the text table, let it age out, and new texts get their own names again.
        _ = try pipelineCounts((0..<300).map { ufLine(details: "old\($0)", reason: "-") }, into: counts)
        counts.rotateFailureDetails()
        counts.rotateFailureDetails()
        _ = try pipelineCounts([ufLine(details: "fresh", reason: "-")], into: counts)
        #expect(
            counts.failureDetails(cluster: payments, flag: .upstreamConnectionFailure) == [
                FailureDetail(details: "fresh", transportFailureReason: nil, count: 1)
            ])
    }

    @Test("merge (parallel scan) gives the same breakdown as one pass")
    func merge() throws {
        let first = [Lines.istioUF, Lines.istioURXUF, Lines.istioOK, ufLine(details: "a", reason: "b")]
        let second = [
            Lines.jsonURXUF, Lines.istioNR, ufLine(details: "a", reason: "b"),
            ufLine(details: "c", reason: "-", cluster: "outbound|1||x.y.svc.cluster.local"),
        ]
        let merged = try pipelineCounts(first)
        merged.merge(try pipelineCounts(second))
        let whole = try pipelineCounts(first + second)
        for name in whole.clusters.names {
            let wholeID = try #require(whole.clusters.lookUp(name))
            let mergedID = try #require(merged.clusters.lookUp(name))
            for flag in ResponseFlag.allCases {
                #expect(
                    merged.failureDetails(cluster: mergedID, flag: flag)
                        == whole.failureDetails(cluster: wholeID, flag: flag), "\(name) \(flag)")
            }
        }
    }

    @Test("cluster expiry keeps the survivors' breakdowns under their new ids")
    func expiry() throws {
        let counts = FlagCounts(windows: [60])
        counts.now = 100
        _ = try pipelineCounts(
            [ufLine(details: "gone", reason: "-", cluster: "outbound|1||old.ns.svc.cluster.local")], into: counts)
        counts.now = 200
        _ = try pipelineCounts([Lines.istioUF], into: counts)
        #expect(counts.expireClusters(idleSeconds: 50) == 1)
        let payments = try #require(counts.clusters.lookUp(paymentsCluster))
        #expect(payments == 0)
        #expect(
            counts.failureDetails(cluster: payments, flag: .upstreamConnectionFailure) == [
                FailureDetail(details: refusedDetails, transportFailureReason: refusedReason, count: 1)
            ])
        _ = try pipelineCounts(
            [ufLine(details: "new", reason: "-", cluster: "outbound|2||new.ns.svc.cluster.local")], into: counts)
        let new = try #require(counts.clusters.lookUp("outbound|2||new.ns.svc.cluster.local"))
        #expect(counts.failureDetails(cluster: new, flag: .upstreamConnectionFailure).map(\.details) == ["new"])
    }

    @Test("scan report: a LIKELY CAUSE column and a diagnosis object per diagnosed cluster")
    func reportWithDiagnosis() throws {
        let counts = try pipelineCounts([Lines.istioUF, Lines.istioOK])
        let payments = try #require(counts.clusters.lookUp(paymentsCluster))
        let report = ScanReport(counts: counts) { id in
            id == payments
                ? ScanDiagnosis(
                    flag: "UF", cause: "backend down", likelyCause: "a \"quoted\" sentence", nextSteps: ["one", "two"])
                : nil
        }
        let rows = report.table().split(separator: "\n").map(String.init)
        #expect(rows[0].hasSuffix("FLAGS  LIKELY CAUSE"))
        #expect(rows[1].hasPrefix(paymentsCluster) && rows[1].hasSuffix("UF=1   backend down (UF)"))
        #expect(rows[2].hasSuffix("  -      -"))
        #expect(
            report.json().contains(
                #""outbound|9001||payments.default.svc.cluster.local":{"requests":1,"codes":{"5xx":1},"flags":{"UF":1},"diagnosis":{"flag":"UF","cause":"backend down","likely_cause":"a \"quoted\" sentence","next_steps":["one","two"],"scope":"unknown","hosts":[]}}"#
            ))
        #expect(
            report.json().contains(
                #""outbound|8080||reviews.default.svc.cluster.local":{"requests":1,"codes":{"2xx":1},"flags":{}}"#))
    }
}
