import Logging
import SystemCalls

/// A configured journal source: which entries of which journal.
public struct JournalSourceSpec: Sendable, Equatable {
    public var name: String
    /// journalctl's match syntax: `FIELD=VALUE` strings; values of one field are ORed,
    /// different fields ANDed, and a `"+"` between two groups ORs the groups
    /// (`["_SYSTEMD_UNIT=envoy.service", "+", "CONTAINER_NAME=istio-proxy"]`). Empty: every entry.
    public var matches: [String]
    /// Reads the journal files in this directory (and its machine-id subdirectories) instead of
    /// the local machine's journal.
    public var directory: String?
    /// Where reading starts when the source has no checkpoint.
    public var startAt: StartPosition

    public init(name: String, matches: [String], directory: String? = nil, startAt: StartPosition = .end) {
        self.name = name
        self.matches = matches
        self.directory = directory
        self.startAt = startAt
    }
}

/// Why journal sources could not be set up.
public struct JournalError: Error, CustomStringConvertible, Equatable {
    public enum Reason: Sendable, Equatable {
        /// A match is not `FIELD=VALUE` with a valid field name (`problem` says what is wrong).
        case badMatch(String, problem: String)
        /// `+` at the start or end of the matches, or twice in a row.
        case misplacedDisjunction
        /// Two journal sources have the same name (their checkpoints would overwrite each other).
        case duplicateSource
        case cannotOpen(directory: String?, Errno)
        case cannotUseStateDirectory(String, Errno)
    }

    /// The source's name, when the error is about one source.
    public var source: String?
    public var reason: Reason

    public init(source: String?, reason: Reason) {
        self.source = source
        self.reason = reason
    }

    public var description: String {
        let prefix = source.map { "journal source \($0): " } ?? ""
        switch reason {
        case .badMatch(let match, let problem):
            return prefix + "bad journal match \"\(match)\": \(problem)"
        case .misplacedDisjunction:
            return prefix + "\"+\" must stand between two matches (it ORs the matches before it with those after it)"
        case .duplicateSource:
            return prefix + "two journal sources have this name"
        case .cannotOpen(let directory, let error):
            return prefix + "cannot open " + (directory.map { "the journal in \($0)" } ?? "the local journal")
                + ": \(error)"
        case .cannotUseStateDirectory(let path, let error):
            return prefix + "cannot use state directory \(path): \(error)"
        }
    }
}

/// One element of a journal source's matches, in journalctl's syntax.
public enum JournalMatch: Sendable, Equatable {
    /// `FIELD=VALUE`: the entry has this field with exactly this value (the value may be empty
    /// and may contain `=`).
    case field(name: String, value: String)
    /// `+`: ORs the matches before it with those after it.
    case disjunction

    /// journald's own limit on field names.
    public static let maximumFieldNameLength = 64

    /// Parses one match.
    public init(parsing text: String) throws(JournalError) {
        if text == "+" {
            self = .disjunction
            return
        }
        guard let equals = text.firstIndex(of: "=") else {
            throw JournalError(
                source: nil,
                reason: .badMatch(text, problem: "expected FIELD=VALUE, e.g. SYSLOG_IDENTIFIER=envoy, or \"+\""))
        }
        let name = String(text[..<equals])
        if let problem = Self.fieldNameProblem(name) {
            throw JournalError(source: nil, reason: .badMatch(text, problem: problem))
        }
        self = .field(name: name, value: String(text[text.index(after: equals)...]))
    }

    /// Parses a source's matches and checks where the `+`s stand.
    public static func parse(_ texts: [String], source: String? = nil) throws(JournalError) -> [JournalMatch] {
        var matches: [JournalMatch] = []
        for text in texts {
            do {
                matches.append(try JournalMatch(parsing: text))
            } catch {
                throw JournalError(source: source, reason: error.reason)
            }
        }
        // journalctl ignores a stray "+", but one usually means a group was left out.
        for (index, match) in matches.enumerated() where match == .disjunction {
            if index == 0 || index == matches.count - 1 || matches[index - 1] == .disjunction {
                throw JournalError(source: source, reason: .misplacedDisjunction)
            }
        }
        return matches
    }

