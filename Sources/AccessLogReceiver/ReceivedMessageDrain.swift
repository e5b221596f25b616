import AccessLogParser
import FlagCounting
import SystemCalls

/// The poll-loop side of a receiving source: wakes on its queue's `eventfd`, decodes each
/// waiting message in place (a `StreamAccessLogsMessage` or an OTLP `ExportLogsServiceRequest`,
/// by the service it came in on) and counts its entries as the source's lines.
///
/// One wake-up decodes at most ``messagesPerWakeup`` messages, then wakes itself again, so a
/// flood of received entries takes turns with file reads and scrapes instead of starving them.
public final class ReceivedMessageDrain {
    public let queue: ReceivedMessageQueue
    public let counter: ReceivedEntryCounter
    private let decoder: EnvoyAccessLogDecoder
    /// Parses OTLP log records; its body parser keeps the format variant last matched.
    private var otlpDecoder: OTLPLogsDecoder
    /// Reused between wake-ups: no allocation per batch once it has grown.
    private var batch: [ReceivedMessage] = []
    /// Messages whose framing was broken (their entries after the break are lost).
    public private(set) var malformedMessages: UInt64 = 0
    /// Messages decoded, well-formed or not.
    public private(set) var messagesDecoded: UInt64 = 0

    public static let messagesPerWakeup = 64

    /// - Parameter bodyFormat: how an OTLP log record's string body is parsed (the source's
    ///   `format`); throws when it is a format string that does not compile.
    public init(
        queue: ReceivedMessageQueue, counter: ReceivedEntryCounter, fields: RecordFieldSet,
        bodyFormat: LogFormat = .auto
    ) throws(FormatStringError) {
        self.queue = queue
        self.counter = counter
        decoder = EnvoyAccessLogDecoder(fields: fields)
        otlpDecoder = try OTLPLogsDecoder(bodyFormat: bodyFormat, fields: fields)
    }

    public func start(on loop: PollLoop) {
        loop.watch(queue.wakeup.descriptor.rawValue) { [unowned self] _ in
            queue.wakeup.consume()
            if drainOnce() { queue.wakeup.signal() }
        }
    }

    public func stop(on loop: PollLoop) {
        loop.unwatch(queue.wakeup.descriptor.rawValue)
    }

    /// Decodes and counts up to ``messagesPerWakeup`` waiting messages; returns whether more wait.
    @discardableResult
    public func drainOnce() -> Bool {
        let more = queue.take(upTo: Self.messagesPerWakeup, into: &batch)
        for message in batch {
            count(message)
        }
        batch.removeAll(keepingCapacity: true)
        return more
    }

    private func count(_ message: ReceivedMessage) {
        messagesDecoded += 1
        message.bytes.withUnsafeBytes { bytes in
            do throws(ProtobufWireDefect) {
                switch message.kind {
                case .envoyAccessLog:
                    _ = try decoder.decodeStreamAccessLogsMessage(bytes) { entry in counter.count(entry) }
                case .otlpLogs:
                    try otlpDecoder.decodeExportRequest(bytes) { entry in counter.count(entry) }
                }
            } catch {
                // The entries before the break were counted; the break itself counts once.
                malformedMessages += 1
                counter.count(LineDefect(.badProtobuf))
            }
        }
    }
}
