import AccessLogParser
import AccessLogReceiver
import FlagCounting
import LogSources
import Logging
import SystemCalls

/// Follows the sources and counts their lines: the file and journal followers, the sink every
/// line passes through, the streams' ids and each source's own counts. `flagwatch run` and
/// `scan --follow` both drive one; what they add around it (signals, systemd, HTTP, reports)
/// stays with them, so the engine runs the same in a test as in either command.
///
/// Everything runs on the ``PollLoop`` it is started on, in that loop's thread.
public final class Engine {
    /// Where every line is counted; shared with whoever reads the counts.
    public let counts: FlagCounts
    /// The sources followed now (replaced by ``reload(_:)``).
    public private(set) var sources: FollowedSources
    private let logger: Logger
    private let sink: PipelineSink
    /// Every follower over the engine's life (one at start, new ones at reloads) gets ids from
    /// a range of its own, so a replaced follower's ids are never reused.
    private var streamRanges = StreamIDRanges()
    private var loop: PollLoop?
    private var fileFollower: FileFollower?
    private var journalFollower: JournalFollower?
    /// One per receiving source, in the configured order.
    private var receivers: [AccessLogReceiver] = []
    /// The sources each follower was made with (its statistics are by index into them); they
    /// differ from ``sources`` when a reload could not replace a follower.
    private var followedFiles: [FileSourceSpec] = []
    private var followedJournals: [JournalSourceSpec] = []

    /// Why ``start(on:)`` could not open the sources.
    public enum StartError: Error {
        /// The file follower could not use the state directory.
        case fileSources(Errno)
        case journalSources(JournalError)
        /// A receiving source could not listen (address in use, unreadable certificate...).
        case receiver(source: String, reason: String)
    }

    /// - Parameter counts: where lines are counted (its windows, limits and flag groups are the
    ///   caller's business). The line-length cap is fixed here: pipelines are made with it.
    public init(counts: FlagCounts, sources: FollowedSources, logger: Logger) {
        self.counts = counts
        self.sources = sources
        self.logger = logger
        sink = PipelineSink(
            counts: counts, parsing: sources.parsing, maxLineLength: sources.options.maxLineLength,
            logger: logger)
    }

    /// Opens every source (file positions fixed now) and starts reading on `loop`.
    public func start(on loop: PollLoop) throws(StartError) {
        self.loop = loop
        do {
            fileFollower = try makeFileFollower(firstStream: streamRanges.fileFollower() ?? 1, handoff: [:])
        } catch {
            throw .fileSources(error)
        }
        if !sources.journals.isEmpty {
            do {
                journalFollower = try makeJournalFollower(
                    firstStream: streamRanges.journalFollower() ?? 1 << 62, handoff: [:])
            } catch {
                throw .journalSources(error)
            }
        }
        fileFollower?.start(on: loop)
        journalFollower?.start(on: loop)
        for spec in sources.receivers {
            do {
                receivers.append(try startReceiver(spec, on: loop))
            } catch {
                stopReceivers()
                throw .receiver(source: spec.name, reason: "\(error)")
            }
        }
        // File followers save their own positions; journal followers are told to (at the
        // interval the engine started with; a reload does not change it, as before the engine).
        loop.every(sources.options.checkpointInterval) { [unowned self] in
            journalFollower?.saveCheckpoints()
        }
    }

    /// Applies new sources without losing counts or positions: when any source changed, both
    /// followers are replaced (a changed follow option replaces the file follower only); each
    /// source kept by name resumes exactly where the old follower stood, so no line is lost or
    /// counted twice, and keeps its line counts. A receiving source whose settings are unchanged
    /// keeps its listener and streams; a changed one is stopped and started anew (its senders
    /// reconnect), a removed one stopped, an added one started. Failures are logged; the engine
    /// goes on with what it has. The line-length cap and the state directory stay as started.
    public func reload(_ new: FollowedSources) {
        var new = new
        new.options.maxLineLength = sources.options.maxLineLength
        new.options.stateDirectory = sources.options.stateDirectory
        let previous = sources
        sources = new
        sink.parsing = new.parsing
        guard let loop else { return }
        if new.receivers != previous.receivers
            || new.receivers.contains(where: { new.parsing[$0.name] != previous.parsing[$0.name] })
        {
            replaceReceivers(on: loop)
        }
        let sourcesChanged = new.sourcesDiffer(from: previous)
        if sourcesChanged || new.options != previous.options {
            replaceFileFollower(on: loop)
        }
        if sourcesChanged {
            replaceJournalFollower(on: loop)
        }
    }

