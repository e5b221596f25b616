import SystemCalls

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Where the daemon's own log goes (`flagwatch run --log-target`).
public enum LogTarget: String, CaseIterable, Sendable {
    /// The journal when standard error is connected to it (`JOURNAL_STREAM`), else standard error.
    case auto
    /// The journal, through its native protocol (standard error when journald's socket is missing,
    /// or when sending fails).
    case journal
    /// Lines on standard error.
    case stderr
}

/// systemd's rule for "is my standard error the journal?" (`man systemd.exec`, JOURNAL_STREAM):
/// systemd sets `JOURNAL_STREAM=<device>:<inode>` (decimal) for the stream socket it connects
/// stdout/stderr to; a program should switch to the native protocol only when that matches
/// `fstat` of its standard error, since the variable is inherited by children whose stderr may
/// be redirected elsewhere.
public enum JournalStream {
    /// `<device>:<inode>`, both decimal; nil when malformed.
    public static func parse(_ value: String) -> (device: UInt64, inode: UInt64)? {
        let parts = value.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return nil }
        return (device, inode)
    }

    /// Whether `journalStream` (the variable's value, nil when unset) names what `descriptor` is.
    public static func matches(_ journalStream: String?, descriptor: FileDescriptor) -> Bool {
        guard let journalStream, let stream = parse(journalStream) else { return false }
        guard let status = try? descriptor.status() else { return false }
        return status.device == stream.device && status.inode == stream.inode
    }

    /// `JOURNAL_STREAM` from the environment.
    public static var environmentValue: String? {
        getenv("JOURNAL_STREAM").map { String(cString: $0) }
    }

    /// Where libsystemd sends native-protocol entries. `sd_journal_sendv` drops entries silently
    /// when it does not exist (no journald), so it is checked once, up front.
    public static let socketPath = "/run/systemd/journal/socket"

    /// What `target` comes to here: `.journal` or `.stderr`. `.auto` by the rule above, on fd 2;
    /// `.journal` and `.auto` only when journald's socket exists at `socketPath`.
    public static func resolve(
        _ target: LogTarget, journalStream: String? = environmentValue,
        standardError: FileDescriptor = FileDescriptor(rawValue: 2), socketPath: String = socketPath
    ) -> LogTarget {
        switch target {
        case .stderr: return .stderr
        case .journal: return exists(socketPath) ? .journal : .stderr
        case .auto: return matches(journalStream, descriptor: standardError) && exists(socketPath) ? .journal : .stderr
        }
    }

    private static func exists(_ path: String) -> Bool {
        (try? FileStatus(path: path)) != nil
    }
}
