import SystemCalls

/// Every kind of error a source counts. ``rawValue`` is the `kind` label of
/// `flagwatch_source_errors_total` (docs/metrics.md): the values are a contract, so a kind is
/// named here once and nowhere as a string literal.
public enum SourceErrorKind: String, Sendable, Hashable, CaseIterable {
    /// A file or directory the daemon may not read (EACCES).
    case permissionDenied = "permission_denied"
    /// The fixed part of a pattern does not exist, or is not a directory.
    case notFound = "not_found"
    /// Opening a file failed for another reason.
    case openError = "open_error"
    /// Reading an open file, or looking at its size or first bytes, failed.
    case readError = "read_error"
    /// No inotify watch left (`fs.inotify.max_user_watches`): read on rescans only.
    case watchLimit = "watch_limit"
    /// An inotify watch could not be added for another reason.
    case watchError = "watch_error"
    /// A file waits for a file descriptor (``FollowOptions/maxOpenFiles``, RLIMIT_NOFILE).
    case fdLimit = "fd_limit"
    /// A checkpoint, or one of its file entries, could not be read or trusted.
    case checkpointCorrupt = "checkpoint_corrupt"
    /// A checkpoint could not be saved.
    case checkpointWrite = "checkpoint_write"
    /// libsystemd failed: watching, seeking in or reading the journal.
    case journalError = "journal_error"
    /// A matched file is already read by another source (patterns that overlap): the first
    /// source in the config that matches a file reads it, so no line is counted twice.
    case duplicateFile = "duplicate_file"

    /// The kind of a failure to open or look at a file or directory.
    init(opening error: Errno) {
        switch error {
        case .permissionDenied: self = .permissionDenied
        case .noSuchFile, .notDirectory: self = .notFound
        case .tooManyOpenFiles, .tooManyOpenFilesInSystem: self = .fdLimit
        default: self = .openError
        }
    }
}
