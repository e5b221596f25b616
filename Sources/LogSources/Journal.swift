import CSystemd
import SystemCalls

#if canImport(Glibc)
    import Glibc
#endif

/// One open `sd_journal` reader: the few libsystemd journal calls flagwatch makes, typed.
/// libsystemd returns `-errno`; these methods throw it as an ``Errno``.
///
/// Not thread-safe (neither is `sd_journal`): it is used on one thread only (the poll loop's).
final class Journal {
    private let handle: OpaquePointer

    /// What ``process()`` found out about the journal files.
    enum Change {
        /// Nothing that matters to a reader.
        case none
        /// Entries were appended.
        case appended
        /// Files were added or removed (rotation, vacuuming): entries may have come and gone.
        case invalidated
    }

    private init(handle: OpaquePointer) {
        self.handle = handle
    }

    deinit { sd_journal_close(handle) }

    /// The local machine's journal (`/run/log/journal`, `/var/log/journal`), system and user
    /// files the caller may read.
    static func openLocal() throws(Errno) -> Journal {
        var handle: OpaquePointer?
        try check(sd_journal_open(&handle, Int32(SD_JOURNAL_LOCAL_ONLY)))
        guard let handle else { throw Errno(rawValue: EINVAL) }
        return Journal(handle: handle)
    }

    /// The journal files in `directory` (and in its machine-id subdirectories).
    static func open(directory: String) throws(Errno) -> Journal {
        var handle: OpaquePointer?
        try check(sd_journal_open_directory(&handle, directory, 0))
        guard let handle else { throw Errno(rawValue: EINVAL) }
        return Journal(handle: handle)
    }

    /// `FIELD=VALUE`: entries must have it. Several values of one field are ORed, different
    /// fields ANDed, until the next ``addDisjunction()``.
    func addMatch(_ match: String) throws(Errno) {
        var match = match
        let result = match.withUTF8 { bytes in sd_journal_add_match(handle, bytes.baseAddress, bytes.count) }
        try Self.check(result)
    }

    /// ORs the matches added so far with those added next.
    func addDisjunction() throws(Errno) {
        try Self.check(sd_journal_add_disjunction(handle))
    }

    /// Fields longer than this may be returned cut to it (compressed ones are decompressed only
    /// this far); 0 means no limit.
    func setDataThreshold(_ bytes: Int) throws(Errno) {
        try Self.check(sd_journal_set_data_threshold(handle, bytes))
    }

    /// The descriptor to poll for changes (an inotify instance). Setting it up also sets up
    /// the watches, which is why it is asked for before anything is read.
    func fileDescriptor() throws(Errno) -> Int32 {
        try Self.check(sd_journal_get_fd(handle))
    }

    /// The `poll` events to wait for on ``fileDescriptor()``.
    func pollEvents() throws(Errno) -> Int16 {
        Int16(truncatingIfNeeded: try Self.check(sd_journal_get_events(handle)))
    }

    /// When to call ``process()`` even if the descriptor stays quiet (journals on file systems
    /// where inotify misses changes), in seconds on the monotonic clock; nil: no deadline.
    func processDeadline() throws(Errno) -> Double? {
        var microseconds: UInt64 = 0
        try Self.check(sd_journal_get_timeout(handle, &microseconds))
        return microseconds == UInt64.max ? nil : Double(microseconds) / 1e6
    }

    /// Handles what the descriptor reported: opens new files, drops deleted ones.
    func process() throws(Errno) -> Change {
        let result = try Self.check(sd_journal_process(handle))
        switch result {
        case Int32(SD_JOURNAL_APPEND): return .appended
        case Int32(SD_JOURNAL_INVALIDATE): return .invalidated
        default: return .none
        }
    }

    func seekHead() throws(Errno) { try Self.check(sd_journal_seek_head(handle)) }
    func seekTail() throws(Errno) { try Self.check(sd_journal_seek_tail(handle)) }

    func seek(cursor: String) throws(Errno) { try Self.check(sd_journal_seek_cursor(handle, cursor)) }

    /// Before the first entry whose wall-clock time is `microseconds` or later.
    func seek(realtimeMicroseconds microseconds: UInt64) throws(Errno) {
        try Self.check(sd_journal_seek_realtime_usec(handle, microseconds))
    }

    /// Moves to the next matching entry; false at the end.
    func next() throws(Errno) -> Bool { try Self.check(sd_journal_next(handle)) > 0 }

    /// Moves to the previous matching entry; false at the start.
    func previous() throws(Errno) -> Bool { try Self.check(sd_journal_previous(handle)) > 0 }

    /// The current entry's cursor.
    func cursor() throws(Errno) -> String {
        var text: UnsafeMutablePointer<CChar>?
        try Self.check(sd_journal_get_cursor(handle, &text))
        guard let text else { throw Errno(rawValue: EINVAL) }
        defer { free(text) }
        return String(cString: text)
    }

    /// Whether the current entry is the one `cursor` names.
    func isAt(cursor: String) throws(Errno) -> Bool {
        try Self.check(sd_journal_test_cursor(handle, cursor)) > 0
    }

    /// The value of `field` (`FIELD=` stripped) in the current entry, or nil if the entry
    /// has no such field. The bytes are libsystemd's and valid only during `body`: they may
    /// hold any byte, NUL included, and are not NUL-terminated.
    func withField<Result>(_ field: String, _ body: (UnsafeRawBufferPointer?) -> Result) throws(Errno) -> Result {
        var data: UnsafeRawPointer?
        var length = 0
        let result = field.withCString { name in sd_journal_get_data(handle, name, &data, &length) }
        if result == -ENOENT { return body(nil) }
        try Self.check(result)
        let prefixLength = field.utf8.count + 1
        guard let data, length >= prefixLength else { throw Errno(rawValue: EBADMSG) }
        return body(UnsafeRawBufferPointer(start: data + prefixLength, count: length - prefixLength))
    }

    @discardableResult
    private static func check(_ result: Int32) throws(Errno) -> Int32 {
        guard result >= 0 else { throw Errno(rawValue: -result) }
        return result
    }
}