    /// What is wrong with a field name, or nil. journald's rule: upper-case ASCII letters,
    /// digits and `_`, not starting with a digit, at most 64 characters. Names starting with
    /// `__` (`__CURSOR`, `__REALTIME_TIMESTAMP`) are an entry's address, not its data, and
    /// libsystemd cannot match them.
    static func fieldNameProblem(_ name: String) -> String? {
        if name.isEmpty { return "the field name before \"=\" is empty" }
        let isAllowed = name.utf8.allSatisfy {
            ($0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z")) || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9"))
                || $0 == UInt8(ascii: "_")
        }
        if !isAllowed {
            return
                "field names are upper-case letters, digits and \"_\" (journal fields are upper case: SYSLOG_IDENTIFIER, _SYSTEMD_UNIT)"
        }
        if let first = name.utf8.first, first >= UInt8(ascii: "0") && first <= UInt8(ascii: "9") {
            return "a field name cannot start with a digit"
        }
        if name.hasPrefix("__") { return "fields starting with \"__\" are not entry data and cannot be matched" }
        if name.utf8.count > maximumFieldNameLength {
            return "field names are at most \(maximumFieldNameLength) characters"
        }
        return nil
    }

    /// The text libsystemd takes.
    var matchText: String? {
        switch self {
        case .field(let name, let value): name + "=" + value
        case .disjunction: nil
        }
    }
}

/// Follows journal sources through libsystemd: each source is one `sd_journal` reader with its
/// matches, woken by the journal's inotify descriptor on the ``PollLoop``, and hands each
/// entry's `MESSAGE` to the sink as one line.
///
/// Position: the cursor of the last entry handed on, saved in the state directory, plus the
/// wall-clock time the journal was last read to its end (for a source that has matched
/// nothing yet). Journal rotation and vacuuming are libsystemd's business: it opens new files
/// and drops deleted ones when ``Journal/process()`` is called, and its position survives that.
/// Where a journal source stands when its follower is replaced: what the next one resumes from.
public struct JournalSourceHandoff: Sendable {
    public var checkpoint: JournalCheckpoint?
    public var statistics: SourceStatistics
}

public final class JournalFollower {
    /// Messages longer than this are skipped without being copied or decompressed further
    /// (reported to the sink as a skipped long line). Set it to the pipeline's cap before
    /// ``start(on:)``; the default leaves the decision to a pipeline with any cap up to 1 MiB.
    public var maxLineLength = 1024 * 1024

    /// Message bytes read from one source before the loop gets to do something else.
    static let readBudget = 4 * 1024 * 1024
    /// Entries read from one source before the loop gets to do something else (entries
    /// without a message, or short ones, cost too).
    static let entriesPerRound = 16 * 1024
    /// Resuming without a cursor goes back this far before the saved time: journald stamps a
    /// datagram with the time it was received, which under load can be a while before the entry
    /// is written and visible. No entry read before is read again, since without a cursor none
    /// matched.
    static let resumeLagMicroseconds: UInt64 = 10_000_000
    /// How often a journal without an inotify descriptor is looked at.
    static let pollingInterval = 1.0

    private let sources: [JournalSourceSpec]
    private unowned let sink: any LineSink
    private let logger: Logger
    /// Nil: positions are not saved (no state directory).
    private var checkpoints: CheckpointKeeper?
    private let journals: [FollowedJournal]
    private var statistics: [SourceStatistics]
    /// Sources with entries to read now.
    private var pending = Set<Int>()
    private weak var loop: PollLoop?
    private var started = false
    private var busyHook: PollLoop.BusyHookID?

    final class FollowedJournal {
        let source: Int
        let stream: StreamID
        let journal: Journal
        /// libsystemd's inotify descriptor; nil while it could not set one up (then the journal
        /// is looked at on a timer).
        var descriptor: Int32?
        /// Whether the descriptor is registered with the loop (not while `process` fails).
        var isWatched = false
        let saved: JournalCheckpoint?
        /// The last entry handed on (or the entry reading started after).
        var cursor: String?
        /// The current entry changed since `cursor` was taken.
        var cursorIsStale = false
        /// After seeking to a cursor whose entry is gone, the reader stands on the first entry
        /// after it, which has not been handed on yet.
        var standsOnUnreadEntry = false
        /// Wall clock (µs) before the last read that reached the end of the journal.
        var readUntil: UInt64?
        var deadlineTimer: PollLoop.TimerID?
        var pollingTimer: PollLoop.TimerID?
        /// Errors already logged, so each is logged once until it clears.
        var reportedErrors = Set<String>()

