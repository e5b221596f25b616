import AccessLogParser
import FlagCounting
import Testing

@testable import Exposition

/// `scan --output prometheus` and the daemon's `/metrics` both come from ``MetricFamily`` and
/// one ``MetricsWriter``: the same names, HELP, TYPE and labels.
@Suite("One table of metric families for both outputs")
struct MetricFamilyTests {
    static let payments = "outbound|9001||payments.default.svc.cluster.local"
    static let ledger = "outbound|9002||ledger.default.svc.cluster.local"
    /// Two UF lines for payments (one with an unknown flag), a `URX,UF` line for ledger, an NR line
    /// without a cluster, a cluster name with a quote and a backslash, and one malformed line.
    static let lines = [
        Lines.istioUF, Lines.istioUFCustom, Lines.istioURXUF, Lines.istioNR, Lines.agentLog,
        #"{"response_flags":"DC","response_code":0,"upstream_cluster":"we\"ird\\x"}"#,
    ]

    @Test("scan's Prometheus text, exactly: the response and line totals with the daemon's HELP texts")
    func scanTextExactly() throws {
        let counts = try counts(of: Self.lines)
        let text = ScanReport(counts: counts).prometheus(source: "scan")
        let expected = """
            # HELP flagwatch_responses_total Responses per upstream cluster and code class (0 = no response).
            # TYPE flagwatch_responses_total counter
            flagwatch_responses_total{upstream_cluster="\(Self.payments)",code_class="5xx"} 2
            flagwatch_responses_total{upstream_cluster="\(Self.ledger)",code_class="5xx"} 1
            flagwatch_responses_total{upstream_cluster="-",code_class="4xx"} 1
            flagwatch_responses_total{upstream_cluster="we\\"ird\\\\x",code_class="0"} 1
            # HELP flagwatch_response_flags_total Responses per upstream cluster carrying each Envoy response flag (short name).
            # TYPE flagwatch_response_flags_total counter
            flagwatch_response_flags_total{upstream_cluster="\(Self.payments)",response_flag="UF"} 2
            flagwatch_response_flags_total{upstream_cluster="\(Self.payments)",response_flag="XCUSTOM"} 1
            flagwatch_response_flags_total{upstream_cluster="\(Self.ledger)",response_flag="UF"} 1
            flagwatch_response_flags_total{upstream_cluster="\(Self.ledger)",response_flag="URX"} 1
            flagwatch_response_flags_total{upstream_cluster="-",response_flag="NR"} 1
            flagwatch_response_flags_total{upstream_cluster="we\\"ird\\\\x",response_flag="DC"} 1
            # HELP flagwatch_lines_total Complete log lines read, parsed or malformed, per source.
            # TYPE flagwatch_lines_total counter
            flagwatch_lines_total{source="scan"} 6
            # HELP flagwatch_lines_malformed_total Log lines skipped as malformed, per source and reason.
            # TYPE flagwatch_lines_malformed_total counter
            flagwatch_lines_malformed_total{source="scan",reason="empty_line"} 0
            flagwatch_lines_malformed_total{source="scan",reason="not_access_log"} 1
            flagwatch_lines_malformed_total{source="scan",reason="format_mismatch"} 0
            flagwatch_lines_malformed_total{source="scan",reason="no_flags_field"} 0
            flagwatch_lines_malformed_total{source="scan",reason="bad_flags"} 0
            flagwatch_lines_malformed_total{source="scan",reason="bad_response_code"} 0
            flagwatch_lines_malformed_total{source="scan",reason="bad_json"} 0
            flagwatch_lines_malformed_total{source="scan",reason="bad_protobuf"} 0
            flagwatch_lines_malformed_total{source="scan",reason="too_long"} 0
            flagwatch_lines_malformed_total{source="scan",reason="bad_cri_line"} 0
            flagwatch_lines_malformed_total{source="scan",reason="bad_docker_line"} 0

            """
        #expect(text == expected)
    }

