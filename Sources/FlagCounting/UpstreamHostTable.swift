import AccessLogParser
import LineFraming

/// What the flagged lines of one (cluster, flag) said about their duration and tries, over the
/// same periods as the failure details.
public struct FlaggedLineStats: Equatable, Sendable {
    /// Flagged lines counted.
    public var lines: Int
    /// Lines with a `%DURATION%`, and its smallest and largest value in milliseconds.
    public var timedLines: Int
    public var minDurationMilliseconds: Int?
    public var maxDurationMilliseconds: Int?
    /// Per bucket of ``FlaggedLineStats/durationBucketBounds`` (the last one is everything
    /// above the last bound): lines whose duration fell in it.
    public var durationBuckets: [Int]
    /// Lines with a `%UPSTREAM_REQUEST_ATTEMPT_COUNT%`, and the tries they add up to.
    public var attemptLines: Int
    public var attempts: Int

    /// Upper bounds (inclusive, milliseconds) of the duration buckets; one more bucket holds the
    /// rest. Round values a human reads at a glance; the diagnosis's exact claims (a timeout's
    /// value) use the minimum and maximum instead.
    public static let durationBucketBounds = [10, 100, 1_000, 5_000, 10_000, 30_000, 60_000]

    public init(
        lines: Int = 0, timedLines: Int = 0, minDurationMilliseconds: Int? = nil, maxDurationMilliseconds: Int? = nil,
        durationBuckets: [Int] = [Int](repeating: 0, count: Self.durationBucketBounds.count + 1), attemptLines: Int = 0,
        attempts: Int = 0
    ) {
        self.lines = lines
        self.timedLines = timedLines
        self.minDurationMilliseconds = minDurationMilliseconds
        self.maxDurationMilliseconds = maxDurationMilliseconds
        self.durationBuckets = durationBuckets
        self.attemptLines = attemptLines
        self.attempts = attempts
    }
}

/// Per (cluster, flag): which upstream hosts the flagged lines went to (the first
/// ``hostsPerFlag`` distinct hosts of a period, then ``FlagCounts/otherUpstreamHost``), their
/// durations in a few buckets with the minimum and maximum, and their tries. Per cluster: the
/// distinct hosts (at most ``answeredHostsPerCluster``) that answered 2xx since the cluster's
/// flagged lines began, which tells one bad host from a bad service.
///
/// Periods as ``FailureDetailTable``'s: ``rotate()`` makes the current one the previous one, and
/// readers see both. Bounded whatever the input: blocks of fixed size per (cluster, flag) with a
/// flagged line in the two periods, at most ``maxHosts`` distinct host texts (further ones count
/// as the other host), texts cut at ``maxHostLength`` bytes. Counting a line whose host was seen
/// before allocates nothing.
///
/// Hosts that answered 2xx are counted only for clusters with a flagged line in the two periods
/// (`tracked`): reading the host of every line of every healthy cluster would cost a hash per
/// line for an answer nobody asks.
final class UpstreamHostTable {
    static let hostsPerFlag = 8
    static let answeredHostsPerCluster = 16
    static let maxHosts = 1024
    static let maxHostLength = 128
    /// The host id of ``FlagCounts/otherUpstreamHost``: interned first, kept by compaction.
    private static let otherID: Int32 = 0

    private struct HostSlot {
        var host: Int32
        var current: Int
        var previous: Int
    }

    /// Per period in `stats`: lines, timed lines, attempt lines, attempts, min, max, buckets.
    private enum Stat {
        static let lines = 0
        static let timedLines = 1
        static let attemptLines = 2
        static let attempts = 3
        static let minDuration = 4
        static let maxDuration = 5
        static let firstBucket = 6
        static let perPeriod = 6 + FlaggedLineStats.durationBucketBounds.count + 1
    }

