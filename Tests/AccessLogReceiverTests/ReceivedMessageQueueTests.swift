import AccessLogParser
import AccessLogReceiver
import Dispatch
import FlagCounting
import Foundation
import SystemCalls
import Testing

func varint(_ value: Int) -> [UInt8] {
    var value = value
    var bytes: [UInt8] = []
    repeat {
        let low = UInt8(value & 0x7F)
        value >>= 7
        bytes.append(value > 0 ? low | 0x80 : low)
    } while value > 0
    return bytes
}

/// A length-delimited protobuf field: the tag and the length as varints, then the bytes.
func lengthDelimitedField(_ number: Int, _ body: [UInt8]) -> [UInt8] {
    varint(number << 3 | 2) + varint(body.count) + body
}

/// A `StreamAccessLogsMessage` with `entries` HTTP entries of `cluster`, each a 503 with UF
/// (`AccessLogCommon.response_flags.upstream_connection_failure`, field 6) when `refused`.
func alsMessage(cluster: String, entries: Int, refused: Bool = true) -> [UInt8] {
    var common = lengthDelimitedField(15, Array(cluster.utf8))
    if refused { common += lengthDelimitedField(16, [0x30, 0x01]) }
    let response = lengthDelimitedField(1, [0x08, 0xF7, 0x03])  // UInt32Value { value: 503 }
    let entry = lengthDelimitedField(1, lengthDelimitedField(1, common) + lengthDelimitedField(4, response))
    return lengthDelimitedField(2, [UInt8]((0..<entries).flatMap { _ in entry }))
}

func entryCount(_ message: [UInt8]) -> Int {
    message.withUnsafeBytes { EnvoyAccessLogDecoder.entryCount(in: $0) }
}

@Suite("The bounded handoff from network threads to the poll loop")
struct ReceivedMessageQueueTests {
    @Test("a queue of 2 messages keeps the first 2 and drops the next 2, counting their 6 entries and bytes")
    func dropsWhenFullByMessages() throws {
        let queue = try ReceivedMessageQueue(limits: HandoffLimits(maxMessages: 2))
        let message = alsMessage(cluster: "a", entries: 3)
        let accepted = (0..<4).map { _ in queue.offer(message) { entryCount(message) } }
        #expect(accepted == [true, true, false, false])
        #expect(queue.waitingCount == 2)
        #expect(queue.drops.messages == 2)
        #expect(queue.drops.entries == 6)
        #expect(queue.drops.bytes == UInt64(2 * message.count))
    }

    @Test("a queue bounded by bytes drops the message that would pass the bound, and takes it again once drained")
    func dropsWhenFullByBytes() throws {
        let message = alsMessage(cluster: "a", entries: 1)
        let queue = try ReceivedMessageQueue(limits: HandoffLimits(maxMessages: 100, maxBytes: 2 * message.count))
        #expect(queue.offer(message) { 1 })
        #expect(queue.offer(message) { 1 })
        #expect(!queue.offer(message) { 1 })
        var batch: [ReceivedMessage] = []
        #expect(!queue.take(upTo: 10, into: &batch))
        #expect(batch.count == 2)
        #expect(queue.offer(message) { 1 })
        #expect(queue.drops.messages == 1)
        #expect(queue.drops.entries == 1)
    }

    @Test("take hands out at most the limit, oldest first, and says that 1 more waits")
    func takesInOrder() throws {
        let queue = try ReceivedMessageQueue(limits: HandoffLimits(maxMessages: 4))
        for entries in 1...3 { queue.offer(alsMessage(cluster: "c\(entries)", entries: entries)) { entries } }
        var batch: [ReceivedMessage] = []
        #expect(queue.take(upTo: 2, into: &batch))
        #expect(batch.map { entryCount($0.bytes) } == [1, 2])
        #expect(!queue.take(upTo: 2, into: &batch))
        #expect(batch.map { entryCount($0.bytes) } == [3])
        // The ring wraps: 4 more fit after the 3 taken.
        for _ in 0..<4 { #expect(queue.offer(alsMessage(cluster: "d", entries: 1)) { 1 }) }
        #expect(queue.waitingCount == 4)
    }

    @Test("the entry count is asked for only when a message is dropped")
    func entryCountOnlyOnDrop() throws {
        let queue = try ReceivedMessageQueue(limits: HandoffLimits(maxMessages: 1))
        var asked = 0
        queue.offer(alsMessage(cluster: "a", entries: 1)) {
            asked += 1
            return 1
        }
        #expect(asked == 0)
        queue.offer(alsMessage(cluster: "a", entries: 1)) {
            asked += 1
            return 1
        }
        #expect(asked == 1)
    }
}

@Suite("Counting received messages on the poll loop")
struct ReceivedMessageDrainTests {
    @Test("2 messages of 3 and 29 entries count 32 lines in the counts and in the source's tally")
    func countsEntriesAsLines() throws {
        let counts = FlagCounts()
        let tally = LineTally()
        let queue = try ReceivedMessageQueue()
        let drain = try ReceivedMessageDrain(
            queue: queue, counter: ReceivedEntryCounter(counts: counts, tally: tally),
            fields: .countingWithFailureDetails)
        queue.offer(alsMessage(cluster: "outbound|9001||payments", entries: 3)) { 3 }
        queue.offer(alsMessage(cluster: "outbound|8080||reviews", entries: 29, refused: false)) { 29 }
        #expect(!drain.drainOnce())
        #expect(counts.lines == 32)
        #expect(tally.lines == 32)
        #expect(counts.malformedTotal == 0)
        #expect(drain.messagesDecoded == 2)
        let byName = Dictionary(uniqueKeysWithValues: counts.allClusters.map { ($0.name, $0) })
        let payments = try #require(byName["outbound|9001||payments"])
        let reviews = try #require(byName["outbound|8080||reviews"])
        #expect(payments.requests == 3)
        #expect(payments.flags == [.upstreamConnectionFailure: 3])
        #expect(reviews.requests == 29)
        #expect(reviews.flags == [:])
        #expect(reviews.codes[5] == 29)
    }

