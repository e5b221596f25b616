import AccessLogParser
import FlagCounting

/// The daemon's `/` page, what an SRE opens first: the failing clusters with their likely cause
/// and next steps, then the alerts with their diagnosis, the clusters with the most flags and
/// the sources. Every string that comes from a log line, a peer, the config or a source name is
/// escaped (``escape(_:)``); the page loads nothing (inline CSS, no script) and fits a 1,280 px
/// window and a phone's width without scrolling sideways.
public enum StatusPage {
    /// One alert as the page lists it.
    public struct AlertRow: Sendable {
        public var alertname: String
        public var cluster: String
        public var flag: String
        public var state: String
        public var since: String
        public var summary: String
        /// The cause's short label (`backend down`); empty without a diagnosis.
        public var cause: String
        public var likelyCause: String
        public var nextSteps: String
        /// Rising, steady or falling, and since when; nil without windows.
        public var trend: Trend?

        public init(
            alertname: String, cluster: String, flag: String, state: String, since: String, summary: String,
            cause: String = "", likelyCause: String, nextSteps: String, trend: Trend? = nil
        ) {
            self.alertname = alertname
            self.cluster = cluster
            self.flag = flag
            self.state = state
            self.since = since
            self.summary = summary
            self.cause = cause
            self.likelyCause = likelyCause
            self.nextSteps = nextSteps
            self.trend = trend
        }
    }

    /// A cluster's diagnosis as the page shows it. The executable makes it from the Diagnosis
    /// module's value in one function (`StatusPage.ClusterDiagnosis.init(_:)` there), as it does
    /// ``ScanDiagnosis`` for scan; the optional fields are shown only when they are set.
    public struct ClusterDiagnosis: Sendable, Equatable {
        /// The flag the diagnosis is about.
        public var flag: ResponseFlag
        /// The cause's short label (`backend down`).
        public var cause: String
        /// One sentence with the evidence.
        public var likelyCause: String
        /// Commands to run, one per entry.
        public var nextSteps: [String]
        /// `one host`, `all hosts` or `unknown`.
        public var scope: String?
        /// The upstream hosts with the most flagged lines, most first.
        public var hosts: [HostCount]?
        /// Whether the flagged rate is rising, and since when the cluster fails.
        public var trend: Trend?

        public init(
            flag: ResponseFlag, cause: String, likelyCause: String, nextSteps: [String], scope: String? = nil,
            hosts: [HostCount]? = nil, trend: Trend? = nil
        ) {
            self.flag = flag
            self.cause = cause
            self.likelyCause = likelyCause
            self.nextSteps = nextSteps
            self.scope = scope
            self.hosts = hosts
            self.trend = trend
        }
    }

    /// One upstream host (`10.8.3.14:8080`) and its flagged lines.
    public struct HostCount: Sendable, Equatable {
        public var host: String
        public var count: Int

        public init(host: String, count: Int) {
            self.host = host
            self.count = count
        }
    }

    /// The flagged rate's direction (`rising`, `steady`, `falling`) and when the cluster was
    /// first seen failing, as text.
    public struct Trend: Sendable, Equatable {
        public var direction: String
        public var firstSeenFailing: String?

        public init(direction: String, firstSeenFailing: String? = nil) {
            self.direction = direction
            self.firstSeenFailing = firstSeenFailing
        }
    }

    /// At most this many failing clusters get a panel (the table below lists more).
    static let maxFailingShown = 10
    /// At most this many clusters are diagnosed per page: each diagnosis reads the cluster's
    /// failure details, and the page must stay cheap with thousands of flagged clusters.
    static let maxDiagnosed = 50
    /// Rows of the table of clusters with the most flags.
    static let maxTableRows = 50

    /// The page.
    /// - Parameters:
    ///   - alerts: the pending and firing alerts; nil when alerting is not configured.
    ///   - diagnose: a cluster id's diagnosis among the upstream failure flags, if it has one.
    public static func html(
        counts: FlagCounts, windowNames: [String], sources: [SourceMetrics], version: String,
        alerts: [AlertRow]? = nil, diagnose: (Int) -> ClusterDiagnosis? = { _ in nil }
    ) -> String {
        let rows = clusterRows(counts)
        let recentName = windowNames.first ?? "window"
        let failing = failingClusters(rows, counts: counts, alerts: alerts ?? [], diagnose: diagnose)
        var html = head(version: version)
        html += summary(failing: failing, alerts: alerts, sources: sources, recentName: recentName)
        html += failingSection(failing, recentName: recentName, windowed: counts.rings != nil)
        html += alertsSection(alerts, failing: failing)
        html += clustersSection(rows, recentName: recentName)
        html += sourcesSection(sources)
        return html + "</main>\n</body></html>\n"
    }

