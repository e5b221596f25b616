import AccessLogParser
import LineFraming

/// Counts since start, per upstream cluster: requests, responses per code class, and each
/// flag; plus how many lines were read and how many were malformed, by reason.
///
/// Counters live in one flat array (a row of ``stride`` per cluster), so counting a record is a
/// hash lookup and a few increments, with no allocation for a cluster seen before.
public final class FlagCounts {
    /// The cluster key for lines without a cluster (`-` in text, null in JSON).
    public static let noCluster = "-"
    /// Code classes: index 0 is "0" (no response), 1...5 are "1xx"..."5xx".
    public static let codeClassNames = ["0", "1xx", "2xx", "3xx", "4xx", "5xx"]

    static let flagCount = ResponseFlag.allCases.count
    static let requestsColumn = 0
    static let codesColumn = 1
    static let flagsColumn = 7
    static let stride = 7 + flagCount

    public let clusters = ClusterInterner()
    private var counters: [Int] = []
    /// Real clusters beyond this share ``overflowCluster``'s row.
    public let maxClusters: Int
    /// Trailing-window counts, when windows are configured (the daemon; not `scan`).
    public private(set) var rings: WindowRings?
    /// The second the daemon's clock is at: windows count into it.
    public var now = 0
    /// Per cluster, `1 + flagCount` ring ids (responses, then each flag); -1: none yet.
    private var ringTable: [Int32] = []
    /// Per cluster, the last second it had a line (for idle expiry).
    private var lastSeen: [Int] = []
    /// Per cluster, the second of the first line with a ``failureFlags`` flag of the failure
    /// going on now, and of the latest such line (`Int.min`: none); see
    /// ``firstSeenFailing(cluster:)``.
    private var failingSince: [Int] = []
    private var lastFailing: [Int] = []
    /// What to add to a second of ``now``'s clock to get seconds since the epoch: the daemon
    /// counts on a monotonic clock and sets this from the wall clock as it sets `now`; 0 when
    /// `now` already is epoch seconds.
    public var epochOffset = 0
    /// Distinct clusters that got no row of their own (approximately: a bitmap of name hashes).
    public private(set) var droppedClusters: UInt64 = 0
    private var droppedBitmap: [UInt64] = []
    private var overflowID: Int?
    /// Rises whenever cluster ids change (idle expiry): caches keyed by id must be rebuilt.
    public private(set) var generation = 0
    /// Codes not in Envoy's table (extensions' custom flags), interned like cluster names so
    /// counting one allocates nothing once it has been seen: cluster id → code id → count.
    private let unknownCodes = ClusterInterner(initialCapacity: 16)
    private var unknownFlags: [Int: [Int: Int]] = [:]
    private var defects = [Int](repeating: 0, count: LineDefect.allCases.count)
    /// Every complete logical line: parsed plus malformed.
    public private(set) var lines = 0
    /// Scratch for JSON cluster names that carry escapes.
    private var unescapeScratch: [UInt8] = []
    /// Per cluster and flag: the response code details and transport failure reasons of the
    /// flagged lines (what the diagnosis reads).
    private let failureDetailTable = FailureDetailTable()
    /// Per cluster and flag: the upstream hosts, durations and tries of the flagged lines; per
    /// cluster, the hosts that answered 2xx while it had flagged lines.
    private let upstreamHostTable = UpstreamHostTable()

    /// The cluster that counts lines of clusters beyond ``maxClusters``.
    public static let overflowCluster = "__overflow__"

    /// - Parameters:
    ///   - maxClusters: real clusters with a row of their own; more go to ``overflowCluster``.
    ///   - windows: trailing windows in seconds (empty: none kept).
    ///   - flagGroups: sets of flags whose lines are also counted per window as one series
    ///     (a line with several flags of a group counts once): what an alert rule's ratio needs.
    public init(maxClusters: Int = Int.max, windows: [Int] = [], flagGroups: [ResponseFlagSet] = []) {
        self.maxClusters = maxClusters
        rings = windows.isEmpty ? nil : WindowRings(windows: windows)
        self.flagGroups = flagGroups.map(\.rawValue)
        ringsPerCluster = 1 + Self.flagCount + flagGroups.count
    }