    @Test("a message whose third entry is cut short counts its 2 whole entries and 1 bad_protobuf")
    func brokenMessage() throws {
        let counts = FlagCounts()
        let tally = LineTally()
        let queue = try ReceivedMessageQueue()
        let drain = try ReceivedMessageDrain(
            queue: queue, counter: ReceivedEntryCounter(counts: counts, tally: tally), fields: .counting)
        let whole = alsMessage(cluster: "a", entries: 2)
        // The 2 entries (after http_logs' tag and one-byte length), then a log_entry that
        // announces 64 bytes which are not there.
        let entries = Array(whole.dropFirst(2)) + [0x0A, 0x40, 0x0A]
        queue.offer(lengthDelimitedField(2, entries)) { 2 }
        drain.drainOnce()
        #expect(counts.lines == 3)
        #expect(tally.lines == 3)
        #expect(tally.malformedCount(LineDefect(.badProtobuf)) == 1)
        #expect(counts.malformedCount(LineDefect(.badProtobuf)) == 1)
        #expect(drain.malformedMessages == 1)
        #expect(drain.messagesDecoded == 1)
    }

    @Test(
        "4 threads offer 500 messages each into a queue of 16 while the loop drains: every message is counted or dropped"
    )
    func concurrentProducers() throws {
        let counts = FlagCounts()
        let tally = LineTally()
        let queue = try ReceivedMessageQueue(limits: HandoffLimits(maxMessages: 16))
        let drain = try ReceivedMessageDrain(
            queue: queue, counter: ReceivedEntryCounter(counts: counts, tally: tally), fields: .counting)
        let loop = PollLoop()
        drain.start(on: loop)
        let producers = DispatchGroup()
        for thread in 0..<4 {
            producers.enter()
            onOwnThread {
                let message = alsMessage(cluster: "c\(thread)", entries: 2)
                for _ in 0..<500 { queue.offer(message) { 2 } }
                producers.leave()
            }
        }
        // The loop runs until the producers are done and the queue is empty, or 20 s.
        let deadline = monotonicSeconds() + 20
        loop.every(0.01) {
            if (producers.wait(timeout: .now()) == .success && queue.waitingCount == 0) || monotonicSeconds() > deadline
            {
                loop.stop()
            }
        }
        loop.run()
        drain.stop(on: loop)
        let drops = queue.drops
        #expect(queue.waitingCount == 0)
        #expect(drain.messagesDecoded + drops.messages == 2_000)
        #expect(UInt64(counts.lines) == 2 * drain.messagesDecoded)
        #expect(tally.lines == 2 * drain.messagesDecoded)
        #expect(drops.entries == 2 * drops.messages)
    }

    @Test("an offer from another thread wakes a sleeping loop, which counts the message's 5 entries")
    func wakesTheLoop() throws {
        let counts = FlagCounts()
        let queue = try ReceivedMessageQueue()
        let drain = try ReceivedMessageDrain(
            queue: queue, counter: ReceivedEntryCounter(counts: counts), fields: .counting)
        let loop = PollLoop()
        let deadline = monotonicSeconds() + 10
        // No timer polls the queue: only the eventfd can wake the loop before the deadline timer.
        loop.every(10) { loop.stop() }
        loop.watch(queue.wakeup.descriptor.rawValue) { _ in
            queue.wakeup.consume()
            drain.drainOnce()
            if counts.lines == 5 { loop.stop() }
        }
        onOwnThread {
            Thread.sleep(forTimeInterval: 0.05)
            queue.offer(alsMessage(cluster: "a", entries: 5)) { 5 }
        }
        loop.run()
        #expect(counts.lines == 5)
        #expect(monotonicSeconds() < deadline)
    }
}
