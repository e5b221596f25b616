#if canImport(Glibc)
    import CLinuxShims
    import Glibc

    /// A non-blocking TCP socket: a listener or an accepted connection.
    public struct Socket: Sendable, Hashable {
        public let descriptor: Int32

        public init(descriptor: Int32) { self.descriptor = descriptor }

        /// Listens on `host:port` (numeric IPv4 or IPv6 address, or `localhost`); port 0 lets the
        /// kernel choose (see ``localPort``). `[::]` accepts IPv4 too unless the system says otherwise.
        ///
        /// The backlog is 1,024 pending connections: with nginx's 511, a burst of 1,000 connections
        /// arriving while the poll loop answered scrapes on a loaded machine overflowed the accept
        /// queue and the overflow was reset before a response; with 4,096, a client flooding the
        /// port with reconnects (evicted at the connection cap) put up to 4,096 connections ahead
        /// of a scrape in the queue, and scrapes took over a second. 1,024 answers both (the
        /// listener tests `1000_concurrent_pipelining_clients` and `5000_held_idle_connections`).
        public static func listen(host: String, port: UInt16, backlog: Int32 = 1024) throws(Errno) -> Socket {
            var hints = addrinfo()
            hints.ai_family = AF_UNSPEC
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV | (host == "localhost" ? 0 : AI_NUMERICHOST)
            var result: UnsafeMutablePointer<addrinfo>?
            let status = getaddrinfo(host, String(port), &hints, &result)
            guard status == 0, let first = result else {
                throw Errno(rawValue: status == EAI_SYSTEM ? errno : EINVAL)
            }
            defer { freeaddrinfo(result) }
            let fd = socket(
                first.pointee.ai_family,
                Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw Errno.current }
            var one: Int32 = 1
            _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            guard bind(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0, Glibc.listen(fd, backlog) == 0 else {
                let error = Errno.current
                _ = Glibc.close(fd)
                throw error
            }
            return Socket(descriptor: fd)
        }

        /// Sockets passed by systemd socket activation (`LISTEN_FDS`, `LISTEN_PID`), starting at
        /// fd 3; empty if none were passed to this process.
        public static func systemdListeners() -> [Socket] {
            guard let countText = getenv("LISTEN_FDS").map({ String(cString: $0) }), let count = Int32(countText),
                count > 0
            else { return [] }
            if let pidText = getenv("LISTEN_PID").map({ String(cString: $0) }), let pid = Int32(pidText),
                pid != getpid()
            {
                return []
            }
            return (0..<count).map { index in
                let fd = 3 + index
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
                return Socket(descriptor: fd)
            }
        }

        /// The port the socket is bound to.
        public var localPort: UInt16? {
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let result = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
            }
            guard result == 0 else { return nil }
            switch Int32(storage.ss_family) {
            case AF_INET:
                return withUnsafeBytes(of: storage) { UInt16(bigEndian: $0.load(fromByteOffset: 2, as: UInt16.self)) }
            case AF_INET6:
                return withUnsafeBytes(of: storage) { UInt16(bigEndian: $0.load(fromByteOffset: 2, as: UInt16.self)) }
            default:
                return nil
            }
        }

        /// Accepts one pending connection (non-blocking); nil when none is pending.
        public func accept() throws(Errno) -> Socket? {
            while true {
                let fd = clinux_accept_nonblocking(descriptor)
                if fd >= 0 { return Socket(descriptor: fd) }
                let error = Errno.current
                switch error.rawValue {
                case EINTR: continue
                case EAGAIN, ECONNABORTED, EPROTO: return nil
                default: throw error
                }
            }
        }

        public enum IOResult: Equatable {
            case bytes(Int)
            case wouldBlock
            case closed
        }

        /// Receives into `buffer`: a count, `wouldBlock`, or `closed` (end of stream or reset).
        public func receive(into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
            while true {
                let count = recv(descriptor, buffer.baseAddress, buffer.count, 0)
                if count > 0 { return .bytes(count) }
                if count == 0 { return .closed }
                switch errno {
                case EINTR: continue
                case EAGAIN: return .wouldBlock
                default: return .closed
                }
            }
        }

        /// Whether a receive would not block: bytes, end of stream or an error are waiting.
        public var hasPendingInput: Bool {
            var byte: UInt8 = 0
            while true {
                if recv(descriptor, &byte, 1, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT)) >= 0 { return true }
                switch errno {
                case EINTR: continue
                case EAGAIN: return false
                default: return true
                }
            }
        }

        /// Sends what it can of `bytes` (never raises SIGPIPE).
        public func send(_ bytes: UnsafeRawBufferPointer) -> IOResult {
            while true {
                let count = Glibc.send(descriptor, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
                if count >= 0 { return .bytes(count) }
                switch errno {
                case EINTR: continue
                case EAGAIN: return .wouldBlock
                default: return .closed
                }
            }
        }

        /// Sends small writes at once (no Nagle delay): a response whose head and body go out in
        /// two sends would otherwise wait for the client's delayed ACK before its last segment.
        public func disableNagle() {
            var one: Int32 = 1
            _ = setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        }

        /// Stops accepting or sending; the peer sees end of stream.
        public func shutdownWriting() { _ = shutdown(descriptor, Int32(SHUT_WR)) }

        public func close() { _ = Glibc.close(descriptor) }
    }
#endif
