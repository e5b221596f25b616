/// The alerts waiting for one receiver: at most one entry per alert (the latest state wins), at
/// most `capacity` entries. A full queue makes room by dropping the oldest resolved alert, and
/// only when none is left the oldest firing one: a lost resolve only means Alertmanager resolves
/// the alert itself at its `endsAt`, a lost firing alert is a missed page.
///
/// Entries stay in the queue while a request carrying them is in flight; the worker removes them
/// afterwards only if no newer state replaced them meanwhile (`removeIfUnchanged`). A receiver
/// that is down therefore keeps the latest state of every alert, whatever the number of updates.
struct PendingAlerts {
    struct Entry: Equatable {
        var fingerprint: AlertFingerprint
        var alert: PostableAlert
        /// Increases with every insert: the entry's age, and its version.
        var sequence: UInt64
    }

    let capacity: Int
    private(set) var entries: [AlertFingerprint: Entry] = [:]
    private var lastSequence: UInt64 = 0
    private var firingByAge = AgeOrder()
    private var resolvedByAge = AgeOrder()

    init(capacity: Int) {
        precondition(capacity > 0, "a receiver queue holds at least one alert")
        self.capacity = capacity
    }

    var count: Int { entries.count }
    var isEmpty: Bool { entries.isEmpty }

    /// Adds or replaces the alert's entry; returns the alerts dropped to stay within capacity.
    @discardableResult
    mutating func insert(_ alert: PostableAlert) -> [PostableAlert] {
        let fingerprint = alert.fingerprint
        lastSequence += 1
        entries[fingerprint] = Entry(fingerprint: fingerprint, alert: alert, sequence: lastSequence)
        if alert.isResolved {
            resolvedByAge.append(sequence: lastSequence, fingerprint: fingerprint)
        } else {
            firingByAge.append(sequence: lastSequence, fingerprint: fingerprint)
        }
        var dropped: [PostableAlert] = []
        while entries.count > capacity {
            let victim =
                resolvedByAge.popOldest(currentIn: entries, resolved: true)
                ?? firingByAge.popOldest(currentIn: entries, resolved: false)
            guard let victim, let entry = entries.removeValue(forKey: victim) else { break }
            dropped.append(entry.alert)
        }
        firingByAge.compactIfMostlyStale(liveEntries: entries)
        resolvedByAge.compactIfMostlyStale(liveEntries: entries)
        return dropped
    }

    /// Up to `limit` entries, oldest first.
    func oldest(limit: Int) -> [Entry] {
        Array(entries.values.sorted { $0.sequence < $1.sequence }.prefix(limit))
    }

    /// Removes the given entries unless a newer state of the same alert arrived since they were
    /// read (then the newer state still has to be delivered).
    mutating func removeIfUnchanged(_ delivered: [Entry]) {
        for entry in delivered where entries[entry.fingerprint]?.sequence == entry.sequence {
            entries[entry.fingerprint] = nil
        }
        firingByAge.compactIfMostlyStale(liveEntries: entries)
        resolvedByAge.compactIfMostlyStale(liveEntries: entries)
    }
}

/// Fingerprints in insertion order. Replaced and removed entries are not searched for and taken
/// out; they stay as stale items (their sequence no longer matches the live entry) that are
/// skipped when popped and swept out once they are the majority, so each operation is
/// amortised O(1).
private struct AgeOrder {
    private var items: [(sequence: UInt64, fingerprint: AlertFingerprint)] = []
    private var head = 0

    mutating func append(sequence: UInt64, fingerprint: AlertFingerprint) {
        items.append((sequence, fingerprint))
    }

    mutating func popOldest(
        currentIn entries: [AlertFingerprint: PendingAlerts.Entry], resolved: Bool
    ) -> AlertFingerprint? {
        while head < items.count {
            let item = items[head]
            head += 1
            if let live = entries[item.fingerprint], live.sequence == item.sequence,
                live.alert.isResolved == resolved
            {
                return item.fingerprint
            }
        }
        return nil
    }

    mutating func compactIfMostlyStale(liveEntries: [AlertFingerprint: PendingAlerts.Entry]) {
        let pendingItems = items.count - head
        guard pendingItems > 64, pendingItems > 2 * liveEntries.count else { return }
        items = items[head...].filter { liveEntries[$0.fingerprint]?.sequence == $0.sequence }
        head = 0
    }
}
