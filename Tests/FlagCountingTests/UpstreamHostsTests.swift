import AccessLogParser
import FlagCounting
import Testing

/// `Lines.istioUF` (payments, host 127.0.0.1:18019, 0 ms) sent to `host` and lasting `duration`.
func ufLine(host: String, duration: Int = 0, cluster: String = paymentsCluster) -> String {
    ufLine(details: refusedDetails, reason: refusedReason, cluster: cluster)
        .replacing("\"127.0.0.1:18019\"", with: "\"\(host)\"")
        .replacing(" 0 98 0 ", with: " 0 98 \(duration) ")
}

/// A 200 of the payments cluster from `host`.
func okLine(host: String, cluster: String = paymentsCluster) -> String {
    ufLine(host: host, cluster: cluster).replacing(
        "503 UF \(refusedDetails) - \"\(refusedReason)\" 0 98 0", with: "200 - via_upstream - \"-\" 0 14 3")
}

@Suite("Upstream hosts, durations and tries per cluster and flag")
struct UpstreamHostsTests {
    let uf = ResponseFlag.upstreamConnectionFailure

    @Test("flagged lines count their host, most first; 2xx hosts are noted once the cluster has a flagged line")
    func hostsAndAnswered() throws {
        let counts = try pipelineCounts(
            [okLine(host: "10.0.0.9:80")] + Array(repeating: ufLine(host: "10.0.0.1:80"), count: 3)
                + [ufLine(host: "10.0.0.2:80"), okLine(host: "10.0.0.3:80"), okLine(host: "10.0.0.3:80")])
        let id = try #require(counts.clusters.lookUp(paymentsCluster))
        #expect(
            counts.upstreamHosts(cluster: id, flag: uf) == [
                UpstreamHostCount(host: "10.0.0.1:80", count: 3), UpstreamHostCount(host: "10.0.0.2:80", count: 1),
            ])
        #expect(counts.answeredHosts(cluster: id) == ["10.0.0.3:80"])
        #expect(counts.upstreamHosts(cluster: id, flag: .noHealthyUpstream) == [])
    }

    @Test("beyond 8 hosts a flag's lines count as __other__; beyond 16 answering hosts a period notes no more")
    func bounds() throws {
        var lines = (0..<20).map { ufLine(host: "10.0.1.\($0):80") }
        // Text lines give their host on every 8th unflagged 2xx line (the sampling): 240 lines, 30 samples.
        lines += (0..<240).map { okLine(host: "10.0.2.\($0):80") }
        let counts = try pipelineCounts(lines)
        let id = try #require(counts.clusters.lookUp(paymentsCluster))
        let hosts = counts.upstreamHosts(cluster: id, flag: uf)
        #expect(hosts.count == 9)
        #expect(hosts[0] == UpstreamHostCount(host: FlagCounts.otherUpstreamHost, count: 12))
        #expect(hosts.dropFirst().allSatisfy { $0.count == 1 })
        #expect(counts.answeredHosts(cluster: id).count == 16)
    }

    @Test("a text format's unflagged 2xx lines give their host one in 8, the first included; JSON lines every time")
    func answeredSampling() throws {
        let text = try pipelineCounts([ufLine(host: "10.0.0.1:80")] + (0..<17).map { okLine(host: "10.0.3.\($0):80") })
        let id = try #require(text.clusters.lookUp(paymentsCluster))
        #expect(text.answeredHosts(cluster: id) == ["10.0.3.0:80", "10.0.3.16:80", "10.0.3.8:80"])
        let ok = Lines.jsonURXUF.replacing("\"response_code\":503", with: "\"response_code\":200")
            .replacing("\"response_flags\":\"URX,UF\"", with: "\"response_flags\":\"-\"")
        let json = try pipelineCounts(
            [Lines.jsonURXUF] + (0..<3).map { ok.replacing("127.0.0.1:18019", with: "10.0.4.\($0):80") },
            format: .json(JSONKeyMap()))
        let ledger = try #require(json.clusters.lookUp("outbound|9002||ledger.default.svc.cluster.local"))
        #expect(json.answeredHosts(cluster: ledger) == ["10.0.4.0:80", "10.0.4.1:80", "10.0.4.2:80"])
    }

    @Test("the counting fields read an Istio line's host and duration only when it has a flag")
    func hostOnlyOnFlaggedTextLines() throws {
        var parser = try AccessLogParser(format: .istio, fields: .countingWithFailureDetails)
        var record = AccessRecord()
        var line = Array(Lines.istioUF.utf8)
        #expect(line.withUnsafeBytes { parser.parse($0, into: &record) } == nil)
        #expect(record.upstreamHost.rawString == "127.0.0.1:18019" && record.durationMilliseconds == 0)
        line = Array(Lines.istioOK.utf8)
        #expect(line.withUnsafeBytes { parser.parse($0, into: &record) } == nil)
        #expect(record.upstreamHost.isAbsent && record.durationMilliseconds == nil)
        #expect(record.upstreamCluster.rawString == "outbound|8080||reviews.default.svc.cluster.local")
    }

    @Test("durations: min, max and buckets; tries from %UPSTREAM_REQUEST_ATTEMPT_COUNT% in JSON")
    func durationsAndTries() throws {
        let counts = try pipelineCounts([
            ufLine(host: "a:1", duration: 5), ufLine(host: "a:1", duration: 250), ufLine(host: "a:1", duration: 10_003),
            okLine(host: "b:1"),
        ])
        let id = try #require(counts.clusters.lookUp(paymentsCluster))
        let stats = try #require(counts.flaggedLineStats(cluster: id, flag: uf))
        #expect(stats.lines == 3 && stats.timedLines == 3)
        #expect(stats.minDurationMilliseconds == 5 && stats.maxDurationMilliseconds == 10_003)
        #expect(stats.durationBuckets == [1, 0, 1, 0, 0, 1, 0, 0])
        #expect(stats.attemptLines == 0)

        let json = Lines.jsonURXUF.replacing(
            "\"duration\":20,", with: "\"duration\":20,\"upstream_request_attempt_count\":3,")
        let tried = try pipelineCounts([json, json], format: .json(JSONKeyMap()))
        let ledger = try #require(tried.clusters.lookUp("outbound|9002||ledger.default.svc.cluster.local"))
        let urx = try #require(tried.flaggedLineStats(cluster: ledger, flag: .upstreamRetryLimitExceeded))
        #expect(urx.attemptLines == 2 && urx.attempts == 6 && urx.lines == 2)
    }

    @Test("%UPSTREAM_REQUEST_ATTEMPT_COUNT% in a text format is read on flagged lines")
    func attemptCountInText() throws {
        let format = LogFormat.custom(
            "%RESPONSE_CODE% %RESPONSE_FLAGS% %DURATION% %UPSTREAM_HOST% %UPSTREAM_CLUSTER% %UPSTREAM_REQUEST_ATTEMPT_COUNT%"
        )
        let counts = try pipelineCounts(
            ["503 URX,UF 30 10.0.0.1:80 c 3", "503 URX,UF 31 10.0.0.1:80 c 2", "200 - 4 10.0.0.2:80 c 1"],
            format: format)
        let id = try #require(counts.clusters.lookUp("c"))
        let stats = try #require(counts.flaggedLineStats(cluster: id, flag: .upstreamRetryLimitExceeded))
        #expect(stats.attemptLines == 2 && stats.attempts == 5)
        #expect(stats.minDurationMilliseconds == 30 && stats.maxDurationMilliseconds == 31)
        #expect(counts.answeredHosts(cluster: id) == ["10.0.0.2:80"])
    }

    @Test("a rotation keeps the last period's hosts and stats; a second one without lines drops them")
    func rotation() throws {
        let counts = try pipelineCounts([ufLine(host: "10.0.0.1:80", duration: 7), okLine(host: "10.0.0.2:80")])
        let id = try #require(counts.clusters.lookUp(paymentsCluster))
        counts.rotateFailureDetails()
        #expect(counts.upstreamHosts(cluster: id, flag: uf) == [UpstreamHostCount(host: "10.0.0.1:80", count: 1)])
        #expect(counts.flaggedLineStats(cluster: id, flag: uf)?.maxDurationMilliseconds == 7)
        #expect(counts.answeredHosts(cluster: id) == ["10.0.0.2:80"])
        _ = try pipelineCounts([okLine(host: "10.0.0.3:80")], into: counts)
        #expect(
            counts.answeredHosts(cluster: id) == ["10.0.0.2:80", "10.0.0.3:80"], "still tracked: flagged last period")
        counts.rotateFailureDetails()
        counts.rotateFailureDetails()
        #expect(counts.upstreamHosts(cluster: id, flag: uf) == [])
        #expect(counts.flaggedLineStats(cluster: id, flag: uf) == nil)
        #expect(counts.answeredHosts(cluster: id) == [])
        _ = try pipelineCounts([okLine(host: "10.0.0.4:80")], into: counts)
        #expect(counts.answeredHosts(cluster: id) == [], "no longer tracked once its flagged lines are gone")
    }

    @Test("merging two counts adds hosts, stats and answered hosts under the merged cluster ids")
    func merge() throws {
        let first = try pipelineCounts([
            okLine(host: "x:1", cluster: "other"), ufLine(host: "10.0.0.1:80", duration: 3),
        ])
        let second = try pipelineCounts([ufLine(host: "10.0.0.1:80", duration: 9), okLine(host: "10.0.0.2:80")])
        first.merge(second)
        let id = try #require(first.clusters.lookUp(paymentsCluster))
        #expect(first.upstreamHosts(cluster: id, flag: uf) == [UpstreamHostCount(host: "10.0.0.1:80", count: 2)])
        let stats = try #require(first.flaggedLineStats(cluster: id, flag: uf))
        #expect(stats.lines == 2 && stats.minDurationMilliseconds == 3 && stats.maxDurationMilliseconds == 9)
        #expect(first.answeredHosts(cluster: id) == ["10.0.0.2:80"])
    }

    @Test("idle expiry moves a surviving cluster's hosts with its new id and forgets the expired one's")
    func expiry() throws {
        let counts = FlagCounts(windows: [60])
        counts.now = 100
        _ = try pipelineCounts([ufLine(host: "10.0.0.1:80", cluster: "gone")], into: counts)
        counts.now = 200
        _ = try pipelineCounts([ufLine(host: "10.0.0.5:80"), okLine(host: "10.0.0.6:80")], into: counts)
        #expect(counts.expireClusters(idleSeconds: 60) == 1)
        let id = try #require(counts.clusters.lookUp(paymentsCluster))
        #expect(id == 0)
        #expect(counts.upstreamHosts(cluster: id, flag: uf) == [UpstreamHostCount(host: "10.0.0.5:80", count: 1)])
        #expect(counts.answeredHosts(cluster: id) == ["10.0.0.6:80"])
        #expect(counts.upstreamHosts(cluster: 1, flag: uf) == [])
    }

    @Test("hostile hosts are cut at 128 bytes and beyond 1,024 distinct ones count as __other__")
    func hostileHosts() throws {
        let long = String(repeating: "h", count: 300)
        let counts = try pipelineCounts([ufLine(host: long)])
        let id = try #require(counts.clusters.lookUp(paymentsCluster))
        #expect(counts.upstreamHosts(cluster: id, flag: uf).first?.host == String(repeating: "h", count: 128))
        let many = try pipelineCounts(
            (0..<1_100).map { ufLine(host: "10.1.\($0 / 256).\($0 % 256):80", cluster: "c\($0)") })
        let last = try #require(many.clusters.lookUp("c1099"))
        #expect(
            many.upstreamHosts(cluster: last, flag: uf) == [
                UpstreamHostCount(host: FlagCounts.otherUpstreamHost, count: 1)
            ])
    }
}