        init(source: Int, stream: StreamID, journal: Journal, descriptor: Int32?, saved: JournalCheckpoint?) {
            self.source = source
            self.stream = stream
            self.journal = journal
            self.descriptor = descriptor
            self.saved = saved
        }
    }

    /// Opens every source's journal and adds its matches (no reading until ``start(on:)``).
    /// - Parameter firstStream: stream ids handed out start here (one per source), so they do
    ///   not collide with other followers' ids.
    /// - Parameter handoff: positions and statistics of a follower this one replaces (a reload),
    ///   by source name: those sources resume exactly there, ahead of any saved checkpoint.
    public init(
        sources: [JournalSourceSpec], stateDirectory: String?, sink: any LineSink, logger: Logger,
        firstStream: Int, handoff: [String: JournalSourceHandoff] = [:]
    ) throws(JournalError) {
        self.sources = sources
        self.sink = sink
        self.logger = logger
        var names = Set<String>()
        for source in sources where !names.insert(source.name).inserted {
            throw JournalError(source: source.name, reason: .duplicateSource)
        }
        var parsedMatches: [[JournalMatch]] = []
        for source in sources { parsedMatches.append(try JournalMatch.parse(source.matches, source: source.name)) }
        var checkpoints: CheckpointKeeper?
        if let stateDirectory {
            do {
                checkpoints = CheckpointKeeper(store: try CheckpointStore(directory: stateDirectory))
            } catch {
                throw JournalError(source: nil, reason: .cannotUseStateDirectory(stateDirectory, error))
            }
        }
        var statistics = Array(repeating: SourceStatistics(), count: sources.count)
        var journals: [FollowedJournal] = []
        for (index, source) in sources.enumerated() {
            let journal = try Self.open(source, matches: parsedMatches[index])
            // Asked for before anything is read: it also sets up the inotify watches, so no
            // file created from now on goes unnoticed.
            var descriptor: Int32?
            do {
                descriptor = try journal.fileDescriptor()
            } catch {
                statistics[index].count(.journalError)
                logger.error(
                    "journal source \(source.name): cannot watch the journal (\(error)); looking at it every \(Self.pollingInterval) s"
                )
            }
            var saved: JournalCheckpoint?
            if let loaded = checkpoints?.load(
                source: source.name, described: "journal source \(source.name)",
                statistics: &statistics[index], logger: logger)
            {
                saved = loaded.checkpoint.journal
                // Unchanged, it is not written again.
                checkpoints?.remember(loaded.checkpoint)
            }
            if let previous = handoff[source.name] {
                saved = previous.checkpoint
                statistics[index] = previous.statistics
            }
            journals.append(
                FollowedJournal(
                    source: index, stream: StreamID(firstStream + index), journal: journal, descriptor: descriptor,
                    saved: saved))
        }
        self.journals = journals
        self.statistics = statistics
        self.checkpoints = checkpoints
    }

    private static func open(_ source: JournalSourceSpec, matches: [JournalMatch]) throws(JournalError) -> Journal {
        let journal: Journal
        do {
            if let directory = source.directory {
                journal = try Journal.open(directory: directory)
            } else {
                journal = try Journal.openLocal()
            }
        } catch {
            throw JournalError(source: source.name, reason: .cannotOpen(directory: source.directory, error))
        }
        for match in matches {
            do {
                if let text = match.matchText {
                    try journal.addMatch(text)
                } else {
                    try journal.addDisjunction()
                }
            } catch {
                // Only memory exhaustion or a match our checks let through end up here.
                let text = match.matchText ?? "+"
                throw JournalError(
                    source: source.name, reason: .badMatch(text, problem: "libsystemd refused it: \(error)"))
            }
        }
        return journal
    }

    public func statistics(forSource index: Int) -> SourceStatistics { statistics[index] }

