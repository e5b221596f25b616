import Synchronization
import SystemCalls

/// How much received data may wait for the poll loop. Both bounds hold at once: the queue never
/// holds more than `maxMessages` messages nor more than `maxBytes` bytes of them.
public struct HandoffLimits: Sendable, Equatable {
    public var maxMessages: Int
    public var maxBytes: Int

    /// 4,096 messages or 16 MiB: at Envoy's default 16 KiB ALS batches, a second or more of a
    /// busy gateway's entries while the loop answers a scrape or reads files.
    public init(maxMessages: Int = 4_096, maxBytes: Int = 16 * 1024 * 1024) {
        self.maxMessages = max(1, maxMessages)
        self.maxBytes = max(1, maxBytes)
    }
}

/// What the queue dropped because it was full, since it was made.
public struct HandoffDrops: Sendable, Equatable {
    public var messages: UInt64 = 0
    public var entries: UInt64 = 0
    public var bytes: UInt64 = 0
    /// Messages the transport rejected before they reached the queue (the stream was reset:
    /// over max_message_size, compressed without grpc-encoding, broken framing). Their entries
    /// are unknown: the bytes were never read.
    public var rejectedMessages: UInt64 = 0
    public init() {}
}

/// Which service a received message came in on, so the poll loop decodes it with the right
/// decoder. Both arrive on one port and share one queue, so their order is kept.
public enum ReceivedMessageKind: Sendable, Equatable {
    /// `envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs`: a `StreamAccessLogsMessage`.
    case envoyAccessLog
    /// `opentelemetry.proto.collector.logs.v1.LogsService/Export`: an `ExportLogsServiceRequest`.
    case otlpLogs
}

/// A message as received: its service and its bytes.
public struct ReceivedMessage: Sendable, Equatable {
    public var kind: ReceivedMessageKind
    public var bytes: [UInt8]

    public init(kind: ReceivedMessageKind, bytes: [UInt8]) {
        self.kind = kind
        self.bytes = bytes
    }
}

/// The one place received messages cross from the network threads (grpc-swift's event loops)
/// to the poll loop, where the counts live: a fixed-capacity ring under a `Mutex`, and an
/// `eventfd` the loop watches.
///
/// **Where entries are dropped.** When the loop falls behind the senders and the ring is full
/// (by messages or by bytes), ``offer(_:entryCount:)`` drops the whole message and counts it,
/// with its entries (`flagwatch_received_dropped_*`): the sender is not slowed down, because
/// Envoy's access-log service is lossy by design and a slow receiver must not hold its
/// connections' memory either. Nothing else here grows: memory is bounded by
/// ``HandoffLimits/maxBytes`` plus one message being decoded.
public final class ReceivedMessageQueue: Sendable {
    private struct State {
        var slots: [ReceivedMessage]
        var head = 0
        var count = 0
        var bytes = 0
        var drops = HandoffDrops()
    }

    public let limits: HandoffLimits
    /// Readable when messages wait: the loop watches it.
    public let wakeup: EventDescriptor
    private let state: Mutex<State>

    public init(limits: HandoffLimits = HandoffLimits()) throws(Errno) {
        self.limits = limits
        wakeup = try EventDescriptor()
        state = Mutex(
            State(
                slots: [ReceivedMessage](
                    repeating: ReceivedMessage(kind: .envoyAccessLog, bytes: []), count: limits.maxMessages)))
    }

    /// Hands a message over (from any thread). Returns false when it was dropped (and counted)
    /// because the queue is full. `entryCount` is counted as dropped entries then: the caller
    /// knows it cheaply (``AccessLogParser/EnvoyAccessLogDecoder/entryCount(in:)``, the log
    /// records of an OTLP request), and only needs it on this path, so the closure is called
    /// only when dropping.
    @discardableResult
    public func offer(_ message: [UInt8], kind: ReceivedMessageKind = .envoyAccessLog, entryCount: () -> Int) -> Bool {
        let size = message.count
        let outcome: (accepted: Bool, wasEmpty: Bool) = state.withLock { state in
            guard state.count < limits.maxMessages, state.bytes + size <= limits.maxBytes else {
                return (false, false)
            }
            let tail = (state.head + state.count) % limits.maxMessages
            state.slots[tail] = ReceivedMessage(kind: kind, bytes: message)
            state.count += 1
            state.bytes += size
            return (true, state.count == 1)
        }
        guard outcome.accepted else {
            let entries = UInt64(max(0, entryCount()))
            state.withLock { state in
                state.drops.messages += 1
                state.drops.entries += entries
                state.drops.bytes += UInt64(size)
            }
            return false
        }
        // The loop empties the queue each time it wakes, so one signal per empty → non-empty
        // transition is enough and a busy sender costs no system call per message.
        if outcome.wasEmpty { wakeup.signal() }
        return true
    }

    /// Takes up to `limit` waiting messages, oldest first, into `batch` (emptied first), so the
    /// loop decodes them outside the lock. Returns whether more are waiting.
    public func take(upTo limit: Int, into batch: inout [ReceivedMessage]) -> Bool {
        batch.removeAll(keepingCapacity: true)
        return state.withLock { state in
            let taken = min(limit, state.count)
            for _ in 0..<taken {
                batch.append(state.slots[state.head])
                state.slots[state.head].bytes = []
                state.bytes -= batch[batch.count - 1].bytes.count
                state.head = (state.head + 1) % limits.maxMessages
                state.count -= 1
            }
            return state.count > 0
        }
    }

    /// Counts one message the transport rejected (``HandoffDrops/rejectedMessages``).
    public func noteRejectedMessage() {
        state.withLock { $0.drops.rejectedMessages += 1 }
    }

    /// Messages waiting now.
    public var waitingCount: Int { state.withLock { $0.count } }

    public var drops: HandoffDrops { state.withLock { $0.drops } }
}
