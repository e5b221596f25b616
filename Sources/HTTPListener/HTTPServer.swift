import Logging
import SystemCalls

/// The listener's limits; the defaults suit a metrics endpoint scraped by a few Prometheus
/// servers and looked at by people.
public struct HTTPLimits: Sendable {
    /// A request head (request line + headers) larger than this gets 431.
    public var maxHeaderBytes = 8 * 1024
    /// A request line longer than this gets 414.
    public var maxRequestLine = 4 * 1024
    /// A request head must arrive within this many seconds of its first byte (or of the
    /// connection), else the connection is closed with 408 (slowloris).
    public var readTimeout = 10.0
    /// A keep-alive connection with nothing to do is closed after this many seconds.
    public var idleTimeout = 60.0
    /// A response the client does not read is dropped after this many seconds without progress.
    public var writeTimeout = 30.0
    /// At this many open connections, a new one closes the longest-idle connection that has no
    /// request in progress; with none such (all mid-request), the new one is closed at once.
    public var maxConnections = 1024
    /// Responses queued for one connection (pipelining) before its requests stop being read.
    public var maxPendingOutput = 4 * 1024 * 1024

    public init() {}
}

/// A small HTTP/1.1 server on non-blocking POSIX sockets, driven by a ``PollLoop``:
/// keep-alive, pipelining, `HEAD`, limits on head size and time, no request bodies.
///
/// The handler runs on the loop's thread, one request at a time, and returns the whole
/// response; that keeps the server simple and is enough for `/metrics`, whose rendering takes
/// milliseconds.
public final class HTTPServer {
    public typealias Handler = (HTTPRequest) -> HTTPResponse

    private let listeners: [Socket]
    private let limits: HTTPLimits
    private let handler: Handler
    private let logger: Logger
    private weak var loop: PollLoop?
    private var connections: [Int32: Connection] = [:]
    private var accepting = true
    /// accept() failed (EMFILE, ENFILE, ENOBUFS...): the listeners are not polled until a
    /// connection closes or the next timeout check. A listening socket with a connection
    /// pending stays readable, so polling it while accept() cannot succeed spun the loop at
    /// 100% CPU and wrote a warning per iteration (about 60,000 lines a second, seen with
    /// RLIMIT_NOFILE 64 and 100 clients: Tests/EndToEnd/daemon/test_listener_limits.py).
    private var acceptPaused = false
    private var lastAcceptWarning = -Double.infinity
    private var lastEvictionWarning = -Double.infinity
    private let receiveBuffer: UnsafeMutableRawBufferPointer

    /// Counters for self-metrics and tests.
    public private(set) var acceptedTotal: UInt64 = 0
    public private(set) var rejectedAtCapacityTotal: UInt64 = 0
    /// Idle connections closed at the cap to admit a new one.
    public private(set) var evictedIdleTotal: UInt64 = 0
    public private(set) var requestsTotal: UInt64 = 0

    public var openConnections: Int { connections.count }

    final class Connection {
        let socket: Socket
        var input: [UInt8] = []
        /// Responses not yet sent, in order. A large body is its own chunk, moved in from the
        /// handler rather than copied behind its head (a 2 MB /metrics page was held twice).
        var output: [[UInt8]] = []
        /// Bytes of `output[0]` already sent.
        var outputOffset = 0
        /// Bytes in `output` not yet sent.
        var pendingOutput = 0
        /// When the request now being received started (first byte, or the connection).
        var requestStarted: Double
        var lastActivity: Double
        var lastWriteProgress: Double
        /// Close once the output is sent.
        var closeAfterOutput = false
        /// The client shut down its sending side: answer what arrived, then close.
        var peerFinished = false
        var requestsServed = 0

        init(socket: Socket, now: Double) {
            self.socket = socket
            requestStarted = now
            lastActivity = now
            lastWriteProgress = now
        }

        var hasOutput: Bool { pendingOutput > 0 }

        /// No request in progress: nothing of a request buffered, no response being written.
        var isIdle: Bool { input.isEmpty && !hasOutput && !closeAfterOutput }