    @Test(
        "the daemon's page, exactly, with every family of the table",
        arguments: [ExpositionFormat.prometheus, .openMetrics])
    func daemonPageExactly(_ format: ExpositionFormat) throws {
        let page = try Self.daemonPage(format)
        // OpenMetrics names a counter family without `_total` and ends with `# EOF`.
        func family(_ name: String) -> String {
            format == .openMetrics ? name.replacingOccurrences(of: "_total", with: "") : name
        }
        let expected = """
            # HELP \(family("flagwatch_responses_total")) Responses per upstream cluster and code class (0 = no response).
            # TYPE \(family("flagwatch_responses_total")) counter
            flagwatch_responses_total{upstream_cluster="\(Self.ledger)",code_class="5xx"} 2
            # HELP \(family("flagwatch_response_flags_total")) Responses per upstream cluster carrying each Envoy response flag (short name).
            # TYPE \(family("flagwatch_response_flags_total")) counter
            flagwatch_response_flags_total{upstream_cluster="\(Self.ledger)",response_flag="UF"} 2
            flagwatch_response_flags_total{upstream_cluster="\(Self.ledger)",response_flag="URX"} 2
            # HELP flagwatch_response_flags_window Responses carrying each flag in the trailing window, per upstream cluster.
            # TYPE flagwatch_response_flags_window gauge
            flagwatch_response_flags_window{upstream_cluster="\(Self.ledger)",response_flag="UF",window="1m"} 1
            flagwatch_response_flags_window{upstream_cluster="\(Self.ledger)",response_flag="UF",window="5m"} 2
            flagwatch_response_flags_window{upstream_cluster="\(Self.ledger)",response_flag="URX",window="1m"} 1
            flagwatch_response_flags_window{upstream_cluster="\(Self.ledger)",response_flag="URX",window="5m"} 2
            # HELP flagwatch_responses_window Responses in the trailing window, per upstream cluster.
            # TYPE flagwatch_responses_window gauge
            flagwatch_responses_window{upstream_cluster="\(Self.ledger)",window="1m"} 1
            flagwatch_responses_window{upstream_cluster="\(Self.ledger)",window="5m"} 2
            # HELP flagwatch_upstream_cluster_info Istio cluster names split into direction, port, subset, service and namespace (empty for other clusters).
            # TYPE flagwatch_upstream_cluster_info gauge
            flagwatch_upstream_cluster_info{upstream_cluster="\(Self.ledger)",direction="outbound",port="9002",subset="",service="ledger",namespace="default"} 1
            # HELP flagwatch_clusters Upstream clusters with series now (at most limits.max_clusters, plus __overflow__).
            # TYPE flagwatch_clusters gauge
            flagwatch_clusters 1
            # HELP \(family("flagwatch_clusters_dropped_total")) Distinct upstream clusters counted under __overflow__ because limits.max_clusters was reached (approximate beyond a few hundred thousand).
            # TYPE \(family("flagwatch_clusters_dropped_total")) counter
            flagwatch_clusters_dropped_total 0
            # HELP flagwatch_diagnosis_info The likely cause and scope flagwatch diagnoses for each upstream-failure flag of a cluster in its first window (1 while diagnosed).
            # TYPE flagwatch_diagnosis_info gauge
            flagwatch_diagnosis_info{upstream_cluster="\(Self.ledger)",response_flag="UF",cause="backend down",scope="unknown"} 1
            flagwatch_diagnosis_info{upstream_cluster="\(Self.ledger)",response_flag="URX",cause="backend down",scope="unknown"} 1
            # HELP \(family("flagwatch_lines_total")) Complete log lines read, parsed or malformed, per source.
            # TYPE \(family("flagwatch_lines_total")) counter
            flagwatch_lines_total{source="envoy"} 3
            # HELP \(family("flagwatch_lines_malformed_total")) Log lines skipped as malformed, per source and reason.
            # TYPE \(family("flagwatch_lines_malformed_total")) counter
            flagwatch_lines_malformed_total{source="envoy",reason="empty_line"} 0
            flagwatch_lines_malformed_total{source="envoy",reason="not_access_log"} 1
            flagwatch_lines_malformed_total{source="envoy",reason="format_mismatch"} 0
            flagwatch_lines_malformed_total{source="envoy",reason="no_flags_field"} 0
            flagwatch_lines_malformed_total{source="envoy",reason="bad_flags"} 0
            flagwatch_lines_malformed_total{source="envoy",reason="bad_response_code"} 0
            flagwatch_lines_malformed_total{source="envoy",reason="bad_json"} 0
            flagwatch_lines_malformed_total{source="envoy",reason="bad_protobuf"} 0
            flagwatch_lines_malformed_total{source="envoy",reason="too_long"} 0
            flagwatch_lines_malformed_total{source="envoy",reason="bad_cri_line"} 0
            flagwatch_lines_malformed_total{source="envoy",reason="bad_docker_line"} 0
            # HELP \(family("flagwatch_bytes_read_total")) Bytes read from the source's files or journal.
            # TYPE \(family("flagwatch_bytes_read_total")) counter
            flagwatch_bytes_read_total{source="envoy"} 1234
            # HELP flagwatch_source_files Files (or journals) the source has open now.
            # TYPE flagwatch_source_files gauge
            flagwatch_source_files{source="envoy"} 2
            # HELP \(family("flagwatch_source_errors_total")) Errors per source and kind (permission_denied, not_found, read_error, watch_limit, fd_limit, journal_error, checkpoint_corrupt, checkpoint_write, ...).
            # TYPE \(family("flagwatch_source_errors_total")) counter
            flagwatch_source_errors_total{source="envoy",kind="permission_denied"} 1
            # HELP \(family("flagwatch_received_messages_dropped_total")) gRPC access-log messages a receiving source dropped because flagwatch fell behind the senders (docs/formats.md §10.2).
            # TYPE \(family("flagwatch_received_messages_dropped_total")) counter
            flagwatch_received_messages_dropped_total{source="envoy"} 2
            # HELP \(family("flagwatch_received_entries_dropped_total")) Access-log entries in the messages a receiving source dropped (docs/formats.md §10.2).
            # TYPE \(family("flagwatch_received_entries_dropped_total")) counter
            flagwatch_received_entries_dropped_total{source="envoy"} 7
            # HELP \(family("flagwatch_received_messages_rejected_total")) gRPC messages a receiving source's transport rejected, resetting the stream: over max_message_size, compressed without grpc-encoding, or broken framing (docs/formats.md §10.2).
            # TYPE \(family("flagwatch_received_messages_rejected_total")) counter
            flagwatch_received_messages_rejected_total{source="envoy"} 1
            # HELP flagwatch_alerts Alerts per rule and state (pending, firing) now.
            # TYPE flagwatch_alerts gauge
            flagwatch_alerts{alertname="UpstreamDown",state="pending"} 0
            flagwatch_alerts{alertname="UpstreamDown",state="firing"} 1
            # HELP \(family("flagwatch_notifications_total")) Notifications per receiver and result (success, failure: an attempt that failed and is retried, dropped).
            # TYPE \(family("flagwatch_notifications_total")) counter
            flagwatch_notifications_total{receiver="pager",result="success"} 4
            flagwatch_notifications_total{receiver="pager",result="dropped"} 0
            # HELP flagwatch_notification_queue_length Alerts waiting to be delivered, per receiver.
            # TYPE flagwatch_notification_queue_length gauge
            flagwatch_notification_queue_length{receiver="pager"} 1
            # HELP \(family("flagwatch_http_connections_evicted_total")) Idle connections closed at the listener's connection cap to admit a new one.
            # TYPE \(family("flagwatch_http_connections_evicted_total")) counter
            flagwatch_http_connections_evicted_total 3
            # HELP flagwatch_build_info The running flagwatch's version.
            # TYPE flagwatch_build_info gauge
            flagwatch_build_info{version="1.2.3"} 1
            # HELP \(family("process_cpu_seconds_total")) Total user and system CPU time spent in seconds.
            # TYPE \(family("process_cpu_seconds_total")) counter
            process_cpu_seconds_total 1.5
            # HELP process_resident_memory_bytes Resident memory size in bytes.
            # TYPE process_resident_memory_bytes gauge
            process_resident_memory_bytes 25165824
            # HELP process_virtual_memory_bytes Virtual memory size in bytes.
            # TYPE process_virtual_memory_bytes gauge
            process_virtual_memory_bytes 104857600
            # HELP process_open_fds Number of open file descriptors.
            # TYPE process_open_fds gauge
            process_open_fds 12
            # HELP process_max_fds Maximum number of open file descriptors.
            # TYPE process_max_fds gauge
            process_max_fds 1024
            # HELP process_start_time_seconds Start time of the process since unix epoch in seconds.
            # TYPE process_start_time_seconds gauge
            process_start_time_seconds 1790000000

            """ + (format == .openMetrics ? "# EOF\n" : "")
        #expect(page == expected)
    }

