import AccessLogParser

extension FlaggedRateTrend {
    /// How much faster (or slower) the recent rate must be than the earlier one to count as
    /// rising (or falling).
    public static let factor = 1.5
    /// Below this many lines on the busier side (the recent lines, or the earlier rate over the
    /// recent span) the trend is steady: 1 line against none is noise, not a rise.
    public static let minimumCount = 5

    /// Compares the rate of `recent` lines over the last `recentSeconds` with the rate of
    /// `earlier` lines over the `earlierSeconds` before them: rising when the recent rate is at
    /// least ``factor`` times the earlier one, falling when it is at most the earlier one divided
    /// by ``factor``, else steady; steady too when neither the recent lines nor the earlier rate
    /// over `recentSeconds` reach ``minimumCount``.
    public init(recent: UInt64, recentSeconds: Int, earlier: UInt64, earlierSeconds: Int) {
        guard recentSeconds > 0, earlierSeconds > 0 else {
            self = .steady
            return
        }
        let recentRate = Double(recent) / Double(recentSeconds)
        let earlierRate = Double(earlier) / Double(earlierSeconds)
        // What the recent span would hold at the earlier rate.
        let expected = earlierRate * Double(recentSeconds)
        if max(Double(recent), expected) < Double(Self.minimumCount) {
            self = .steady
        } else if recentRate >= Self.factor * earlierRate {
            self = .rising
        } else if recentRate * Self.factor <= earlierRate {
            self = .falling
        } else {
            self = .steady
        }
    }
}

extension FlagCounts {
    /// Whether a cluster's lines with any of `flags` come faster, as fast or slower lately,
    /// from the trailing windows; nil without windows.
    ///
    /// With two or more windows, the shortest window's lines (over its length) are compared with
    /// the rest of the next longer window, `(count(w1) - count(w0)) / (w1 - w0)`: with 1m, 5m and
    /// 15m, the last minute against the four before it. With one window, its newer half against
    /// its older half. The rule is ``FlaggedRateTrend/init(recent:recentSeconds:earlier:earlierSeconds:)``.
    ///
    /// The lines are one flag's own, or those of the flag group kept for exactly `flags` (an
    /// alert rule's, where a line with several of the flags counts once), else the sum of each
    /// flag's lines (a line with two of them counts twice, in both spans alike).
    public func flaggedRateTrend(cluster id: Int, flags: ResponseFlagSet) -> FlaggedRateTrend? {
        guard let rings, id >= 0, id < clusters.count, !rings.windows.isEmpty else { return nil }
        var series: [Int] = []
        if flags.rawValue.nonzeroBitCount == 1, let flag = flags.flags.first {
            // One flag: its own ring (a group of just it holds the same, unless a reload made it new).
            if let ring = ring(cluster: id, flag: flag) { series.append(ring) }
        } else if let group = flagGroupSets.firstIndex(of: flags) {
            if let ring = ring(cluster: id, flagGroup: group) { series.append(ring) }
        } else {
            flags.forEach { flag in
                if let ring = ring(cluster: id, flag: flag) { series.append(ring) }
            }
        }
        func total(_ read: (Int) -> UInt64) -> UInt64 { series.reduce(0) { $0 + read($1) } }
        let lengths = Set(rings.windows).sorted()
        let now = now
        if lengths.count >= 2, let short = rings.windows.firstIndex(of: lengths[0]),
            let long = rings.windows.firstIndex(of: lengths[1])
        {
            let recent = total { rings.sum($0, window: short, now: now) }
            let whole = total { rings.sum($0, window: long, now: now) }
            return FlaggedRateTrend(
                recent: recent, recentSeconds: lengths[0], earlier: whole - min(whole, recent),
                earlierSeconds: lengths[1] - lengths[0])
        }
        let window = lengths[0]
        let half = window / 2
        let recent = total { rings.sum($0, lastSeconds: half, now: now) }
        let whole = total { rings.sum($0, window: 0, now: now) }
        return FlaggedRateTrend(
            recent: recent, recentSeconds: half, earlier: whole - min(whole, recent), earlierSeconds: window - half)
    }
}