    /// Per group, the flags' bits (see ``ResponseFlagSet``).
    private var flagGroups: [UInt32]

    /// The flag groups, as given to ``init(maxClusters:windows:flagGroups:)`` or ``relayout(windows:flagGroups:)``.
    public var flagGroupSets: [ResponseFlagSet] { flagGroups.map { ResponseFlagSet(rawValue: $0) } }

    /// Changes the windows and flag groups kept (a configuration reload) without losing what the
    /// windows hold: a window kept or lengthened keeps its seconds (a longer one starts with what
    /// the longest old window held), a group kept by its set of flags keeps its series; a new
    /// group starts empty. Returns false (nothing changed) when windows would be turned on or off.
    @discardableResult
    public func relayout(windows: [Int], flagGroups newGroups: [ResponseFlagSet]) -> Bool {
        guard let oldRings = rings, !windows.isEmpty else { return windows.isEmpty && rings == nil }
        let newRings = windows == oldRings.windows ? oldRings : WindowRings(windows: windows)
        let newPerCluster = 1 + Self.flagCount + newGroups.count
        var newTable = [Int32](repeating: -1, count: clusters.count * newPerCluster)
        let oldGroups = flagGroups
        for cluster in 0..<clusters.count {
            let oldBase = cluster * ringsPerCluster
            let newBase = cluster * newPerCluster
            guard oldBase + ringsPerCluster <= ringTable.count else { continue }
            // Old slot feeding each new slot: totals and flags in place, groups by their flags.
            var sources = Array(oldBase..<(oldBase + 1 + Self.flagCount))
            for group in newGroups {
                sources.append(oldGroups.firstIndex(of: group.rawValue).map { oldBase + 1 + Self.flagCount + $0 } ?? -1)
            }
            var used = Set<Int>()
            for (offset, source) in sources.enumerated()
            where source >= 0 && ringTable[source] >= 0 && !used.contains(source) {
                used.insert(source)
                let oldRing = Int(ringTable[source])
                newTable[newBase + offset] = Int32(
                    newRings === oldRings ? oldRing : newRings.copy(oldRing, of: oldRings, now: now))
            }
            if newRings === oldRings {
                for index in oldBase..<(oldBase + ringsPerCluster) where ringTable[index] >= 0 && !used.contains(index)
                {
                    oldRings.free(Int(ringTable[index]))
                }
            }
        }
        rings = newRings
        ringTable = newTable
        flagGroups = newGroups.map(\.rawValue)
        ringsPerCluster = newPerCluster
        return true
    }

    /// Counts one parsed line; returns its cluster's id.
    @inline(__always)
    @discardableResult
    public func count(_ record: borrowing AccessRecord) -> Int {
        lines += 1
        let cluster = clusterID(record.upstreamCluster)
        let row = cluster * Self.stride
        let codeClass = record.codeClass
        let flags = record.responseFlags
        counters.withUnsafeMutableBufferPointer { counts in
            counts[row + Self.requestsColumn] += 1
            counts[row + Self.codesColumn + codeClass] += 1
            flags.forEach { flag in
                counts[row + Self.flagsColumn + Int(flag.rawValue)] += 1
            }
        }
        if !flags.isEmpty {
            failureDetailTable.count(
                cluster: cluster, flags: flags, details: record.responseCodeDetails,
                reason: record.upstreamTransportFailureReason)
            upstreamHostTable.countFlagged(
                cluster: cluster, flags: flags, host: record.upstreamHost, duration: record.durationMilliseconds,
                attempts: record.upstreamRequestAttempts)
        } else if codeClass == 2 {
            upstreamHostTable.countAnswered(cluster: cluster, host: record.upstreamHost)
        }
        if record.unknownFlagCount > 0 {
            record.forEachUnknownFlag { code in
                unknownFlags[cluster, default: [:]][unknownCodeID(code), default: 0] += 1
            }
        }
        if let rings { countInWindows(cluster, flags: flags, rings: rings) }
        return cluster
    }