    /// Stops the receiving sources' listeners (their streams end; Envoy reconnects to another
    /// replica or retries) after counting what they had received.
    public func stopReceivers() {
        guard let loop else { return }
        for receiver in receivers { receiver.stop(on: loop) }
        receivers = []
    }

    /// The port each receiving source listens on (by source name), for tests and the log.
    public var receiverPorts: [String: Int] {
        Dictionary(
            uniqueKeysWithValues: receivers.compactMap { receiver in receiver.boundPort.map { (receiver.spec.name, $0) }
            })
    }

    /// Reads what every source holds now (bounded), e.g. before a last report.
    public func catchUp() {
        fileFollower?.catchUp()
        journalFollower?.catchUp()
    }

    /// Saves every source's position. Returns whether all were saved (failures are logged by
    /// the followers; a restart resumes from the last good save).
    @discardableResult
    public func saveCheckpoints() -> Bool {
        let filesSaved = fileFollower?.saveCheckpoints() ?? true
        let journalsSaved = journalFollower?.saveCheckpoints() ?? true
        return filesSaved && journalsSaved
    }

    /// Formats the streams recognised so far (for `auto`), in the order first seen.
    public func recognizedFormats() -> [String] {
        sink.noteRecognizedFormats()
        return sink.recognizedFormats
    }

    /// One source's activity: what its follower reports and what its lines counted.
    public struct SourceActivity {
        public var name: String
        /// Bytes read, open streams and errors; nil while the source has no follower (one that
        /// failed to restart on a reload).
        public var statistics: SourceStatistics?
        /// The source's lines and malformed ones; nil before its first stream opened.
        public var lines: LineTally?
        /// What a receiving source dropped because the poll loop fell behind; nil for files
        /// and journals.
        public var receivedDrops: HandoffDrops? = nil
    }

    /// Every source now followed, files then journals, each in the configured order.
    public func sourceActivity() -> [SourceActivity] {
        let files = sources.files.map { spec in
            activity(spec.name, followedFiles.firstIndex { $0.name == spec.name }, fileFollower?.statistics(forSource:))
        }
        let journals = sources.journals.map { spec in
            activity(
                spec.name, followedJournals.firstIndex { $0.name == spec.name }, journalFollower?.statistics(forSource:)
            )
        }
        let received = sources.receivers.map { spec in
            SourceActivity(
                name: spec.name, statistics: nil, lines: sink.tallies[spec.name],
                receivedDrops: receivers.first { $0.spec.name == spec.name }?.queue.drops ?? HandoffDrops())
        }
        return files + journals + received
    }

    /// A source's statistics from its follower (at its index there) and its line tally.
    private func activity(
        _ name: String, _ index: Int?, _ statistics: ((Int) -> SourceStatistics)?
    ) -> SourceActivity {
        SourceActivity(
            name: name, statistics: index.flatMap { index in statistics.map { $0(index) } }, lines: sink.tallies[name])
    }

    // MARK: - Receivers

    /// A receiving source counting into its source's tally (kept by name across reloads).
    private func startReceiver(_ spec: ReceiverSourceSpec, on loop: PollLoop) throws -> AccessLogReceiver {
        let counter = ReceivedEntryCounter(counts: counts, tally: sink.tally(forSource: spec.name))
        // The source's format parses OTLP log records whose body is an access-log line.
        let receiver = try AccessLogReceiver(spec: spec, counter: counter, bodyFormat: bodyFormat(of: spec))
        try receiver.start(on: loop)
        return receiver
    }

    private func bodyFormat(of spec: ReceiverSourceSpec) -> LogFormat {
        sources.parsing[spec.name]?.format ?? .auto
    }

