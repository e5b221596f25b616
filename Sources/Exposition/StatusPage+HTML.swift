import AccessLogParser
import FlagCounting

// The page's HTML, section by section. Attributes are always double-quoted: ``StatusPage/escape(_:)``
// turns `"` into `&quot;` but leaves `'` alone.
extension StatusPage {
    /// Long names (`outbound|9080||reviews.default.svc.cluster.local`) and commands break
    /// anywhere rather than widen the page; tables that could still be too wide on a phone
    /// scroll inside their own box; times and numbers never wrap.
    static let style = """
        *{box-sizing:border-box}
        body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f24;background:#f6f7f9}
        main{max-width:72rem;margin:0 auto;padding:1rem}
        h1{font-size:1.4rem;margin:0 0 .25rem}h2{font-size:1.15rem;margin:1.75rem 0 .5rem}h3{font-size:1rem;margin:0 0 .4rem}
        a{color:#0b57d0}
        nav a{margin-right:.5rem}
        p{margin:.3rem 0}
        .summary{font-size:1.05rem;margin:.5rem 0 0}
        .name,code,pre{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:.9em}
        .name,code,td,dd,p,summary{overflow-wrap:anywhere}
        .card{background:#fff;border:1px solid #d7dbe0;border-left:5px solid #c62828;border-radius:6px;padding:.8rem 1rem;margin:0 0 1rem}
        .card.pending{border-left-color:#e8a100}
        .cause-label{display:inline-block;background:#c62828;color:#fff;border-radius:4px;padding:0 .45em;margin-right:.4em;font-weight:600}
        .flag{display:inline-block;border:1px solid #888;border-radius:4px;padding:0 .35em;margin-right:.4em;font-size:.85em}
        .likely{font-size:1.02rem;margin:.2rem 0 .6rem}
        dl{display:grid;grid-template-columns:minmax(6rem,max-content) minmax(0,1fr);gap:.15rem 1rem;margin:.4rem 0}
        dt{color:#555}dd{margin:0}
        dd ul,dd ol{margin:0;padding-left:1.2rem}
        h4{font-size:.9rem;margin:.7rem 0 .25rem}
        pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f0f2f5;border:1px solid #d7dbe0;border-radius:4px;padding:.5rem .6rem;margin:0}
        .steps .step{display:block;padding:.15rem 0 .15rem 1.5em;text-indent:-1.5em}
        .steps .step+.step{border-top:1px solid #d7dbe0}
        .steps .cmd{user-select:all;-webkit-user-select:all}
        .hint{color:#555;font-size:.85rem}
        .state{display:inline-block;border-radius:4px;padding:0 .45em;margin-right:.4em;font-weight:600;color:#fff;background:#c62828}
        .state.pending{background:#e8a100;color:#1b1f24}
        time,.n,.nowrap{white-space:nowrap}
        .wide{overflow-x:auto;max-width:100%}
        table{border-collapse:collapse;width:100%;background:#fff}
        td,th{padding:.25rem .6rem;border-bottom:1px solid #e1e4e8;text-align:left;vertical-align:top}
        th{font-weight:600;background:#eef0f3}
        .n{text-align:right;font-variant-numeric:tabular-nums}
        td.words{overflow-wrap:break-word}
        .ok{border-left-color:#2e7d32}
        @media (max-width:40rem){main{padding:.6rem}dl{grid-template-columns:minmax(0,1fr)}dt{margin-top:.3rem}td,th{padding:.2rem .35rem}th.n{white-space:normal}}
        """

    static func head(version: String) -> String {
        """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>flagwatch</title>
        <style>
        \(style)
        </style>
        </head><body><main>
        <header>
        <h1>flagwatch <span class="nowrap">\(escape(version))</span></h1>
        <nav><a href="#failing">failing clusters</a> <a href="#alerts">alerts</a> <a href="#clusters">clusters</a> <a href="#sources">sources</a> <a href="/metrics">/metrics</a> <a href="/api/v1/alerts">/api/v1/alerts</a> <a href="/-/healthy">/-/healthy</a> <a href="/-/ready">/-/ready</a></nav>

        """
    }

