/// One metric family as flagwatch exposes it: the daemon's `/metrics` page and
/// `flagwatch scan --output prometheus` both take name, type and HELP text from the table below,
/// so the two outputs cannot drift apart. Names, types and labels are a contract (docs/metrics.md).
public struct MetricFamily: Sendable, Equatable {
    /// The sample name (with `_total` for counters; OpenMetrics drops it in the family name).
    public let name: String
    public let kind: MetricsWriter.Kind
    public let help: String
    /// The label names of every sample, in the order they are written.
    public let labelNames: [String]

    init(_ name: String, _ kind: MetricsWriter.Kind, _ labelNames: [String], help: String) {
        self.name = name
        self.kind = kind
        self.help = help
        self.labelNames = labelNames
    }
}

// MARK: - The table

extension MetricFamily {
    // Per upstream cluster.
    public static let responses = MetricFamily(
        "flagwatch_responses_total", .counter, ["upstream_cluster", "code_class"],
        help: "Responses per upstream cluster and code class (0 = no response).")
    public static let responseFlags = MetricFamily(
        "flagwatch_response_flags_total", .counter, ["upstream_cluster", "response_flag"],
        help: "Responses per upstream cluster carrying each Envoy response flag (short name).")
    public static let responseFlagsWindow = MetricFamily(
        "flagwatch_response_flags_window", .gauge, ["upstream_cluster", "response_flag", "window"],
        help: "Responses carrying each flag in the trailing window, per upstream cluster.")
    public static let responsesWindow = MetricFamily(
        "flagwatch_responses_window", .gauge, ["upstream_cluster", "window"],
        help: "Responses in the trailing window, per upstream cluster.")
    public static let upstreamClusterInfo = MetricFamily(
        "flagwatch_upstream_cluster_info", .gauge,
        ["upstream_cluster", "direction", "port", "subset", "service", "namespace"],
        help:
            "Istio cluster names split into direction, port, subset, service and namespace (empty for other clusters).")
    public static let clusters = MetricFamily(
        "flagwatch_clusters", .gauge, [],
        help: "Upstream clusters with series now (at most limits.max_clusters, plus __overflow__).")
    public static let clustersDropped = MetricFamily(
        "flagwatch_clusters_dropped_total", .counter, [],
        help:
            "Distinct upstream clusters counted under __overflow__ because limits.max_clusters was reached (approximate beyond a few hundred thousand)."
    )
    /// One series per (cluster, upstream-failure flag) in the first window, with the likely
    /// cause's short label and its scope (``DiagnosisInfo``); at most ``DiagnosisInfo/maxSeries``.
    public static let diagnosisInfo = MetricFamily(
        "flagwatch_diagnosis_info", .gauge, ["upstream_cluster", "response_flag", "cause", "scope"],
        help:
            "The likely cause and scope flagwatch diagnoses for each upstream-failure flag of a cluster in its first window (1 while diagnosed)."
    )

    // Per source (scan has one, `scan`).
    public static let lines = MetricFamily(
        "flagwatch_lines_total", .counter, ["source"],
        help: "Complete log lines read, parsed or malformed, per source.")
    public static let linesMalformed = MetricFamily(
        "flagwatch_lines_malformed_total", .counter, ["source", "reason"],
        help: "Log lines skipped as malformed, per source and reason.")
    public static let bytesRead = MetricFamily(
        "flagwatch_bytes_read_total", .counter, ["source"],
        help: "Bytes read from the source's files or journal.")
    public static let sourceFiles = MetricFamily(
        "flagwatch_source_files", .gauge, ["source"],
        help: "Files (or journals) the source has open now.")
    public static let sourceErrors = MetricFamily(
        "flagwatch_source_errors_total", .counter, ["source", "kind"],
        help:
            "Errors per source and kind (permission_denied, not_found, read_error, watch_limit, fd_limit, journal_error, checkpoint_corrupt, checkpoint_write, ...)."
    )

    public static let receivedMessagesDropped = MetricFamily(
        "flagwatch_received_messages_dropped_total", .counter, ["source"],
        help:
            "gRPC access-log messages a receiving source dropped because flagwatch fell behind the senders (docs/formats.md §10.2)."
    )
    public static let receivedEntriesDropped = MetricFamily(
        "flagwatch_received_entries_dropped_total", .counter, ["source"],
        help: "Access-log entries in the messages a receiving source dropped (docs/formats.md §10.2).")
    public static let receivedMessagesRejected = MetricFamily(
        "flagwatch_received_messages_rejected_total", .counter, ["source"],
        help:
            "gRPC messages a receiving source's transport rejected, resetting the stream: over max_message_size, compressed without grpc-encoding, or broken framing (docs/formats.md §10.2)."
    )

    // Alerting.
    public static let alerts = MetricFamily(
        "flagwatch_alerts", .gauge, ["alertname", "state"],
        help: "Alerts per rule and state (pending, firing) now.")
    public static let notifications = MetricFamily(
        "flagwatch_notifications_total", .counter, ["receiver", "result"],
        help:
            "Notifications per receiver and result (success, failure: an attempt that failed and is retried, dropped).")
    public static let notificationQueueLength = MetricFamily(
        "flagwatch_notification_queue_length", .gauge, ["receiver"],
        help: "Alerts waiting to be delivered, per receiver.")

    // The daemon itself.
    public static let connectionsEvicted = MetricFamily(
        "flagwatch_http_connections_evicted_total", .counter, [],
        help: "Idle connections closed at the listener's connection cap to admit a new one.")
    public static let buildInfo = MetricFamily(
        "flagwatch_build_info", .gauge, ["version"],
        help: "The running flagwatch's version.")

    // The standard process metrics (their usual HELP texts).
    public static let processCPUSeconds = MetricFamily(
        "process_cpu_seconds_total", .counter, [], help: "Total user and system CPU time spent in seconds.")
    public static let processResidentMemory = MetricFamily(
        "process_resident_memory_bytes", .gauge, [], help: "Resident memory size in bytes.")
    public static let processVirtualMemory = MetricFamily(
        "process_virtual_memory_bytes", .gauge, [], help: "Virtual memory size in bytes.")
    public static let processOpenDescriptors = MetricFamily(
        "process_open_fds", .gauge, [], help: "Number of open file descriptors.")
    public static let processMaxDescriptors = MetricFamily(
        "process_max_fds", .gauge, [], help: "Maximum number of open file descriptors.")
    public static let processStartTime = MetricFamily(
        "process_start_time_seconds", .gauge, [], help: "Start time of the process since unix epoch in seconds.")

    /// Every family, in the order the daemon's page lists them.
    public static let all: [MetricFamily] = [
        responses, responseFlags, responseFlagsWindow, responsesWindow, upstreamClusterInfo, clusters, clustersDropped,
        diagnosisInfo, lines, linesMalformed, bytesRead, sourceFiles, sourceErrors, receivedMessagesDropped,
        receivedEntriesDropped,
        receivedMessagesRejected,
        alerts, notifications, notificationQueueLength,
        connectionsEvicted, buildInfo,
        processCPUSeconds, processResidentMemory, processVirtualMemory, processOpenDescriptors, processMaxDescriptors,
        processStartTime,
    ]
}