        /// Queues `bytes`; small pieces join the last chunk so pipelined small responses go
        /// out in one send.
        func appendOutput(_ bytes: [UInt8]) {
            guard !bytes.isEmpty else { return }
            pendingOutput += bytes.count
            if bytes.count <= 16 * 1024, let last = output.indices.last, output[last].count < 64 * 1024 {
                output[last].append(contentsOf: bytes)
            } else {
                output.append(bytes)
            }
        }
    }

    public init(listeners: [Socket], limits: HTTPLimits = HTTPLimits(), logger: Logger, handler: @escaping Handler) {
        self.listeners = listeners
        self.limits = limits
        self.handler = handler
        self.logger = logger
        receiveBuffer = .allocate(byteCount: 64 * 1024, alignment: 16)
    }

    deinit {
        receiveBuffer.deallocate()
        for connection in connections.values { connection.socket.close() }
        for listener in listeners { listener.close() }
    }

    public func start(on loop: PollLoop) {
        self.loop = loop
        for listener in listeners {
            loop.watch(listener.descriptor) { [unowned self] _ in self.acceptAll(listener) }
        }
        loop.every(1) { [unowned self] in self.enforceTimeouts() }
    }

    /// Graceful stop, part one: no new connections; idle ones are closed, busy ones finish
    /// their current response and close.
    public func stopAccepting() {
        accepting = false
        for listener in listeners {
            loop?.unwatch(listener.descriptor)
        }
        for connection in Array(connections.values) {
            if connection.hasOutput {
                connection.closeAfterOutput = true
            } else {
                close(connection)
            }
        }
    }

    /// Whether responses are still being written (for a bounded wait before exiting).
    public var isBusy: Bool { connections.values.contains { $0.hasOutput } }

    // MARK: - Accepting

    /// Connections accepted per readiness of a listener before the loop turns to the others: a
    /// client reconnecting in a tight loop at the cap (each accept then closes an idle
    /// connection) must not keep the loop from reading the requests of those it admitted.
    private static let acceptsPerWakeup = 64

    private func acceptAll(_ listener: Socket) {
        for _ in 0..<Self.acceptsPerWakeup where accepting {
            let accepted: Socket?
            do {
                accepted = try listener.accept()
            } catch {
                // EMFILE and friends: stop polling the listeners until a descriptor may be free
                // (see acceptPaused); warn at most every 10 s.
                pauseAccepting()
                let now = monotonicSeconds()
                if now - lastAcceptWarning >= 10 {
                    lastAcceptWarning = now
                    logger.warning(
                        "accept failed: \(error); not accepting until a connection closes (retried every second)")
                }
                return
            }
            guard let socket = accepted else { return }
            acceptedTotal += 1
            if connections.count >= limits.maxConnections && !makeRoom() {
                rejectedAtCapacityTotal += 1
                socket.close()
                continue
            }
            socket.disableNagle()
            let connection = Connection(socket: socket, now: monotonicSeconds())
            connections[socket.descriptor] = connection
            loop?.watch(socket.descriptor, events: PollLoop.readable) { [unowned self] events in
                self.handleEvents(events, on: socket.descriptor)
            }
        }
    }

    /// At the cap, closes the connection idle the longest with no request in progress, as nginx
    /// reuses keep-alive connections; false if every connection is mid-request. Closing new
    /// connections instead let 1,024 idle ones, held by any local process, shut out every
    /// scrape until the timeouts freed them, and the holder could simply reconnect.
    private func makeRoom() -> Bool {
        // A few tries: the chosen connection may have sent its next request since the loop last
        // looked (a scraper's keep-alive connection, in the same poll round as this accept).
        for _ in 0..<4 {
            guard connections.count >= limits.maxConnections else { return true }
            guard let longestIdle = longestIdleConnection() else { return false }
            if longestIdle.socket.hasPendingInput {
                // Read it (answering the request, or closing on end of stream) rather than drop it.
                receive(longestIdle)
                continue
            }
            evictedIdleTotal += 1
            let now = monotonicSeconds()
            if now - lastEvictionWarning >= 10 {
                lastEvictionWarning = now
                logger.warning(
                    "connection cap (\(limits.maxConnections)) reached: closing the longest-idle connection to admit a new one (\(evictedIdleTotal) so far; logged at most every 10 s)"
                )
            }
            close(longestIdle)
            return true
        }
        return connections.count < limits.maxConnections
    }