    /// Positions every source (its checkpoint, else its start position; fixed now), announces
    /// its stream, and registers with `loop`. Entries are read by the loop.
    public func start(on loop: PollLoop) {
        guard !started else { return }
        started = true
        self.loop = loop
        for followed in journals {
            let name = sources[followed.source].name
            do {
                // "MESSAGE=" and one byte more than the cap: a longer message is known to be too long.
                try followed.journal.setDataThreshold(maxLineLength + 9)
            } catch {
                logger.warning(
                    "journal source \(name): cannot limit field sizes (\(error)); long messages are read whole")
            }
            position(followed)
            sink.streamOpened(followed.stream, info: StreamInfo(source: name, path: "journal"))
            statistics[followed.source].openStreams = 1
            if followed.descriptor != nil {
                watch(followed)
                scheduleDeadline(followed)
            } else {
                startPolling(followed)
            }
            pending.insert(followed.source)
        }
        busyHook = loop.whileBusy { [unowned self] in self.work() }
    }

    /// Reads what the journals hold now, then leaves the loop: the follower is being replaced
    /// (a reload). Returns where each source stands, for the next one's `handoff`.
    public func stop() -> [String: JournalSourceHandoff] {
        guard started else { return [:] }
        catchUp()
        saveCheckpoints()
        var result: [String: JournalSourceHandoff] = [:]
        for followed in journals {
            updateCursor(followed)
            if let descriptor = followed.descriptor, followed.isWatched { loop?.unwatch(descriptor) }
            followed.isWatched = false
            for timer in [followed.deadlineTimer, followed.pollingTimer].compactMap({ $0 }) { loop?.cancel(timer) }
            followed.deadlineTimer = nil
            followed.pollingTimer = nil
            sink.streamClosed(followed.stream)
            let checkpoint =
                followed.cursor != nil || followed.readUntil != nil
                ? JournalCheckpoint(cursor: followed.cursor, readUntilMicroseconds: followed.readUntil) : followed.saved
            result[sources[followed.source].name] = JournalSourceHandoff(
                checkpoint: checkpoint, statistics: statistics[followed.source])
        }
        if let busyHook { loop?.removeBusyHook(busyHook) }
        busyHook = nil
        started = false
        return result
    }

    /// Reads what every journal holds now (bounded), e.g. before a last report at shutdown.
    public func catchUp() {
        guard started else { return }
        for followed in journals {
            // Files created since the last wake-up (a rotation) are opened only by process().
            processChanges(followed)
            pending.insert(followed.source)
        }
        CatchUp.run {
            if pending.isEmpty { return false }
            _ = work()
            return true
        }
    }

    // MARK: - Positioning

    /// Seeks to where this source goes on: after its saved cursor, after the saved time, or
    /// at its start position.
    private func position(_ followed: FollowedJournal) {
        let journal = followed.journal
        let name = sources[followed.source].name
        if let cursor = followed.saved?.cursor {
            do {
                try journal.seek(cursor: cursor)
                followed.cursor = cursor
                // The first entry from there is the saved one if it still exists: handed on
                // before, so skipped. If it was vacuumed, it is the first entry after it.
                if try journal.next(), try !journal.isAt(cursor: cursor) {
                    followed.standsOnUnreadEntry = true
                    followed.cursorIsStale = true
                    logger.info("journal source \(name): the saved entry is gone (vacuumed); reading from the next one")
                }
                followed.readUntil = followed.saved?.readUntilMicroseconds
                logger.info("journal source \(name): resuming after the saved cursor")
                return
            } catch {
                report(
                    followed, key: "seek",
                    "cannot seek to the saved cursor \(cursor) (\(error)); using the saved time or the start position")
                followed.cursor = nil
                followed.standsOnUnreadEntry = false
                followed.cursorIsStale = false
            }
        }
        if let readUntil = followed.saved?.readUntilMicroseconds {
            let from = readUntil > Self.resumeLagMicroseconds ? readUntil - Self.resumeLagMicroseconds : 0
            do {
                try journal.seek(realtimeMicroseconds: from)
                followed.readUntil = readUntil
                logger.info(
                    "journal source \(name): resuming with the entries since the journal was last read to its end")
                return
            } catch {
                report(followed, key: "seek", "cannot seek to the saved time (\(error)); using the start position")
            }
        }
        do {
            switch sources[followed.source].startAt {
            case .beginning:
                try journal.seekHead()
            case .end:
                try journal.seekTail()
                // After seek_tail, sd_journal_next returns the last entry rather than the one
                // after it; stepping back onto the last entry fixes the position there now.
                if try journal.previous() {
                    // Its cursor is a position like any other: a restart goes on after it.
                    followed.cursorIsStale = true
                } else {
                    // No matching entry yet: a tail position would make the first next() jump to
                    // the newest of the entries written by then. Every one of them is new.
                    try journal.seekHead()
                }
            }
            logger.info(
                "journal source \(name): reading from the \(sources[followed.source].startAt == .end ? "end" : "beginning") of the journal"
            )
        } catch {
            report(followed, key: "seek", "cannot seek in the journal: \(error)")
        }
    }

