import AccessLogParser
import LineFraming

/// One line of a (cluster, flag) breakdown: how many flagged lines carried this
/// `%RESPONSE_CODE_DETAILS%` and `%UPSTREAM_TRANSPORT_FAILURE_REASON%` pair.
public struct FailureDetail: Equatable, Sendable {
    /// The response code details as written (`upstream_reset_before_response_started{...}`);
    /// nil when the line had none (`-`, null, or a format without the field).
    public var details: String?
    /// The upstream transport failure reason as written; nil when the line had none.
    public var transportFailureReason: String?
    public var count: Int

    public init(details: String?, transportFailureReason: String?, count: Int) {
        self.details = details
        self.transportFailureReason = transportFailureReason
        self.count = count
    }
}

/// Per (cluster, flag): the details / transport-failure-reason pairs of the flagged lines, in a
/// current and a previous period (``rotate()`` moves one to the other), so the daemon reports
/// what the last one to two minutes looked like while a scan keeps everything.
///
/// Bounded whatever the input: at most ``pairsPerFlag`` pairs per (cluster, flag), the last of
/// them being ``FlagCounts/otherFailureDetail`` for any further pair, and at most ``maxTexts``
/// distinct texts overall (longer texts are cut at ``maxTextLength`` bytes); texts beyond the
/// cap count as ``FlagCounts/otherFailureDetail`` too. Texts are interned, so counting a line
/// whose texts were seen before allocates nothing.
final class FailureDetailTable {
    static let pairsPerFlag = 16
    static let maxTexts = 256
    static let maxTextLength = 256
    /// Id of an absent text (not interned).
    static let absent: Int32 = -1

    struct Entry {
        var details: Int32
        var reason: Int32
        var current: Int
        var previous: Int
    }

    let texts = ClusterInterner(initialCapacity: 64)
    /// The id of ``FlagCounts/otherFailureDetail``: always 0, interned first and kept by compaction.
    private let otherID: Int32 = 0
    /// Per (cluster, flag): its block of entries.
    private var blocks = FlagBlockIndex()
    /// Block b holds entries b * pairsPerFlag ..< b * pairsPerFlag + used[b].
    private var entries: [Entry] = []
    private var used: [Int] = []
    private var unescapeScratch: [UInt8] = []

    init() {
        var other = FlagCounts.otherFailureDetail
        _ = other.withUTF8 { texts.intern(UnsafeRawBufferPointer($0)) }
    }

    /// Counts one flagged line under each of its known flags.
    @inline(__always)
    func count(cluster: Int, flags: ResponseFlagSet, details: FieldView, reason: FieldView) {
        let detailsID = textID(details)
        let reasonID = textID(reason)
        flags.forEach { flag in
            add(key: blocks.key(cluster: cluster, flag: flag), detailsID, reasonID, current: 1, previous: 0)
        }
    }

    @inline(__always)
    private func textID(_ field: FieldView) -> Int32 {
        if field.isAbsent { return Self.absent }
        var bytes = field.bytes
        if bytes.count > Self.maxTextLength { bytes = UnsafeRawBufferPointer(rebasing: bytes[0..<Self.maxTextLength]) }
        guard field.hasJSONEscapes else { return intern(bytes) }
        // Decoding never lengthens; the scratch only grows, so this allocates at most once.
        if unescapeScratch.count < bytes.count { unescapeScratch = [UInt8](repeating: 0, count: Self.maxTextLength) }
        return unescapeScratch.withUnsafeMutableBytes { scratch in
            let length = JSONEscapes.decode(bytes, into: scratch)
            return intern(UnsafeRawBufferPointer(rebasing: scratch[0..<length]))
        }
    }

    @inline(__always)
    private func intern(_ text: UnsafeRawBufferPointer) -> Int32 {
        guard let id = texts.intern(text, limit: Self.maxTexts) else { return otherID }
        return Int32(id)
    }

    private func intern(_ name: String) -> Int32 {
        var name = name
        return name.withUTF8 { intern(UnsafeRawBufferPointer($0)) }
    }

    private func add(key: Int, _ details: Int32, _ reason: Int32, current: Int, previous: Int) {
        let (block, isNew, appended) = blocks.block(for: key)
        if appended {
            entries.append(
                contentsOf: repeatElement(
                    Entry(details: -1, reason: -1, current: 0, previous: 0), count: Self.pairsPerFlag))
            used.append(0)
        } else if isNew {
            used[block] = 0
        }
        let start = block * Self.pairsPerFlag
        let count = used[block]
        var index = start
        while index < start + count {
            if entries[index].details == details && entries[index].reason == reason {
                entries[index].current += current
                entries[index].previous += previous
                return
            }
            index += 1
        }
        // A new pair. The last slot is kept for the other pair, which counts every pair that
        // does not fit (once the block is that full, it is the only pair still added).
        if count < Self.pairsPerFlag - 1 {
            entries[start + count] = Entry(details: details, reason: reason, current: current, previous: previous)
            used[block] = count + 1
            return
        }
        for other in start..<(start + count) where entries[other].details == otherID && entries[other].reason == otherID
        {
            entries[other].current += current
            entries[other].previous += previous
            return
        }
        entries[start + count] = Entry(details: otherID, reason: otherID, current: current, previous: previous)
        used[block] = count + 1
    }

