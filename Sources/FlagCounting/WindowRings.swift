/// Counts over trailing windows (e.g. the last 1, 5 and 15 minutes), kept in per-second
/// buckets: one ring of `longest window` buckets per series, with a running sum per window.
///
/// Adding is one bucket increment plus one per window; reading a window is one load. A ring
/// is brought up to the current second lazily (when it is next touched), so idle series cost
/// nothing per second. All storage is in flat pools, grown only when a new series appears.
///
/// Buckets start one byte wide and a ring is moved to 2- or 4-byte buckets the first time one
/// of its seconds needs it. Most series are flags, which rarely pass 255 a second on one
/// cluster: with a 15 m window that is 900 bytes per series instead of 3,600 (measured: the
/// rings of 1,000 clusters with 3 series each went from 10.3 to about 2.6 MiB resident).
public final class WindowRings {
    /// Window lengths in seconds, as configured.
    public let windows: [Int]
    /// Buckets per ring: the longest window.
    let length: Int
    private let narrow: BucketPool<UInt8>
    private let medium: BucketPool<UInt16>
    private let wide: BucketPool<UInt32>
    /// Per ring: which pool holds its buckets (``Width``) and where.
    private var width: UnsafeMutablePointer<Width>
    private var slot: UnsafeMutablePointer<Int32>
    private var sums: UnsafeMutablePointer<UInt64>
    /// Per ring: the second its newest bucket belongs to.
    private var newest: UnsafeMutablePointer<Int>
    private var capacity: Int
    private var used = 0
    private var freeRings: [Int] = []

    enum Width: UInt8 { case narrow, medium, wide }

    public init(windows: [Int], initialRings: Int = 64) {
        self.windows = windows
        length = max(1, windows.max() ?? 1)
        capacity = max(1, initialRings)
        narrow = BucketPool(length: length, initialSlots: capacity)
        medium = BucketPool(length: length, initialSlots: 4)
        wide = BucketPool(length: length, initialSlots: 4)
        width = .allocate(capacity: capacity)
        slot = .allocate(capacity: capacity)
        sums = .allocate(capacity: capacity * windows.count)
        newest = .allocate(capacity: capacity)
    }

    deinit {
        width.deallocate()
        slot.deallocate()
        sums.deallocate()
        newest.deallocate()
    }

    /// Rings in use.
    public var ringCount: Int { used - freeRings.count }
    /// Rings whose buckets are 1, 2 and 4 bytes wide.
    public var ringsByBucketWidth: (narrow: Int, medium: Int, wide: Int) {
        (narrow.slotsInUse, medium.slotsInUse, wide.slotsInUse)
    }
    /// Bytes held by the pools.
    public var memoryBytes: Int {
        narrow.memoryBytes + medium.memoryBytes + wide.memoryBytes
            + capacity * (MemoryLayout<Width>.stride + 4 + windows.count * 8 + 8)
    }

    /// A new, empty ring.
    public func allocate(now: Int) -> Int {
        let ring: Int
        if let reused = freeRings.popLast() {
            ring = reused
        } else {
            if used == capacity { grow() }
            ring = used
            used += 1
        }
        width[ring] = .narrow
        slot[ring] = Int32(narrow.allocate())
        (sums + ring * windows.count).initialize(repeating: 0, count: windows.count)
        newest[ring] = now
        return ring
    }

    public func free(_ ring: Int) {
        switch width[ring] {
        case .narrow: narrow.free(Int(slot[ring]))
        case .medium: medium.free(Int(slot[ring]))
        case .wide: wide.free(Int(slot[ring]))
        }
        freeRings.append(ring)
    }

    private func grow() {
        let newCapacity = capacity * 2
        func regrow<T>(_ pointer: inout UnsafeMutablePointer<T>, _ perRing: Int) {
            let larger = UnsafeMutablePointer<T>.allocate(capacity: newCapacity * perRing)
            larger.moveInitialize(from: pointer, count: capacity * perRing)
            pointer.deallocate()
            pointer = larger
        }
        regrow(&width, 1)
        regrow(&slot, 1)
        regrow(&sums, windows.count)
        regrow(&newest, 1)
        capacity = newCapacity
    }

