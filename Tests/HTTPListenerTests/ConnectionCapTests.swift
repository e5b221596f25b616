#if canImport(Glibc)
    import Glibc
    @testable import HTTPListener
    import Logging
    import SystemCalls
    import Testing

    /// A blocking loopback client: connect() completes in the kernel's backlog before the server
    /// accepts, so the test can open connections and then let the server's loop run.
    private final class LoopbackClient {
        let descriptor: Int32

        init?(port: UInt16) {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { return nil }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard connected == 0 else {
                _ = Glibc.close(fd)
                return nil
            }
            descriptor = fd
        }

        deinit { _ = Glibc.close(descriptor) }

        func send(_ text: String) {
            let bytes = Array(text.utf8)
            _ = bytes.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }

        enum State: Equatable {
            /// Nothing to read, the server has not closed.
            case open
            /// Bytes arrived (and were consumed).
            case received(String)
            /// End of stream or reset, with nothing before it.
            case closed
        }

        /// What the server has done to this connection so far, without blocking.
        func poll() -> State {
            var buffer = [UInt8](repeating: 0, count: 64 * 1024)
            let count = buffer.withUnsafeMutableBytes {
                recv(descriptor, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT))
            }
            if count > 0 { return .received(String(decoding: buffer[0..<count], as: UTF8.self)) }
            if count == 0 { return .closed }
            return errno == EAGAIN ? .open : .closed
        }
    }

    @Suite struct ConnectionCapTests {
        /// A server on 127.0.0.1 with a cap of three connections, its loop run a slice at a time.
        private final class CappedServer {
            let loop = PollLoop()
            let server: HTTPServer
            let port: UInt16

            init() throws {
                let listener = try Socket.listen(host: "127.0.0.1", port: 0)
                port = listener.localPort ?? 0
                var limits = HTTPLimits()
                limits.maxConnections = 3
                server = HTTPServer(listeners: [listener], limits: limits, logger: Logger(label: "test")) { request in
                    .text(200, "served \(request.path)")
                }
                server.start(on: loop)
            }

            /// Runs the loop for about `seconds`: accepts, reads and answers what is pending. The
            /// pause also makes the connections' last-activity times differ.
            func run(for seconds: Double = 0.05) {
                let stopper = loop.every(seconds) { [loop] in loop.stop() }
                loop.run()
                loop.cancel(stopper)
                loop.resume()
            }
        }

        private static let request = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

        @Test func atTheCapTheLongestIdleConnectionIsClosedToAdmitANewOne() throws {
            let harness = try CappedServer()
            // A: a scrape answered, then idle on keep-alive (the longest idle once B and C come).
            let answered = try #require(LoopbackClient(port: harness.port))
            answered.send(Self.request)
            harness.run()
            guard case .received(let first) = answered.poll(), first.hasPrefix("HTTP/1.1 200") else {
                Issue.record("the first connection was not served")
                return
            }
            // B: half a request head, so mid-request; C: connected, silent.
            let midRequest = try #require(LoopbackClient(port: harness.port))
            midRequest.send("GET /metrics HTTP/1.1\r\nHost: 12")
            harness.run()
            let silent = try #require(LoopbackClient(port: harness.port))
            harness.run()
            #expect(harness.server.openConnections == 3)

            // D at the cap: A, idle the longest, makes room; D is served.
            let fourth = try #require(LoopbackClient(port: harness.port))
            harness.run()
            #expect(answered.poll() == .closed)
            #expect(midRequest.poll() == .open)
            #expect(silent.poll() == .open)
            fourth.send(Self.request)
            harness.run()
            guard case .received(let fourthResponse) = fourth.poll(), fourthResponse.hasPrefix("HTTP/1.1 200") else {
                Issue.record("the connection admitted at the cap was not served")
                return
            }

            // E: C has been idle longer than D (answered just now), so C goes; B is never chosen.
            let fifth = try #require(LoopbackClient(port: harness.port))
            harness.run()
            #expect(silent.poll() == .closed)
            #expect(midRequest.poll() == .open)
            #expect(fourth.poll() == .open)
            #expect(harness.server.openConnections == 3)

            // B finishes its head and gets its answer: being mid-request protected it.
            midRequest.send("7.0.0.1\r\n\r\n")
            harness.run()
            guard case .received(let late) = midRequest.poll(), late.hasPrefix("HTTP/1.1 200") else {
                Issue.record("the connection that was mid-request was not served")
                return
            }
            #expect(fifth.poll() == .open)
            #expect(harness.server.evictedIdleTotal == 2)
            #expect(harness.server.rejectedAtCapacityTotal == 0)
        }

        @Test func aRequestWaitingInTheKernelSavesItsConnectionFromBeingClosedAtTheCap() throws {
            let harness = try CappedServer()
            // A: served, then idle the longest; B and C: connected, silent.
            let scraper = try #require(LoopbackClient(port: harness.port))
            scraper.send(Self.request)
            harness.run()
            guard case .received = scraper.poll() else {
                Issue.record("the first connection was not served")
                return
            }
            let silent = try #require(LoopbackClient(port: harness.port))
            harness.run()
            let alsoSilent = try #require(LoopbackClient(port: harness.port))
            harness.run()
            // A's next scrape and a fourth connection arrive in the same poll round; the listener
            // is handled first. A's request is read and answered, and B (idle, nothing sent) goes.
            scraper.send(Self.request)
            let fourth = try #require(LoopbackClient(port: harness.port))
            harness.run()
            guard case .received(let second) = scraper.poll(), second.hasPrefix("HTTP/1.1 200") else {
                Issue.record("the scrape waiting in the kernel was dropped")
                return
            }
            #expect(silent.poll() == .closed)
            #expect(alsoSilent.poll() == .open)
            #expect(fourth.poll() == .open)
        }

        @Test func whenEveryConnectionIsMidRequestANewOneIsClosedAtOnce() throws {
            let harness = try CappedServer()
            var heads: [LoopbackClient] = []
            for _ in 0..<3 {
                let client = try #require(LoopbackClient(port: harness.port))
                client.send("GET /metrics HTTP/1.1\r\n")
                heads.append(client)
                harness.run()
            }
            let refused = try #require(LoopbackClient(port: harness.port))
            harness.run()
            #expect(refused.poll() == .closed)
            for client in heads { #expect(client.poll() == .open) }
            #expect(harness.server.rejectedAtCapacityTotal == 1)
            #expect(harness.server.evictedIdleTotal == 0)
        }
    }
#endif