    private let texts = ClusterInterner(initialCapacity: 64)
    private var scratch: [UInt8] = []
    /// Per (cluster, flag): its block.
    private var blocks = FlagBlockIndex()
    /// Block b: host slots b * slotsPerBlock ..< + usedSlots[b] (the last one may be the other host).
    private var slots: [HostSlot] = []
    private var usedSlots: [Int] = []
    /// Block b: stats b * 2 * perPeriod ..< (current period, then previous).
    private var stats: [Int] = []
    private static let slotsPerBlock = hostsPerFlag + 1

    /// Per cluster: whether its 2xx hosts are counted (a flagged line in the two periods).
    private var tracked: [Bool] = []
    /// Per cluster: answeredHostsPerCluster host ids for the current period, then as many for the
    /// previous one; and how many of each are used.
    private var answered: [Int32] = []
    private var answeredUsed: [UInt8] = []

    init() {
        var other = FlagCounts.otherUpstreamHost
        _ = other.withUTF8 { texts.intern(UnsafeRawBufferPointer($0)) }
    }

    // MARK: counting

    /// Counts one flagged line under each of its known flags.
    @inline(__always)
    func countFlagged(cluster: Int, flags: ResponseFlagSet, host: FieldView, duration: Int?, attempts: Int?) {
        ensureCluster(cluster)
        tracked[cluster] = true
        let hostID = host.isAbsent ? Int32(-1) : hostID(host)
        flags.forEach { flag in
            let block = block(for: blocks.key(cluster: cluster, flag: flag))
            if hostID >= 0 { addHost(block: block, hostID, current: 1, previous: 0) }
            addLine(block: block, period: 0, duration: duration, attempts: attempts)
        }
    }

    /// Whether a 2xx line of `cluster` would add to its hosts that answered: it is tracked and
    /// has room left this period.
    @inline(__always)
    func wantsAnswered(cluster: Int) -> Bool {
        cluster < tracked.count && tracked[cluster] && Int(answeredUsed[cluster * 2]) < Self.answeredHostsPerCluster
    }

    /// Notes that `host` answered a line of `cluster` with 2xx, if the cluster is tracked.
    @inline(__always)
    func countAnswered(cluster: Int, host: FieldView) {
        guard !host.isAbsent, wantsAnswered(cluster: cluster) else { return }
        let id = hostID(host)
        guard id != Self.otherID else { return }
        addAnswered(cluster: cluster, period: 0, id)
    }

    private func addAnswered(cluster: Int, period: Int, _ id: Int32) {
        let start = (cluster * 2 + period) * Self.answeredHostsPerCluster
        let used = Int(answeredUsed[cluster * 2 + period])
        var index = start
        while index < start + used {
            if answered[index] == id { return }
            index += 1
        }
        guard used < Self.answeredHostsPerCluster else { return }
        answered[start + used] = id
        answeredUsed[cluster * 2 + period] = UInt8(used + 1)
    }

    @inline(__always)
    private func hostID(_ field: FieldView) -> Int32 {
        var bytes = field.bytes
        if bytes.count > Self.maxHostLength { bytes = UnsafeRawBufferPointer(rebasing: bytes[0..<Self.maxHostLength]) }
        guard field.hasJSONEscapes else { return intern(bytes) }
        // Decoding never lengthens; the scratch only grows once.
        if scratch.count < Self.maxHostLength { scratch = [UInt8](repeating: 0, count: Self.maxHostLength) }
        return scratch.withUnsafeMutableBytes { scratch in
            let length = JSONEscapes.decode(bytes, into: scratch)
            return intern(UnsafeRawBufferPointer(rebasing: scratch[0..<length]))
        }
    }

    @inline(__always)
    private func intern(_ bytes: UnsafeRawBufferPointer) -> Int32 {
        guard let id = texts.intern(bytes, limit: Self.maxHosts) else { return Self.otherID }
        return Int32(id)
    }

    private func intern(_ name: String) -> Int32 {
        var name = name
        return name.withUTF8 { intern(UnsafeRawBufferPointer($0)) }
    }

