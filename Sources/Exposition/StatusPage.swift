import AccessLogParser
import FlagCounting

/// The daemon's `/` page: the clusters with the most flags, and links.
public enum StatusPage {
    /// One alert as the page lists it.
    public struct AlertRow: Sendable {
        public var alertname: String
        public var cluster: String
        public var flag: String
        public var state: String
        public var since: String
        public var summary: String
        public var likelyCause: String
        public var nextSteps: String

        public init(
            alertname: String, cluster: String, flag: String, state: String, since: String, summary: String,
            likelyCause: String, nextSteps: String
        ) {
            self.alertname = alertname
            self.cluster = cluster
            self.flag = flag
            self.state = state
            self.since = since
            self.summary = summary
            self.likelyCause = likelyCause
            self.nextSteps = nextSteps
        }
    }

    public static func html(
        counts: FlagCounts, windowNames: [String], sources: [SourceMetrics], version: String,
        alerts: [AlertRow]? = nil
    ) -> String {
        struct Row {
            var name: String
            var requests: Int
            var flagged: Int
            var flags: String
            var recent: UInt64
        }
        var rows: [Row] = []
        for cluster in 0..<counts.clusters.count {
            var flagged = 0
            var parts: [(String, Int)] = []
            for flag in ResponseFlag.allCases {
                let value = counts.flagTotal(cluster: cluster, flag: flag)
                if value > 0 {
                    flagged += value
                    parts.append((flag.shortName, value))
                }
            }
            for (code, value) in counts.unknownFlagTotals(cluster: cluster) {
                flagged += value
                parts.append((code, value))
            }
            parts.sort { ($0.1, $1.0) > ($1.1, $0.0) }
            var recent: UInt64 = 0
            if counts.rings != nil {
                for flag in ResponseFlag.allCases where counts.flagTotal(cluster: cluster, flag: flag) > 0 {
                    recent += counts.windowCount(cluster: cluster, flag: flag, window: 0)
                }
            }
            rows.append(
                Row(
                    name: counts.clusters.names[cluster], requests: counts.requests(cluster: cluster), flagged: flagged,
                    flags: parts.map { "\($0.0)=\($0.1)" }.joined(separator: " "), recent: recent))
        }
        rows.sort { ($0.recent, $0.flagged, $0.requests, $1.name) > ($1.recent, $1.flagged, $1.requests, $0.name) }
        let recentName = windowNames.first ?? "window"
        var html = """
            <!doctype html>
            <html><head><meta charset="utf-8"><title>flagwatch</title>
            <style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{padding:.2em .8em;border-bottom:1px solid #ddd;text-align:left}td.n{text-align:right}</style>
            </head><body>
            <h1>flagwatch \(escape(version))</h1>
            <p><a href="/metrics">/metrics</a> · <a href="/api/v1/alerts">/api/v1/alerts</a> · <a href="/-/healthy">/-/healthy</a> · <a href="/-/ready">/-/ready</a></p>
            \(alertsSection(alerts))<h2>Upstream clusters with the most response flags</h2>
            <table><tr><th>upstream cluster</th><th>flags (last \(escape(recentName)))</th><th>flags (since start)</th><th>requests</th><th>by flag</th></tr>

            """
        for row in rows.prefix(50) {
            html += "<tr><td>\(escape(row.name))</td><td class=n>\(row.recent)</td><td class=n>\(row.flagged)</td>"
            html += "<td class=n>\(row.requests)</td><td>\(escape(row.flags))</td></tr>\n"
        }
        html +=
            "</table>\n<h2>Sources</h2>\n<table><tr><th>source</th><th>lines</th><th>malformed</th><th>open</th><th>errors</th></tr>\n"
        for source in sources {
            let malformed = source.malformed.values.reduce(0, +)
            let errors = source.errors.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            html += "<tr><td>\(escape(source.name))</td><td class=n>\(source.lines)</td><td class=n>\(malformed)</td>"
            html += "<td class=n>\(source.files)</td><td>\(escape(errors))</td></tr>\n"
        }
        return html + "</table>\n</body></html>\n"
    }

    static func alertsSection(_ alerts: [AlertRow]?) -> String {
        guard let alerts else { return "" }
        guard !alerts.isEmpty else { return "<h2 id=alerts>Alerts</h2>\n<p>None pending or firing.</p>\n" }
        var html =
            "<h2 id=alerts>Alerts</h2>\n<table><tr><th>alert</th><th>state</th><th>since</th><th>upstream cluster</th><th>flag</th><th>summary</th><th>likely cause</th><th>next steps</th></tr>\n"
        for alert in alerts {
            html +=
                "<tr><td>\(escape(alert.alertname))</td><td>\(escape(alert.state))</td><td>\(escape(alert.since))</td>"
            html += "<td>\(escape(alert.cluster))</td><td>\(escape(alert.flag))</td><td>\(escape(alert.summary))</td>"
            html += "<td>\(escape(alert.likelyCause))</td><td><pre>\(escape(alert.nextSteps))</pre></td></tr>\n"
        }
        return html + "</table>\n"
    }

    /// HTML escaping on Unicode scalars (see ``UntrustedText/html(_:)``).
    static func escape(_ text: String) -> String {
        UntrustedText.html(text)
    }
}