    /// A scan of at most maxConnections entries, made only at the cap (a few microseconds per
    /// hundred connections; an ordered structure would cost on every request instead).
    private func longestIdleConnection() -> Connection? {
        var longestIdle: Connection?
        for connection in connections.values where connection.isIdle {
            if let current = longestIdle, current.lastActivity <= connection.lastActivity { continue }
            longestIdle = connection
        }
        return longestIdle
    }

    private func pauseAccepting() {
        acceptPaused = true
        for listener in listeners { loop?.update(listener.descriptor, events: 0) }
    }

    private func resumeAccepting() {
        guard acceptPaused, accepting else { return }
        acceptPaused = false
        for listener in listeners { loop?.update(listener.descriptor, events: PollLoop.readable) }
    }

    // MARK: - Reading and writing

    private func handleEvents(_ events: Int16, on descriptor: Int32) {
        guard let connection = connections[descriptor] else { return }
        if events & PollLoop.writable != 0 {
            flush(connection)
            guard connections[descriptor] != nil else { return }
        }
        if events & (PollLoop.readable | PollLoop.hangUp | PollLoop.error) != 0 {
            receive(connection)
        }
    }

    private func receive(_ connection: Connection) {
        // Backpressure: a client that pipelines without reading is not read further.
        while !connection.peerFinished && connection.pendingOutput < limits.maxPendingOutput {
            switch connection.socket.receive(into: receiveBuffer) {
            case .bytes(let count):
                if connection.input.isEmpty { connection.requestStarted = monotonicSeconds() }
                connection.lastActivity = monotonicSeconds()
                connection.input.append(contentsOf: UnsafeRawBufferPointer(rebasing: receiveBuffer[0..<count]))
                processRequests(connection)
                guard connections[connection.socket.descriptor] != nil, !connection.closeAfterOutput else { return }
            // More than a head can hold and nothing parsed: processRequests rejected it.
            case .wouldBlock:
                return
            case .closed:
                connection.peerFinished = true
                processRequests(connection)
                if !connection.hasOutput { close(connection) } else { connection.closeAfterOutput = true }
                return
            }
        }
        updateInterest(connection)
    }

    /// Answers every complete request in the input, in order.
    private func processRequests(_ connection: Connection) {
        while !connection.closeAfterOutput && !connection.input.isEmpty {
            let parse = connection.input.withUnsafeBytes {
                parseRequestHead($0, maxRequestLine: limits.maxRequestLine, maxHeaderBytes: limits.maxHeaderBytes)
            }
            switch parse {
            case .incomplete:
                if connection.peerFinished {
                    // Half a request and no more coming: nothing to answer.
                    connection.input.removeAll()
                    connection.closeAfterOutput = true
                }
                flush(connection)
                return
            case .reject(let status, let reason):
                connection.input.removeAll()
                enqueue(.text(status, reason), for: nil, on: connection, close: true)
            case .request(let request, let consumed):
                connection.input.removeFirst(consumed)
                connection.requestStarted = monotonicSeconds()
                connection.requestsServed += 1
                requestsTotal += 1
                if let rejection = bodyRejection(request) {
                    connection.input.removeAll()
                    enqueue(rejection, for: request, on: connection, close: true)
                    break
                }
                let response = handler(request)
                enqueue(response, for: request, on: connection, close: !wantsKeepAlive(request) || !accepting)
            }
        }
        flush(connection)
    }

    /// This server takes no request bodies: a declared body is refused (and the connection
    /// closed, since the body's bytes would otherwise be read as the next request).
    private func bodyRejection(_ request: HTTPRequest) -> HTTPResponse? {
        if request.header("transfer-encoding") != nil { return .text(413, "request bodies are not accepted") }
        // Several Content-Length fields that disagree make the framing ambiguous (RFC 9112
        // §6.3: an unrecoverable error). Only the first was looked at, so "Content-Length: 0"
        // then "Content-Length: 17" had the 17 body bytes answered as a second request.
        let lengths = request.headers.filter { $0.name == "content-length" }.map(\.value)
        if lengths.contains(where: { $0 != lengths[0] }) { return .text(400, "conflicting Content-Length") }
        if let length = request.header("content-length") {
            guard let value = Int(length), value >= 0 else { return .text(400, "bad Content-Length") }
            if value > 0 { return .text(413, "request bodies are not accepted") }
        }
        return nil
    }