    /// Keeps the receivers whose settings did not change, stops the others and starts those of
    /// ``sources`` not running yet. A changed source may listen on the address its old listener
    /// is still releasing (grpc-swift closes it asynchronously), so its start is retried for a
    /// bounded time; a source that still cannot start is logged and not received until the
    /// next reload or restart (the old settings are not brought back: they were replaced).
    private func replaceReceivers(on loop: PollLoop) {
        var running: [String: AccessLogReceiver] = [:]
        for receiver in receivers {
            if sources.receivers.contains(receiver.spec) && receiver.bodyFormat == bodyFormat(of: receiver.spec) {
                running[receiver.spec.name] = receiver
            } else {
                receiver.stop(on: loop)
                logger.info("reload: grpc_access_log source \(receiver.spec.name) stopped")
            }
        }
        receivers = []
        for spec in sources.receivers {
            if let receiver = running[spec.name], receiver.spec == spec, receiver.bodyFormat == bodyFormat(of: spec) {
                receivers.append(receiver)
                continue
            }
            if let receiver = startReceiverRetrying(spec, on: loop) {
                receivers.append(receiver)
                logger.info("reload: grpc_access_log source \(spec.name) listening on port \(receiver.boundPort ?? 0)")
            }
        }
    }

    private func startReceiverRetrying(_ spec: ReceiverSourceSpec, on loop: PollLoop) -> AccessLogReceiver? {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(Self.receiverRestartBudgetSeconds)
        while true {
            do {
                return try startReceiver(spec, on: loop)
            } catch {
                guard clock.now < deadline else {
                    logger.error("reload: grpc_access_log source \(spec.name) not started: \(error)")
                    return nil
                }
                pauseThread(milliseconds: 100)
            }
        }
    }

    /// How long a reload waits for a changed receiver's address to be free again.
    static let receiverRestartBudgetSeconds = 3

    // MARK: - Followers

    private func makeFileFollower(firstStream: Int, handoff: [String: FileSourceHandoff]) throws(Errno) -> FileFollower
    {
        let follower = try FileFollower(
            sources: sources.files, options: sources.options, sink: sink, logger: logger,
            firstStream: firstStream, handoff: handoff)
        followedFiles = sources.files
        return follower
    }

    /// Nil without journal sources: no journal is opened.
    private func makeJournalFollower(firstStream: Int, handoff: [String: JournalSourceHandoff]) throws(JournalError)
        -> JournalFollower?
    {
        guard !sources.journals.isEmpty else {
            followedJournals = []
            return nil
        }
        let follower = try JournalFollower(
            sources: sources.journals, stateDirectory: sources.options.stateDirectory, sink: sink, logger: logger,
            firstStream: firstStream, handoff: handoff)
        follower.maxLineLength = sources.options.maxLineLength
        followedJournals = sources.journals
        return follower
    }

    /// The old follower reads what its files hold and hands its positions to the new one.
    private func replaceFileFollower(on loop: PollLoop) {
        guard let firstStream = streamRanges.fileFollower() else {
            logger.error("reload: file sources not restarted: stream ids used up (restart flagwatch)")
            return
        }
        let handoff = fileFollower?.stop(on: loop) ?? [:]
        fileFollower = nil
        followedFiles = []
        do {
            let follower = try makeFileFollower(firstStream: firstStream, handoff: handoff)
            follower.start(on: loop)
            fileFollower = follower
        } catch {
            // The state directory worked at startup; sources keep nothing but the handoff.
            logger.error("reload: file sources not restarted: \(error)")
        }
    }

    private func replaceJournalFollower(on loop: PollLoop) {
        guard let firstStream = streamRanges.journalFollower() else {
            logger.error("reload: journal sources not restarted: stream ids used up (restart flagwatch)")
            return
        }
        let handoff = journalFollower?.stop() ?? [:]
        journalFollower = nil
        followedJournals = []
        do {
            let follower = try makeJournalFollower(firstStream: firstStream, handoff: handoff)
            follower?.start(on: loop)
            journalFollower = follower
        } catch {
            logger.error("reload: journal sources not restarted: \(error)")
        }
    }
}
