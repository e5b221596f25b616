#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Maps cluster names, given as bytes from the parsed buffer, to small dense ids.
///
/// A name seen before is found by hashing and comparing its bytes against a copy kept in one
/// arena: no String is made and nothing is allocated or reference-counted on that path (the
/// tables live in memory this class owns, not in arrays, because reading an array property of
/// a class retains its buffer, which perf showed at ~5% of scan time). Only a new cluster
/// allocates (its String name, and occasionally table growth).
public final class ClusterInterner {
    /// The names by id.
    public private(set) var names: [String] = []
    private var arena: UnsafeMutableRawBufferPointer
    private var arenaUsed = 0
    /// Per id: where its bytes start in the arena, and how many there are.
    private var spans: UnsafeMutableBufferPointer<(offset: Int, count: Int)>
    /// Open addressing: slot → (hash, id + 1); id + 1 == 0 marks an empty slot.
    private var slots: UnsafeMutableBufferPointer<(hash: UInt64, entry: Int)>
    private var mask: Int

    public init(initialCapacity: Int = 256) {
        var capacity = 16
        while capacity < initialCapacity * 2 { capacity <<= 1 }
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: (0, 0))
        mask = capacity - 1
        spans = .allocate(capacity: capacity)
        arena = .allocate(byteCount: 16 * 1024, alignment: 16)
    }

    deinit {
        slots.deallocate()
        spans.deallocate()
        arena.deallocate()
    }

    public var count: Int { names.count }

    /// The id of `name`, adding it if it is new.
    @inline(__always)
    public func intern(_ name: UnsafeRawBufferPointer) -> Int {
        let hash = Self.hash(name)
        var slot = Int(truncatingIfNeeded: hash) & mask
        while true {
            let (slotHash, entry) = slots[slot]
            if entry == 0 { return insert(name, hash: hash, slot: slot) }
            if slotHash == hash && equalsStored(entry - 1, name) { return entry - 1 }
            slot = (slot + 1) & mask
        }
    }

    /// The id of `name`, adding it only while fewer than `limit` names are held; nil when
    /// it is new and the table is full.
    @inline(__always)
    public func intern(_ name: UnsafeRawBufferPointer, limit: Int) -> Int? {
        let hash = Self.hash(name)
        var slot = Int(truncatingIfNeeded: hash) & mask
        while true {
            let (slotHash, entry) = slots[slot]
            if entry == 0 { return names.count < limit ? insert(name, hash: hash, slot: slot) : nil }
            if slotHash == hash && equalsStored(entry - 1, name) { return entry - 1 }
            slot = (slot + 1) & mask
        }
    }

    /// Forgets every name but `survivors` (ids, in the order they get their new ids 0, 1, ...).
    public func compact(keeping survivors: [Int]) {
        let kept = survivors.map { names[$0] }
        names.removeAll(keepingCapacity: true)
        arenaUsed = 0
        slots.update(repeating: (0, 0))
        for var name in kept {
            _ = name.withUTF8 { intern(UnsafeRawBufferPointer($0)) }
        }
    }

    /// The id of `name` if it was interned before.
    public func lookUp(_ name: String) -> Int? {
        var name = name
        return name.withUTF8 { utf8 -> Int? in
            let bytes = UnsafeRawBufferPointer(utf8)
            let hash = Self.hash(bytes)
            var slot = Int(truncatingIfNeeded: hash) & mask
            while slots[slot].entry != 0 {
                let (slotHash, entry) = slots[slot]
                if slotHash == hash && equalsStored(entry - 1, bytes) { return entry - 1 }
                slot = (slot + 1) & mask
            }
            return nil
        }
    }

    @inline(__always)
    private func equalsStored(_ id: Int, _ name: UnsafeRawBufferPointer) -> Bool {
        let span = spans[id]
        guard span.count == name.count else { return false }
        guard let nameBase = name.baseAddress, let arenaBase = arena.baseAddress else { return name.isEmpty }
        return memcmp(arenaBase + span.offset, nameBase, name.count) == 0
    }

    private func insert(_ name: UnsafeRawBufferPointer, hash: UInt64, slot: Int) -> Int {
        let id = names.count
        names.append(String(decoding: name, as: UTF8.self))
        if arenaUsed + name.count > arena.count {
            let grown = UnsafeMutableRawBufferPointer.allocate(
                byteCount: max(arena.count * 2, arenaUsed + name.count), alignment: 16)
            grown.copyMemory(from: UnsafeRawBufferPointer(rebasing: arena[0..<arenaUsed]))
            arena.deallocate()
            arena = grown
        }
        if !name.isEmpty {
            UnsafeMutableRawBufferPointer(rebasing: arena[arenaUsed..<(arenaUsed + name.count)]).copyMemory(from: name)
        }
        spans[id] = (arenaUsed, name.count)
        arenaUsed += name.count
        slots[slot] = (hash, id + 1)
        // Kept at most half full, so probes stay short; `spans` has one entry per slot.
        if names.count * 2 > slots.count { grow() }
        return id
    }

    private func grow() {
        let capacity = slots.count * 2
        let newSlots = UnsafeMutableBufferPointer<(hash: UInt64, entry: Int)>.allocate(capacity: capacity)
        newSlots.initialize(repeating: (0, 0))
        let newMask = capacity - 1
        for slot in slots where slot.entry != 0 {
            var target = Int(truncatingIfNeeded: slot.hash) & newMask
            while newSlots[target].entry != 0 { target = (target + 1) & newMask }
            newSlots[target] = slot
        }
        slots.deallocate()
        slots = newSlots
        mask = newMask
        let newSpans = UnsafeMutableBufferPointer<(offset: Int, count: Int)>.allocate(capacity: capacity)
        for id in 0..<names.count { newSpans[id] = spans[id] }
        spans.deallocate()
        spans = newSpans
    }

    /// A fast 64-bit hash over 8-byte words (names are short ASCII; quality matters less than speed).
    @inline(__always)
    static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var hash: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(bytes.count)
        guard let base = bytes.baseAddress else { return hash }
        var index = 0
        while index + 8 <= bytes.count {
            let word = base.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            hash = (hash ^ word) &* 0xBF58_476D_1CE4_E5B9
            hash ^= hash >> 31
            index += 8
        }
        if index < bytes.count {
            var word: UInt64 = 0
            var shift: UInt64 = 0
            while index < bytes.count {
                word |= UInt64(base.load(fromByteOffset: index, as: UInt8.self)) << shift
                shift += 8
                index += 1
            }
            hash = (hash ^ word) &* 0xBF58_476D_1CE4_E5B9
        }
        hash ^= hash >> 29
        hash = hash &* 0x94D0_49BB_1331_11EB
        return hash ^ (hash >> 32)
    }
}
