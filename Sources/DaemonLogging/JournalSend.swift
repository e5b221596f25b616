import CSystemd

#if canImport(Glibc)
    import Glibc
#endif

/// The one place flagwatch writes to the journal: `sd_journal_sendv(3)` with one `iovec` per
/// `FIELD=value` (`sd_journal_send` is variadic and cannot be called from Swift). libsystemd
/// sends the entry as a datagram to /run/systemd/journal/socket (through a memfd when it is
/// too large for one), and switches to the binary-safe field encoding for values holding a
/// newline; it is thread-safe.
enum JournalSend {
    /// Sends `entry` as one journal entry: 0, or a negative errno (`-ENOENT`, `-ECONNREFUSED`
    /// without a journald; `-EINVAL` for an empty entry).
    static func send(_ entry: JournalEntry) -> Int32 {
        guard !entry.ends.isEmpty else { return -EINVAL }
        return entry.bytes.withUnsafeBufferPointer { bytes -> Int32 in
            guard let base = bytes.baseAddress else { return -EINVAL }
            var vectors: [iovec] = []
            vectors.reserveCapacity(entry.ends.count)
            var start = 0
            for end in entry.ends {
                // sd_journal_sendv only reads through these pointers (its parameter is const).
                vectors.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: base + start), iov_len: end - start))
                start = end
            }
            return vectors.withUnsafeBufferPointer { sd_journal_sendv($0.baseAddress, Int32($0.count)) }
        }
    }
}