    @Test(
        "every family of the table is on the daemon's page with its labels, in the table's order",
        arguments: [ExpositionFormat.prometheus, .openMetrics])
    func everyFamilyWithItsLabels(_ format: ExpositionFormat) throws {
        let page = try Self.daemonPage(format)
        var familiesInOrder: [String] = []
        for line in page.split(separator: "\n") where !line.hasPrefix("#") {
            let sample = try #require(Self.parseSample(String(line)), "unparsable: \(line)")
            let family = try #require(MetricFamily.all.first { $0.name == sample.name }, "no family for \(sample.name)")
            #expect(sample.labelNames == family.labelNames, "\(line)")
            if familiesInOrder.last != family.name { familiesInOrder.append(family.name) }
        }
        #expect(familiesInOrder == MetricFamily.all.map(\.name))
        #expect(Set(MetricFamily.all.map(\.name)).count == MetricFamily.all.count)
    }

    @Test("HELP and TYPE lines of scan's text are the daemon's, and scan's families are the daemon's")
    func scanAgreesWithDaemon() throws {
        let scanText = ScanReport(counts: try counts(of: Self.lines)).prometheus(source: "scan")
        let daemonLines = Set(try Self.daemonPage(.prometheus).split(separator: "\n"))
        let scanComments = scanText.split(separator: "\n").filter { $0.hasPrefix("# ") }
        #expect(scanComments.count == 8)
        for comment in scanComments { #expect(daemonLines.contains(comment), "\(comment)") }
        for line in scanText.split(separator: "\n") where !line.hasPrefix("#") {
            let sample = try #require(Self.parseSample(String(line)))
            let family = try #require(MetricFamily.all.first { $0.name == sample.name })
            #expect(sample.labelNames == family.labelNames, "\(line)")
        }
    }

    /// The daemon's page for one cluster (ledger, two `URX,UF` lines 40 s apart, windows 1m and
    /// 5m, diagnosed "backend down"), one source, one alert rule and receiver, and process figures.
    static func daemonPage(_ format: ExpositionFormat) throws -> String {
        let counts = FlagCounts(windows: [60, 300])
        var parser = try AccessLogParser(format: .istio)
        counts.now = 1000
        count(Lines.istioURXUF, into: counts, with: &parser)
        counts.now = 1040
        count(Lines.istioURXUF, into: counts, with: &parser)
        counts.count(LineDefect(.notAccessLog))
        counts.now = 1070
        var source = SourceMetrics(name: "envoy")
        source.lines = 3
        source.malformed = ["not_access_log": 1]
        source.bytesRead = 1234
        source.files = 2
        source.errors = ["permission_denied": 1]
        // A file source has no drops; set here so that every family of the table has a sample.
        source.receivedDrops = (messages: 2, entries: 7)
        source.receivedRejected = 1
        var alerting = AlertingMetrics()
        alerting.alerts = [("UpstreamDown", "pending", 0), ("UpstreamDown", "firing", 1)]
        alerting.receivers = [.init(name: "pager", queueLength: 1, results: [("success", 4), ("dropped", 0)])]
        let process = ProcessMetrics(
            cpuSeconds: 1.5, residentBytes: 25_165_824, virtualBytes: 104_857_600, openDescriptors: 12,
            maxDescriptors: 1024, startTimeSeconds: 1_790_000_000)
        let bytes = DaemonMetrics.render(
            counts: counts, windowNames: ["1m", "5m"], labels: ClusterLabelCache(), sources: [source], process: process,
            version: "1.2.3", format: format, alerting: alerting, connectionsEvicted: 3,
            diagnoses: DiagnosisInfo.current(counts, flags: [.upstreamConnectionFailure, .upstreamRetryLimitExceeded]) {
                _, _ in ("backend down", "unknown")
            })
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A sample line's name and label names (`name{a="x",b="y\"z"} 1`).
    static func parseSample(_ line: String) -> (name: String, labelNames: [String])? {
        var rest = Substring(line)
        guard let nameEnd = rest.firstIndex(where: { $0 == "{" || $0 == " " }) else { return nil }
        let name = String(rest[..<nameEnd])
        rest = rest[nameEnd...]
        var labelNames: [String] = []
        if rest.first == "{" {
            rest = rest.dropFirst()
            while rest.first != "}" {
                guard let equals = rest.firstIndex(of: "="), rest[rest.index(after: equals)] == "\"" else { return nil }
                labelNames.append(String(rest[..<equals]))
                rest = rest[rest.index(equals, offsetBy: 2)...]
                // The value: up to the first quote not escaped.
                var escaped = false
                guard
                    let close = rest.firstIndex(where: { character in
                        defer { escaped = !escaped && character == "\\" }
                        return !escaped && character == "\""
                    })
                else { return nil }
                rest = rest[rest.index(after: close)...]
                if rest.first == "," { rest = rest.dropFirst() }
            }
            rest = rest.dropFirst()
        }
        guard rest.first == " ", Double(rest.dropFirst()) != nil else { return nil }
        return (name, labelNames)
    }
}
