import AccessLogParser
import Exposition
import FlagCounting
import Foundation
import Testing

@Suite("Trailing windows, cluster limit and idle expiry")
struct WindowTests {
    @Test("a ring sums exactly the seconds inside each window")
    func ringSums() {
        let rings = WindowRings(windows: [1, 5, 10])
        let ring = rings.allocate(now: 100)
        for second in 100..<120 { rings.add(ring, now: second, amount: UInt32(second - 99)) }
        // At 119: last 1 s = 20; last 5 s = 16+17+18+19+20; last 10 s = 11...20.
        #expect(rings.sum(ring, window: 0, now: 119) == 20)
        #expect(rings.sum(ring, window: 1, now: 119) == 90)
        #expect(rings.sum(ring, window: 2, now: 119) == 155)
        // Three quiet seconds later: 1 s is empty, 5 s holds 19+20, 10 s holds 14...20.
        #expect(rings.sum(ring, window: 0, now: 122) == 0)
        #expect(rings.sum(ring, window: 1, now: 122) == 39)
        #expect(rings.sum(ring, window: 2, now: 122) == 119)
        // Long after: everything has left.
        #expect(rings.sum(ring, window: 2, now: 500) == 0)
        #expect(rings.isEmpty(ring, now: 500))
    }

    @Test("a random schedule agrees with a brute-force count")
    func ringMatchesBruteForce() {
        var generator = SystemRandomNumberGenerator()
        let windows = [3, 7, 60]
        let rings = WindowRings(windows: windows)
        let ring = rings.allocate(now: 0)
        var events: [Int] = []
        var now = 0
        for _ in 0..<2000 {
            now += Int.random(in: 0...3, using: &generator)
            let amount = Int.random(in: 1...5, using: &generator)
            rings.add(ring, now: now, amount: UInt32(amount))
            events += Array(repeating: now, count: amount)
            if Int.random(in: 0..<10, using: &generator) == 0 {
                for (index, window) in windows.enumerated() {
                    let expected = events.filter { $0 > now - window }.count
                    #expect(rings.sum(ring, window: index, now: now) == UInt64(expected))
                }
            }
        }
    }

    @Test("buckets widen from 1 to 2 to 4 bytes as a second's count needs, keeping every sum")
    func ringWidening() {
        let windows = [2, 10]
        let rings = WindowRings(windows: windows)
        let quiet = rings.allocate(now: 0)
        let busy = rings.allocate(now: 0)
        var events: [(second: Int, amount: UInt64)] = []
        func expectSums(_ now: Int) {
            for (index, window) in windows.enumerated() {
                let expected = events.filter { $0.second > now - window }.reduce(0) { $0 + $1.amount }
                #expect(rings.sum(busy, window: index, now: now) == expected, "window \(window) at \(now)")
            }
        }
        for (second, amount) in [(1, 200), (2, 250), (3, 255)] as [(Int, UInt32)] {
            rings.add(busy, now: second, amount: amount)
            rings.add(quiet, now: second)
            events.append((second, UInt64(amount)))
        }
        #expect(rings.ringsByBucketWidth == (2, 0, 0))
        rings.add(busy, now: 3, amount: 1)  // 256 in one second: 2-byte buckets
        events.append((3, 1))
        #expect(rings.ringsByBucketWidth == (1, 1, 0))
        expectSums(3)
        rings.add(busy, now: 4, amount: 65_535)
        events.append((4, 65_535))
        #expect(rings.ringsByBucketWidth == (1, 1, 0))
        rings.add(busy, now: 4, amount: 1)  // 65,536: 4-byte buckets
        events.append((4, 1))
        #expect(rings.ringsByBucketWidth == (1, 0, 1))
        expectSums(4)
        rings.add(busy, now: 5, amount: 3_000_000_000)
        events.append((5, 3_000_000_000))
        expectSums(5)
        expectSums(9)
        expectSums(13)
        #expect(rings.sum(quiet, window: 1, now: 5) == 3)
        // A ring freed after widening gives its slot back; a new ring starts narrow again.
        rings.free(busy)
        #expect(rings.ringsByBucketWidth == (1, 0, 0))
        let fresh = rings.allocate(now: 20)
        #expect(rings.ringsByBucketWidth == (2, 0, 0))
        #expect(rings.sum(fresh, window: 1, now: 20) == 0)
        // Straight from 1 to 4 bytes when one add needs it.
        rings.add(fresh, now: 20, amount: 100_000)
        #expect(rings.ringsByBucketWidth == (1, 0, 1))
        #expect(rings.sum(fresh, window: 0, now: 21) == 100_000)
    }

    @Test("random amounts that cross every bucket width agree with a brute-force count, for many rings")
    func widenedRingsMatchBruteForce() {
        var generator = SystemRandomNumberGenerator()
        let windows = [3, 7, 60]
        let rings = WindowRings(windows: windows, initialRings: 2)
        var ids: [Int] = []
        var events: [[(second: Int, amount: UInt64)]] = []
        var now = 0
        for step in 0..<3000 {
            now += Int.random(in: 0...2, using: &generator)
            if step % 100 == 0 {
                ids.append(rings.allocate(now: now))
                events.append([])
            }
            let which = Int.random(in: 0..<ids.count, using: &generator)
            let amount = UInt32([1, 7, 200, 40_000, 70_000].randomElement(using: &generator) ?? 1)
            rings.add(ids[which], now: now, amount: amount)
            events[which].append((now, UInt64(amount)))
            if step % 37 == 0 {
                for (ring, ringEvents) in zip(ids, events) {
                    for (index, window) in windows.enumerated() {
                        let expected = ringEvents.filter { $0.second > now - window }.reduce(0) { $0 + $1.amount }
                        #expect(rings.sum(ring, window: index, now: now) == expected)
                    }
                }
            }
        }
    }

