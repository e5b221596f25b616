#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An `errno` value with its message, as the C library words it.
public struct Errno: Error, Equatable, Sendable, CustomStringConvertible {
    public var rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    static var current: Errno { Errno(rawValue: errno) }

    public var description: String { String(cString: strerror(rawValue)) }

    public static let interrupted = Errno(rawValue: EINTR)
    public static let permissionDenied = Errno(rawValue: EACCES)
    public static let noSuchFile = Errno(rawValue: ENOENT)
    public static let wouldBlock = Errno(rawValue: EAGAIN)
    public static let notDirectory = Errno(rawValue: ENOTDIR)
    public static let noSpace = Errno(rawValue: ENOSPC)
    public static let fileTooLarge = Errno(rawValue: EFBIG)
    public static let tooManyOpenFiles = Errno(rawValue: EMFILE)
    public static let tooManyOpenFilesInSystem = Errno(rawValue: ENFILE)
    public static let fileExists = Errno(rawValue: EEXIST)

    /// EMFILE or ENFILE: no descriptor to be had until one is closed.
    public var isDescriptorShortage: Bool { self == .tooManyOpenFiles || self == .tooManyOpenFilesInSystem }
}

/// An owned file descriptor: the few POSIX calls flagwatch makes on files go through here.
public struct FileDescriptor: Sendable {
    public let rawValue: Int32

    public init(rawValue: Int32) { self.rawValue = rawValue }

    public static let standardInput = FileDescriptor(rawValue: 0)

    /// Opens `path` read-only (close-on-exec).
    public static func openForReading(_ path: String) throws(Errno) -> FileDescriptor {
        while true {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            if fd >= 0 {
                // Sequential reads of large files: ask the kernel to read ahead aggressively.
                #if os(Linux)
                    _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
                #endif
                return FileDescriptor(rawValue: fd)
            }
            let error = Errno.current
            if error != .interrupted { throw error }
        }
    }

    /// Reads from the current position to the end of the file; `Errno.fileTooLarge` past
    /// `maxBytes`, so a mistaken path (a device, a huge log) cannot exhaust memory.
    public func readToEnd(maxBytes: Int = Int.max) throws(Errno) -> [UInt8] {
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 1)
        defer { chunk.deallocate() }
        var contents: [UInt8] = []
        while true {
            let count = try read(into: chunk)
            if count == 0 { return contents }
            guard contents.count + count <= maxBytes else { throw Errno.fileTooLarge }
            contents.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[0..<count]))
        }
    }

    /// Reads up to `buffer.count` bytes; 0 at end of file. Retries on EINTR.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        while true {
            #if canImport(Glibc)
                let count = Glibc.read(rawValue, buffer.baseAddress, buffer.count)
            #else
                let count = Darwin.read(rawValue, buffer.baseAddress, buffer.count)
            #endif
            if count >= 0 { return count }
            let error = Errno.current
            if error != .interrupted { throw error }
        }
    }

    /// Reads up to `buffer.count` bytes at `offset` without moving the file position.
    public func read(into buffer: UnsafeMutableRawBufferPointer, atOffset offset: Int) throws(Errno) -> Int {
        while true {
            let count = pread(rawValue, buffer.baseAddress, buffer.count, off_t(offset))
            if count >= 0 { return count }
            let error = Errno.current
            if error != .interrupted { throw error }
        }
    }

    /// The size in bytes when the descriptor is a regular file, else nil (pipes, terminals).
    public func regularFileSize() throws(Errno) -> Int? {
        var info = stat()
        guard fstat(rawValue, &info) == 0 else { throw Errno.current }
        return (info.st_mode & S_IFMT) == S_IFREG ? Int(info.st_size) : nil
    }

    /// `fstat`: what the descriptor refers to now (its size grows as the file is written).
    public func status() throws(Errno) -> FileStatus {
        var info = stat()
        guard fstat(rawValue, &info) == 0 else { throw Errno.current }
        return FileStatus(info)
    }

    /// Whether the descriptor names a directory (reading one fails with EISDIR on Linux anyway,
    /// but this gives the clearer message up front).
    public func isDirectory() throws(Errno) -> Bool {
        var info = stat()
        guard fstat(rawValue, &info) == 0 else { throw Errno.current }
        return (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// Opens `path` for writing, creating it (mode `permissions`) and emptying it.
    public static func create(_ path: String, permissions: mode_t = 0o644) throws(Errno) -> FileDescriptor {
        while true {
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, permissions)
            if fd >= 0 { return FileDescriptor(rawValue: fd) }
            let error = Errno.current
            if error != .interrupted { throw error }
        }
    }

    /// Creates `path` as a new regular file for writing; EEXIST if anything is there already
    /// (a file, a FIFO, a symlink: none is opened or followed).
    public static func createNew(_ path: String, permissions: mode_t = 0o644) throws(Errno) -> FileDescriptor {
        while true {
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, permissions)
            if fd >= 0 { return FileDescriptor(rawValue: fd) }
            let error = Errno.current
            if error != .interrupted { throw error }
        }
    }

    /// Writes what fits now without waiting; 0 when nothing fits (EAGAIN). For descriptors
    /// opened with O_NONBLOCK (``NonBlockingOutput``).
    public func writeSome(_ bytes: UnsafeRawBufferPointer) throws(Errno) -> Int {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return 0 }
        while true {
            #if canImport(Glibc)
                let count = Glibc.write(rawValue, base, bytes.count)
            #else
                let count = Darwin.write(rawValue, base, bytes.count)
            #endif
            if count >= 0 { return count }
            let error = Errno.current
            if error == .wouldBlock { return 0 }
            if error != .interrupted { throw error }
        }
    }

    /// Waits until the descriptor can take more bytes (or has an error the next write reports).
    public func waitUntilWritable() {
        var entry = pollfd(fd: rawValue, events: Int16(POLLOUT), revents: 0)
        while poll(&entry, 1, -1) < 0 && errno == EINTR {}
    }

    /// Opens a directory (for ``sync()`` after a rename in it).
    public static func openDirectory(_ path: String) throws(Errno) -> FileDescriptor {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw Errno.current }
        return FileDescriptor(rawValue: fd)
    }

    /// Writes all of `bytes`, retrying short writes and EINTR.
    public func write(all bytes: UnsafeRawBufferPointer) throws(Errno) {
        guard let base = bytes.baseAddress else { return }
        var written = 0
        while written < bytes.count {
            #if canImport(Glibc)
                let count = Glibc.write(rawValue, base + written, bytes.count - written)
            #else
                let count = Darwin.write(rawValue, base + written, bytes.count - written)
            #endif
            if count >= 0 {
                written += count
                continue
            }
            let error = Errno.current
            if error != .interrupted { throw error }
        }
    }

    /// `fsync`: the data is on disk when this returns.
    public func sync() throws(Errno) {
        guard fsync(rawValue) == 0 else { throw Errno.current }
    }

    public func close() {
        #if canImport(Glibc)
            _ = Glibc.close(rawValue)
        #else
            _ = Darwin.close(rawValue)
        #endif
    }
}

