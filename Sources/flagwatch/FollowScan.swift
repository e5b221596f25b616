import Engine
import Exposition
import FlagCounting
import LogSources
import Logging
import SystemCalls

#if canImport(Glibc)
    import Glibc
#endif

/// Writes reports to standard output without ever waiting for its reader while following: to a
/// pipe, what does not fit now is written when the pipe has room again (the loop watches it),
/// and a report made meanwhile replaces any report not yet begun. A report is never cut: the
/// one under way is finished first. Anything but a pipe is written directly, as before.
final class ReportWriter {
    private let loop: PollLoop
    /// Standard output reopened non-blocking, when it is a pipe.
    private let pipe: FileDescriptor?
    /// The report under way, and how much of it is written (an offset rather than removing
    /// the written bytes, which copied the rest after every partial write).
    private var current: [UInt8] = []
    private var currentWritten = 0
    private var hasUnwritten: Bool { currentWritten < current.count }
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
            if !hasUnwritten {
                guard let report = next else { break }
                next = nil
                current = Array(report.utf8)
                currentWritten = 0
            }
            // withUnsafeBytes rethrows untyped errors: the Errno comes out as a Result.
            let result = current.withUnsafeBytes { raw -> Result<Int, Errno> in
                do throws(Errno) {
                    return .success(try pipe.writeSome(UnsafeRawBufferPointer(rebasing: raw[currentWritten...])))
                } catch { return .failure(error) }
            }
            guard case .success(let written) = result else {
                // The reader is gone (EPIPE): nothing to keep.
                current = []
                currentWritten = 0
                next = nil
                break
            }
            if written == 0 { break }
            currentWritten += written
        }
        let wantsWatch = hasUnwritten
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
        while hasUnwritten || next != nil {
            pipe.waitUntilWritable()
            flush()
        }
        if isWatching {
            loop.unwatch(pipe.rawValue)
            isWatching = false
        }
    }
}

/// `flagwatch scan --follow`: runs the engine on one poll loop and prints the counts since
/// start every interval, and once more on SIGTERM/SIGINT.
struct FollowScan {
    var sources: FollowedSources
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
        let engine = Engine(counts: FlagCounts(), sources: sources, logger: logger)
        let loop = PollLoop()
        do {
            try engine.start(on: loop)
        } catch .fileSources(let error) {
            throw CommandFailure(
                message: "cannot use state directory \(sources.options.stateDirectory ?? ""): \(error)")
        } catch .journalSources(let error) {
            throw CommandFailure(message: error.description)
        } catch .receiver(let source, let reason) {
            throw CommandFailure(message: "source \(source): grpc_access_log: \(reason)")
        }

        let writer = ReportWriter(loop: loop)
        let render = ReportRenderer(engine: engine, output: output)
        // The first report says the sources are open: lines written from now on are counted.
        writer.write(render.report())
        loop.every(reportInterval) { writer.write(render.report()) }
        loop.watch(signals.descriptor.rawValue) { _ in
            for signal in signals.received() where signal == SIGTERM || signal == SIGINT {
                logger.info("received \(signal == SIGTERM ? "SIGTERM" : "SIGINT"); stopping")
                loop.stop()
            }
        }
        loop.run()
        engine.catchUp()
        writer.finish(render.report())
        engine.saveCheckpoints()
    }
}

/// The report `scan --follow` prints, rendered again only when it can have changed.
private final class ReportRenderer {
    private let engine: Engine
    private let output: OutputFormat
    /// What the last report was made from: every count adds a line, so an unchanged line count
    /// (and no newly recognised format) means an unchanged report, and an idle follower
    /// re-prints the text it rendered last (rendering is most of what it would otherwise spend).
    private var renderedLines = -1
    private var renderedFormats = -1
    private var text = ""

    init(engine: Engine, output: OutputFormat) {
        self.engine = engine
        self.output = output
    }

    func report() -> String {
        let counts = engine.counts
        let formats = engine.recognizedFormats()
        guard counts.lines != renderedLines || formats.count != renderedFormats else { return text }
        let scanReport = ScanReport(counts: counts, diagnose: counts.scanDiagnosis)
        switch output {
        case .json: text = scanReport.json() + "\n"
        case .table, .prometheus: text = scanReport.table(recognizedFormats: formats) + "\n"
        }
        renderedLines = counts.lines
        renderedFormats = formats.count
        return text
    }
}