    /// Distinct codes outside Envoy's table that get a series of their own; the rest are
    /// counted as ``otherUnknownFlag``, so hostile input cannot grow memory without bound.
    public static let maxUnknownCodes = 256
    public static let otherUnknownFlag = "__other__"

    private func unknownCodeID(_ code: UnsafeRawBufferPointer) -> Int {
        if let id = unknownCodes.intern(code, limit: Self.maxUnknownCodes) { return id }
        var other = Self.otherUnknownFlag
        return other.withUTF8 { unknownCodes.intern(UnsafeRawBufferPointer($0)) }
    }

    /// Rings per cluster: responses, each flag, then each flag group.
    private var ringsPerCluster: Int

    @inline(__always)
    private func countInWindows(_ cluster: Int, flags: ResponseFlagSet, rings: WindowRings) {
        lastSeen[cluster] = now
        let base = cluster * ringsPerCluster
        rings.add(ring(base, rings), now: now)
        guard !flags.isEmpty else { return }
        if flags.rawValue & Self.failureFlags.rawValue != 0 { noteFailing(cluster, longest: rings.length) }
        flags.forEach { flag in
            rings.add(ring(base + 1 + Int(flag.rawValue), rings), now: now)
        }
        for (index, group) in flagGroups.enumerated() where group & flags.rawValue != 0 {
            rings.add(ring(base + 1 + Self.flagCount + index, rings), now: now)
        }
    }

    /// A failure starts with a flagged line after at least the longest window without one.
    @inline(__always)
    private func noteFailing(_ cluster: Int, longest: Int) {
        let last = lastFailing[cluster]
        if last == Int.min || now - last >= longest { failingSince[cluster] = now }
        lastFailing[cluster] = max(last, now)
    }

    @inline(__always)
    private func ring(_ index: Int, _ rings: WindowRings) -> Int {
        let existing = ringTable[index]
        if existing >= 0 { return Int(existing) }
        let ring = rings.allocate(now: now)
        ringTable[index] = Int32(ring)
        return ring
    }

    /// Counts one malformed line.
    public func count(_ defect: LineDefect) {
        lines += 1
        defects[defect.index] += 1
    }

    @inline(__always)
    private func clusterID(_ field: FieldView) -> Int {
        let id: Int
        if field.isAbsent {
            id = internNoCluster()
        } else if field.hasJSONEscapes {
            // Decoding never lengthens; the scratch only grows, so this allocates at most once
            // per longer name.
            if unescapeScratch.count < field.bytes.count {
                unescapeScratch = [UInt8](repeating: 0, count: field.bytes.count)
            }
            id = unescapeScratch.withUnsafeMutableBytes { scratch in
                let length = JSONEscapes.decode(field.bytes, into: scratch)
                let name = UnsafeRawBufferPointer(rebasing: scratch[0..<length])
                return clusters.intern(name, limit: maxClusters) ?? overflow(name)
            }
        } else if maxClusters == Int.max {
            id = clusters.intern(field.bytes)
        } else {
            id = clusters.intern(field.bytes, limit: maxClusters) ?? overflow(field.bytes)
        }
        ensureRow(id)
        return id
    }