    /// The bucket of `second` (seconds may be small or negative in tests).
    @inline(__always)
    static func slot(_ second: Int, _ length: Int) -> Int {
        let remainder = second % length
        return remainder < 0 ? remainder + length : remainder
    }

    /// Moves `ring` forward to second `now`: buckets that fall out of a window leave its sum;
    /// buckets older than the longest window are cleared.
    @inline(__always)
    func advance(_ ring: Int, to now: Int) {
        let last = newest[ring]
        guard now > last else { return }
        let ringSums = sums + ring * windows.count
        let index = Int(slot[ring])
        switch width[ring] {
        case .narrow: advance(narrow.buckets(index), sums: ringSums, from: last, to: now)
        case .medium: advance(medium.buckets(index), sums: ringSums, from: last, to: now)
        case .wide: advance(wide.buckets(index), sums: ringSums, from: last, to: now)
        }
        newest[ring] = now
    }

    @inline(__always)
    private func advance<Bucket: FixedWidthInteger & UnsignedInteger>(
        _ ringBuckets: UnsafeMutablePointer<Bucket>, sums ringSums: UnsafeMutablePointer<UInt64>, from last: Int,
        to now: Int
    ) {
        if now - last >= length {
            ringBuckets.update(repeating: 0, count: length)
            ringSums.update(repeating: 0, count: windows.count)
            return
        }
        var second = last + 1
        while second <= now {
            for (index, window) in windows.enumerated() {
                // The second that leaves this window as `second` becomes the newest.
                ringSums[index] &-= UInt64(ringBuckets[Self.slot(second - window, length)])
            }
            ringBuckets[Self.slot(second, length)] = 0
            second += 1
        }
    }

    /// Adds `amount` in second `now` (never earlier than the ring's newest second).
    @inline(__always)
    public func add(_ ring: Int, now: Int, amount: UInt32 = 1) {
        advance(ring, to: now)
        add(amount, toBucket: Self.slot(max(now, newest[ring]), length), of: ring)
        let ringSums = sums + ring * windows.count
        for window in 0..<windows.count { ringSums[window] &+= UInt64(amount) }
    }

    private func add(_ amount: UInt32, toBucket bucket: Int, of ring: Int) {
        let index = Int(slot[ring])
        let total: UInt32
        switch width[ring] {
        case .narrow:
            let buckets = narrow.buckets(index)
            let (sum, overflow) = UInt32(buckets[bucket]).addingReportingOverflow(amount)
            if !overflow && sum <= UInt32(UInt8.max) {
                buckets[bucket] = UInt8(truncatingIfNeeded: sum)
                return
            }
            total = overflow ? .max : sum
        case .medium:
            let buckets = medium.buckets(index)
            let (sum, overflow) = UInt32(buckets[bucket]).addingReportingOverflow(amount)
            if !overflow && sum <= UInt32(UInt16.max) {
                buckets[bucket] = UInt16(truncatingIfNeeded: sum)
                return
            }
            total = overflow ? .max : sum
        case .wide:
            // Over 4 billion in one second only wraps, as it always did.
            wide.buckets(index)[bucket] &+= amount
            return
        }
        widen(ring, toHold: total)
        add(amount, toBucket: bucket, of: ring)
    }

    /// Moves `ring` to buckets wide enough for `value`, keeping their contents.
    private func widen(_ ring: Int, toHold value: UInt32) {
        let oldIndex = Int(slot[ring])
        if value > UInt32(UInt16.max) || width[ring] == .medium {
            let index = wide.allocate()
            switch width[ring] {
            case .narrow:
                copy(narrow.buckets(oldIndex), into: wide.buckets(index))
                narrow.free(oldIndex)
            case .medium:
                copy(medium.buckets(oldIndex), into: wide.buckets(index))
                medium.free(oldIndex)
            case .wide: return
            }
            width[ring] = .wide
            slot[ring] = Int32(index)
        } else {
            let index = medium.allocate()
            copy(narrow.buckets(oldIndex), into: medium.buckets(index))
            narrow.free(oldIndex)
            width[ring] = .medium
            slot[ring] = Int32(index)
        }
    }