    // MARK: - Events

    private func watch(_ followed: FollowedJournal) {
        guard let loop, let descriptor = followed.descriptor else { return }
        var events = PollLoop.readable
        do {
            events = try followed.journal.pollEvents()
        } catch {
            // What libsystemd asks for on an inotify descriptor.
            report(
                followed, key: "events",
                "cannot get the journal descriptor's poll events (\(error)); waiting for it to be readable")
        }
        loop.watch(descriptor, events: events) { [unowned self] _ in
            self.processChanges(followed)
            self.scheduleDeadline(followed)
        }
        followed.isWatched = true
    }

    /// Without a descriptor: reads on a timer, and asks for the descriptor again.
    private func startPolling(_ followed: FollowedJournal) {
        guard let loop, followed.pollingTimer == nil else { return }
        followed.pollingTimer = loop.every(Self.pollingInterval) { [unowned self] in
            if followed.descriptor == nil {
                do {
                    followed.descriptor = try followed.journal.fileDescriptor()
                    logger.info("journal source \(sources[followed.source].name): watching the journal again")
                } catch {
                    // Counted and logged when it first failed; polling goes on meanwhile.
                }
            }
            self.processChanges(followed)
            self.pending.insert(followed.source)
            if followed.isWatched, let timer = followed.pollingTimer {
                self.loop?.cancel(timer)
                followed.pollingTimer = nil
            }
        }
    }

    /// `sd_journal_process`: consumes the descriptor's events, opens new journal files and
    /// drops deleted ones; new entries make the source pending. A failure stops the watch
    /// (its events would not be consumed and the loop would spin) and falls back to polling.
    private func processChanges(_ followed: FollowedJournal) {
        do {
            switch try followed.journal.process() {
            case .none:
                break
            case .appended:
                pending.insert(followed.source)
            case .invalidated:
                logger.debug("journal source \(sources[followed.source].name): journal files were added or removed")
                pending.insert(followed.source)
            }
            if let descriptor = followed.descriptor {
                if followed.isWatched {
                    loop?.update(descriptor, events: try followed.journal.pollEvents())
                } else {
                    watch(followed)
                }
            }
            followed.reportedErrors.remove("process")
        } catch {
            report(
                followed, key: "process",
                "cannot process journal changes: \(error); looking at it every \(Self.pollingInterval) s")
            if let descriptor = followed.descriptor, followed.isWatched {
                loop?.unwatch(descriptor)
                followed.isWatched = false
            }
            startPolling(followed)
        }
    }

    /// libsystemd asks to be called at a deadline when inotify cannot be trusted (network file
    /// systems); a one-shot timer, replaced after every wake-up.
    private func scheduleDeadline(_ followed: FollowedJournal) {
        guard let loop else { return }
        if let timer = followed.deadlineTimer {
            loop.cancel(timer)
            followed.deadlineTimer = nil
        }
        let deadline: Double?
        do {
            deadline = try followed.journal.processDeadline()
            followed.reportedErrors.remove("deadline")
        } catch {
            // The descriptor still wakes the loop; only a journal on a file system inotify
            // misses changes on is looked at late (on the next change).
            report(followed, key: "deadline", "cannot get the journal's processing deadline: \(error)")
            return
        }
        guard let deadline else { return }
        let delay = max(0.001, deadline - monotonicSeconds())
        followed.deadlineTimer = loop.every(delay) { [unowned self] in
            if let timer = followed.deadlineTimer { self.loop?.cancel(timer) }
            followed.deadlineTimer = nil
            self.processChanges(followed)
            self.pending.insert(followed.source)
            self.scheduleDeadline(followed)
        }
    }