    /// The overflow cluster's id; notes `name` as dropped if it was not seen before.
    private func overflow(_ name: UnsafeRawBufferPointer) -> Int {
        // 2^23 bits (1 MiB): exact for the first few hundred thousand distinct names, an
        // undercount beyond; memory stays fixed whatever the input.
        if droppedBitmap.isEmpty { droppedBitmap = [UInt64](repeating: 0, count: 1 << 17) }
        let hash = ClusterInterner.hash(name)
        let bit = Int(truncatingIfNeeded: hash >> 7) & ((1 << 23) - 1)
        let mask: UInt64 = 1 << UInt64(bit & 63)
        if droppedBitmap[bit >> 6] & mask == 0 {
            droppedBitmap[bit >> 6] |= mask
            droppedClusters += 1
        }
        if let overflowID { return overflowID }
        var overflowName = Self.overflowCluster
        let id = overflowName.withUTF8 { clusters.intern(UnsafeRawBufferPointer($0)) }
        overflowID = id
        return id
    }

    /// Grows the counters so cluster `id` has its row.
    @inline(__always)
    private func ensureRow(_ id: Int) {
        let needed = (id + 1) * Self.stride
        if counters.count < needed {
            counters.append(contentsOf: repeatElement(0, count: needed - counters.count))
            if rings != nil {
                ringTable.append(contentsOf: repeatElement(-1, count: (id + 1) * ringsPerCluster - ringTable.count))
                lastSeen.append(contentsOf: repeatElement(now, count: id + 1 - lastSeen.count))
                failingSince.append(contentsOf: repeatElement(Int.min, count: id + 1 - failingSince.count))
                lastFailing.append(contentsOf: repeatElement(Int.min, count: id + 1 - lastFailing.count))
            }
        }
    }

    private func internNoCluster() -> Int {
        var name = Self.noCluster
        return name.withUTF8 { clusters.intern(UnsafeRawBufferPointer($0)) }
    }

    /// Adds another FlagCounts' counts (e.g. from a chunk of the same file read in parallel).
    public func merge(_ other: FlagCounts) {
        lines += other.lines
        for index in defects.indices { defects[index] += other.defects[index] }
        var localIDs: [Int] = []
        for otherID in 0..<other.clusters.count {
            var name = other.clusters.names[otherID]
            let id = name.withUTF8 { clusters.intern(UnsafeRawBufferPointer($0)) }
            localIDs.append(id)
            ensureRow(id)
            for column in 0..<Self.stride {
                counters[id * Self.stride + column] += other.counters[otherID * Self.stride + column]
            }
            for (code, count) in other.unknownFlags[otherID] ?? [:] {
                var name = other.unknownCodes.names[code]
                let local = name.withUTF8 { unknownCodes.intern(UnsafeRawBufferPointer($0)) }
                unknownFlags[id, default: [:]][local, default: 0] += count
            }
        }
        failureDetailTable.merge(other.failureDetailTable) { localIDs[$0] }
        upstreamHostTable.merge(other.upstreamHostTable) { localIDs[$0] }
        // With windows on both (one clock): failures less than the longest window apart are one
        // failure, from the earlier start; otherwise the later failure is the one going on.
        guard let rings else { return }
        for (otherID, id) in localIDs.enumerated()
        where otherID < other.lastFailing.count && id < lastFailing.count && other.lastFailing[otherID] != Int.min {
            let (since, last) = (other.failingSince[otherID], other.lastFailing[otherID])
            if lastFailing[id] == Int.min || since - lastFailing[id] >= rings.length {
                failingSince[id] = since
            } else if failingSince[id] - last < rings.length {
                failingSince[id] = min(failingSince[id], since)
            }
            lastFailing[id] = max(lastFailing[id], last)
        }
    }

    // MARK: failure details

    /// Counts the pairs beyond a breakdown's bounds (see ``failureDetails(cluster:flag:)``).
    public static let otherFailureDetail = "__other__"
    /// Stands for the upstream hosts beyond a (cluster, flag)'s host breakdown's bound.
    public static let otherUpstreamHost = "__other__"

