/// One upstream host (`%UPSTREAM_HOST%`, e.g. `10.8.3.14:8080`) and the flagged lines of a
/// (cluster, flag) that went to it. ``FlagCounts/otherUpstreamHost`` stands for the hosts beyond
/// the breakdown's bound.
public struct UpstreamHostCount: Equatable, Sendable {
    public var host: String
    public var count: Int

    public init(host: String, count: Int) {
        self.host = host
        self.count = count
    }
}

/// Whether a cluster's flagged rate is going up, holding or going down, judged from the
/// trailing windows (the shortest against the rest of a longer one).
public enum FlaggedRateTrend: String, Sendable, CaseIterable {
    case rising
    case steady
    case falling
}
