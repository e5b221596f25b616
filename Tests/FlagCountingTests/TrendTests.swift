import AccessLogParser
import FlagCounting
import Testing

/// Counts `times` copies of `line` at second `second`.
private func count(_ line: String, _ times: Int, at second: Int, into counts: FlagCounts) throws {
    var parser = try AccessLogParser(format: .istio)
    counts.now = second
    for _ in 0..<times { count(line, into: counts, with: &parser) }
}

private let paymentsName = "outbound|9001||payments.default.svc.cluster.local"
private let uf = ResponseFlagSet(.upstreamConnectionFailure)

@Suite("Flagged rate trend")
struct TrendTests {
    @Test("the rule: 1.5 times the earlier rate rises, a 1.5th of it falls, between is steady")
    func rule() {
        // 60 s against 240 s: 30 earlier lines are 7.5 per minute.
        #expect(FlaggedRateTrend(recent: 12, recentSeconds: 60, earlier: 30, earlierSeconds: 240) == .rising)
        #expect(FlaggedRateTrend(recent: 11, recentSeconds: 60, earlier: 30, earlierSeconds: 240) == .steady)
        #expect(FlaggedRateTrend(recent: 8, recentSeconds: 60, earlier: 30, earlierSeconds: 240) == .steady)
        #expect(FlaggedRateTrend(recent: 4, recentSeconds: 60, earlier: 30, earlierSeconds: 240) == .falling)
        #expect(FlaggedRateTrend(recent: 0, recentSeconds: 60, earlier: 30, earlierSeconds: 240) == .falling)
    }

    @Test("the minimum count: 1 line against none is steady, 5 against none are rising")
    func minimumCount() {
        #expect(FlaggedRateTrend(recent: 1, recentSeconds: 60, earlier: 0, earlierSeconds: 240) == .steady)
        #expect(FlaggedRateTrend(recent: 4, recentSeconds: 60, earlier: 0, earlierSeconds: 240) == .steady)
        #expect(FlaggedRateTrend(recent: 5, recentSeconds: 60, earlier: 0, earlierSeconds: 240) == .rising)
        // Falling needs the earlier rate to bring 5 lines into the recent span: 19 in 240 s is
        // 4.75 a minute, 21 is 5.25.
        #expect(FlaggedRateTrend(recent: 0, recentSeconds: 60, earlier: 19, earlierSeconds: 240) == .steady)
        #expect(FlaggedRateTrend(recent: 0, recentSeconds: 60, earlier: 21, earlierSeconds: 240) == .falling)
        #expect(FlaggedRateTrend(recent: 0, recentSeconds: 60, earlier: 0, earlierSeconds: 240) == .steady)
    }

    @Test("rising: a spike that starts in the shortest window")
    func rising() throws {
        let counts = FlagCounts(windows: [60, 300])
        try count(Lines.istioUF, 2, at: 1000, into: counts)  // 2 in the four minutes before
        try count(Lines.istioUF, 20, at: 1250, into: counts)
        let id = try #require(counts.clusters.lookUp(paymentsName))
        #expect(counts.flaggedRateTrend(cluster: id, flags: uf) == .rising)
    }

    @Test("steady: the same rate in the last minute as in the four before it")
    func steady() throws {
        let counts = FlagCounts(windows: [60, 300])
        for minute in 0..<5 { try count(Lines.istioUF, 10, at: 1000 + minute * 60, into: counts) }
        let id = try #require(counts.clusters.lookUp(paymentsName))
        counts.now = 1259
        #expect(counts.windowCount(cluster: id, flag: .upstreamConnectionFailure, window: 0) == 10)
        #expect(counts.windowCount(cluster: id, flag: .upstreamConnectionFailure, window: 1) == 50)
        #expect(counts.flaggedRateTrend(cluster: id, flags: uf) == .steady)
    }

    @Test("falling: the failures stopped a minute ago")
    func falling() throws {
        let counts = FlagCounts(windows: [300, 60])  // in any order
        for minute in 0..<4 { try count(Lines.istioUF, 10, at: 1000 + minute * 60, into: counts) }
        try count(Lines.istioUF, 1, at: 1250, into: counts)
        try count(Lines.istioOK, 30, at: 1250, into: counts)
        let id = try #require(counts.clusters.lookUp(paymentsName))
        #expect(counts.flaggedRateTrend(cluster: id, flags: uf) == .falling)
        // Long after, nothing in either span: steady (at zero).
        counts.now = 5000
        #expect(counts.flaggedRateTrend(cluster: id, flags: uf) == .steady)
    }

    @Test("one window: its newer half against its older half")
    func oneWindow() throws {
        let counts = FlagCounts(windows: [60])
        try count(Lines.istioUF, 3, at: 1000, into: counts)
        try count(Lines.istioUF, 10, at: 1040, into: counts)
        let id = try #require(counts.clusters.lookUp(paymentsName))
        counts.now = 1045
        #expect(counts.flaggedRateTrend(cluster: id, flags: uf) == .rising)
        // 30 s later the 10 are in the older half, nothing in the newer one.
        counts.now = 1075
        #expect(counts.flaggedRateTrend(cluster: id, flags: uf) == .falling)
    }

