import AccessLogParser

/// Which block of a table's fixed-size storage each (cluster, flag) holds: the bookkeeping
/// ``FailureDetailTable`` and ``UpstreamHostTable`` share. A table keeps its storage in arrays
/// of `blockCount` blocks; this index says which block belongs to which key
/// (`cluster * flagCount + flag`), reuses freed blocks, and renumbers clusters. A key gets a
/// block on its first flagged line; a table frees it when both periods are empty.
struct FlagBlockIndex {
    let flagCount = ResponseFlag.allCases.count
    /// Per key: its block, or -1.
    private var blockOf: [Int32] = []
    /// Per block: the key it belongs to, or -1 while it is free.
    private var owner: [Int] = []
    private var freeBlocks: [Int] = []

    /// Blocks allocated so far, in use or free: the table's storage holds this many.
    var blockCount: Int { owner.count }
    /// How many clusters have a row of keys (some may have no block).
    var clusterRows: Int { blockOf.count / flagCount }

    @inline(__always)
    func key(cluster: Int, flag: ResponseFlag) -> Int { cluster * flagCount + Int(flag.rawValue) }

    @inline(__always)
    func isInUse(_ block: Int) -> Bool { owner[block] >= 0 }

    /// The key of a block in use.
    @inline(__always)
    func key(of block: Int) -> Int { owner[block] }

    /// The block of `key`, nil when it has none.
    @inline(__always)
    func existingBlock(_ key: Int) -> Int? {
        guard key < blockOf.count, blockOf[key] >= 0 else { return nil }
        return Int(blockOf[key])
    }

    /// The block of `key`, taking a free one or a new one (`appended`: the caller appends one
    /// block of storage) when it has none; `isNew` when it was not the key's before.
    @inline(__always)
    mutating func block(for key: Int) -> (block: Int, isNew: Bool, appended: Bool) {
        if key < blockOf.count, blockOf[key] >= 0 { return (Int(blockOf[key]), false, false) }
        if blockOf.count <= key {
            let clusters = key / flagCount + 1
            blockOf.append(contentsOf: repeatElement(-1, count: clusters * flagCount - blockOf.count))
        }
        let block: Int
        let appended: Bool
        if let free = freeBlocks.popLast() {
            block = free
            owner[block] = key
            appended = false
        } else {
            block = owner.count
            owner.append(key)
            appended = true
        }
        blockOf[key] = Int32(block)
        return (block, true, appended)
    }

    /// Frees a block in use: its key has none until its next flagged line.
    mutating func free(_ block: Int) {
        blockOf[owner[block]] = -1
        owner[block] = -1
        freeBlocks.append(block)
    }

    /// Keeps the clusters of `survivors` (old cluster ids, in their new order): frees the blocks
    /// of the others (calling `freed` for each, so the table can clear it) and renumbers the
    /// rest. `clusters`: how many old clusters the table knows (at least ``clusterRows``).
    /// Returns the new id of each old cluster (-1: gone) and how many clusters are left.
    mutating func keepClusters(_ survivors: [Int], clusters: Int, freed: (Int) -> Void) -> (
        newCluster: [Int], rows: Int
    ) {
        var newCluster = [Int](repeating: -1, count: max(clusters, clusterRows))
        for (index, old) in survivors.enumerated() where old < newCluster.count { newCluster[old] = index }
        for block in owner.indices where owner[block] >= 0 {
            let survivor = newCluster[owner[block] / flagCount]
            if survivor < 0 {
                owner[block] = -1
                freeBlocks.append(block)
                freed(block)
            } else {
                owner[block] = survivor * flagCount + owner[block] % flagCount
            }
        }
        let rows = (newCluster.max() ?? -1) + 1
        blockOf = [Int32](repeating: -1, count: rows * flagCount)
        for block in owner.indices where owner[block] >= 0 { blockOf[owner[block]] = Int32(block) }
        return (newCluster, rows)
    }
}
