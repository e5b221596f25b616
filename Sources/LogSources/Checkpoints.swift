#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SystemCalls

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
                    let count = try file.read(into: UnsafeMutableRawBufferPointer(rebasing: raw[total...]), atOffset: total)
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
    public var version = 1
    public var source: String
    public var files: [FileCheckpoint]?
    public var journal: JournalCheckpoint?

    public init(source: String, files: [FileCheckpoint]? = nil, journal: JournalCheckpoint? = nil) {
        self.source = source
        self.files = files
        self.journal = journal
    }
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
        let safe = String(source.unicodeScalars.map { scalar -> Character in
            let isSafe = scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || "-_.".unicodeScalars.contains(scalar))
            return isSafe ? Character(scalar) : "_"
        })
        return directory + "/" + (safe.isEmpty || safe.hasPrefix(".") ? "_" + safe : safe) + ".checkpoint.json"
    }

    public enum LoadError: Error, CustomStringConvertible {
        case unreadable(path: String, Errno)
        case corrupt(path: String, String)
        public var description: String {
            switch self {
            case .unreadable(let path, let error): "cannot read checkpoint \(path): \(error)"
            case .corrupt(let path, let reason): "checkpoint \(path) is not valid: \(reason)"
            }
        }
    }

    /// The saved checkpoint, or nil if the source has none yet.
    public func load(source: String) throws(LoadError) -> SourceCheckpoint? {
        let path = path(forSource: source)
        let bytes: [UInt8]
        do {
            bytes = try FileSystem.contents(of: path)
        } catch where error == .noSuchFile {
            return nil
        } catch {
            throw .unreadable(path: path, error)
        }
        do {
            return try JSONDecoder().decode(SourceCheckpoint.self, from: Data(bytes))
        } catch {
            throw .corrupt(path: path, String(describing: error))
        }
    }

    public func save(_ checkpoint: SourceCheckpoint) throws(Errno) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(checkpoint) else { return }
        try FileSystem.replaceAtomically(path(forSource: checkpoint.source), with: [UInt8](data))
    }
}
