import Testing

@testable import LogSources

@Suite("Stream id ranges of the followers a daemon creates")
struct StreamIDRangesTests {
    @Test("after 1,000 reloads of a file and a journal follower no two ranges overlap")
    func rangesNeverOverlap() throws {
        var ranges = StreamIDRanges()
        var taken: [(Int, Int)] = []
        for _ in 0..<1000 {
            let reserved = ranges.fileFollower()
            let file = try #require(reserved)
            taken.append((file, file + StreamIDRanges.fileFollowerSize))
            let reservedJournal = ranges.journalFollower()
            let journal = try #require(reservedJournal)
            taken.append((journal, journal + StreamIDRanges.journalFollowerSize))
        }
        let sorted = taken.sorted { $0.0 < $1.0 }
        for (earlier, later) in zip(sorted, sorted.dropFirst()) {
            #expect(earlier.1 <= later.0)
        }
        #expect(sorted.first?.0 == 1)
    }

    @Test("the 17th file follower does not start at the first journal follower's id (the old scheme's collision)")
    func seventeenthReload() throws {
        var ranges = StreamIDRanges()
        _ = ranges.fileFollower()
        let reservedJournal = ranges.journalFollower()
        let firstJournal = try #require(reservedJournal)
        for _ in 0..<17 {
            let reserved = ranges.fileFollower()
            let file = try #require(reserved)
            #expect(!(file..<file + StreamIDRanges.fileFollowerSize).contains(firstJournal + 1))
            #expect(file > firstJournal)
        }
    }

    @Test("ids that would wrap are refused, not reused")
    func exhaustion() {
        var ranges = StreamIDRanges(next: Int.max - StreamIDRanges.fileFollowerSize - 10)
        let last = ranges.fileFollower()
        #expect(last == Int.max - StreamIDRanges.fileFollowerSize - 10)
        let beyond = ranges.fileFollower()
        #expect(beyond == nil)
        let journal = ranges.journalFollower()
        #expect(journal == nil)
        var small = StreamIDRanges(next: Int.max - StreamIDRanges.journalFollowerSize - 1)
        let fits = small.journalFollower()
        #expect(fits != nil)
        let wraps = small.journalFollower()
        #expect(wraps == nil)
    }
}
