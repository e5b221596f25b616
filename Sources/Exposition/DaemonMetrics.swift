import AccessLogParser
import FlagCounting

/// One source's self-metrics.
public struct SourceMetrics: Sendable {
    public var name: String
    public var lines: UInt64 = 0
    public var malformed: [String: UInt64] = [:]
    public var bytesRead: UInt64 = 0
    public var files = 0
    public var errors: [String: UInt64] = [:]

    public init(name: String) { self.name = name }
}

/// The standard `process_*` metrics.
public struct ProcessMetrics: Sendable {
    public var cpuSeconds: Double
    public var residentBytes: Double
    public var virtualBytes: Double
    public var openDescriptors: Double
    public var maxDescriptors: Double
    public var startTimeSeconds: Double

    public init(cpuSeconds: Double, residentBytes: Double, virtualBytes: Double, openDescriptors: Double,
                maxDescriptors: Double, startTimeSeconds: Double) {
        self.cpuSeconds = cpuSeconds
        self.residentBytes = residentBytes
        self.virtualBytes = virtualBytes
        self.openDescriptors = openDescriptors
        self.maxDescriptors = maxDescriptors
        self.startTimeSeconds = startTimeSeconds
    }
}

/// Escaped label blocks per cluster id, built once per cluster (names are long; escaping
/// them on every scrape would dominate its cost).
public final class ClusterLabelCache {
    private var generation = -1
    private(set) var clusterLabels: [String] = []
    private(set) var infoLabels: [String] = []
    private(set) var parts: [IstioClusterName] = []

    public init() {}

    public func refresh(_ counts: FlagCounts) {
        if counts.generation != generation {
            generation = counts.generation
            clusterLabels.removeAll()
            infoLabels.removeAll()
            parts.removeAll()
        }
        let names = counts.clusters.names
        while clusterLabels.count < names.count {
            let name = names[clusterLabels.count]
            let istio = IstioClusterName(name)
            parts.append(istio)
            clusterLabels.append(MetricsWriter.labelBlock([("upstream_cluster", name)]))
            infoLabels.append(MetricsWriter.labelBlock([
                ("upstream_cluster", name), ("direction", istio.direction), ("port", istio.port),
                ("subset", istio.subset), ("service", istio.service), ("namespace", istio.namespace),
            ]))
        }
    }

    public func istioName(of cluster: Int) -> IstioClusterName { parts[cluster] }
}

/// The alerting figures on `/metrics` (plain data: the rule engine and the notifier fill it).
public struct AlertingMetrics: Sendable {
    /// Per rule and state (`pending`, `firing`): alerts now, zeros included.
    public var alerts: [(alertname: String, state: String, count: Int)] = []
    public var receivers: [Receiver] = []

    public struct Receiver: Sendable {
        public var name: String
        public var queueLength: Int
        /// Notifications by result: `success`, `failure` (an attempt that failed; retried), `dropped`.
        public var results: [(result: String, count: UInt64)]

        public init(name: String, queueLength: Int, results: [(result: String, count: UInt64)]) {
            self.name = name
            self.queueLength = queueLength
            self.results = results
        }
    }

    public init() {}
}