    /// The breakdown of one cluster's flag: current plus previous period, most frequent first.
    func details(cluster: Int, flag: ResponseFlag) -> [FailureDetail] {
        guard let block = blocks.existingBlock(blocks.key(cluster: cluster, flag: flag)) else { return [] }
        let start = block * Self.pairsPerFlag
        var result: [FailureDetail] = []
        for entry in entries[start..<(start + used[block])] where entry.current + entry.previous > 0 {
            result.append(
                FailureDetail(
                    details: text(entry.details), transportFailureReason: text(entry.reason),
                    count: entry.current + entry.previous))
        }
        return result.sorted {
            ($0.count, $1.details ?? "", $1.transportFailureReason ?? "") > (
                $1.count, $0.details ?? "", $0.transportFailureReason ?? ""
            )
        }
    }

    /// The lines counted in a cluster's flag's breakdown (current plus previous period), without
    /// making its Strings.
    func total(cluster: Int, flag: ResponseFlag) -> Int {
        guard let block = blocks.existingBlock(blocks.key(cluster: cluster, flag: flag)) else { return 0 }
        let start = block * Self.pairsPerFlag
        return entries[start..<(start + used[block])].reduce(0) { $0 + $1.current + $1.previous }
    }

    private func text(_ id: Int32) -> String? { id < 0 ? nil : texts.names[Int(id)] }

    /// The current period becomes the previous one; pairs seen in neither are dropped, blocks
    /// left empty are freed, and texts no pair uses any more are forgotten once the text table
    /// is full, so new texts get names of their own again.
    func rotate() {
        for block in used.indices where blocks.isInUse(block) {
            let start = block * Self.pairsPerFlag
            var kept = start
            for index in start..<(start + used[block]) {
                var entry = entries[index]
                entry.previous = entry.current
                entry.current = 0
                if entry.previous > 0 {
                    entries[kept] = entry
                    kept += 1
                }
            }
            used[block] = kept - start
            if kept == start { blocks.free(block) }
        }
        if texts.count >= Self.maxTexts { compactTexts() }
    }

    private func compactTexts() {
        var referenced = [Bool](repeating: false, count: texts.count)
        referenced[Int(otherID)] = true
        for block in used.indices where blocks.isInUse(block) {
            let start = block * Self.pairsPerFlag
            for entry in entries[start..<(start + used[block])] {
                if entry.details >= 0 { referenced[Int(entry.details)] = true }
                if entry.reason >= 0 { referenced[Int(entry.reason)] = true }
            }
        }
        let survivors = referenced.indices.filter { referenced[$0] }
        guard survivors.count < texts.count else { return }
        var newID = [Int32](repeating: Self.absent, count: texts.count)
        for (index, old) in survivors.enumerated() { newID[old] = Int32(index) }
        texts.compact(keeping: survivors)
        for block in used.indices where blocks.isInUse(block) {
            let start = block * Self.pairsPerFlag
            for index in start..<(start + used[block]) {
                if entries[index].details >= 0 { entries[index].details = newID[Int(entries[index].details)] }
                if entries[index].reason >= 0 { entries[index].reason = newID[Int(entries[index].reason)] }
            }
        }
    }

    /// Adds `other`'s breakdowns, its cluster ids mapped through `localCluster`.
    func merge(_ other: FailureDetailTable, localCluster: (Int) -> Int) {
        let flagCount = blocks.flagCount
        for block in other.used.indices where other.blocks.isInUse(block) {
            let key = other.blocks.key(of: block)
            let localKey = localCluster(key / flagCount) * flagCount + key % flagCount
            let start = block * Self.pairsPerFlag
            for entry in other.entries[start..<(start + other.used[block])] {
                add(
                    key: localKey, other.localText(entry.details, into: self),
                    other.localText(entry.reason, into: self),
                    current: entry.current, previous: entry.previous)
            }
        }
    }

    private func localText(_ id: Int32, into table: FailureDetailTable) -> Int32 {
        id < 0 ? Self.absent : table.intern(texts.names[Int(id)])
    }

    /// Keeps the rows of `survivors` (old cluster ids, in their new order) and frees the rest.
    func keepClusters(_ survivors: [Int]) {
        _ = blocks.keepClusters(survivors, clusters: blocks.clusterRows) { used[$0] = 0 }
    }
}
