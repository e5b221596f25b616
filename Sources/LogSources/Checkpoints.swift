import SystemCalls

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

#if canImport(Glibc)
    import Glibc
#endif

/// Which file a checkpoint belongs to: device and inode, plus a hash of its first bytes so a
/// new file that got a deleted file's inode is not taken for it.
public struct FileFingerprint: Codable, Sendable, Equatable {
    /// How many leading bytes were hashed (up to ``maximumLength``; a young file has fewer).
    public var length: Int
    /// FNV-1a (64 bit) of those bytes.
    public var hash: UInt64

    public static let maximumLength = 256
    public static let empty = FileFingerprint(length: 0, hash: 0xcbf2_9ce4_8422_2325)

    public init(length: Int, hash: UInt64) {
        self.length = length
        self.hash = hash
    }

    public init(of bytes: UnsafeRawBufferPointer) {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        self.init(length: bytes.count, hash: hash)
    }

    /// Reads and hashes the first `length` bytes of `file` (fewer if it is shorter).
    public static func read(_ file: FileDescriptor, length: Int = maximumLength) throws(Errno) -> FileFingerprint {
        var buffer = [UInt8](repeating: 0, count: length)
        let read = buffer.withUnsafeMutableBytes { raw -> Result<Int, Errno> in
            var total = 0
            while total < length {
                do throws(Errno) {
                    let count = try file.read(
                        into: UnsafeMutableRawBufferPointer(rebasing: raw[total...]), atOffset: total)
                    if count == 0 { break }
                    total += count
                } catch {
                    return .failure(error)
                }
            }
            return .success(total)
        }
        let count = try read.get()
        return buffer.withUnsafeBytes { FileFingerprint(of: UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
    }
}

/// One followed file's position: the offset just after the last complete line handed on.
public struct FileCheckpoint: Codable, Sendable, Equatable {
    public var path: String
    public var device: UInt64
    public var inode: UInt64
    public var fingerprint: FileFingerprint
    public var offset: Int

    public init(path: String, device: UInt64, inode: UInt64, fingerprint: FileFingerprint, offset: Int) {
        self.path = path
        self.device = device
        self.inode = inode
        self.fingerprint = fingerprint
        self.offset = offset
    }
}

/// A journal source's position: the cursor of the last entry handed on, and the wall-clock
/// time up to which the journal had been read (so a restart after a long quiet spell, with no
/// matching entry at all, still neither re-reads nor skips).
public struct JournalCheckpoint: Codable, Sendable, Equatable {
    public var cursor: String?
    public var readUntilMicroseconds: UInt64?

    public init(cursor: String?, readUntilMicroseconds: UInt64?) {
        self.cursor = cursor
        self.readUntilMicroseconds = readUntilMicroseconds
    }
}

/// What one source saves in the state directory.
public struct SourceCheckpoint: Codable, Sendable, Equatable {
    /// The format this flagwatch writes and reads; a checkpoint of another version is refused.
    public static let currentVersion = 1

    public var version = SourceCheckpoint.currentVersion
    public var source: String
    public var files: [FileCheckpoint]?
    public var journal: JournalCheckpoint?

    public init(source: String, files: [FileCheckpoint]? = nil, journal: JournalCheckpoint? = nil) {
        self.source = source
        self.files = files
        self.journal = journal
    }
}

extension FileCheckpoint {
    /// Why this entry cannot be trusted, or nil. Each field is checked against what flagwatch
    /// itself writes: a hand edit, a bug or a damaged disk must not stall a file (a negative
    /// offset fails every pread) or make one file two streams (two entries for one inode).
    public var defect: String? {
        if path.isEmpty { return "empty path" }
        if path.utf8.count > 4096 { return "path longer than PATH_MAX" }
        if path.utf8.contains(0) { return "NUL byte in the path" }
        // Linux numbers neither a device nor an inode 0 (anonymous devices start at minor 1).
        if device == 0 { return "device 0" }
        if inode == 0 { return "inode 0" }
        if offset < 0 { return "offset \(offset) below zero" }
        if !(0...FileFingerprint.maximumLength).contains(fingerprint.length) {
            return "fingerprint length \(fingerprint.length) outside 0...\(FileFingerprint.maximumLength)"
        }
        if fingerprint.length == 0 && fingerprint != .empty { return "fingerprint of no bytes with a hash of some" }
        return nil
    }
}

extension JournalCheckpoint {
    /// Journal times before this are not from a journal flagwatch read (journald is younger).
    static let earliestPlausibleMicroseconds: UInt64 = 1_262_304_000_000_000  // 2010-01-01
    /// How far a saved time may be ahead of the clock (clock steps, NTP): a time further ahead
    /// would make the follower skip everything written until then.
    static let clockSlackMicroseconds: UInt64 = 10 * 60 * 1_000_000

    /// Why this position cannot be trusted, or nil.
    public func defect(nowMicroseconds: UInt64) -> String? {
        if let cursor {
            // libsystemd's cursors: `s=<hex>;i=<hex>;b=<hex>;m=<hex>;t=<hex>;x=<hex>`.
            let fields = cursor.utf8.split(separator: UInt8(ascii: ";"), omittingEmptySubsequences: false)
            let isHex: (UInt8) -> Bool = {
                (0x30...0x39).contains($0) || (0x61...0x66).contains($0) || (0x41...0x46).contains($0)
            }
            let valid =
                cursor.utf8.count <= 1024
                && fields.allSatisfy { field in
                    field.count >= 3 && (0x61...0x7A).contains(field[field.startIndex])
                        && field[field.index(after: field.startIndex)] == UInt8(ascii: "=")
                        && field.dropFirst(2).allSatisfy(isHex)
                }
            if !valid { return "cursor is not a journal cursor" }
        }
        if let readUntilMicroseconds {
            if readUntilMicroseconds < Self.earliestPlausibleMicroseconds { return "read-until time before 2010" }
            if readUntilMicroseconds > nowMicroseconds &+ Self.clockSlackMicroseconds {
                return "read-until time more than 10 minutes ahead of the clock"
            }
        }
        return nil
    }
}

/// A checkpoint as loaded: file entries that failed their checks are left out and listed.
public struct LoadedCheckpoint: Sendable, Equatable {
    public struct RejectedEntry: Sendable, Equatable {
        public var path: String
        public var reason: String
    }

    /// The checkpoint, without the rejected entries.
    public var checkpoint: SourceCheckpoint
    /// Entries left out (their files start as if seen for the first time: the source's start_at).
    public var rejectedFiles: [RejectedEntry]
}

/// Reads and writes per-source checkpoint files in the state directory, each replaced
/// atomically (temporary file, fsync, rename).
public struct CheckpointStore: Sendable {
    public let directory: String

    public init(directory: String) throws(Errno) {
        try FileSystem.createDirectories(directory)
        self.directory = directory
    }

    /// The file for a source: its name with anything but letters, digits, `-`, `_` and `.`
    /// replaced, so a name cannot point outside the directory.
    public func path(forSource source: String) -> String {
        let safe = String(
            source.unicodeScalars.map { scalar -> Character in
                let isSafe =
                    scalar.isASCII
                    && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar)
                        || "-_.".unicodeScalars.contains(scalar))
                return isSafe ? Character(scalar) : "_"
            })
        return directory + "/" + (safe.isEmpty || safe.hasPrefix(".") ? "_" + safe : safe) + ".checkpoint.json"
    }

