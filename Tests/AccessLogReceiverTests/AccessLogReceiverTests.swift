import AccessLogParser
import AccessLogReceiver
import Dispatch
import FlagCounting
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SystemCalls
import Testing

/// Messages passed as raw bytes, as the receiver does (the test speaks Envoy's wire format by
/// hand, with ``alsMessage(cluster:entries:refused:)``).
struct RawBytesCodec: MessageSerializer, MessageDeserializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes { Bytes(message) }
    func deserialize<Bytes: GRPCContiguousBytes>(_ bytes: Bytes) throws -> [UInt8] {
        bytes.withUnsafeBytes { [UInt8]($0) }
    }
}

let streamAccessLogs = MethodDescriptor(
    fullyQualifiedService: "envoy.service.accesslog.v3.AccessLogService", method: "StreamAccessLogs")

/// Streams `messages` to 127.0.0.1:`port` on one StreamAccessLogs call; returns the response's bytes.
func stream(_ messages: [[UInt8]], to port: Int) async throws -> [UInt8] {
    try await withGRPCClient(
        transport: .http2NIOPosix(target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext)
    ) { client in
        try await client.clientStreaming(
            request: StreamingClientRequest(of: [UInt8].self) { writer in
                for message in messages { try await writer.write(message) }
            },
            descriptor: streamAccessLogs, serializer: RawBytesCodec(), deserializer: RawBytesCodec(),
            options: .defaults
        ) { response in try response.message }
    }
}

/// Runs `body` on a thread of its own. Not on Dispatch's global queues: on a 2-core machine,
/// tests that block their thread (a synchronous test running a poll loop, a receiver start
/// waiting for its server) could hold every thread of that pool, and a wake-up or a start
/// queued there waited out its test's deadline (seen in `make test`, on an idle machine).
func onOwnThread(_ body: @escaping @Sendable () -> Void) {
    Thread.detachNewThread(body)
}