    // MARK: what the page shows

    /// One cluster's counts as the table lists them.
    struct ClusterRow {
        var id: Int
        var name: String
        var requests: Int
        var flagged: Int
        /// `UF=37 URX=6`, most first.
        var flags: String
        /// Flagged lines in the first (shortest) window.
        var recent: UInt64
    }

    /// A cluster failing now: flagged lines of its diagnosis's flag in the first window (or
    /// since start when no window is kept), or an alert on it.
    struct FailingCluster {
        var row: ClusterRow
        var diagnosis: ClusterDiagnosis
        /// Lines with the diagnosis's flag, and all responses, in the first window.
        var recentFlagged: UInt64
        var recentResponses: UInt64
        /// The count of each failure detail of the flag, most first.
        var details: [FailureDetail]
        var alerts: [AlertRow]
        /// The panel's anchor (`failing-1`): cluster names are not safe ids.
        var anchor: String
    }

    static func clusterRows(_ counts: FlagCounts) -> [ClusterRow] {
        var rows: [ClusterRow] = []
        for cluster in 0..<counts.clusters.count {
            var flagged = 0
            var parts: [(String, Int)] = []
            var recent: UInt64 = 0
            for flag in ResponseFlag.allCases {
                let value = counts.flagTotal(cluster: cluster, flag: flag)
                guard value > 0 else { continue }
                flagged += value
                parts.append((flag.shortName, value))
                recent += counts.windowCount(cluster: cluster, flag: flag, window: 0)
            }
            for (code, value) in counts.unknownFlagTotals(cluster: cluster) {
                flagged += value
                parts.append((code, value))
            }
            parts.sort { ($0.1, $1.0) > ($1.1, $0.0) }
            rows.append(
                ClusterRow(
                    id: cluster, name: counts.clusters.names[cluster], requests: counts.requests(cluster: cluster),
                    flagged: flagged, flags: parts.map { "\($0.0)=\($0.1)" }.joined(separator: " "), recent: recent))
        }
        rows.sort { ($0.recent, $0.flagged, $0.requests, $1.name) > ($1.recent, $1.flagged, $1.requests, $0.name) }
        return rows
    }

    /// The failing clusters, those with a firing alert first, then pending, then the most
    /// flagged lines in the first window; at most ``maxFailingShown``.
    static func failingClusters(
        _ rows: [ClusterRow], counts: FlagCounts, alerts: [AlertRow], diagnose: (Int) -> ClusterDiagnosis?
    ) -> [FailingCluster] {
        let windowed = counts.rings != nil
        var alertsByCluster: [String: [AlertRow]] = [:]
        for alert in alerts { alertsByCluster[alert.cluster, default: []].append(alert) }
        func alertRank(_ name: String) -> Int {
            let states = alertsByCluster[name]?.map(\.state) ?? []
            return states.contains("firing") ? 2 : (states.isEmpty ? 0 : 1)
        }
        // Rows are sorted by recent flags already; a stable sort puts alerted clusters first.
        let candidates = rows.enumerated()
            .filter {
                (windowed ? $0.element.recent : UInt64($0.element.flagged)) > 0 || alertRank($0.element.name) > 0
            }
            .sorted { (alertRank($0.element.name), $1.offset) > (alertRank($1.element.name), $0.offset) }
            .map(\.element)
        var failing: [FailingCluster] = []
        for row in candidates.prefix(maxDiagnosed) {
            guard let diagnosis = diagnose(row.id) else { continue }
            let recentFlagged =
                windowed
                ? counts.windowCount(cluster: row.id, flag: diagnosis.flag, window: 0)
                : UInt64(counts.flagTotal(cluster: row.id, flag: diagnosis.flag))
            let alerted = alertsByCluster[row.name] ?? []
            guard recentFlagged > 0 || !alerted.isEmpty else { continue }
            failing.append(
                FailingCluster(
                    row: row, diagnosis: diagnosis, recentFlagged: recentFlagged,
                    recentResponses: counts.windowCount(cluster: row.id, flag: nil, window: 0),
                    details: counts.failureDetails(cluster: row.id, flag: diagnosis.flag), alerts: alerted,
                    anchor: "failing-\(failing.count + 1)"))
            if failing.count == maxFailingShown { break }
        }
        return failing
    }

    /// HTML escaping on Unicode scalars (see ``UntrustedText/html(_:)``).
    static func escape(_ text: String) -> String {
        UntrustedText.html(text)
    }
}
