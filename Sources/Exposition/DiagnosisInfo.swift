import AccessLogParser
import FlagCounting

/// One `flagwatch_diagnosis_info` series: the likely cause the daemon gives for one flag of one
/// cluster now. Plain data: Exposition does not import Diagnosis; the executable passes the
/// diagnoser in (`Sources/flagwatch/DiagnosisInfo+Diagnosis.swift`), as it does for the status
/// page.
public struct DiagnosisInfo: Sendable, Equatable {
    /// The cluster's id in the counts.
    public var cluster: Int
    /// The flag diagnosed (the `response_flag` label).
    public var flag: ResponseFlag
    /// The likely cause's short label (`backend down`).
    public var cause: String
    /// `one host`, `all hosts` or `unknown`.
    public var scope: String

    public init(cluster: Int, flag: ResponseFlag, cause: String, scope: String) {
        self.cluster = cluster
        self.flag = flag
        self.cause = cause
        self.scope = scope
    }

    /// At most this many series per scrape. Each one is a diagnosis, which reads the flag's
    /// failure details (bounded, but not free), and the page is written on the daemon's poll
    /// loop; so with more (cluster, flag) pairs failing at once, the ones with the most lines in
    /// the first window keep theirs. `limits.max_clusters` bounds the pairs too (times the
    /// flags asked about).
    public static let maxSeries = 1000

    /// The series now: one per (cluster, flag of `flags`) with lines in window 0 (the first
    /// configured window, as the status page's "failing now"), diagnosed among that flag alone;
    /// none without trailing windows. Ordered by cluster id, then the order of `flags`.
    /// - Parameters:
    ///   - flags: the flags to diagnose (the diagnoser's upstream failures).
    ///   - limit: at most this many; past it, the pairs with the most lines in window 0 (ties:
    ///     the lower cluster id, then the earlier flag).
    ///   - diagnose: a cluster id's and flag's likely cause and scope, nil if it has none.
    public static func current(
        _ counts: FlagCounts, flags: [ResponseFlag], limit: Int = maxSeries,
        diagnose: (_ cluster: Int, _ flag: ResponseFlag) -> (cause: String, scope: String)?
    ) -> [DiagnosisInfo] {
        guard counts.rings != nil, limit > 0 else { return [] }
        var candidates: [(cluster: Int, flagIndex: Int, lines: UInt64)] = []
        for cluster in 0..<counts.clusters.count {
            for (flagIndex, flag) in flags.enumerated() {
                // Window gauges exist only for flags counted since start: a cheap test first.
                guard counts.flagTotal(cluster: cluster, flag: flag) > 0 else { continue }
                let lines = counts.windowCount(cluster: cluster, flag: flag, window: 0)
                if lines > 0 { candidates.append((cluster, flagIndex, lines)) }
            }
        }
        if candidates.count > limit {
            candidates.sort { ($0.lines, $1.cluster, $1.flagIndex) > ($1.lines, $0.cluster, $0.flagIndex) }
            candidates.removeLast(candidates.count - limit)
            candidates.sort { ($0.cluster, $0.flagIndex) < ($1.cluster, $1.flagIndex) }
        }
        return candidates.compactMap { candidate in
            let flag = flags[candidate.flagIndex]
            return diagnose(candidate.cluster, flag).map {
                DiagnosisInfo(cluster: candidate.cluster, flag: flag, cause: $0.cause, scope: $0.scope)
            }
        }
    }
}

extension MetricsWriter {
    /// `flagwatch_diagnosis_info`: 1 per diagnosis given now (the cluster's label block from
    /// the cache, the other values escaped here).
    mutating func writeDiagnosisInfo(_ diagnoses: [DiagnosisInfo], labels: ClusterLabelCache) {
        family(.diagnosisInfo)
        for diagnosis in diagnoses where diagnosis.cluster >= 0 && diagnosis.cluster < labels.clusterLabels.count {
            sample(
                .diagnosisInfo, escapedLabels: labels.clusterLabels[diagnosis.cluster],
                extraValues: [diagnosis.flag.shortName, diagnosis.cause, diagnosis.scope], 1)
        }
    }
}

/// The daemon's `flagwatch_diagnosis_info` across scrapes: a (cluster, flag)'s diagnosis is made
/// again only when the cluster has counted a line since, or when it is ``maxAge`` seconds old
/// (the failure details' period turns, windows slide); otherwise the last one is served. Which
/// pairs have a series is decided afresh on every scrape (from the windows, cheaply), so a
/// series still vanishes with its flag from the first window. A scrape of a node where the
/// same clusters keep failing diagnoses only those that got lines since the last one.
public final class DiagnosisInfoCache {
    public let maxAge: Int
    private var generation = -1
    private var entries: [Key: Entry] = [:]

    private struct Key: Hashable {
        var cluster: Int
        var flag: ResponseFlag
    }

    private struct Entry {
        /// The cluster's responses counted when the diagnosis was made.
        var requests: Int
        var madeAt: Int
        var labels: (cause: String, scope: String)?
    }

    public init(maxAge: Int = 10) {
        self.maxAge = maxAge
    }

    /// ``DiagnosisInfo/current(_:flags:limit:diagnose:)`` with `diagnose` called only for pairs
    /// without a fresh diagnosis (`counts.now` is the time). Keeps only the pairs of this call.
    public func current(
        _ counts: FlagCounts, flags: [ResponseFlag], limit: Int = DiagnosisInfo.maxSeries,
        diagnose: (_ cluster: Int, _ flag: ResponseFlag) -> (cause: String, scope: String)?
    ) -> [DiagnosisInfo] {
        if counts.generation != generation {
            generation = counts.generation
            entries.removeAll()
        }
        var kept: [Key: Entry] = [:]
        let now = counts.now
        let series = DiagnosisInfo.current(counts, flags: flags, limit: limit) { cluster, flag in
            let key = Key(cluster: cluster, flag: flag)
            let requests = counts.requests(cluster: cluster)
            if let entry = entries[key], entry.requests == requests, now - entry.madeAt < maxAge, now >= entry.madeAt {
                kept[key] = entry
                return entry.labels
            }
            let entry = Entry(requests: requests, madeAt: now, labels: diagnose(cluster, flag))
            kept[key] = entry
            return entry.labels
        }
        entries = kept
        return series
    }
}
