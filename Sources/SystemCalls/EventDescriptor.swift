#if canImport(Glibc)
    import CLinuxShims
    import Glibc

    /// A wake-up another thread can send to the ``PollLoop`` (`eventfd`): the loop watches
    /// ``descriptor`` and, when it turns readable, calls ``consume()`` and does the work that was
    /// handed over. Signals coalesce (the kernel adds them up in one counter), so a burst of
    /// hand-overs wakes the loop once, and ``signal()`` never blocks.
    public final class EventDescriptor: Sendable {
        public let descriptor: FileDescriptor

        public init() throws(Errno) {
            let fd = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
            guard fd >= 0 else { throw Errno.current }
            descriptor = FileDescriptor(rawValue: fd)
        }

        deinit { descriptor.close() }

        /// Wakes the loop. Safe from any thread. The counter cannot overflow in practice (2^64
        /// - 2 signals before the loop reads it); when it would, write fails with EAGAIN and
        /// the loop is already due to wake, so the failure is ignored.
        public func signal() {
            var one: UInt64 = 1
            _ = withUnsafeBytes(of: &one) { bytes in
                try? descriptor.writeSome(bytes)
            }
        }

        /// Clears the pending signals; returns how many there were (0 when none).
        @discardableResult
        public func consume() -> UInt64 {
            var pending: UInt64 = 0
            let count = withUnsafeMutableBytes(of: &pending) { bytes in
                (try? descriptor.read(into: bytes)) ?? -1
            }
            return count == MemoryLayout<UInt64>.size ? pending : 0
        }
    }
#endif