    @Test("a flag group kept for exactly the flags counts a URX,UF line once; else the flags add up")
    func flagGroup() throws {
        let group = ResponseFlagSet([.upstreamConnectionFailure, .upstreamRetryLimitExceeded])
        let counts = FlagCounts(windows: [60, 300], flagGroups: [group])
        // 3 lines (6 flags) now: below the minimum as lines, at it as flags summed.
        try count(Lines.istioURXUF, 3, at: 1000, into: counts)
        let ledger = try #require(counts.clusters.lookUp("outbound|9002||ledger.default.svc.cluster.local"))
        #expect(counts.flaggedRateTrend(cluster: ledger, flags: group) == .steady)
        #expect(
            counts.flaggedRateTrend(
                cluster: ledger,
                flags: ResponseFlagSet([.upstreamConnectionFailure, .upstreamRetryLimitExceeded, .noHealthyUpstream]))
                == .rising)
    }

    @Test("no windows (scan): no trend and no first-seen time")
    func noWindows() throws {
        let counts = FlagCounts()
        try count(Lines.istioUF, 10, at: 1000, into: counts)
        let id = try #require(counts.clusters.lookUp(paymentsName))
        #expect(counts.flaggedRateTrend(cluster: id, flags: uf) == nil)
        #expect(counts.firstSeenFailing(cluster: id) == nil)
    }
}

@Suite("First seen failing")
struct FirstSeenFailingTests {
    @Test("the second of the first failing line, in epoch seconds; DC lines do not start a failure")
    func firstLine() throws {
        let counts = FlagCounts(windows: [60, 300])
        counts.epochOffset = 1_800_000_000
        try count(Lines.istioDC, 5, at: 900, into: counts)
        try count(Lines.istioUF, 1, at: 1000, into: counts)
        try count(Lines.istioUF, 1, at: 1100, into: counts)
        let payments = try #require(counts.clusters.lookUp(paymentsName))
        let recommendations = try #require(
            counts.clusters.lookUp("outbound|8080||recommendations.default.svc.cluster.local"))
        #expect(counts.firstSeenFailing(cluster: payments) == 1_800_001_000)
        #expect(counts.firstSeenFailing(cluster: recommendations) == nil)
    }

    @Test("it resets once the cluster has had no failing line for the longest window")
    func reset() throws {
        let counts = FlagCounts(windows: [60, 300])
        try count(Lines.istioUF, 1, at: 1000, into: counts)
        try count(Lines.istioUF, 1, at: 1299, into: counts)  // 299 s later: the same failure
        let id = try #require(counts.clusters.lookUp(paymentsName))
        #expect(counts.firstSeenFailing(cluster: id) == 1000)
        counts.now = 1598
        #expect(counts.firstSeenFailing(cluster: id) == 1000)
        counts.now = 1599  // 300 s without a failing line: over
        #expect(counts.firstSeenFailing(cluster: id) == nil)
        try count(Lines.istioOK, 3, at: 1650, into: counts)
        #expect(counts.firstSeenFailing(cluster: id) == nil)
        try count(Lines.istioUF, 1, at: 1700, into: counts)  // a new failure
        #expect(counts.firstSeenFailing(cluster: id) == 1700)
    }

    @Test("trend and first-seen time survive idle expiry, which moves the cluster ids")
    func survivesExpiry() throws {
        let counts = FlagCounts(windows: [60, 300])
        try count(Lines.istioOK, 1, at: 0, into: counts)  // reviews: id 0, expires
        try count(Lines.istioUF, 2, at: 1000, into: counts)
        try count(Lines.istioURXUF, 1, at: 1000, into: counts)  // ledger: failing since 1000 too
        try count(Lines.istioUF, 20, at: 1250, into: counts)
        #expect(counts.clusters.lookUp(paymentsName) == 1)
        #expect(counts.expireClusters(idleSeconds: 600) == 1)
        let id = try #require(counts.clusters.lookUp(paymentsName))
        #expect(id == 0)
        #expect(counts.firstSeenFailing(cluster: id) == 1000)
        #expect(counts.flaggedRateTrend(cluster: id, flags: uf) == .rising)
        // A new cluster takes a fresh row: not failing.
        try count(Lines.istioOK, 1, at: 1251, into: counts)
        let reviews = try #require(counts.clusters.lookUp("outbound|8080||reviews.default.svc.cluster.local"))
        #expect(counts.firstSeenFailing(cluster: reviews) == nil)
    }

    @Test("trend and first-seen time survive a reload that changes the windows")
    func survivesRelayout() throws {
        let counts = FlagCounts(windows: [60, 300])
        try count(Lines.istioUF, 2, at: 1000, into: counts)
        try count(Lines.istioUF, 20, at: 1250, into: counts)
        let id = try #require(counts.clusters.lookUp(paymentsName))
        #expect(counts.relayout(windows: [60, 600], flagGroups: [uf]))
        #expect(counts.firstSeenFailing(cluster: id) == 1000)
        #expect(counts.flaggedRateTrend(cluster: id, flags: uf) == .rising)
        // The longest window is now 600 s: the failure lasts until then.
        counts.now = 1849
        #expect(counts.firstSeenFailing(cluster: id) == 1000)
        counts.now = 1850
        #expect(counts.firstSeenFailing(cluster: id) == nil)
    }

    @Test("merging counts on one clock keeps the earlier start of a failure going on")
    func merge() throws {
        let first = FlagCounts(windows: [60, 300])
        let second = FlagCounts(windows: [60, 300])
        try count(Lines.istioUF, 1, at: 1100, into: first)
        try count(Lines.istioUF, 1, at: 1000, into: second)
        try count(Lines.istioUF, 1, at: 1200, into: second)
        first.merge(second)
        let id = try #require(first.clusters.lookUp(paymentsName))
        #expect(first.firstSeenFailing(cluster: id) == 1000)
        first.now = 1499
        #expect(first.firstSeenFailing(cluster: id) == 1000)
    }
}