    /// The largest checkpoint file read or written. An entry is about 300 bytes (most of it the
    /// path), so this is some 14,000 files: far above a node's (kubelet: 110 pods by default, a
    /// few containers each). A bound keeps a wrong file in the state directory from taking the
    /// daemon's memory (decoding a 64 MB file took it to 700 MB).
    public static let maximumFileSize = 4 * 1024 * 1024

    public enum LoadError: Error, CustomStringConvertible {
        case unreadable(path: String, SmallFileError)
        case corrupt(path: String, String)
        public var description: String {
            switch self {
            case .unreadable(let path, let error): "cannot read checkpoint \(path): \(error)"
            case .corrupt(let path, let reason): "checkpoint \(path) is not valid: \(reason)"
            }
        }
    }

    /// The saved checkpoint, or nil if the source has none yet. Only a regular file of at most
    /// ``maximumFileSize`` bytes is read (a FIFO, a device or a symlink is refused unopened or
    /// unread). A checkpoint of an unknown version, of another source or with an invalid journal
    /// position is corrupt as a whole; invalid file entries are left out one by one.
    public func load(source: String) throws(LoadError) -> LoadedCheckpoint? {
        let path = path(forSource: source)
        let bytes: [UInt8]
        do {
            bytes = try FileSystem.contentsOfSmallRegularFile(path, maxBytes: Self.maximumFileSize)
        } catch .system(let error) where error == .noSuchFile {
            return nil
        } catch {
            throw .unreadable(path: path, error)
        }
        var checkpoint: SourceCheckpoint
        do {
            checkpoint = try JSONDecoder().decode(SourceCheckpoint.self, from: Data(bytes))
        } catch {
            throw .corrupt(path: path, String(describing: error))
        }
        guard checkpoint.version == SourceCheckpoint.currentVersion else {
            throw .corrupt(
                path: path,
                "version \(checkpoint.version) is not one this flagwatch reads (\(SourceCheckpoint.currentVersion))")
        }
        guard checkpoint.source == source else {
            throw .corrupt(path: path, "it belongs to source \(checkpoint.source), not \(source)")
        }
        if let journal = checkpoint.journal,
            let defect = journal.defect(nowMicroseconds: UInt64(max(0, wallClockSeconds() * 1e6)))
        {
            throw .corrupt(path: path, defect)
        }
        var rejected: [LoadedCheckpoint.RejectedEntry] = []
        if let files = checkpoint.files {
            var kept: [FileCheckpoint] = []
            var identities = Set<[UInt64]>()
            for entry in files {
                if let defect = entry.defect {
                    rejected.append(.init(path: entry.path, reason: defect))
                } else if !identities.insert([entry.device, entry.inode]).inserted {
                    rejected.append(
                        .init(
                            path: entry.path, reason: "a second entry for device \(entry.device) inode \(entry.inode)"))
                } else {
                    kept.append(entry)
                }
            }
            checkpoint.files = kept
        }
        return LoadedCheckpoint(checkpoint: checkpoint, rejectedFiles: rejected)
    }

    /// Replaces the source's checkpoint; `Errno.fileTooLarge` past ``maximumFileSize`` (it could
    /// not be read back).
    public func save(_ checkpoint: SourceCheckpoint) throws(Errno) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data: Data
        do {
            data = try encoder.encode(checkpoint)
        } catch {
            // Not for these types (no floats, no custom encoders); were it to happen, the save
            // must fail, not pass for done.
            throw Errno(rawValue: EINVAL)
        }
        guard data.count <= Self.maximumFileSize else { throw .fileTooLarge }
        try FileSystem.replaceAtomically(path(forSource: checkpoint.source), with: [UInt8](data))
    }
}
