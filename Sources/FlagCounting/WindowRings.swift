/// Counts over trailing windows (e.g. the last 1, 5 and 15 minutes), kept in per-second
/// buckets: one ring of `longest window` buckets per series, with a running sum per window.
///
/// Adding is one bucket increment plus one per window; reading a window is one load. A ring
/// is brought up to the current second lazily (when it is next touched), so idle series cost
/// nothing per second. All storage is in flat pools, grown only when a new series appears.
public final class WindowRings {
    /// Window lengths in seconds, as configured.
    public let windows: [Int]
    /// Buckets per ring: the longest window.
    let length: Int
    private var buckets: UnsafeMutablePointer<UInt32>
    private var sums: UnsafeMutablePointer<UInt64>
    /// Per ring: the second its newest bucket belongs to.
    private var newest: UnsafeMutablePointer<Int>
    private var capacity: Int
    private var used = 0
    private var freeRings: [Int] = []

    public init(windows: [Int], initialRings: Int = 64) {
        self.windows = windows
        length = max(1, windows.max() ?? 1)
        capacity = max(1, initialRings)
        buckets = .allocate(capacity: capacity * length)
        sums = .allocate(capacity: capacity * windows.count)
        newest = .allocate(capacity: capacity)
    }

    deinit {
        buckets.deallocate()
        sums.deallocate()
        newest.deallocate()
    }

    /// Rings in use.
    public var ringCount: Int { used - freeRings.count }
    /// Bytes held by the pools.
    public var memoryBytes: Int { capacity * (length * 4 + windows.count * 8 + 8) }

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
        (buckets + ring * length).initialize(repeating: 0, count: length)
        (sums + ring * windows.count).initialize(repeating: 0, count: windows.count)
        newest[ring] = now
        return ring
    }

    public func free(_ ring: Int) {
        freeRings.append(ring)
    }

    private func grow() {
        let newCapacity = capacity * 2
        let newBuckets = UnsafeMutablePointer<UInt32>.allocate(capacity: newCapacity * length)
        newBuckets.moveInitialize(from: buckets, count: capacity * length)
        buckets.deallocate()
        buckets = newBuckets
        let newSums = UnsafeMutablePointer<UInt64>.allocate(capacity: newCapacity * windows.count)
        newSums.moveInitialize(from: sums, count: capacity * windows.count)
        sums.deallocate()
        sums = newSums
        let newNewest = UnsafeMutablePointer<Int>.allocate(capacity: newCapacity)
        newNewest.moveInitialize(from: newest, count: capacity)
        newest.deallocate()
        newest = newNewest
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
        let ringBuckets = buckets + ring * length
        let ringSums = sums + ring * windows.count
        if now - last >= length {
            ringBuckets.update(repeating: 0, count: length)
            ringSums.update(repeating: 0, count: windows.count)
        } else {
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
        newest[ring] = now
    }

    /// Adds `amount` in second `now` (never earlier than the ring's newest second).
    @inline(__always)
    public func add(_ ring: Int, now: Int, amount: UInt32 = 1) {
        advance(ring, to: now)
        let second = max(now, newest[ring])
        buckets[ring * length + Self.slot(second, length)] &+= amount
        let ringSums = sums + ring * windows.count
        for index in 0..<windows.count { ringSums[index] &+= UInt64(amount) }
    }

    /// The count in window `index` (of ``windows``) ending at second `now`.
    public func sum(_ ring: Int, window index: Int, now: Int) -> UInt64 {
        advance(ring, to: now)
        return sums[ring * windows.count + index]
    }

    /// Whether nothing was added to `ring` in the longest window before `now`.
    public func isEmpty(_ ring: Int, now: Int) -> Bool {
        advance(ring, to: now)
        let ringSums = sums + ring * windows.count
        return (0..<windows.count).allSatisfy { ringSums[$0] == 0 }
    }
}