    static func summary(
        failing: [FailingCluster], alerts: [AlertRow]?, sources: [SourceMetrics], recentName: String
    ) -> String {
        var parts: [String] = []
        let more = failing.count == maxFailingShown ? "at least " : ""
        switch failing.count {
        case 0: parts.append("No upstream failures in the last \(escape(recentName))")
        case 1: parts.append("<strong>1 failing cluster</strong> in the last \(escape(recentName))")
        default:
            parts.append("<strong>\(more)\(failing.count) failing clusters</strong> in the last \(escape(recentName))")
        }
        if let alerts {
            let firing = alerts.filter { $0.state == "firing" }.count
            parts.append("alerts: \(firing) firing, \(alerts.count - firing) pending")
        } else {
            parts.append("alerting not configured")
        }
        let lines = sources.reduce(UInt64(0)) { $0 + $1.lines }
        parts.append("\(lines) lines read from \(sources.count) source\(sources.count == 1 ? "" : "s")")
        return "<p class=\"summary\">" + parts.joined(separator: " · ") + "</p>\n</header>\n"
    }

    // MARK: failing clusters

    static func failingSection(_ failing: [FailingCluster], recentName: String, windowed: Bool) -> String {
        var html = "<section id=\"failing\">\n<h2>Failing clusters</h2>\n"
        if failing.isEmpty {
            html += "<div class=\"card ok\"><p>No cluster has upstream failures (UF, UH, URX, NR, UC, UO, UT, ...) "
            html += windowed ? "in the last \(escape(recentName)).</p></div>\n" : "since start.</p></div>\n"
        }
        if failing.count == maxFailingShown {
            html += "<p class=\"hint\">The \(maxFailingShown) failing the most; the table of clusters lists more.</p>\n"
        }
        for cluster in failing {
            html += failingPanel(cluster, recentName: recentName, windowed: windowed)
        }
        return html + "</section>\n"
    }

    /// One failing cluster: its cause, scope, hosts and trend, the evidence, then the commands
    /// to run.
    static func failingPanel(_ cluster: FailingCluster, recentName: String, windowed: Bool) -> String {
        let diagnosis = cluster.diagnosis
        let flag = diagnosis.flag.shortName
        let pending = !cluster.alerts.isEmpty && !cluster.alerts.contains { $0.state == "firing" }
        var html = "<article class=\"card failing\(pending ? " pending" : "")\" id=\"\(cluster.anchor)\">\n"
        html += "<h3><span class=\"cause-label\">\(escape(diagnosis.cause))</span>"
        html +=
            "<span class=\"flag\">\(escape(flag))</span><span class=\"name\">\(escape(cluster.row.name))</span></h3>\n"
        html += "<p class=\"likely\">\(escape(diagnosis.likelyCause))</p>\n<dl>\n"
        html += scopeItem(diagnosis.scope)
        html += hostsItem(diagnosis.hosts)
        html += trendItem(diagnosis.trend)
        if windowed {
            html += "<dt>Last \(escape(recentName))</dt><dd>\(cluster.recentFlagged) \(escape(flag)) of "
            html +=
                "\(cluster.recentResponses) responses (\(percent(cluster.recentFlagged, of: cluster.recentResponses)))</dd>\n"
        }
        html += "<dt>Since start</dt><dd>\(escape(cluster.row.flags)) of \(cluster.row.requests) requests</dd>\n"
        html += detailsItem(cluster.details, flag: flag)
        html += alertsItem(cluster.alerts)
        html += "</dl>\n" + nextStepsBlock(diagnosis.nextSteps)
        return html + "</article>\n"
    }

