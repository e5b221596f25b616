import AccessLogParser
import LineFraming

/// One input stream's path from bytes to counts: framing → container unwrap → record parser →
/// ``FlagCounts``. Each stream (file, standard input) has its own, since partial lines, CRI
/// chunks and the recognised format belong to a stream; several may share one FlagCounts, and the
/// streams of one source share one ``LineTally``.
public final class StreamPipeline {
    public let framer: LineFramer
    private let unwrapper: ContainerUnwrapper
    private var parser: AccessLogParser
    private let counts: FlagCounts
    /// The stream's source's lines: counted with `counts`, line by line.
    private let tally: LineTally
    /// Reused for every line: the parser fills it in place.
    private var record = AccessRecord()
    /// Reads the upstream host of unflagged lines, which `parser` skips (text formats read it
    /// only on flagged lines): for the hosts that answered 2xx while a cluster fails. Nil when
    /// the fields asked for do not include the host.
    private var hostParser: AccessLogParser?
    /// Unflagged 2xx lines without a host of clusters that want one; every
    /// ``answeredHostSampling``th of them, the first included, is parsed again for its host.
    private var answeredLines = 0
    /// One in 8: a host answering a failing cluster's 2xx is seen within its first few lines,
    /// and parsing a line twice costs a sampled line about what parsing it once does.
    static let answeredHostSampling = 8
    /// Only lines whose start time falls in it are counted (`scan --since/--until`); nil: all.
    private let window: TimeWindow?
    /// Parsed lines left out because their start time is outside ``window``.
    public private(set) var linesOutsideWindow = 0
    /// Parsed lines left out because ``window`` is set and their start time cannot be read.
    public private(set) var linesWithoutTime = 0

    /// - Parameter fields: what the parser decodes: ``RecordFieldSet/counting`` for the counts,
    ///   plus the failure details of flagged lines (the default) for
    ///   ``FlagCounts/failureDetails(cluster:flag:)`` and so the diagnosis.
    /// - Parameter tally: where the stream's source counts its own lines (a fresh one when
    ///   nobody asks per source).
    /// - Parameter window: when set, a parsed line counts only if its start time is in it; the
    ///   others are tallied in ``linesOutsideWindow`` and ``linesWithoutTime``.
    public init(
        format: LogFormat, containerFormat: ContainerFormat, maxLineLength: Int = 64 * 1024,
        bufferSize: Int = 4 * 1024 * 1024, fields: RecordFieldSet = .countingWithFailureDetails,
        counts: FlagCounts, tally: LineTally = LineTally(), window: TimeWindow? = nil
    ) throws(FormatStringError) {
        framer = LineFramer(maxLineLength: maxLineLength, bufferSize: bufferSize)
        unwrapper = ContainerUnwrapper(format: containerFormat, maxLineLength: maxLineLength)
        self.window = window
        parser = try AccessLogParser(format: format, fields: window == nil ? fields : fields.union(.startTime))
        if fields.contains(.upstreamHost) && fields.contains(.failureDetailsOnlyWhenFlagged) {
            hostParser = try AccessLogParser(format: format, fields: [.responseCode, .upstreamCluster, .upstreamHost])
        }
        self.counts = counts
        self.tally = tally
    }

    /// The format the last parsed line matched (for `auto`).
    public var recognizedFormat: String { parser.recognizedFormat }

    /// Reads once through `read` straight into the framer's buffer and counts every line that
    /// completes. Returns what `read` returned (0 = end of input).
    @discardableResult
    public func readAndCount<E: Error>(_ read: (UnsafeMutableRawBufferPointer) throws(E) -> Int) throws(E) -> Int {
        let count = try framer.fill(read)
        framer.drain(handle)
        return count
    }

    /// Counts the lines in `bytes` in place (no copy); an incomplete last line is held for the
    /// next call. `bytes` need only stay valid during the call.
    public func count(inPlace bytes: UnsafeRawBufferPointer) {
        framer.frame(bytes, handle)
    }

    /// Copies `bytes` in and counts every line they complete.
    public func feed(_ bytes: UnsafeRawBufferPointer) {
        framer.feed(bytes, handle)
    }

    /// Counts one line that arrives without framing (a journal entry's `MESSAGE`): no newline
    /// is expected, and one inside it does not split it.
    public func count(line: UnsafeRawBufferPointer) {
        var length = line.count
        if length > 0, line[length - 1] == 0x0A { length -= 1 }
        if length > 0, line[length - 1] == 0x0D { length -= 1 }
        if length > framer.maxLineLength {
            count(.tooLong)
        } else {
            handle(.line(UnsafeRawBufferPointer(rebasing: line[0..<length])))
        }
    }

    /// A line too long to keep was skipped before it reached the pipeline.
    public func countSkippedLongLine() {
        count(.tooLong)
    }

    /// A malformed line, in both places.
    private func count(_ defect: LineDefect) {
        counts.count(defect)
        tally.count(defect)
    }

    /// Whether the parsed line's start time is in `window`; tallies it when it is not.
    private func isInside(_ window: TimeWindow) -> Bool {
        guard let seconds = LogTimestamp.epochSeconds(record.startTime.bytes) else {
            linesWithoutTime += 1
            return false
        }
        guard window.contains(seconds) else {
            linesOutsideWindow += 1
            return false
        }
        return true
    }

    /// Parses a sampled line again, this time for its upstream host.
    private func countAnsweredHost(_ payload: UnsafeRawBufferPointer, cluster: Int) {
        answeredLines &+= 1
        guard answeredLines % Self.answeredHostSampling == 1, hostParser != nil else { return }
        var hostRecord = AccessRecord()
        // Optional chaining flattens: nil is a parsed line here, the parser being there.
        guard hostParser?.parse(payload, into: &hostRecord) == nil else { return }
        counts.countAnsweredHost(cluster: cluster, host: hostRecord.upstreamHost)
    }

    private func handle(_ framed: FramedLine) {
        switch framed {
        case .tooLong:
            count(.tooLong)
        case .line(let line):
            switch unwrapper.unwrap(line) {
            case .partial:
                break
            case .malformed(let defect):
                count(LineDefect(defect))
            case .line(let payload):
                if let reason = parser.parse(payload, into: &record) {
                    count(LineDefect(reason))
                } else if let window, !isInside(window) {
                    return
                } else {
                    let cluster = counts.count(record)
                    tally.countParsed()
                    if record.responseFlags.isEmpty && record.codeClass == 2 && record.upstreamHost.isAbsent
                        && counts.wantsAnsweredHost(cluster: cluster)
                    {
                        countAnsweredHost(payload, cluster: cluster)
                    }
                }
            }
        }
    }
}

/// Start times from `since` (inclusive) to `until` (exclusive), in seconds since the Unix
/// epoch; an absent end is open.
public struct TimeWindow: Sendable, Equatable {
    public var since: Int?
    public var until: Int?

    public init(since: Int? = nil, until: Int? = nil) {
        self.since = since
        self.until = until
    }

    @inlinable
    public func contains(_ seconds: Int) -> Bool {
        if let since, seconds < since { return false }
        if let until, seconds >= until { return false }
        return true
    }
}
