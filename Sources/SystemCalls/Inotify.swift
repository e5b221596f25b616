#if canImport(Glibc)
    import Glibc

    /// One inotify event: which watch, what happened, and for a directory watch the entry's name.
    public struct InotifyEvent: Sendable {
        public var watch: Int32
        public var mask: UInt32
        public var name: String?

        public func has(_ flag: Int32) -> Bool { mask & UInt32(bitPattern: flag) != 0 }
        public func has(_ flag: UInt32) -> Bool { mask & flag != 0 }
    }

    /// An inotify instance (non-blocking): watches are added by path, events read in batches.
    public final class Inotify {
        public let descriptor: FileDescriptor

        /// Events that change which files a directory holds.
        public static let directoryEvents = UInt32(
            IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | IN_ATTRIB)
        /// Events on a file being followed: data appended, truncated (also IN_MODIFY), links changed.
        public static let fileEvents = UInt32(IN_MODIFY | IN_ATTRIB)
        public static let queueOverflow = UInt32(IN_Q_OVERFLOW)
        /// The watch is gone (removed, or its file or directory deleted).
        public static let watchRemoved = UInt32(IN_IGNORED)

        public init() throws(Errno) {
            let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
            guard fd >= 0 else { throw Errno.current }
            descriptor = FileDescriptor(rawValue: fd)
        }

        deinit { descriptor.close() }

        /// Watches `path` (symlinks followed). Watching the same inode twice returns the same id.
        public func addWatch(_ path: String, mask: UInt32) throws(Errno) -> Int32 {
            let watch = inotify_add_watch(descriptor.rawValue, path, mask)
            guard watch >= 0 else { throw Errno.current }
            return watch
        }

        /// Watches the file an open descriptor refers to, even if its path is gone or now names
        /// another file (through `/proc/self/fd`, which resolves to the open inode).
        public func addWatch(_ file: FileDescriptor, mask: UInt32) throws(Errno) -> Int32 {
            try addWatch("/proc/self/fd/\(file.rawValue)", mask: mask)
        }

        public func removeWatch(_ watch: Int32) {
            _ = inotify_rm_watch(descriptor.rawValue, watch)
        }

        /// Reads every queued event (until the queue is empty).
        public func readEvents(_ body: (InotifyEvent) -> Void) throws(Errno) {
            let bufferSize = 64 * 1024
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 8)
            defer { buffer.deallocate() }
            let headerSize = MemoryLayout<inotify_event>.size
            while true {
                let count: Int
                do {
                    count = try descriptor.read(into: buffer)
                } catch  where error == .wouldBlock {
                    return
                }
                if count <= 0 { return }
                var offset = 0
                while offset + headerSize <= count {
                    let header = buffer.loadUnaligned(fromByteOffset: offset, as: inotify_event.self)
                    let nameLength = Int(header.len)
                    var name: String?
                    if nameLength > 0 {
                        let raw = UnsafeRawBufferPointer(
                            rebasing: buffer[(offset + headerSize)..<(offset + headerSize + nameLength)])
                        name = String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
                    }
                    body(InotifyEvent(watch: header.wd, mask: header.mask, name: name))
                    offset += headerSize + nameLength
                }
            }
        }
    }
#endif