/// The daemon's `/metrics` page. Metric names and labels are a contract (docs/metrics.md).
public enum DaemonMetrics {
    public static func render(
        counts: FlagCounts, windowNames: [String], labels: ClusterLabelCache, sources: [SourceMetrics],
        process: ProcessMetrics?, version: String, format: ExpositionFormat, expectedBytes: Int = 0,
        alerting: AlertingMetrics? = nil, connectionsEvicted: UInt64? = nil
    ) -> [UInt8] {
        labels.refresh(counts)
        let clusterCount = counts.clusters.count
        // The previous page's size (plus room to grow) when known: growing a 2 MB buffer by
        // doubling held the old and the new copy at once.
        let capacity = expectedBytes > 0 ? expectedBytes + expectedBytes / 8 + 4096 : 256 + clusterCount * 1900
        var writer = MetricsWriter(format: format, reservingCapacity: capacity)
        let flags = ResponseFlag.allCases

        writer.family("flagwatch_responses_total", .counter, help: "Responses per upstream cluster and code class (0 = no response).")
        for cluster in 0..<clusterCount {
            for index in 0..<FlagCounts.codeClassNames.count {
                let value = counts.codeTotal(cluster: cluster, codeClass: index)
                if value > 0 {
                    writer.sample("flagwatch_responses_total", escapedLabels: labels.clusterLabels[cluster],
                                  extra: [("code_class", FlagCounts.codeClassNames[index])], UInt64(value))
                }
            }
        }
        writer.family("flagwatch_response_flags_total", .counter, help: "Responses per upstream cluster carrying each Envoy response flag (short name).")
        for cluster in 0..<clusterCount {
            for flag in flags {
                let value = counts.flagTotal(cluster: cluster, flag: flag)
                if value > 0 {
                    writer.sample("flagwatch_response_flags_total", escapedLabels: labels.clusterLabels[cluster],
                                  extra: [("response_flag", flag.shortName)], UInt64(value))
                }
            }
            for (code, value) in counts.unknownFlagTotals(cluster: cluster).sorted(by: { $0.key < $1.key }) {
                writer.sample("flagwatch_response_flags_total", escapedLabels: labels.clusterLabels[cluster],
                              extra: [("response_flag", code)], UInt64(value))
            }
        }
        if counts.rings != nil {
            writer.family("flagwatch_response_flags_window", .gauge, help: "Responses carrying each flag in the trailing window, per upstream cluster.")
            for cluster in 0..<clusterCount {
                for flag in flags where counts.flagTotal(cluster: cluster, flag: flag) > 0 {
                    for (index, window) in windowNames.enumerated() {
                        writer.sample("flagwatch_response_flags_window", escapedLabels: labels.clusterLabels[cluster],
                                      extra: [("response_flag", flag.shortName), ("window", window)],
                                      counts.windowCount(cluster: cluster, flag: flag, window: index))
                    }
                }
            }
            writer.family("flagwatch_responses_window", .gauge, help: "Responses in the trailing window, per upstream cluster.")
            for cluster in 0..<clusterCount {
                for (index, window) in windowNames.enumerated() {
                    writer.sample("flagwatch_responses_window", escapedLabels: labels.clusterLabels[cluster],
                                  extra: [("window", window)], counts.windowCount(cluster: cluster, flag: nil, window: index))
                }
            }
        }
        writer.family("flagwatch_upstream_cluster_info", .gauge, help: "Istio cluster names split into direction, port, subset, service and namespace (empty for other clusters).")
        for cluster in 0..<clusterCount {
            writer.sample("flagwatch_upstream_cluster_info", escapedLabels: labels.infoLabels[cluster], 1)
        }
        writer.family("flagwatch_clusters", .gauge, help: "Upstream clusters with series now (at most limits.max_clusters, plus __overflow__).")
        writer.sample("flagwatch_clusters", [:], Double(clusterCount))
        writer.family("flagwatch_clusters_dropped_total", .counter, help: "Distinct upstream clusters counted under __overflow__ because limits.max_clusters was reached (approximate beyond a few hundred thousand).")
        writer.sample("flagwatch_clusters_dropped_total", [:], Double(counts.droppedClusters))

        writer.family("flagwatch_lines_total", .counter, help: "Complete log lines read, parsed or malformed, per source.")
        for source in sources { writer.sample("flagwatch_lines_total", ["source": source.name], Double(source.lines)) }
        writer.family("flagwatch_lines_malformed_total", .counter, help: "Log lines skipped as malformed, per source and reason.")
        for source in sources {
            for defect in LineDefect.allCases {
                writer.sample("flagwatch_lines_malformed_total", ["source": source.name, "reason": defect.rawValue],
                              Double(source.malformed[defect.rawValue] ?? 0))
            }
        }
        writer.family("flagwatch_bytes_read_total", .counter, help: "Bytes read from the source's files or journal.")
        for source in sources { writer.sample("flagwatch_bytes_read_total", ["source": source.name], Double(source.bytesRead)) }
        writer.family("flagwatch_source_files", .gauge, help: "Files (or journals) the source has open now.")
        for source in sources { writer.sample("flagwatch_source_files", ["source": source.name], Double(source.files)) }
        writer.family("flagwatch_source_errors_total", .counter, help: "Errors per source and kind (permission_denied, not_found, read_error, watch_limit, fd_limit, journal_error, checkpoint_corrupt, checkpoint_write, ...).")
        for source in sources {
            for (kind, value) in source.errors.sorted(by: { $0.key < $1.key }) {
                writer.sample("flagwatch_source_errors_total", ["source": source.name, "kind": kind], Double(value))
            }
        }
        if let alerting {
            writer.family("flagwatch_alerts", .gauge, help: "Alerts per rule and state (pending, firing) now.")
            for entry in alerting.alerts {
                writer.sample("flagwatch_alerts", ["alertname": entry.alertname, "state": entry.state], Double(entry.count))
            }
            writer.family("flagwatch_notifications_total", .counter, help: "Notifications per receiver and result (success, failure: an attempt that failed and is retried, dropped).")
            for receiver in alerting.receivers {
                for (result, count) in receiver.results {
                    writer.sample("flagwatch_notifications_total", ["receiver": receiver.name, "result": result], Double(count))
                }
            }
            writer.family("flagwatch_notification_queue_length", .gauge, help: "Alerts waiting to be delivered, per receiver.")
            for receiver in alerting.receivers {
                writer.sample("flagwatch_notification_queue_length", ["receiver": receiver.name], Double(receiver.queueLength))
            }
        }
        if let connectionsEvicted {
            writer.family("flagwatch_http_connections_evicted_total", .counter,
                          help: "Idle connections closed at the listener's connection cap to admit a new one.")
            writer.sample("flagwatch_http_connections_evicted_total", [:], Double(connectionsEvicted))
        }
        writer.family("flagwatch_build_info", .gauge, help: "The running flagwatch's version.")
        writer.sample("flagwatch_build_info", ["version": version], 1)

        if let process {
            writer.family("process_cpu_seconds_total", .counter, help: "Total user and system CPU time spent in seconds.")
            writer.sample("process_cpu_seconds_total", [:], process.cpuSeconds)
            writer.family("process_resident_memory_bytes", .gauge, help: "Resident memory size in bytes.")
            writer.sample("process_resident_memory_bytes", [:], process.residentBytes)
            writer.family("process_virtual_memory_bytes", .gauge, help: "Virtual memory size in bytes.")
            writer.sample("process_virtual_memory_bytes", [:], process.virtualBytes)
            writer.family("process_open_fds", .gauge, help: "Number of open file descriptors.")
            writer.sample("process_open_fds", [:], process.openDescriptors)
            writer.family("process_max_fds", .gauge, help: "Maximum number of open file descriptors.")
            writer.sample("process_max_fds", [:], process.maxDescriptors)
            writer.family("process_start_time_seconds", .gauge, help: "Start time of the process since unix epoch in seconds.")
            writer.sample("process_start_time_seconds", [:], process.startTimeSeconds)
        }
        writer.finish()
        return writer.bytes
    }
}