/// Starts `receiver` from a thread of its own. `start(on:)` waits (bounded) for the server to
/// listen; waiting on one of the few cooperative threads that the server's own tasks need could
/// starve them (the daemon calls it from its main thread, which is not one of them).
func start(_ receiver: AccessLogReceiver, on loop: PollLoop) async throws {
    // The loop is not run while the tests stream; only start(on:) touches it, on that thread.
    nonisolated(unsafe) let loop = loop
    nonisolated(unsafe) let receiver = receiver
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
        onOwnThread {
            do {
                // Other suites' tests may hold the cooperative threads the server's tasks need.
                try receiver.start(on: loop, startupBudgetSeconds: 120)
                continuation.resume()
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }
}

/// A receiver on a kernel-chosen port of 127.0.0.1, started, with what it counts into.
struct RunningReceiver {
    let counts = FlagCounts()
    let tally = LineTally()
    let loop = PollLoop()
    let receiver: AccessLogReceiver
    let port: Int

    init(limits: ReceiverLimits = ReceiverLimits(), bodyFormat: LogFormat = .auto) async throws {
        receiver = try AccessLogReceiver(
            spec: ReceiverSourceSpec(name: "mesh", host: "127.0.0.1", port: 0, limits: limits),
            counter: ReceivedEntryCounter(counts: counts, tally: tally), bodyFormat: bodyFormat)
        try await start(receiver, on: loop)
        port = try #require(receiver.boundPort)
    }

    /// Stops the server and counts what it had received.
    func stop() { receiver.stop(on: loop) }
}

@Suite("The gRPC access-log receiver on 127.0.0.1")
struct AccessLogReceiverTests {
    @Test("one StreamAccessLogs call of 3 messages (2, 3 and 4 entries) counts 9 lines; the answer is empty")
    func oneStream() async throws {
        let running = try await RunningReceiver()
        let response = try await stream(
            [
                alsMessage(cluster: "a", entries: 2), alsMessage(cluster: "b", entries: 3),
                alsMessage(cluster: "a", entries: 4, refused: false),
            ], to: running.port)
        #expect(response == [])
        running.stop()
        #expect(running.counts.lines == 9)
        #expect(running.tally.lines == 9)
        let byName = Dictionary(uniqueKeysWithValues: running.counts.allClusters.map { ($0.name, $0) })
        #expect(byName["a"]?.requests == 6)
        #expect(byName["a"]?.flags == [.upstreamConnectionFailure: 2])
        #expect(byName["b"]?.flags == [.upstreamConnectionFailure: 3])
        #expect(running.receiver.queue.drops == HandoffDrops())
    }

    @Test("a garbage message counts 1 bad_protobuf and the stream goes on: the next message's 2 entries count")
    func garbageMessage() async throws {
        let running = try await RunningReceiver()
        _ = try await stream([[0x12, 0x7F, 0x00], alsMessage(cluster: "a", entries: 2)], to: running.port)
        running.stop()
        #expect(running.counts.lines == 3)
        #expect(running.tally.malformedCount(LineDefect(.badProtobuf)) == 1)
    }

    @Test("a message larger than max_message_size ends its stream with an error and is not counted")
    func oversizedMessage() async throws {
        var limits = ReceiverLimits()
        limits.maxMessageBytes = 1024
        let running = try await RunningReceiver(limits: limits)
        await #expect(throws: RPCError.self) {
            _ = try await stream([alsMessage(cluster: "a", entries: 100)], to: running.port)
        }
        running.stop()
        #expect(running.counts.lines == 0)
    }

    @Test(
        "a stream silent for stream_idle_timeout (1 s) ends with UNAVAILABLE; its message counts, the next call ends normally"
    )
    func idleStream() async throws {
        var limits = ReceiverLimits()
        limits.streamIdleTimeoutSeconds = 1
        let running = try await RunningReceiver(limits: limits)
        let started = ContinuousClock.now
        let failure = await #expect(throws: RPCError.self) {
            _ = try await withGRPCClient(
                transport: .http2NIOPosix(
                    target: .ipv4(address: "127.0.0.1", port: running.port), transportSecurity: .plaintext)
            ) { client in
                try await client.clientStreaming(
                    request: StreamingClientRequest(of: [UInt8].self) { writer in
                        try await writer.write(alsMessage(cluster: "quiet", entries: 2))
                        // Silent for longer than the timeout; the server ends the call meanwhile.
                        try await Task.sleep(for: .seconds(3))
                    },
                    descriptor: streamAccessLogs, serializer: RawBytesCodec(), deserializer: RawBytesCodec(),
                    options: .defaults
                ) { response in try response.message }
            }
        }
        #expect(failure?.code == .unavailable, "\(String(describing: failure))")
        #expect(failure?.message.contains("stream_idle_timeout") == true)
        #expect(ContinuousClock.now - started >= .seconds(1))
        // A stream that sends and ends within the timeout ends normally on the same server.
        let busy = try await stream((0..<6).map { _ in alsMessage(cluster: "busy", entries: 1) }, to: running.port)
        #expect(busy == [])
        running.stop()
        #expect(running.counts.lines == 2 + 6)
    }

    @Test("a second receiver on the same port fails to start, naming the address in use")
    func portInUse() async throws {
        let first = try AccessLogReceiver(
            spec: ReceiverSourceSpec(name: "one", host: "127.0.0.1", port: 0),
            counter: ReceivedEntryCounter(counts: FlagCounts()))
        let loop = PollLoop()
        try await start(first, on: loop)
        let port = try #require(first.boundPort)
        let second = try AccessLogReceiver(
            spec: ReceiverSourceSpec(name: "two", host: "127.0.0.1", port: port),
            counter: ReceivedEntryCounter(counts: FlagCounts()))
        let failure = await #expect(throws: AccessLogReceiver.StartError.self) { try await start(second, on: loop) }
        #expect(failure?.description.contains("in use") == true, "\(String(describing: failure))")
        first.stop(on: loop)
    }
}