    private func ensureCluster(_ cluster: Int) {
        guard tracked.count <= cluster else { return }
        let clusters = cluster + 1
        tracked.append(contentsOf: repeatElement(false, count: clusters - tracked.count))
        answeredUsed.append(contentsOf: repeatElement(0, count: clusters * 2 - answeredUsed.count))
        answered.append(
            contentsOf: repeatElement(-1, count: clusters * 2 * Self.answeredHostsPerCluster - answered.count))
    }

    private func block(for key: Int) -> Int {
        let (block, isNew, appended) = blocks.block(for: key)
        guard isNew else { return block }
        if appended {
            slots.append(
                contentsOf: repeatElement(HostSlot(host: -1, current: 0, previous: 0), count: Self.slotsPerBlock))
            stats.append(contentsOf: repeatElement(0, count: 2 * Stat.perPeriod))
            usedSlots.append(0)
        }
        usedSlots[block] = 0
        resetStats(block: block, period: 0)
        resetStats(block: block, period: 1)
        return block
    }

    private func resetStats(block: Int, period: Int) {
        let base = (block * 2 + period) * Stat.perPeriod
        for index in base..<(base + Stat.perPeriod) { stats[index] = 0 }
        stats[base + Stat.minDuration] = Int.max
        stats[base + Stat.maxDuration] = -1
    }

    private func addHost(block: Int, _ host: Int32, current: Int, previous: Int) {
        let start = block * Self.slotsPerBlock
        let used = usedSlots[block]
        var index = start
        while index < start + used {
            if slots[index].host == host {
                slots[index].current += current
                slots[index].previous += previous
                return
            }
            index += 1
        }
        // A new host: the first hostsPerFlag get slots; the rest share the other host's.
        if used < Self.hostsPerFlag && host != Self.otherID {
            slots[start + used] = HostSlot(host: host, current: current, previous: previous)
            usedSlots[block] = used + 1
            return
        }
        for other in start..<(start + used) where slots[other].host == Self.otherID {
            slots[other].current += current
            slots[other].previous += previous
            return
        }
        slots[start + used] = HostSlot(host: Self.otherID, current: current, previous: previous)
        usedSlots[block] = used + 1
    }

    @inline(__always)
    private func addLine(block: Int, period: Int, duration: Int?, attempts: Int?) {
        let base = (block * 2 + period) * Stat.perPeriod
        stats[base + Stat.lines] += 1
        if let duration {
            stats[base + Stat.timedLines] += 1
            if duration < stats[base + Stat.minDuration] { stats[base + Stat.minDuration] = duration }
            if duration > stats[base + Stat.maxDuration] { stats[base + Stat.maxDuration] = duration }
            stats[base + Stat.firstBucket + Self.bucket(duration)] += 1
        }
        if let attempts {
            stats[base + Stat.attemptLines] += 1
            stats[base + Stat.attempts] += attempts
        }
    }

    @inline(__always)
    private static func bucket(_ duration: Int) -> Int {
        var index = 0
        for bound in FlaggedLineStats.durationBucketBounds {
            if duration <= bound { return index }
            index += 1
        }
        return index
    }

    // MARK: reading

    /// The hosts of a cluster's flag, current plus previous period, most lines first (the other
    /// host last among equals).
    func hosts(cluster: Int, flag: ResponseFlag) -> [UpstreamHostCount] {
        guard let block = existingBlock(cluster: cluster, flag: flag) else { return [] }
        let start = block * Self.slotsPerBlock
        var result: [UpstreamHostCount] = []
        for slot in slots[start..<(start + usedSlots[block])] where slot.current + slot.previous > 0 {
            result.append(UpstreamHostCount(host: texts.names[Int(slot.host)], count: slot.current + slot.previous))
        }
        let other = FlagCounts.otherUpstreamHost
        return result.sorted {
            ($0.count, $0.host != other ? 1 : 0, $1.host) > ($1.count, $1.host != other ? 1 : 0, $0.host)
        }
    }

