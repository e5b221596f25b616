import FlagCounting
import LogSources
import Logging

/// The sink every followed line passes through: it hands each stream's lines to the stream's
/// own ``StreamPipeline`` (partial CRI records and the recognised format belong to a stream),
/// all counting into one ``FlagCounts``, and each counting its source's lines into the
/// source's ``LineTally``.
final class PipelineSink: LineSink {
    let counts: FlagCounts
    /// Per source name; a reload replaces it (streams already open keep their pipeline).
    var parsing: [String: SourceParsing]
    private let maxLineLength: Int
    private let logger: Logger
    private var pipelines: [StreamID: StreamPipeline] = [:]
    /// Per source name, kept across reloads (a source kept by name keeps its counts).
    private(set) var tallies: [String: LineTally] = [:]
    /// Formats recognised so far, in the order first seen (for the table's footer).
    private(set) var recognizedFormats: [String] = []

    init(counts: FlagCounts, parsing: [String: SourceParsing], maxLineLength: Int, logger: Logger) {
        self.counts = counts
        self.parsing = parsing
        self.maxLineLength = maxLineLength
        self.logger = logger
    }

    /// The source's tally, made on first use (a receiving source counts into it directly).
    func tally(forSource name: String) -> LineTally {
        if let tally = tallies[name] { return tally }
        let tally = LineTally()
        tallies[name] = tally
        return tally
    }

    func streamOpened(_ stream: StreamID, info: StreamInfo) {
        guard let settings = parsing[info.source] else { return }
        let tally = tallies[info.source] ?? LineTally()
        tallies[info.source] = tally
        do {
            pipelines[stream] = try StreamPipeline(
                format: settings.format, containerFormat: settings.containerFormat, maxLineLength: maxLineLength,
                counts: counts, tally: tally)
        } catch {
            // Formats are compiled before anything starts; this cannot fail later.
            logger.error("source \(info.source): \(error)")
        }
    }

    func receive(lines: UnsafeRawBufferPointer, from stream: StreamID) {
        pipelines[stream]?.count(inPlace: lines)
    }

    func receive(line: UnsafeRawBufferPointer, from stream: StreamID) {
        pipelines[stream]?.count(line: line)
    }

    func skippedLongLine(length: Int, from stream: StreamID) {
        pipelines[stream]?.countSkippedLongLine()
    }

    func streamClosed(_ stream: StreamID) {
        noteRecognizedFormat(of: stream)
        pipelines[stream] = nil
    }

    /// Notes the formats the open streams recognised so far (closed ones were noted on closing).
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
