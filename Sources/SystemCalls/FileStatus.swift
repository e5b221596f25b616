#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What `stat` says about a file, reduced to what following logs needs.
public struct FileStatus: Sendable, Equatable {
    public var device: UInt64
    public var inode: UInt64
    public var size: Int
    public var linkCount: Int
    public var isRegularFile: Bool
    public var isDirectory: Bool

    init(_ info: stat) {
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = Int(info.st_size)
        linkCount = Int(info.st_nlink)
        isRegularFile = (info.st_mode & S_IFMT) == S_IFREG
        isDirectory = (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// `stat` (symlinks followed) or `lstat`.
    public init(path: String, followingSymlinks: Bool = true) throws(Errno) {
        var info = stat()
        let result = followingSymlinks ? stat(path, &info) : lstat(path, &info)
        guard result == 0 else { throw Errno.current }
        self.init(info)
    }
}

/// Path operations on the file system.
public enum FileSystem {
    /// `rename`, atomic within one file system.
    public static func rename(_ source: String, to destination: String) throws(Errno) {
        guard Glibc.rename(source, destination) == 0 else { throw Errno.current }
    }

    public static func removeFile(_ path: String) throws(Errno) {
        guard unlink(path) == 0 else { throw Errno.current }
    }

    /// `mkdir -p` with `permissions` for the directories it creates.
    public static func createDirectories(_ path: String, permissions: mode_t = 0o750) throws(Errno) {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/") {
            prefix += component
            if mkdir(prefix, permissions) != 0 && errno != EEXIST { throw Errno.current }
            prefix += "/"
        }
        let status = try FileStatus(path: path)
        guard status.isDirectory else { throw Errno.notDirectory }
    }

    /// The names in a directory, without `.` and `..`.
    public static func directoryEntries(_ path: String) throws(Errno) -> [String] {
        guard let directory = opendir(path) else { throw Errno.current }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Whether `name` matches the shell wildcard `pattern` (`*`, `?`, `[...]`); a leading `.`
    /// must be matched explicitly, as in the shell.
    public static func matches(_ name: String, pattern: String) -> Bool {
        fnmatch(pattern, name, FNM_PERIOD) == 0
    }

    /// Writes `bytes` to `path` so that a crash leaves either the old or the new content: a
    /// temporary file in the same directory, fsync, rename over `path`, fsync of the directory.
    public static func replaceAtomically(_ path: String, with bytes: [UInt8]) throws(Errno) {
        let temporary = path + ".tmp"
        // A leftover from a crash, or anything else put there (a FIFO would block open(2), a
        // symlink would be written through): removed, and the temporary file made anew.
        if unlink(temporary) != 0 && errno != ENOENT { throw Errno.current }
        let file = try FileDescriptor.createNew(temporary, permissions: 0o640)
        do throws(Errno) {
            // withUnsafeBytes rethrows untyped errors: carry the Errno out by hand.
            let failure = bytes.withUnsafeBytes { raw -> Errno? in
                do throws(Errno) { try file.write(all: raw) } catch { return error }
                return nil
            }
            if let failure { throw failure }
            try file.sync()
        } catch {
            file.close()
            _ = unlink(temporary)
            throw error
        }
        file.close()
        try rename(temporary, to: path)
        if let directory = try? FileDescriptor.openDirectory(directory(of: path)) {
            try? directory.sync()
            directory.close()
        }
    }

    /// The directory part of a path (`/` for `/x`, `.` for a bare name).
    public static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// The contents of a small regular file that is not to be trusted (a state file): opened with
    /// O_NOFOLLOW and O_NONBLOCK, so a symlink (to `/dev/zero`) is refused and a FIFO does not
    /// block; anything but a regular file is refused; at most `maxBytes` are read.
    public static func contentsOfSmallRegularFile(_ path: String, maxBytes: Int) throws(SmallFileError) -> [UInt8] {
        var fd: Int32
        repeat {
            fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW)
        } while fd < 0 && errno == EINTR
        guard fd >= 0 else { throw errno == ELOOP ? .symbolicLink : .system(Errno.current) }
        let file = FileDescriptor(rawValue: fd)
        defer { file.close() }
        let status: FileStatus
        do { status = try file.status() } catch { throw .system(error) }
        guard status.isRegularFile else { throw .notRegularFile }
        guard status.size <= maxBytes else { throw .tooLarge(limit: maxBytes) }
        do {
            // The file may have grown since fstat: the cap holds for what is read.
            return try file.readToEnd(maxBytes: maxBytes)
        } catch Errno.fileTooLarge {
            throw .tooLarge(limit: maxBytes)
        } catch {
            throw .system(error)
        }
    }

    /// Reads a whole (small) file, following symlinks (a config mounted from a ConfigMap is
    /// one); `Errno.fileTooLarge` past `maxBytes`, EISDIR for a directory.
    public static func contents(of path: String, maxBytes: Int = Int.max) throws(Errno) -> [UInt8] {
        let file = try FileDescriptor.openForReading(path)
        defer { file.close() }
        return try file.readToEnd(maxBytes: maxBytes)
    }
}