    private func copy<From: FixedWidthInteger, To: FixedWidthInteger>(
        _ source: UnsafeMutablePointer<From>, into target: UnsafeMutablePointer<To>
    ) {
        for bucket in 0..<length { target[bucket] = To(truncatingIfNeeded: source[bucket]) }
    }

    /// What was added to `ring` in `second` (0 outside the last ``length`` seconds before its
    /// newest).
    func bucket(_ ring: Int, second: Int) -> UInt32 {
        let newestSecond = newest[ring]
        guard second <= newestSecond, second > newestSecond - length else { return 0 }
        let index = Int(slot[ring])
        let bucket = Self.slot(second, length)
        switch width[ring] {
        case .narrow: return UInt32(narrow.buckets(index)[bucket])
        case .medium: return UInt32(medium.buckets(index)[bucket])
        case .wide: return wide.buckets(index)[bucket]
        }
    }

    /// A new ring holding the seconds of `other`'s `ring` that fit this one's longest window
    /// (windows changed by a reload: the counts already in them carry over).
    public func copy(_ ring: Int, of other: WindowRings, now: Int) -> Int {
        other.advance(ring, to: now)
        let kept = min(length, other.length)
        let copied = allocate(now: now - kept)
        for second in (now - kept + 1)...now {
            let amount = other.bucket(ring, second: second)
            advance(copied, to: second)
            if amount > 0 { add(copied, now: second, amount: amount) }
        }
        return copied
    }

    /// The count in window `index` (of ``windows``) ending at second `now`.
    public func sum(_ ring: Int, window index: Int, now: Int) -> UInt64 {
        advance(ring, to: now)
        return sums[ring * windows.count + index]
    }

    /// The count in the last `seconds` seconds ending at `now` (at most the longest window),
    /// added up from the buckets: for the rare reads that no configured window answers (the
    /// trend of a single window compares its halves), not for the hot path.
    public func sum(_ ring: Int, lastSeconds seconds: Int, now: Int) -> UInt64 {
        advance(ring, to: now)
        var total: UInt64 = 0
        for second in stride(from: now, to: now - min(seconds, length), by: -1) {
            total += UInt64(bucket(ring, second: second))
        }
        return total
    }

    /// Whether nothing was added to `ring` in the longest window before `now`.
    public func isEmpty(_ ring: Int, now: Int) -> Bool {
        advance(ring, to: now)
        let ringSums = sums + ring * windows.count
        return (0..<windows.count).allSatisfy { ringSums[$0] == 0 }
    }
}

/// Fixed-length bucket arrays of one width in one flat allocation, reused through a free list.
final class BucketPool<Bucket: FixedWidthInteger & UnsignedInteger> {
    let length: Int
    private var storage: UnsafeMutablePointer<Bucket>
    private var capacity: Int
    private var used = 0
    private var freeSlots: [Int] = []

    init(length: Int, initialSlots: Int) {
        self.length = length
        capacity = max(1, initialSlots)
        storage = .allocate(capacity: capacity * length)
    }

    deinit { storage.deallocate() }

    var slotsInUse: Int { used - freeSlots.count }
    var memoryBytes: Int { capacity * length * MemoryLayout<Bucket>.stride }

    @inline(__always)
    func buckets(_ slot: Int) -> UnsafeMutablePointer<Bucket> { storage + slot * length }

    /// A zeroed bucket array.
    func allocate() -> Int {
        let slot: Int
        if let reused = freeSlots.popLast() {
            slot = reused
        } else {
            if used == capacity {
                let larger = UnsafeMutablePointer<Bucket>.allocate(capacity: capacity * 2 * length)
                larger.moveInitialize(from: storage, count: capacity * length)
                storage.deallocate()
                storage = larger
                capacity *= 2
            }
            slot = used
            used += 1
        }
        buckets(slot).initialize(repeating: 0, count: length)
        return slot
    }

    func free(_ slot: Int) { freeSlots.append(slot) }
}
