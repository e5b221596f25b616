#if canImport(Glibc)
    import CLinuxShims
    import Glibc

    /// Signals delivered as readable data on a descriptor (`signalfd`), so an event loop handles
    /// SIGTERM, SIGINT and SIGHUP between two iterations instead of inside a signal handler.
    public final class SignalDescriptor {
        public let descriptor: FileDescriptor

        /// Blocks `signals` in the calling thread (threads started later inherit the mask) and
        /// opens a descriptor that reports them. Call before starting other threads.
        public init(_ signals: [Int32]) throws(Errno) {
            var set = sigset_t()
            sigemptyset(&set)
            for signal in signals { sigaddset(&set, signal) }
            guard pthread_sigmask(SIG_BLOCK, &set, nil) == 0 else { throw Errno.current }
            let fd = signalfd(-1, &set, Int32(SFD_NONBLOCK | SFD_CLOEXEC))
            guard fd >= 0 else { throw Errno.current }
            descriptor = FileDescriptor(rawValue: fd)
        }

        deinit { descriptor.close() }

        /// The signals received since the last call, in order.
        public func received() -> [Int32] {
            var signals: [Int32] = []
            var info = signalfd_siginfo()
            let size = MemoryLayout<signalfd_siginfo>.size
            while true {
                let count = withUnsafeMutableBytes(of: &info) { raw in
                    (try? descriptor.read(into: raw)) ?? -1
                }
                guard count == size else { return signals }
                signals.append(Int32(bitPattern: info.ssi_signo))
            }
        }
    }
#endif