    // MARK: - Reading

    /// One round: each pending source reads up to its budget. True if reads are left.
    private func work() -> Bool {
        guard !pending.isEmpty else { return false }
        for index in pending.sorted() where !read(journals[index]) {
            pending.remove(index)
        }
        return !pending.isEmpty
    }

    /// Hands on entries until the end of the journal or the budget. True if there may be more
    /// to read now.
    private func read(_ followed: FollowedJournal) -> Bool {
        let journal = followed.journal
        // Taken before the read that finds the end: everything stamped before it was visible.
        let startedAt = UInt64(max(0, wallClockSeconds() * 1_000_000))
        var remainingBytes = Self.readBudget
        var remainingEntries = Self.entriesPerRound
        defer { updateCursor(followed) }
        while remainingBytes > 0 && remainingEntries > 0 {
            if followed.standsOnUnreadEntry {
                followed.standsOnUnreadEntry = false
            } else {
                do {
                    guard try journal.next() else {
                        followed.readUntil = startedAt
                        followed.reportedErrors.remove("read")
                        return false
                    }
                } catch {
                    // Retried on the next change or deadline, not at once: the same error would
                    // come back and keep the loop busy.
                    report(followed, key: "read", "reading the journal failed: \(error)")
                    return false
                }
            }
            followed.cursorIsStale = true
            remainingEntries -= 1
            remainingBytes -= handOn(followed)
        }
        return true
    }

    /// Hands the current entry's message to the sink; returns its length.
    private func handOn(_ followed: FollowedJournal) -> Int {
        do {
            let length = try followed.journal.withField("MESSAGE") { message -> Int in
                // An entry without a message (structured data only) is no access-log line.
                guard let message else { return 0 }
                if message.count > maxLineLength {
                    sink.skippedLongLine(length: message.count, from: followed.stream)
                } else {
                    sink.receive(line: message, from: followed.stream)
                }
                return message.count
            }
            statistics[followed.source].bytesRead += UInt64(length)
            followed.reportedErrors.remove("entry")
            return length
        } catch {
            // One unreadable entry (e.g. compressed data that does not decompress) is skipped.
            report(followed, key: "entry", "cannot read an entry's message: \(error); skipping it")
            return 0
        }
    }

    /// The current entry (the last one handed on) is the new position.
    private func updateCursor(_ followed: FollowedJournal) {
        guard followed.cursorIsStale else { return }
        do {
            followed.cursor = try followed.journal.cursor()
            followed.cursorIsStale = false
        } catch {
            // The previous cursor stays: a restart reads again what came after it.
            report(followed, key: "cursor", "cannot get the journal cursor: \(error)")
        }
    }

    private func report(_ followed: FollowedJournal, key: String, _ message: String) {
        guard followed.reportedErrors.insert(key).inserted else { return }
        statistics[followed.source].count(.journalError)
        logger.error("journal source \(sources[followed.source].name): \(message)")
    }

    // MARK: - Checkpoints

    /// Saves every source's position (atomically) if it changed since the last save; a
    /// failure is counted and logged once until a save succeeds, and retried next time.
    /// Returns whether every position is saved.
    @discardableResult
    public func saveCheckpoints() -> Bool {
        guard checkpoints != nil, started else { return true }
        var allSaved = true
        for followed in journals {
            updateCursor(followed)
            guard followed.cursor != nil || followed.readUntil != nil else { continue }
            let name = sources[followed.source].name
            let checkpoint = SourceCheckpoint(
                source: name,
                journal: JournalCheckpoint(cursor: followed.cursor, readUntilMicroseconds: followed.readUntil))
            if checkpoints?.save(
                checkpoint, described: "journal source \(name)", statistics: &statistics[followed.source],
                logger: logger) == false
            {
                allSaved = false
            }
        }
        return allSaved
    }
}
