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
    /// A receiving source's messages and entries dropped at the handoff to the poll loop; nil
    /// for files and journals (they are not lossy: a slow reader reads later).
    public var receivedDrops: (messages: UInt64, entries: UInt64)? = nil
    /// A receiving source's messages its transport rejected (the stream was reset); nil for
    /// files and journals.
    public var receivedRejected: UInt64? = nil

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

    public init(
        cpuSeconds: Double, residentBytes: Double, virtualBytes: Double, openDescriptors: Double,
        maxDescriptors: Double, startTimeSeconds: Double
    ) {
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
            let infoLabelNames = MetricFamily.upstreamClusterInfo.labelNames
            clusterLabels.append(MetricsWriter.labelBlock([(infoLabelNames[0], name)]))
            infoLabels.append(
                MetricsWriter.labelBlock(
                    Array(
                        zip(
                            infoLabelNames,
                            [
                                name, istio.direction, istio.port, istio.subset, istio.service, istio.namespace,
                            ]))))
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

/// The daemon's `/metrics` page. Metric names and labels are a contract (docs/metrics.md); each
/// family's name, type, HELP text and labels come from ``MetricFamily``. `diagnoses` are the
/// `flagwatch_diagnosis_info` series (``DiagnosisInfo/current(_:flags:limit:diagnose:)``).
public enum DaemonMetrics {
    public static func render(
        counts: FlagCounts, windowNames: [String], labels: ClusterLabelCache, sources: [SourceMetrics],
        process: ProcessMetrics?, version: String, format: ExpositionFormat, expectedBytes: Int = 0,
        alerting: AlertingMetrics? = nil, connectionsEvicted: UInt64? = nil, diagnoses: [DiagnosisInfo] = []
    ) -> [UInt8] {
        labels.refresh(counts)
        // The previous page's size (plus room to grow) when known: growing a 2 MB buffer by
        // doubling held the old and the new copy at once.
        let capacity = expectedBytes > 0 ? expectedBytes + expectedBytes / 8 + 4096 : 256 + counts.clusters.count * 1900
        var writer = MetricsWriter(format: format, reservingCapacity: capacity)
        writer.writeResponseTotals(counts, labels: labels)
        if counts.rings != nil { writer.writeWindows(counts, windowNames: windowNames, labels: labels) }
        writer.writeClusterInfo(counts, labels: labels)
        writer.writeDiagnosisInfo(diagnoses, labels: labels)
        writer.writeLineTotals(sources)
        writer.writeSourceHealth(sources)
        if let alerting { writer.writeAlerting(alerting) }
        if let connectionsEvicted {
            writer.family(.connectionsEvicted)
            writer.sample(.connectionsEvicted, Double(connectionsEvicted))
        }
        writer.family(.buildInfo)
        writer.sample(.buildInfo, [version], 1)
        if let process { writer.writeProcess(process) }
        writer.finish()
        return writer.bytes
    }
}

/// The page in groups of families: the daemon writes them all, `scan --output prometheus` the
/// response and line totals (see ``ScanReport/prometheus(source:)``).
extension MetricsWriter {
    /// `flagwatch_responses_total` and `flagwatch_response_flags_total`: non-zero counts only.
    mutating func writeResponseTotals(_ counts: FlagCounts, labels: ClusterLabelCache) {
        let clusterCount = counts.clusters.count
        family(.responses)
        for cluster in 0..<clusterCount {
            for index in 0..<FlagCounts.codeClassNames.count {
                let value = counts.codeTotal(cluster: cluster, codeClass: index)
                if value > 0 {
                    sample(
                        .responses, escapedLabels: labels.clusterLabels[cluster],
                        extraValues: [FlagCounts.codeClassNames[index]], UInt64(value))
                }
            }
        }
        family(.responseFlags)
        for cluster in 0..<clusterCount {
            for flag in ResponseFlag.allCases {
                let value = counts.flagTotal(cluster: cluster, flag: flag)
                if value > 0 {
                    sample(
                        .responseFlags, escapedLabels: labels.clusterLabels[cluster], extraValues: [flag.shortName],
                        UInt64(value))
                }
            }
            for (code, value) in counts.unknownFlagTotals(cluster: cluster).sorted(by: { $0.key < $1.key }) {
                sample(.responseFlags, escapedLabels: labels.clusterLabels[cluster], extraValues: [code], UInt64(value))
            }
        }
    }

    /// The trailing-window gauges: per flag a cluster has had, and all its responses.
    mutating func writeWindows(_ counts: FlagCounts, windowNames: [String], labels: ClusterLabelCache) {
        let clusterCount = counts.clusters.count
        family(.responseFlagsWindow)
        for cluster in 0..<clusterCount {
            for flag in ResponseFlag.allCases where counts.flagTotal(cluster: cluster, flag: flag) > 0 {
                for (index, window) in windowNames.enumerated() {
                    sample(
                        .responseFlagsWindow, escapedLabels: labels.clusterLabels[cluster],
                        extraValues: [flag.shortName, window],
                        counts.windowCount(cluster: cluster, flag: flag, window: index))
                }
            }
        }
        family(.responsesWindow)
        for cluster in 0..<clusterCount {
            for (index, window) in windowNames.enumerated() {
                sample(
                    .responsesWindow, escapedLabels: labels.clusterLabels[cluster], extraValues: [window],
                    counts.windowCount(cluster: cluster, flag: nil, window: index))
            }
        }
    }

    /// `flagwatch_upstream_cluster_info` per cluster, and the cluster count and overflow.
    mutating func writeClusterInfo(_ counts: FlagCounts, labels: ClusterLabelCache) {
        family(.upstreamClusterInfo)
        for cluster in 0..<counts.clusters.count {
            sample(.upstreamClusterInfo, escapedLabels: labels.infoLabels[cluster], 1)
        }
        family(.clusters)
        sample(.clusters, Double(counts.clusters.count))
        family(.clustersDropped)
        sample(.clustersDropped, Double(counts.droppedClusters))
    }

    /// `flagwatch_lines_total` and `flagwatch_lines_malformed_total` (every reason, zeros included).
    mutating func writeLineTotals(_ sources: [SourceMetrics]) {
        family(.lines)
        for source in sources { sample(.lines, [source.name], Double(source.lines)) }
        family(.linesMalformed)
        for source in sources {
            for defect in LineDefect.allCases {
                sample(.linesMalformed, [source.name, defect.rawValue], Double(source.malformed[defect.rawValue] ?? 0))
            }
        }
    }

    /// Bytes read, files open and errors per source.
    mutating func writeSourceHealth(_ sources: [SourceMetrics]) {
        family(.bytesRead)
        for source in sources { sample(.bytesRead, [source.name], Double(source.bytesRead)) }
        family(.sourceFiles)
        for source in sources { sample(.sourceFiles, [source.name], Double(source.files)) }
        family(.sourceErrors)
        for source in sources {
            for (kind, value) in source.errors.sorted(by: { $0.key < $1.key }) {
                sample(.sourceErrors, [source.name, kind], Double(value))
            }
        }
        family(.receivedMessagesDropped)
        for source in sources {
            if let drops = source.receivedDrops {
                sample(.receivedMessagesDropped, [source.name], Double(drops.messages))
            }
        }
        family(.receivedEntriesDropped)
        for source in sources {
            if let drops = source.receivedDrops {
                sample(.receivedEntriesDropped, [source.name], Double(drops.entries))
            }
        }
        family(.receivedMessagesRejected)
        for source in sources {
            if let rejected = source.receivedRejected {
                sample(.receivedMessagesRejected, [source.name], Double(rejected))
            }
        }
    }

    mutating func writeAlerting(_ alerting: AlertingMetrics) {
        family(.alerts)
        for entry in alerting.alerts { sample(.alerts, [entry.alertname, entry.state], Double(entry.count)) }
        family(.notifications)
        for receiver in alerting.receivers {
            for (result, count) in receiver.results { sample(.notifications, [receiver.name, result], Double(count)) }
        }
        family(.notificationQueueLength)
        for receiver in alerting.receivers {
            sample(.notificationQueueLength, [receiver.name], Double(receiver.queueLength))
        }
    }

    mutating func writeProcess(_ process: ProcessMetrics) {
        let figures: [(MetricFamily, Double)] = [
            (.processCPUSeconds, process.cpuSeconds), (.processResidentMemory, process.residentBytes),
            (.processVirtualMemory, process.virtualBytes), (.processOpenDescriptors, process.openDescriptors),
            (.processMaxDescriptors, process.maxDescriptors), (.processStartTime, process.startTimeSeconds),
        ]
        for (processFamily, value) in figures {
            family(processFamily)
            sample(processFamily, value)
        }
    }
}
