/// Stream ids for every follower the daemon creates over its life (one at start, new ones at
/// each reload), from one counter: each follower gets a range of its own, and no range can
/// overlap another. A file follower hands out one id per file it ever opens, a journal follower
/// one per source.
///
/// Why ranges and not a shared counter per id: followers count their ids from a first one,
/// and each range is far larger than a follower can use (2^32 files; 2^16 journal sources),
/// while 2^63 leaves room for 2^31 reloads.
public struct StreamIDRanges: Sendable {
    public static let fileFollowerSize = 1 << 32
    public static let journalFollowerSize = 1 << 16

    private var next = 1

    public init() {}

    /// Ranges from `next` on (tests: the end of the id space).
    init(next: Int) { self.next = next }

    /// The first id of a new file follower's range, or nil when the ids are used up (after
    /// about two billion reloads: the caller keeps the old follower).
    public mutating func fileFollower() -> Int? { reserve(Self.fileFollowerSize) }

    /// The first id of a new journal follower's range (nil: see ``fileFollower()``).
    public mutating func journalFollower() -> Int? { reserve(Self.journalFollowerSize) }

    private mutating func reserve(_ size: Int) -> Int? {
        let (end, overflow) = next.addingReportingOverflow(size)
        guard !overflow else { return nil }
        defer { next = end }
        return next
    }
}