    /// The durations and tries of a cluster's flag, current plus previous period; nil when it
    /// had no flagged line.
    func lineStats(cluster: Int, flag: ResponseFlag) -> FlaggedLineStats? {
        guard let block = existingBlock(cluster: cluster, flag: flag) else { return nil }
        var result = FlaggedLineStats()
        for period in 0..<2 {
            let base = (block * 2 + period) * Stat.perPeriod
            result.lines += stats[base + Stat.lines]
            result.timedLines += stats[base + Stat.timedLines]
            result.attemptLines += stats[base + Stat.attemptLines]
            result.attempts += stats[base + Stat.attempts]
            if stats[base + Stat.timedLines] > 0 {
                let low = stats[base + Stat.minDuration]
                let high = stats[base + Stat.maxDuration]
                result.minDurationMilliseconds = min(result.minDurationMilliseconds ?? low, low)
                result.maxDurationMilliseconds = max(result.maxDurationMilliseconds ?? high, high)
            }
            for bucket in result.durationBuckets.indices {
                result.durationBuckets[bucket] += stats[base + Stat.firstBucket + bucket]
            }
        }
        return result.lines > 0 ? result : nil
    }

    /// The distinct hosts that answered a cluster's lines with 2xx, current plus previous period
    /// (at most twice ``answeredHostsPerCluster``).
    func answeredHosts(cluster: Int) -> [String] {
        guard cluster < tracked.count else { return [] }
        var ids: [Int32] = []
        for period in 0..<2 {
            let start = (cluster * 2 + period) * Self.answeredHostsPerCluster
            for id in answered[start..<(start + Int(answeredUsed[cluster * 2 + period]))] where !ids.contains(id) {
                ids.append(id)
            }
        }
        return ids.map { texts.names[Int($0)] }.sorted()
    }

    private func existingBlock(cluster: Int, flag: ResponseFlag) -> Int? {
        blocks.existingBlock(blocks.key(cluster: cluster, flag: flag))
    }

    // MARK: periods, expiry, merging

    /// The current period becomes the previous one; blocks and clusters with nothing in either
    /// are freed or no longer tracked; host texts nobody uses are forgotten once the table is full.
    func rotate() {
        for cluster in tracked.indices { tracked[cluster] = false }
        for block in usedSlots.indices where blocks.isInUse(block) {
            let start = block * Self.slotsPerBlock
            var kept = start
            for index in start..<(start + usedSlots[block]) {
                var slot = slots[index]
                slot.previous = slot.current
                slot.current = 0
                if slot.previous > 0 {
                    slots[kept] = slot
                    kept += 1
                }
            }
            usedSlots[block] = kept - start
            let current = block * 2 * Stat.perPeriod
            for index in 0..<Stat.perPeriod { stats[current + Stat.perPeriod + index] = stats[current + index] }
            resetStats(block: block, period: 0)
            if stats[current + Stat.perPeriod + Stat.lines] == 0 {
                usedSlots[block] = 0
                blocks.free(block)
            } else {
                tracked[blocks.key(of: block) / blocks.flagCount] = true
            }
        }
        for cluster in tracked.indices {
            let current = cluster * 2 * Self.answeredHostsPerCluster
            let used = Int(answeredUsed[cluster * 2])
            for index in 0..<Self.answeredHostsPerCluster {
                answered[current + Self.answeredHostsPerCluster + index] = index < used ? answered[current + index] : -1
            }
            answeredUsed[cluster * 2 + 1] = UInt8(used)
            answeredUsed[cluster * 2] = 0
        }
        if texts.count >= Self.maxHosts { compactTexts() }
    }

