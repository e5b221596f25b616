import AccessLogParser

/// Counts entries that arrive already split into records (Envoy's gRPC access-log service)
/// exactly as a ``StreamPipeline`` counts a file's lines: each into the shared ``FlagCounts``
/// and into its source's ``LineTally``, so a received entry feeds the same counts, windows,
/// diagnosis, alerts and per-source self-metrics as a line.
public final class ReceivedEntryCounter {
    private let counts: FlagCounts
    /// The receiving source's own lines (`flagwatch_lines_total{source}` and malformed ones).
    public let tally: LineTally

    public init(counts: FlagCounts, tally: LineTally = LineTally()) {
        self.counts = counts
        self.tally = tally
    }

    /// Counts one decoded entry, or one that was malformed, by its reason.
    @inline(__always)
    public func count(_ result: ParseResult) {
        switch result {
        case .record(let record):
            counts.count(record)
            tally.countParsed()
        case .malformed(let reason):
            count(LineDefect(reason))
        }
    }

    /// Counts a malformed entry (or message) that never became a ``ParseResult``.
    public func count(_ defect: LineDefect) {
        counts.count(defect)
        tally.count(defect)
    }
}
