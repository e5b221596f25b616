import AccessLogParser
import FlagCounting
import Testing

@testable import Exposition

/// The daemon's `/` page: the failing clusters first, with their cause and next steps, then the
/// alerts, the clusters and the sources; every name escaped. (The browser test,
/// Tests/EndToEnd/statuspage/test_status_page_browser.py, checks the layout in Chromium.)
@Suite("The status page")
struct StatusPageTests {
    static let refused = StatusPage.ClusterDiagnosis(
        flag: .upstreamConnectionFailure, cause: "backend down",
        likelyCause: "backend down, wrong port or NetworkPolicy: 3 of 3 UF were connection refused",
        nextSteps: ["kubectl get pods -n default -o wide", "kubectl get networkpolicy -n default"])

    /// Three refused UF lines on payments at second 100, in a 60 s window.
    static func paymentsFailing(now: Int = 100) throws -> FlagCounts {
        let counts = FlagCounts(windows: [60])
        counts.now = now
        return try pipelineCounts([Lines.istioUF, Lines.istioUF, Lines.istioUF], into: counts)
    }

    static func page(
        _ counts: FlagCounts, alerts: [StatusPage.AlertRow]? = nil,
        diagnosis: StatusPage.ClusterDiagnosis? = refused
    ) -> String {
        var source = SourceMetrics(name: "envoy")
        source.lines = 3
        source.files = 1
        return StatusPage.html(
            counts: counts, windowNames: ["1m"], sources: [source], version: "1.2.3", alerts: alerts,
            diagnose: { _ in diagnosis })
    }

    static func alert(_ cluster: String, state: String = "firing") -> StatusPage.AlertRow {
        StatusPage.AlertRow(
            alertname: "UpstreamConnectFailures", cluster: cluster, flag: "UF", state: state,
            since: "2026-12-06 23:28:45 UTC", summary: "UF spike on \(cluster)", cause: "backend down",
            likelyCause: "backend down: refused", nextSteps: "kubectl get pods\nkubectl get svc")
    }

    @Test("a failing cluster's panel shows its cause, the evidence and the next steps, exactly")
    func failingPanel() throws {
        let page = Self.page(try Self.paymentsFailing())
        let expected = """
            <article class="card failing" id="failing-1">
            <h3><span class="cause-label">backend down</span><span class="flag">UF</span><span class="name">outbound|9001||payments.default.svc.cluster.local</span></h3>
            <p class="likely">backend down, wrong port or NetworkPolicy: 3 of 3 UF were connection refused</p>
            <dl>
            <dt>Last 1m</dt><dd>3 UF of 3 responses (100.0 %)</dd>
            <dt>Since start</dt><dd>UF=3 of 3 requests</dd>
            <dt>UF details</dt><dd class="details"><ul><li><code>upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}</code> <code>delayed_connect_error:_Connection_refused</code> <span class="n">× 3</span></li></ul></dd>
            </dl>
            <h4>Next steps <span class="hint">(click a command to select it)</span></h4>
            <pre class="steps"><span class="step"><span class="cmd">kubectl get pods -n default -o wide</span>
            </span><span class="step"><span class="cmd">kubectl get networkpolicy -n default</span>
            </span></pre>
            </article>

            """
        #expect(page.contains(expected))
        #expect(page.contains(#"<p class="summary"><strong>1 failing cluster</strong> in the last 1m"#))
    }

    @Test("the page leads with the failing clusters, then the alerts, the clusters and the sources")
    func order() throws {
        let page = Self.page(try Self.paymentsFailing(), alerts: [])
        let positions = [#"id="failing""#, #"id="alerts""#, #"id="clusters""#, #"id="sources""#].map {
            page.range(of: $0)?.lowerBound
        }
        let found = positions.compactMap { $0 }
        #expect(found.count == 4)
        #expect(found == found.sorted())
        #expect(page.contains(#"<meta name="viewport" content="width=device-width, initial-scale=1">"#))
        // Nothing is loaded from elsewhere: no script, no stylesheet link, no image.
        for tag in ["<script", "<link", "<img", "src="] { #expect(!page.contains(tag), "\(tag)") }
    }

    @Test("scope, top hosts and trend are shown exactly when the diagnosis carries them")
    func optionalFields() throws {
        let without = Self.page(try Self.paymentsFailing())
        for label in ["<dt>Scope", "<dt>Top hosts", "<dt>Trend"] { #expect(!without.contains(label), "\(label)") }

        var diagnosis = Self.refused
        diagnosis.scope = "one host"
        diagnosis.hosts = [
            StatusPage.HostCount(host: "10.8.3.14:8080", count: 18), StatusPage.HostCount(host: "<b>", count: 2),
        ]
        diagnosis.trend = StatusPage.Trend(direction: "rising", firstSeenFailing: "2026-12-06 23:00:00 UTC")
        let with = Self.page(try Self.paymentsFailing(), diagnosis: diagnosis)
        #expect(with.contains("<dt>Scope</dt><dd class=\"scope\">one host</dd>\n"))
        #expect(
            with.contains(
                #"<dt>Top hosts</dt><dd class="hosts"><ol><li><code>10.8.3.14:8080</code> <span class="n">18</span></li><li><code>&lt;b&gt;</code> <span class="n">2</span></li></ol></dd>"#
            ))
        #expect(
            with.contains(
                #"<dt>Trend</dt><dd class="trend">rising, first seen failing <time>2026-12-06 23:00:00 UTC</time></dd>"#
            ))
    }