/// Why a small state file was refused (``FileSystem/contentsOfSmallRegularFile(_:maxBytes:)``).
public enum SmallFileError: Error, Equatable, CustomStringConvertible {
    case system(Errno)
    /// The path is a symbolic link (not followed: it could point at a device or a FIFO).
    case symbolicLink
    /// A FIFO, a device, a directory, a socket.
    case notRegularFile
    case tooLarge(limit: Int)

    public var description: String {
        switch self {
        case .system(let error): "\(error)"
        case .symbolicLink: "it is a symbolic link (not followed)"
        case .notRegularFile: "it is not a regular file"
        case .tooLarge(let limit): "it is larger than \(limit) bytes"
        }
    }
}

/// Standard output for reports that must not hold up their writer while nobody reads. A pipe
/// or FIFO is opened again through `/proc/self/fd` with O_NONBLOCK: a file description of our
/// own, so the flag does not reach the other processes sharing the pipe (a shell, `tee`).
/// Anything else (a regular file, a terminal) is written as before, waiting if it must.
public enum NonBlockingOutput {
    /// A non-blocking descriptor for the pipe behind `descriptor`, or nil if it is not a pipe.
    public static func open(for descriptor: FileDescriptor) -> FileDescriptor? {
        var info = stat()
        guard fstat(descriptor.rawValue, &info) == 0, (info.st_mode & S_IFMT) == S_IFIFO else { return nil }
        while true {
            let fd = Glibc.open("/proc/self/fd/\(descriptor.rawValue)", O_WRONLY | O_NONBLOCK | O_CLOEXEC)
            if fd >= 0 { return FileDescriptor(rawValue: fd) }
            if errno != EINTR { return nil }
        }
    }
}

/// Text straight to standard output or error with `write(2)`, unbuffered: a report printed
/// by a long-running command reaches a pipe at once.
public enum StandardStream {
    public static func write(_ text: String, to descriptor: FileDescriptor = FileDescriptor(rawValue: 1)) {
        var text = text
        text.withUTF8 { bytes in
            try? descriptor.write(all: UnsafeRawBufferPointer(bytes))
        }
    }
}
