import AccessLogParser
import Exposition
import FlagCounting
import LineFraming
import LogSources
import Logging
import SystemCalls

#if canImport(Glibc)
import Glibc
#endif

/// How each source's lines are parsed.
struct SourceParsing {
    var format: LogFormat
    var containerFormat: ContainerFormat
}

/// Hands every stream's lines to its own ``StreamPipeline`` (partial CRI records and the
/// recognised format belong to a stream), all counting into one ``FlagCounts``.
final class CountingSink: LineSink {
    let counts: FlagCounts
    /// Per source name; a reload replaces it (streams already open keep their pipeline).
    var parsing: [String: SourceParsing]
    private let maxLineLength: Int
    private let logger: Logger
    private var pipelines: [StreamID: StreamPipeline] = [:]
    /// Per source name: lines and malformed lines by reason (for self-metrics).
    private(set) var sourceLines: [String: SourceLineCounts] = [:]
    private var sourceOfStream: [StreamID: String] = [:]
    private var lastDefects: [Int]
    /// Formats recognised so far (for the table's footer).
    private(set) var recognizedFormats: [String] = []

    init(counts: FlagCounts, parsing: [String: SourceParsing], maxLineLength: Int, logger: Logger) {
        self.counts = counts
        self.parsing = parsing
        self.maxLineLength = maxLineLength
        self.logger = logger
        lastDefects = LineDefect.allCases.map { counts.malformedCount($0) }
    }

    struct SourceLineCounts {
        var lines: UInt64 = 0
        var malformed = [UInt64](repeating: 0, count: LineDefect.allCases.count)
    }

    /// Attributes what the counts gained since the last call to the stream's source.
    @inline(__always)
    private func attribute(_ stream: StreamID, linesBefore: Int, malformedBefore: Int) {
        guard let source = sourceOfStream[stream] else { return }
        sourceLines[source, default: SourceLineCounts()].lines += UInt64(counts.lines - linesBefore)
        guard counts.malformedTotal != malformedBefore else { return }
        for (index, defect) in LineDefect.allCases.enumerated() {
            let now = counts.malformedCount(defect)
            if now != lastDefects[index] {
                sourceLines[source, default: SourceLineCounts()].malformed[index] += UInt64(now - lastDefects[index])
                lastDefects[index] = now
            }
        }
    }

    func streamOpened(_ stream: StreamID, info: StreamInfo) {
        guard let settings = parsing[info.source] else { return }
        sourceOfStream[stream] = info.source
        do {
            pipelines[stream] = try StreamPipeline(
                format: settings.format, containerFormat: settings.containerFormat, maxLineLength: maxLineLength,
                counts: counts)
        } catch {
            // Formats are compiled before anything starts; this cannot fail later.
            logger.error("source \(info.source): \(error)")
        }
    }

    func receive(lines: UnsafeRawBufferPointer, from stream: StreamID) {
        let (lines0, malformed0) = (counts.lines, counts.malformedTotal)
        pipelines[stream]?.count(inPlace: lines)
        attribute(stream, linesBefore: lines0, malformedBefore: malformed0)
    }

    func receive(line: UnsafeRawBufferPointer, from stream: StreamID) {
        let (lines0, malformed0) = (counts.lines, counts.malformedTotal)
        pipelines[stream]?.count(line: line)
        attribute(stream, linesBefore: lines0, malformedBefore: malformed0)
    }

    func skippedLongLine(length: Int, from stream: StreamID) {
        let (lines0, malformed0) = (counts.lines, counts.malformedTotal)
        pipelines[stream]?.countSkippedLongLine()
        attribute(stream, linesBefore: lines0, malformedBefore: malformed0)
    }

    func streamClosed(_ stream: StreamID) {
        noteRecognizedFormat(of: stream)
        pipelines[stream] = nil
        sourceOfStream[stream] = nil
    }

    func noteRecognizedFormats() {
        for stream in pipelines.keys { noteRecognizedFormat(of: stream) }
    }

    private func noteRecognizedFormat(of stream: StreamID) {
        guard let format = pipelines[stream]?.recognizedFormat, counts.lines > counts.malformedTotal,
            !recognizedFormats.contains(format)
        else { return }
        recognizedFormats.append(format)
    }
}

/// Writes reports to standard output without ever waiting for its reader while following: to a
/// pipe, what does not fit now is written when the pipe has room again (the loop watches it),
/// and a report made meanwhile replaces any report not yet begun. A report is never cut: the
/// one under way is finished first. Anything but a pipe is written directly, as before.
final class ReportWriter {
    private let loop: PollLoop
    /// Standard output reopened non-blocking, when it is a pipe.
    private let pipe: FileDescriptor?
    /// The rest of the report under way.
    private var unwritten: [UInt8] = []
    /// The newest report not yet begun (older ones were superseded).
    private var next: String?
    private var isWatching = false

    init(loop: PollLoop) {
        self.loop = loop
        pipe = NonBlockingOutput.open(for: FileDescriptor(rawValue: 1))
    }

    deinit { pipe?.close() }