    @Test("a cluster whose flags left the window is not failing, and stays in the table")
    func oldFailuresAreNotFailing() throws {
        let counts = try Self.paymentsFailing(now: 100)
        counts.now = 200
        let page = Self.page(counts)
        #expect(!page.contains("<article class=\"card failing"))
        #expect(
            page.contains(
                "<div class=\"card ok\"><p>No cluster has upstream failures (UF, UH, URX, NR, UC, UO, UT, ...) in the last 1m.</p></div>"
            ))
        #expect(
            page.contains(
                #"<tr><td class="name">outbound|9001||payments.default.svc.cluster.local</td><td class="n">0</td><td class="n">3</td><td class="n">3</td><td class="words">UF=3</td></tr>"#
            ))
    }

    @Test(
        "a cluster with a firing alert comes first; the alert links to its panel, an alert without one shows its steps")
    func alertsFirst() throws {
        let counts = try Self.paymentsFailing()
        // ledger: one URX,UF line, fewer than payments' three, but with a firing alert.
        _ = try pipelineCounts([Lines.istioURXUF], into: counts)
        let ledger = "outbound|9002||ledger.default.svc.cluster.local"
        let page = Self.page(counts, alerts: [Self.alert(ledger), Self.alert("gone", state: "pending")])
        let ledgerPanel = try #require(page.range(of: #"id="failing-1""#))
        #expect(page[ledgerPanel.upperBound...].hasPrefix(">\n<h3><span class=\"cause-label\">backend down</span>"))
        #expect(page.contains("<span class=\"name\">\(ledger)</span></h3>"))
        let firstName = try #require(page.range(of: "<span class=\"name\">"))
        #expect(page[firstName.upperBound...].hasPrefix(ledger))
        #expect(page.contains(##"<p><a href="#failing-1">The cluster's diagnosis and next steps above</a></p>"##))
        #expect(
            page.contains(
                "<pre class=\"steps\"><span class=\"step\"><span class=\"cmd\">kubectl get pods</span>\n</span><span class=\"step\"><span class=\"cmd\">kubectl get svc</span>\n</span></pre>"
            ))
        #expect(page.contains("alerts: 1 firing, 1 pending"))
        #expect(
            page.contains(
                ##"<li><span class="state firing">firing</span><a href="#alerts">UpstreamConnectFailures</a> since <time>2026-12-06 23:28:45 UTC</time></li>"##
            ))
    }

    @Test("a cluster name with a script tag and quotes is escaped in the panel, the table and the alert")
    func hostileName() throws {
        let hostile = #"<script>alert("x")</script>'q&"#
        let escaped = #"&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;'q&amp;"#
        let counts = FlagCounts(windows: [60])
        counts.now = 5
        _ = try pipelineCounts(
            [ufLine(details: refusedDetails, reason: refusedReason, cluster: "outbound|1||\(hostile)")], into: counts)
        let page = Self.page(counts, alerts: [Self.alert("outbound|1||\(hostile)")])
        #expect(!page.contains("<script"))
        #expect(page.contains("<span class=\"name\">outbound|1||\(escaped)</span></h3>"))
        #expect(page.contains("<td class=\"name\">outbound|1||\(escaped)</td>"))
        #expect(page.contains("<p class=\"name\">outbound|1||\(escaped)</p>"))
        #expect(page.components(separatedBy: escaped).count - 1 == 4)  // panel, alert's summary and name, table
    }

    @Test("at most ten failing clusters get a panel, and the summary says there are at least ten")
    func cap() throws {
        let counts = FlagCounts(windows: [60])
        counts.now = 1
        let lines = (0..<12).map {
            ufLine(details: refusedDetails, reason: refusedReason, cluster: "outbound|80||s\($0).ns.svc.cluster.local")
        }
        _ = try pipelineCounts(lines, into: counts)
        let page = Self.page(counts)
        #expect(page.components(separatedBy: "<article class=\"card failing").count - 1 == 10)
        #expect(page.contains("<strong>at least 10 failing clusters</strong> in the last 1m"))
        #expect(page.contains("<p class=\"hint\">The 10 failing the most; the table of clusters lists more.</p>"))
    }

    @Test("percentages have one decimal, and none of nothing")
    func percentages() {
        #expect(StatusPage.percent(2, of: 3) == "66.7 %")
        #expect(StatusPage.percent(1, of: 8) == "12.5 %")
        #expect(StatusPage.percent(0, of: 0) == "-")
    }
}