    /// What the lines of a cluster's flag said about the failure: their
    /// `%RESPONSE_CODE_DETAILS%` / `%UPSTREAM_TRANSPORT_FAILURE_REASON%` pairs with counts, most
    /// frequent first. Since the last two calls of ``rotateFailureDetails()`` (the daemon makes
    /// one a minute), or since start if it is never called (scan). At most 16 pairs, the last of
    /// them possibly ``otherFailureDetail`` for the pairs beyond; at most 256 distinct texts.
    public func failureDetails(cluster id: Int, flag: ResponseFlag) -> [FailureDetail] {
        failureDetailTable.details(cluster: id, flag: flag)
    }

    /// The sum of ``failureDetails(cluster:flag:)``'s counts (allocates nothing).
    public func failureDetailTotal(cluster id: Int, flag: ResponseFlag) -> Int {
        failureDetailTable.total(cluster: id, flag: flag)
    }

    /// Starts a new period of failure details: what was counted until now becomes the previous
    /// period, and what the one before held is dropped.
    public func rotateFailureDetails() {
        failureDetailTable.rotate()
        upstreamHostTable.rotate()
    }

    /// The upstream hosts (`%UPSTREAM_HOST%`) of a cluster's flag's lines, most lines first,
    /// over the failure details' periods: the first 8 distinct hosts of a period, then
    /// ``otherUpstreamHost`` for the rest. Empty when the lines named no host.
    public func upstreamHosts(cluster id: Int, flag: ResponseFlag) -> [UpstreamHostCount] {
        upstreamHostTable.hosts(cluster: id, flag: flag)
    }

    /// The durations and tries of a cluster's flag's lines, over the failure details' periods;
    /// nil when it had none.
    public func flaggedLineStats(cluster id: Int, flag: ResponseFlag) -> FlaggedLineStats? {
        upstreamHostTable.lineStats(cluster: id, flag: flag)
    }

    /// Whether the upstream host of a 2xx line of `cluster` is wanted: the cluster had flagged
    /// lines in the failure details' periods and fewer than 16 hosts answered it this period.
    /// A text parser reads the host only on flagged lines; ``StreamPipeline`` reads it again on
    /// some of these lines and gives it to ``countAnsweredHost(cluster:host:)``.
    @inline(__always)
    public func wantsAnsweredHost(cluster id: Int) -> Bool {
        upstreamHostTable.wantsAnswered(cluster: id)
    }

    /// Notes that `host` answered a 2xx line of cluster `id` (see ``wantsAnsweredHost(cluster:)``).
    public func countAnsweredHost(cluster id: Int, host: FieldView) {
        upstreamHostTable.countAnswered(cluster: id, host: host)
    }

    /// The distinct upstream hosts that answered a cluster's requests with 2xx, counted from its
    /// first flagged line of the failure details' periods on (at most 16 per period), sorted.
    public func answeredHosts(cluster id: Int) -> [String] {
        upstreamHostTable.answeredHosts(cluster: id)
    }

    // MARK: reading the counts

    public var malformed: [LineDefect: Int] {
        var result: [LineDefect: Int] = [:]
        for defect in LineDefect.allCases where defects[defect.index] > 0 { result[defect] = defects[defect.index] }
        return result
    }

    public var malformedTotal: Int { defects.reduce(0, +) }

    /// The counts of one cluster.
    public struct ClusterCounts: Equatable, Sendable {
        public var name: String
        public var requests: Int
        /// By code class index (see ``FlagCounts/codeClassNames``).
        public var codes: [Int]
        /// Known flags with a non-zero count.
        public var flags: [ResponseFlag: Int]
        /// Codes not in Envoy's table, by code as written.
        public var unknownFlags: [String: Int]

        /// Every flag count by short name (unknown codes by their own text).
        public var flagsByName: [String: Int] {
            var result = unknownFlags
            for (flag, count) in flags { result[flag.shortName, default: 0] += count }
            return result
        }

        public var flaggedTotal: Int { flags.values.reduce(0, +) + unknownFlags.values.reduce(0, +) }
    }