    func write(_ report: String) {
        guard pipe != nil else {
            StandardStream.write(report)
            return
        }
        next = report
        flush()
    }

    /// Writes what fits; watches the pipe while something is left.
    private func flush() {
        guard let pipe else { return }
        while true {
            if unwritten.isEmpty {
                guard let report = next else { break }
                next = nil
                unwritten = Array(report.utf8)
            }
            // withUnsafeBytes rethrows untyped errors: the Errno comes out as a Result.
            let result = unwritten.withUnsafeBytes { raw -> Result<Int, Errno> in
                do throws(Errno) { return .success(try pipe.writeSome(raw)) } catch { return .failure(error) }
            }
            guard case .success(let written) = result else {
                // The reader is gone (EPIPE): nothing to keep.
                unwritten = []
                next = nil
                break
            }
            if written == 0 { break }
            unwritten.removeFirst(written)
        }
        let wantsWatch = !unwritten.isEmpty
        if wantsWatch && !isWatching {
            loop.watch(pipe.rawValue, events: PollLoop.writable) { [unowned self] _ in flush() }
        } else if !wantsWatch && isWatching {
            loop.unwatch(pipe.rawValue)
        }
        isWatching = wantsWatch
    }

    /// The last report: written whole, waiting for the reader as long as it takes.
    func finish(_ report: String) {
        write(report)
        guard let pipe else { return }
        while !unwritten.isEmpty || next != nil {
            pipe.waitUntilWritable()
            flush()
        }
        if isWatching {
            loop.unwatch(pipe.rawValue)
            isWatching = false
        }
    }
}

/// `flagwatch scan --follow`: runs file and journal sources on one poll loop and prints the
/// counts since start every interval, and once more on SIGTERM/SIGINT.
struct FollowScan {
    var files: [FileSourceSpec]
    var journals: [JournalSourceSpec]
    var parsing: [String: SourceParsing]
    var options: FollowOptions
    var reportInterval: Double
    var output: OutputFormat
    var logger: Logger

    func run() throws {
        // Before anything could start a thread: the signals must be blocked in all of them.
        let signals: SignalDescriptor
        do {
            signals = try SignalDescriptor([SIGTERM, SIGINT])
        } catch {
            throw CommandFailure(message: "cannot set up signal handling: \(error)")
        }
        // Each followed file holds a descriptor: the soft limit (often 1024) up to the hard one.
        ProcessLimits.raiseOpenFileLimit()
        let counts = FlagCounts()
        let sink = CountingSink(counts: counts, parsing: parsing, maxLineLength: options.maxLineLength, logger: logger)
        let loop = PollLoop()
        let fileFollower: FileFollower
        do {
            fileFollower = try FileFollower(sources: files, options: options, sink: sink, logger: logger, firstStream: 1)
        } catch {
            throw CommandFailure(message: "cannot use state directory \(options.stateDirectory ?? ""): \(error)")
        }
        var journalFollower: JournalFollower?
        if !journals.isEmpty {
            do {
                journalFollower = try JournalFollower(
                    sources: journals, stateDirectory: options.stateDirectory, sink: sink, logger: logger,
                    firstStream: 1 << 40)
            } catch {
                throw CommandFailure(message: error.description)
            }
            journalFollower?.maxLineLength = options.maxLineLength
        }
        fileFollower.start(on: loop)
        journalFollower?.start(on: loop)
        if let journalFollower {
            loop.every(options.checkpointInterval) { journalFollower.saveCheckpoints() }
        }

        // Every count adds a line, so an unchanged line count means an unchanged report: an
        // idle follower re-prints the text it rendered last instead of rendering it again
        // (rendering is most of what an idle follower would otherwise spend).
        final class RenderedReport {
            var lines = -1
            var formats = -1
            var text = ""
        }
        let last = RenderedReport()
        let writer = ReportWriter(loop: loop)
        let render = { [output] in
            sink.noteRecognizedFormats()
            if counts.lines != last.lines || sink.recognizedFormats.count != last.formats {
                let scanReport = ScanReport(counts: counts, diagnose: counts.scanDiagnosis)
                switch output {
                case .json: last.text = scanReport.json() + "\n"
                case .table, .prometheus: last.text = scanReport.table(recognizedFormats: sink.recognizedFormats) + "\n"
                }
                last.lines = counts.lines
                last.formats = sink.recognizedFormats.count
            }
            return last.text
        }
        // The first report says the sources are open: lines written from now on are counted.
        writer.write(render())
        loop.every(reportInterval) { writer.write(render()) }
        loop.watch(signals.descriptor.rawValue) { _ in
            for signal in signals.received() where signal == SIGTERM || signal == SIGINT {
                logger.info("received \(signal == SIGTERM ? "SIGTERM" : "SIGINT"); stopping")
                loop.stop()
            }
        }
        loop.run()
        fileFollower.catchUp()
        journalFollower?.catchUp()
        writer.finish(render())
        fileFollower.saveCheckpoints()
        journalFollower?.saveCheckpoints()
    }
}
