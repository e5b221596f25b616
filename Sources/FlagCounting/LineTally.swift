/// Lines one source's pipelines counted, and the malformed ones by reason: the source's own
/// share of ``FlagCounts/lines`` and ``FlagCounts/malformedCount(_:)``, for its self-metrics.
///
/// Every ``StreamPipeline`` of a source counts into the same tally as it counts into the shared
/// ``FlagCounts``, so a source's lines are known where they are counted, without comparing the
/// global totals before and after each chunk.
public final class LineTally {
    /// Every complete logical line: parsed plus malformed.
    public private(set) var lines: UInt64 = 0
    /// Per ``LineDefect/allCases`` index.
    private var malformed = [UInt64](repeating: 0, count: LineDefect.allCases.count)

    public init() {}

    /// A line that parsed.
    @inline(__always)
    func countParsed() { lines += 1 }

    /// A malformed line (the rare path).
    func count(_ defect: LineDefect) {
        lines += 1
        malformed[defect.index] += 1
    }

    /// Malformed lines of one reason.
    public func malformedCount(_ defect: LineDefect) -> UInt64 { malformed[defect.index] }
}