    public func counts(forCluster id: Int) -> ClusterCounts {
        let row = id * Self.stride
        var flags: [ResponseFlag: Int] = [:]
        for flag in ResponseFlag.allCases {
            let value = counters[row + Self.flagsColumn + Int(flag.rawValue)]
            if value > 0 { flags[flag] = value }
        }
        return ClusterCounts(
            name: clusters.names[id],
            requests: counters[row + Self.requestsColumn],
            codes: Array(counters[(row + Self.codesColumn)..<(row + Self.codesColumn + 6)]),
            flags: flags,
            unknownFlags: Dictionary(
                uniqueKeysWithValues: (unknownFlags[id] ?? [:]).map { (unknownCodes.names[$0.key], $0.value) }))
    }

    /// The count in window `index` of ``WindowRings/windows`` for a cluster: all its responses
    /// (`flag` nil) or one flag's.
    public func windowCount(cluster id: Int, flag: ResponseFlag?, window index: Int) -> UInt64 {
        guard let rings else { return 0 }
        let ring = ringTable[id * ringsPerCluster + (flag.map { 1 + Int($0.rawValue) } ?? 0)]
        return ring < 0 ? 0 : rings.sum(Int(ring), window: index, now: now)
    }

    /// The lines of a cluster with at least one flag of group `group` (of the init's
    /// `flagGroups`) in window `index`.
    public func windowCount(cluster id: Int, flagGroup group: Int, window index: Int) -> UInt64 {
        guard let rings else { return 0 }
        let ring = ringTable[id * ringsPerCluster + 1 + Self.flagCount + group]
        return ring < 0 ? 0 : rings.sum(Int(ring), window: index, now: now)
    }

    /// The ring of a cluster's responses (`flag` nil) or one flag's; nil when it has none now.
    func ring(cluster id: Int, flag: ResponseFlag?) -> Int? {
        guard rings != nil, id >= 0, id < clusters.count else { return nil }
        let ring = ringTable[id * ringsPerCluster + (flag.map { 1 + Int($0.rawValue) } ?? 0)]
        return ring < 0 ? nil : Int(ring)
    }

    /// The ring of a cluster's lines with a flag of group `group`; nil when it has none now.
    func ring(cluster id: Int, flagGroup group: Int) -> Int? {
        guard rings != nil, id >= 0, id < clusters.count, group >= 0, group < flagGroups.count else { return nil }
        let ring = ringTable[id * ringsPerCluster + 1 + Self.flagCount + group]
        return ring < 0 ? nil : Int(ring)
    }

    /// The flags that say a cluster is failing (an upstream or the routing to it failed), in the
    /// order the diagnosis ranks them (earlier ones win a tie; `Diagnoser.upstreamFailureFlags`
    /// is this list). Downstream (DC, DR, DPE, IH), policy (RL, UAEX, FI, DI) and cache flags do
    /// not start a failure.
    public static let failureFlagOrder: [ResponseFlag] = [
        .upstreamConnectionFailure, .upstreamRetryLimitExceeded, .noHealthyUpstream, .upstreamConnectionTermination,
        .upstreamOverflow, .upstreamRequestTimeout, .upstreamRemoteReset, .upstreamProtocolError, .noRouteFound,
        .noClusterFound, .localReset,
    ]
    /// ``failureFlagOrder`` as a set, for the hot path's one bit test.
    public static let failureFlags = ResponseFlagSet(failureFlagOrder)

    /// When the cluster was first seen failing, in seconds since the epoch (``now`` plus
    /// ``epochOffset``): the second of the first line with a ``failureFlags`` flag after at
    /// least the longest window without one. Nil without windows, or when the cluster has had
    /// no such line for the longest window (the failure is over).
    public func firstSeenFailing(cluster id: Int) -> Int? {
        guard let rings, id >= 0, id < lastFailing.count else { return nil }
        let last = lastFailing[id]
        guard last != Int.min, now - last < rings.length, failingSince[id] != Int.min else { return nil }
        return failingSince[id] + epochOffset
    }