    @Test("windows per cluster and flag; a UF,URX line counts in both flags' windows")
    func flagWindows() throws {
        let counts = FlagCounts(windows: [60, 300])
        var parser = try AccessLogParser(format: .istio)
        counts.now = 1000
        count(Lines.istioURXUF, into: counts, with: &parser)
        counts.now = 1030
        count(Lines.istioURXUF, into: counts, with: &parser)
        count(Lines.istioOK, into: counts, with: &parser)
        let ledger = try #require(counts.clusters.lookUp("outbound|9002||ledger.default.svc.cluster.local"))
        #expect(counts.windowCount(cluster: ledger, flag: nil, window: 0) == 2)
        #expect(counts.windowCount(cluster: ledger, flag: .upstreamConnectionFailure, window: 0) == 2)
        #expect(counts.windowCount(cluster: ledger, flag: .upstreamRetryLimitExceeded, window: 0) == 2)
        #expect(counts.windowCount(cluster: ledger, flag: .noRouteFound, window: 0) == 0)
        counts.now = 1070
        #expect(counts.windowCount(cluster: ledger, flag: .upstreamConnectionFailure, window: 0) == 1)
        #expect(counts.windowCount(cluster: ledger, flag: .upstreamConnectionFailure, window: 1) == 2)
        #expect(counts.counts(forCluster: ledger).flags[.upstreamConnectionFailure] == 2)
    }

    @Test("beyond max_clusters, lines count under __overflow__ and dropped clusters are counted once each")
    func overflow() throws {
        let counts = FlagCounts(maxClusters: 2, windows: [60])
        var parser = try AccessLogParser(format: .istio)
        for line in [Lines.istioOK, Lines.istioUF, Lines.istioURXUF, Lines.istioURXUF, Lines.istioDC] {
            count(line, into: counts, with: &parser)
        }
        let names = counts.allClusters.map(\.name)
        #expect(
            names == [
                "outbound|8080||reviews.default.svc.cluster.local", "outbound|9001||payments.default.svc.cluster.local",
                "__overflow__",
            ])
        let overflow = try #require(counts.allClusters.last)
        #expect(overflow.requests == 3)
        #expect(
            overflow.flags == [
                .upstreamConnectionFailure: 2, .upstreamRetryLimitExceeded: 2, .downstreamConnectionTermination: 1,
            ])
        #expect(counts.droppedClusters == 2)
        #expect(counts.lines == 5)
    }

    @Test("idle clusters are removed; the others keep their counts and windows")
    func idleExpiry() throws {
        let counts = FlagCounts(windows: [60])
        var parser = try AccessLogParser(format: .istio)
        counts.now = 0
        count(Lines.istioOK, into: counts, with: &parser)
        counts.now = 1000
        count(Lines.istioUF, into: counts, with: &parser)
        count(Lines.istioUF, into: counts, with: &parser)
        counts.now = 1010
        #expect(counts.expireClusters(idleSeconds: 600) == 1)
        #expect(counts.allClusters.map(\.name) == ["outbound|9001||payments.default.svc.cluster.local"])
        let payments = try #require(counts.clusters.lookUp("outbound|9001||payments.default.svc.cluster.local"))
        #expect(counts.windowCount(cluster: payments, flag: .upstreamConnectionFailure, window: 0) == 2)
        count(Lines.istioOK, into: counts, with: &parser)
        #expect(
            counts.counts(
                forCluster: try #require(counts.clusters.lookUp("outbound|8080||reviews.default.svc.cluster.local"))
            ).requests == 1)
        #expect(counts.counts(forCluster: payments).requests == 2)
    }
}

@Suite("Bounded unknown flag codes")
struct UnknownCodeLimitTests {
    @Test("beyond maxUnknownCodes distinct unknown codes, the rest count as __other__")
    func cap() throws {
        let counts = FlagCounts()
        var parser = try AccessLogParser(format: .istio)
        for index in 0..<(FlagCounts.maxUnknownCodes + 50) {
            count(
                Lines.istioUF.replacingOccurrences(of: " 503 UF ", with: " 503 UF,X\(index) "), into: counts,
                with: &parser)
        }
        let payments = try #require(counts.allClusters.first)
        #expect(payments.unknownFlags.count == FlagCounts.maxUnknownCodes + 1)
        #expect(payments.unknownFlags[FlagCounts.otherUnknownFlag] == 50)
        #expect(payments.flags[.upstreamConnectionFailure] == FlagCounts.maxUnknownCodes + 50)
    }
}

@Suite("Scrape format negotiation")
struct AcceptHeaderTests {
    @Test func qValues() {
        #expect(
            ExpositionFormat(
                accept:
                    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
            ) == .openMetrics)
        #expect(ExpositionFormat(accept: "application/openmetrics-text;q=0, text/plain") == .prometheus)
        #expect(ExpositionFormat(accept: "text/plain;q=1, application/openmetrics-text;q=0.1") == .prometheus)
        #expect(ExpositionFormat(accept: nil) == .prometheus)
        #expect(ExpositionFormat(accept: "*/*") == .prometheus)
    }
}