    /// One host or all of them; nil (not shown) where the caller has no scope.
    static func scopeItem(_ scope: String?) -> String {
        guard let scope else { return "" }
        return "<dt>Scope</dt><dd class=\"scope\">\(escape(scope))</dd>\n"
    }

    /// The hosts with the most flagged lines, most first; not shown when the lines name none.
    static func hostsItem(_ hosts: [HostCount]?) -> String {
        guard let hosts, !hosts.isEmpty else { return "" }
        let items = hosts.map { "<li><code>\(escape($0.host))</code> <span class=\"n\">\($0.count)</span></li>" }
        return "<dt>Top hosts</dt><dd class=\"hosts\"><ol>" + items.joined() + "</ol></dd>\n"
    }

    /// Rising, steady or falling, and since when; not shown without windows.
    static func trendItem(_ trend: Trend?) -> String {
        guard let trend else { return "" }
        var text = escape(trend.direction)
        if let first = trend.firstSeenFailing { text += ", first seen failing <time>\(escape(first))</time>" }
        return "<dt>Trend</dt><dd class=\"trend\">\(text)</dd>\n"
    }

    /// The flag's most frequent response code details and transport failure reasons (the
    /// evidence the cause is read from), at most three.
    static func detailsItem(_ details: [FailureDetail], flag: String) -> String {
        let shown = details.filter { $0.details != nil || $0.transportFailureReason != nil }.prefix(3)
        guard !shown.isEmpty else { return "" }
        let items = shown.map { detail -> String in
            var text = "<code>\(escape(detail.details ?? "-"))</code>"
            if let reason = detail.transportFailureReason, reason != detail.details {
                text += " <code>\(escape(reason))</code>"
            }
            return "<li>\(text) <span class=\"n\">× \(detail.count)</span></li>"
        }
        return "<dt>\(escape(flag)) details</dt><dd class=\"details\"><ul>" + items.joined() + "</ul></dd>\n"
    }

    static func alertsItem(_ alerts: [AlertRow]) -> String {
        guard !alerts.isEmpty else { return "" }
        let items = alerts.map { alert in
            "<li><span class=\"state \(stateClass(alert.state))\">\(escape(alert.state))</span>"
                + "<a href=\"#alerts\">\(escape(alert.alertname))</a> since <time>\(escape(alert.since))</time></li>"
        }
        return "<dt>Alerts</dt><dd><ul>" + items.joined() + "</ul></dd>\n"
    }

    /// The commands, one per line in a `<pre>`: a click selects one whole command without its
    /// newline (`user-select: all` on `.cmd`), a drag selects several; copying gives the commands
    /// as written. Each line is a block (its newline inside, so no blank line between them) with
    /// a hanging indent, so a command wrapped on a phone still reads as one.
    static func nextStepsBlock(_ steps: [String]) -> String {
        guard !steps.isEmpty else { return "" }
        let lines = steps.map { "<span class=\"step\"><span class=\"cmd\">\(escape($0))</span>\n</span>" }.joined()
        return "<h4>Next steps <span class=\"hint\">(click a command to select it)</span></h4>\n"
            + "<pre class=\"steps\">\(lines)</pre>\n"
    }

    // MARK: alerts, clusters, sources

