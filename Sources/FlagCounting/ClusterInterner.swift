/// Maps cluster names, given as bytes from the parsed buffer, to small dense ids.
///
/// A name seen before is found by hashing and comparing its bytes against a copy kept in one
/// arena: no String is made and nothing is allocated on that path. Only a new cluster allocates
/// (its String name, and occasionally table growth).
public final class ClusterInterner {
    /// The names by id.
    public private(set) var names: [String] = []
    private var arena: [UInt8] = []
    private var offsets: [Int] = []
    private var lengths: [Int] = []
    /// Open addressing: slot → id + 1 (0 = empty); hashes kept beside to skip most compares.
    private var slots: [Int32]
    private var slotHashes: [UInt64]
    private var mask: Int

    public init(initialCapacity: Int = 256) {
        var capacity = 16
        while capacity < initialCapacity * 2 { capacity <<= 1 }
        slots = Array(repeating: 0, count: capacity)
        slotHashes = Array(repeating: 0, count: capacity)
        mask = capacity - 1
    }

    public var count: Int { names.count }

    /// The id of `name`, adding it if it is new.
    @inline(__always)
    public func intern(_ name: UnsafeRawBufferPointer) -> Int {
        let hash = Self.hash(name)
        var slot = Int(truncatingIfNeeded: hash) & mask
        while true {
            let entry = slots[slot]
            if entry == 0 { return insert(name, hash: hash, slot: slot) }
            let id = Int(entry) - 1
            if slotHashes[slot] == hash && lengths[id] == name.count && equalsStored(id, name) { return id }
            slot = (slot + 1) & mask
        }
    }

    /// The id of `name` if it was interned before.
    public func lookUp(_ name: String) -> Int? {
        var name = name
        return name.withUTF8 { utf8 -> Int? in
            let bytes = UnsafeRawBufferPointer(utf8)
            let hash = Self.hash(bytes)
            var slot = Int(truncatingIfNeeded: hash) & mask
            while slots[slot] != 0 {
                let id = Int(slots[slot]) - 1
                if slotHashes[slot] == hash && lengths[id] == bytes.count && equalsStored(id, bytes) { return id }
                slot = (slot + 1) & mask
            }
            return nil
        }
    }

    @inline(__always)
    private func equalsStored(_ id: Int, _ name: UnsafeRawBufferPointer) -> Bool {
        arena.withUnsafeBytes { stored in
            guard let storedBase = stored.baseAddress, let nameBase = name.baseAddress else { return name.isEmpty }
            return memcmp(storedBase + offsets[id], nameBase, name.count) == 0
        }
    }

    private func insert(_ name: UnsafeRawBufferPointer, hash: UInt64, slot: Int) -> Int {
        let id = names.count
        names.append(String(decoding: name, as: UTF8.self))
        offsets.append(arena.count)
        lengths.append(name.count)
        arena.append(contentsOf: name)
        slots[slot] = Int32(id + 1)
        slotHashes[slot] = hash
        if names.count * 2 > slots.count { grow() }
        return id
    }

    private func grow() {
        let capacity = slots.count * 2
        var newSlots = [Int32](repeating: 0, count: capacity)
        var newHashes = [UInt64](repeating: 0, count: capacity)
        let newMask = capacity - 1
        for (slot, entry) in slots.enumerated() where entry != 0 {
            var target = Int(truncatingIfNeeded: slotHashes[slot]) & newMask
            while newSlots[target] != 0 { target = (target + 1) & newMask }
            newSlots[target] = entry
            newHashes[target] = slotHashes[slot]
        }
        slots = newSlots
        slotHashes = newHashes
        mask = newMask
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

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