    /// The last second a cluster had a line (with windows configured).
    public func lastSeenSecond(cluster id: Int) -> Int? {
        id < lastSeen.count ? lastSeen[id] : nil
    }

    /// Removes clusters without a line for `idleSeconds` (with windows configured); returns
    /// how many. Ids change: the survivors keep their order.
    @discardableResult
    public func expireClusters(idleSeconds: Int) -> Int {
        guard let rings else { return 0 }
        let survivors = (0..<clusters.count).filter { now - lastSeen[$0] < idleSeconds }
        let removed = clusters.count - survivors.count
        guard removed > 0 else {
            releaseIdleRings()
            return 0
        }
        var newCounters: [Int] = []
        newCounters.reserveCapacity(survivors.count * Self.stride)
        var newRings: [Int32] = []
        var newLastSeen: [Int] = []
        var newFailingSince: [Int] = []
        var newLastFailing: [Int] = []
        var newUnknown: [Int: [Int: Int]] = [:]
        let surviving = Set(survivors)
        for id in 0..<clusters.count where !surviving.contains(id) {
            for index in (id * ringsPerCluster)..<((id + 1) * ringsPerCluster) where ringTable[index] >= 0 {
                rings.free(Int(ringTable[index]))
            }
        }
        for (newID, id) in survivors.enumerated() {
            newCounters.append(contentsOf: counters[(id * Self.stride)..<((id + 1) * Self.stride)])
            newRings.append(contentsOf: ringTable[(id * ringsPerCluster)..<((id + 1) * ringsPerCluster)])
            newLastSeen.append(lastSeen[id])
            newFailingSince.append(failingSince[id])
            newLastFailing.append(lastFailing[id])
            if let unknown = unknownFlags[id] { newUnknown[newID] = unknown }
        }
        let overflowName = overflowID.map { clusters.names[$0] }
        failureDetailTable.keepClusters(survivors)
        upstreamHostTable.keepClusters(survivors)
        clusters.compact(keeping: survivors)
        generation += 1
        counters = newCounters
        ringTable = newRings
        lastSeen = newLastSeen
        failingSince = newFailingSince
        lastFailing = newLastFailing
        unknownFlags = newUnknown
        overflowID = overflowName.flatMap { clusters.lookUp($0) }
        releaseIdleRings()
        return removed
    }

    /// Rings with nothing in the longest window go back to the pool (a cluster's flags that
    /// stopped keep their totals; their window gauges read 0).
    private func releaseIdleRings() {
        guard let rings else { return }
        for index in ringTable.indices where ringTable[index] >= 0 {
            let ring = Int(ringTable[index])
            if rings.isEmpty(ring, now: now) {
                rings.free(ring)
                ringTable[index] = -1
            }
        }
    }

    /// A cluster's total for one known flag (no allocation).
    public func flagTotal(cluster id: Int, flag: ResponseFlag) -> Int {
        counters[id * Self.stride + Self.flagsColumn + Int(flag.rawValue)]
    }

    /// A cluster's responses in code class `index` (see ``codeClassNames``).
    public func codeTotal(cluster id: Int, codeClass index: Int) -> Int {
        counters[id * Self.stride + Self.codesColumn + index]
    }

    public func requests(cluster id: Int) -> Int {
        counters[id * Self.stride + Self.requestsColumn]
    }

    /// Codes not in Envoy's table counted for a cluster, by their text.
    public func unknownFlagTotals(cluster id: Int) -> [String: Int] {
        guard let codes = unknownFlags[id] else { return [:] }
        return Dictionary(uniqueKeysWithValues: codes.map { (unknownCodes.names[$0.key], $0.value) })
    }

    /// Malformed lines of one kind.
    public func malformedCount(_ defect: LineDefect) -> Int { defects[defect.index] }

    /// All clusters' counts, in first-seen order.
    public var allClusters: [ClusterCounts] { (0..<clusters.count).map(counts(forCluster:)) }
}