    /// `#alerts` is the anchor of every alert's `generatorURL`.
    static func alertsSection(_ alerts: [AlertRow]?, failing: [FailingCluster]) -> String {
        var html = "<section id=\"alerts\">\n<h2>Alerts</h2>\n"
        guard let alerts else { return html + "<p>Alerting is not configured.</p>\n</section>\n" }
        guard !alerts.isEmpty else { return html + "<p>None pending or firing.</p>\n</section>\n" }
        let anchors = Dictionary(failing.map { ($0.row.name, $0.anchor) }, uniquingKeysWith: { first, _ in first })
        for alert in alerts {
            html += "<article class=\"card alert \(stateClass(alert.state))\">\n"
            html += "<h3><span class=\"state \(stateClass(alert.state))\">\(escape(alert.state))</span>"
            html += "\(escape(alert.alertname)) <span class=\"flag\">\(escape(alert.flag))</span>"
            html += "<span class=\"hint\">since <time>\(escape(alert.since))</time></span></h3>\n"
            html += "<p class=\"name\">\(escape(alert.cluster))</p>\n<p>\(escape(alert.summary))</p>\n"
            if !alert.likelyCause.isEmpty {
                let label = alert.cause.isEmpty ? "" : "<span class=\"cause-label\">\(escape(alert.cause))</span>"
                html += "<p class=\"likely\">\(label)\(escape(alert.likelyCause))</p>\n"
            }
            if let trend = alert.trend { html += "<dl>" + trendItem(trend) + "</dl>\n" }
            let steps = alert.nextSteps.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
            if let anchor = anchors[alert.cluster] {
                html += "<p><a href=\"#\(anchor)\">The cluster's diagnosis and next steps above</a></p>\n"
            } else {
                html += nextStepsBlock(steps)
            }
            html += "</article>\n"
        }
        return html + "</section>\n"
    }

    static func clustersSection(_ rows: [ClusterRow], recentName: String) -> String {
        var html = "<section id=\"clusters\">\n<h2>Upstream clusters with the most response flags</h2>\n"
        let flaggedRows = rows.filter { $0.flagged > 0 }
        guard !flaggedRows.isEmpty else { return html + "<p>No response flags since start.</p>\n</section>\n" }
        html +=
            "<div class=\"wide\"><table>\n<tr><th>upstream cluster</th><th class=\"n\">last \(escape(recentName))</th>"
        html += "<th class=\"n\">since start</th><th class=\"n\">requests</th><th>by flag</th></tr>\n"
        for row in flaggedRows.prefix(maxTableRows) {
            html += "<tr><td class=\"name\">\(escape(row.name))</td><td class=\"n\">\(row.recent)</td>"
            html += "<td class=\"n\">\(row.flagged)</td><td class=\"n\">\(row.requests)</td>"
            html += "<td class=\"words\">\(escape(row.flags))</td></tr>\n"
        }
        if flaggedRows.count > maxTableRows {
            html += "<tr><td colspan=\"5\">\(flaggedRows.count - maxTableRows) more: see /metrics</td></tr>\n"
        }
        return html + "</table></div>\n</section>\n"
    }

    static func sourcesSection(_ sources: [SourceMetrics]) -> String {
        var html = "<section id=\"sources\">\n<h2>Sources</h2>\n<div class=\"wide\"><table>\n"
        html += "<tr><th>source</th><th class=\"n\">lines</th><th class=\"n\">malformed</th><th class=\"n\">open</th>"
        html += "<th>errors</th></tr>\n"
        for source in sources {
            let malformed = source.malformed.values.reduce(0, +)
            let errors = source.errors.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            html += "<tr><td class=\"name\">\(escape(source.name))</td><td class=\"n\">\(source.lines)</td>"
            html +=
                "<td class=\"n\">\(malformed)</td><td class=\"n\">\(source.files)</td><td class=\"words\">\(escape(errors))</td></tr>\n"
        }
        return html + "</table></div>\n</section>\n"
    }

    // MARK: small pieces

    /// The CSS class of a state: only the two the page styles, whatever the text says.
    static func stateClass(_ state: String) -> String {
        state == "pending" ? "pending" : "firing"
    }

    /// `92.5 %` (one decimal, rounded); `-` of nothing.
    static func percent(_ part: UInt64, of whole: UInt64) -> String {
        guard whole > 0 else { return "-" }
        // In doubles: a product of two counters must not trap.
        let tenths = Int((Double(part) * 1000 / Double(whole)).rounded())
        return "\(tenths / 10).\(tenths % 10) %"
    }
}