    private func compactTexts() {
        var referenced = [Bool](repeating: false, count: texts.count)
        referenced[Int(Self.otherID)] = true
        for block in usedSlots.indices where blocks.isInUse(block) {
            let start = block * Self.slotsPerBlock
            for slot in slots[start..<(start + usedSlots[block])] { referenced[Int(slot.host)] = true }
        }
        for cluster in tracked.indices {
            for period in 0..<2 {
                let start = (cluster * 2 + period) * Self.answeredHostsPerCluster
                for id in answered[start..<(start + Int(answeredUsed[cluster * 2 + period]))] {
                    referenced[Int(id)] = true
                }
            }
        }
        let survivors = referenced.indices.filter { referenced[$0] }
        guard survivors.count < texts.count else { return }
        var newID = [Int32](repeating: -1, count: texts.count)
        for (index, old) in survivors.enumerated() { newID[old] = Int32(index) }
        texts.compact(keeping: survivors)
        for block in usedSlots.indices where blocks.isInUse(block) {
            let start = block * Self.slotsPerBlock
            for index in start..<(start + usedSlots[block]) { slots[index].host = newID[Int(slots[index].host)] }
        }
        for index in answered.indices where answered[index] >= 0 { answered[index] = newID[Int(answered[index])] }
    }

    /// Adds `other`'s counts, its cluster ids mapped through `localCluster` (a scan's chunks).
    func merge(_ other: UpstreamHostTable, localCluster: (Int) -> Int) {
        let flagCount = blocks.flagCount
        for block in other.usedSlots.indices where other.blocks.isInUse(block) {
            let key = other.blocks.key(of: block)
            let cluster = localCluster(key / flagCount)
            ensureCluster(cluster)
            let local = self.block(for: cluster * flagCount + key % flagCount)
            let start = block * Self.slotsPerBlock
            for slot in other.slots[start..<(start + other.usedSlots[block])] {
                addHost(
                    block: local, intern(other.texts.names[Int(slot.host)]), current: slot.current,
                    previous: slot.previous)
            }
            for period in 0..<2 {
                let from = (block * 2 + period) * Stat.perPeriod
                let to = (local * 2 + period) * Stat.perPeriod
                for index in [Stat.lines, Stat.timedLines, Stat.attemptLines, Stat.attempts] {
                    stats[to + index] += other.stats[from + index]
                }
                stats[to + Stat.minDuration] = min(stats[to + Stat.minDuration], other.stats[from + Stat.minDuration])
                stats[to + Stat.maxDuration] = max(stats[to + Stat.maxDuration], other.stats[from + Stat.maxDuration])
                for bucket in 0...FlaggedLineStats.durationBucketBounds.count {
                    stats[to + Stat.firstBucket + bucket] += other.stats[from + Stat.firstBucket + bucket]
                }
            }
            tracked[cluster] = true
        }
        for cluster in other.tracked.indices {
            let local = localCluster(cluster)
            ensureCluster(local)
            for period in 0..<2 {
                let start = (cluster * 2 + period) * Self.answeredHostsPerCluster
                for id in other.answered[start..<(start + Int(other.answeredUsed[cluster * 2 + period]))] {
                    addAnswered(cluster: local, period: period, intern(other.texts.names[Int(id)]))
                }
            }
        }
    }

    /// Keeps the clusters of `survivors` (old ids, in their new order) and frees the rest.
    func keepClusters(_ survivors: [Int]) {
        let (newCluster, rows) = blocks.keepClusters(survivors, clusters: tracked.count) { usedSlots[$0] = 0 }
        var newTracked = [Bool](repeating: false, count: rows)
        var newAnswered = [Int32](repeating: -1, count: rows * 2 * Self.answeredHostsPerCluster)
        var newUsed = [UInt8](repeating: 0, count: rows * 2)
        for old in tracked.indices where newCluster[old] >= 0 {
            let new = newCluster[old]
            newTracked[new] = tracked[old]
            newUsed[new * 2] = answeredUsed[old * 2]
            newUsed[new * 2 + 1] = answeredUsed[old * 2 + 1]
            let from = old * 2 * Self.answeredHostsPerCluster
            let to = new * 2 * Self.answeredHostsPerCluster
            for index in 0..<(2 * Self.answeredHostsPerCluster) { newAnswered[to + index] = answered[from + index] }
        }
        tracked = newTracked
        answered = newAnswered
        answeredUsed = newUsed
    }
}