    private func wantsKeepAlive(_ request: HTTPRequest) -> Bool {
        let connection = request.header("connection")?.lowercased() ?? ""
        if request.version == "HTTP/1.0" { return connection.contains("keep-alive") }
        return !connection.contains("close")
    }

    private func enqueue(_ response: HTTPResponse, for request: HTTPRequest?, on connection: Connection, close: Bool) {
        var head = "HTTP/1.1 \(response.status) \(HTTPResponse.reason(response.status))\r\n"
        for (name, value) in response.headers { head += "\(name): \(value)\r\n" }
        head += "Content-Length: \(response.body.count)\r\n"
        head += "Date: \(httpDate())\r\n"
        if response.status == 405, !response.headers.contains(where: { $0.name.lowercased() == "allow" }) {
            head += "Allow: GET, HEAD\r\n"
        }
        head += close ? "Connection: close\r\n" : "Connection: keep-alive\r\n"
        head += "\r\n"
        connection.appendOutput(Array(head.utf8))
        if request?.method != "HEAD" { connection.appendOutput(response.body) }
        if close { connection.closeAfterOutput = true }
    }

    private func flush(_ connection: Connection) {
        while let chunk = connection.output.first {
            let result = chunk.withUnsafeBytes { bytes in
                connection.socket.send(UnsafeRawBufferPointer(rebasing: bytes[connection.outputOffset...]))
            }
            switch result {
            case .bytes(let count):
                connection.outputOffset += count
                connection.pendingOutput -= count
                if connection.outputOffset == chunk.count {
                    connection.output.removeFirst()
                    connection.outputOffset = 0
                }
                connection.lastWriteProgress = monotonicSeconds()
                connection.lastActivity = connection.lastWriteProgress
            case .wouldBlock:
                updateInterest(connection)
                return
            case .closed:
                close(connection)
                return
            }
        }
        if connection.closeAfterOutput {
            close(connection)
            return
        }
        updateInterest(connection)
    }

    private func updateInterest(_ connection: Connection) {
        var events: Int16 = 0
        if connection.hasOutput { events |= PollLoop.writable }
        if !connection.peerFinished && connection.pendingOutput < limits.maxPendingOutput {
            events |= PollLoop.readable
        }
        loop?.update(connection.socket.descriptor, events: events)
    }

    private func close(_ connection: Connection) {
        // Idempotent: receive() closes a half-closed connection that processRequests' flush may
        // already have closed; closing the descriptor twice could close a newer one reusing the
        // number (strace showed close(7) then close(7) = EBADF for a half request + SHUT_WR).
        guard connections[connection.socket.descriptor] === connection else { return }
        loop?.unwatch(connection.socket.descriptor)
        connections[connection.socket.descriptor] = nil
        connection.socket.close()
        resumeAccepting()
    }

    // MARK: - Timeouts

    private func enforceTimeouts() {
        resumeAccepting()
        let now = monotonicSeconds()
        for connection in Array(connections.values) {
            if connection.hasOutput {
                if now - connection.lastWriteProgress > limits.writeTimeout { close(connection) }
            } else if !connection.input.isEmpty || connection.requestsServed == 0 {
                // A head that trickles in (slowloris) gets this long in total.
                if now - connection.requestStarted > limits.readTimeout {
                    if connection.input.isEmpty {
                        // Connected and never said anything: just close.
                        close(connection)
                        continue
                    }
                    connection.input.removeAll()
                    enqueue(.text(408, "request head not received in time"), for: nil, on: connection, close: true)
                    flush(connection)
                }
            } else if now - connection.lastActivity > limits.idleTimeout {
                close(connection)
            }
        }
    }
}
