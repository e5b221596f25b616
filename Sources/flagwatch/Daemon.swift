import AccessLogParser
import Alerting
import ConfigFile
import Engine
import Exposition
import FlagCounting
import HTTPListener
import LogSources
import Logging
import SystemCalls

#if canImport(Glibc)
    import Glibc
#endif

/// `flagwatch run`: the engine (sources and counts) and the HTTP listener on one poll loop, in
/// one thread. Nothing is shared between threads, so nothing is locked; a scrape is answered
/// between two reads, which take about a millisecond each. The daemon adds what a service
/// needs around the engine: signals, systemd notifications, timers, reload, HTTP routing and
/// alert supervision.
final class Daemon {
    /// The configuration in force (replaced by a successful reload).
    private var config: FlagwatchConfig
    /// Reads the config file again, with the command line's overrides (SIGHUP).
    private let loadConfig: () throws -> FlagwatchConfig
    private let logger: Logger
    private let loop = PollLoop()
    private let counts: FlagCounts
    /// The followers and the counting of their lines.
    private let engine: Engine
    private let labels = ClusterLabelCache()
    private let diagnoses = DiagnosisInfoCache()
    private var windowNames: [String]
    private var socketActivated = false
    /// The listener's port (the config may ask for 0): the default base of alerts' links.
    private var boundPort: Int?
    private var server: HTTPServer?
    private var isReady = false
    /// Size of the last /metrics page: the next one reserves about that much at once.
    private var lastMetricsPageBytes = 0
    /// Set by SIGTERM/SIGINT: the listener drains, then the loop ends.
    private var isStopping = false
    /// Rules, alert states and delivery; nil without an `alerting:` section.
    private var alerts: AlertSupervisor? = nil
    /// The alert-evaluation timer (replaced when a reload changes `evaluate_every`).
    private var evaluationTimer: PollLoop.TimerID?
    /// systemd's notify socket (READY, STATUS, WATCHDOG, RELOADING, STOPPING); inert without one.
    private let serviceManager = ServiceManagerNotifier()
    private let signals: SignalDescriptor
    /// Lines counted when the last STATUS= was sent, and when: the rate in the next one.
    private var statusMark: (lines: Int, at: Double) = (0, 0)

    init(config: FlagwatchConfig, logger: Logger, loadConfig: @escaping () throws -> FlagwatchConfig) throws {
        // First, before the notifier starts its threads: they inherit the blocked mask, so
        // SIGTERM and SIGHUP reach the signalfd instead of killing the process from a thread
        // that does not block them.
        do {
            signals = try SignalDescriptor([SIGTERM, SIGINT, SIGHUP])
        } catch {
            throw CommandFailure(message: "cannot set up signal handling: \(error)")
        }
        self.config = config
        self.loadConfig = loadConfig
        self.logger = logger
        // The metrics show the configured windows; rules may add windows after them.
        windowNames = config.windows.map(\.description)
        counts = FlagCounts(
            maxClusters: config.limits.maxClusters, windows: config.countedWindows.map { Int($0.seconds) },
            flagGroups: config.alertFlagGroups)
        engine = Engine(counts: counts, sources: config.followedSources, logger: logger)
    }

    /// Runs until SIGTERM or SIGINT. Throws (before serving) if the listener or the state
    /// directory cannot be set up.
    func run() throws {
        let descriptorLimit = ProcessLimits.raiseOpenFileLimit()
        ProcessLimits.returnLargeAllocationsToSystem()
        logger.debug("open file limit \(descriptorLimit)")
        let listeners = try openListeners()
        boundPort = listeners.compactMap(\.localPort).first.map(Int.init)
        alerts = try AlertSupervisor(config: config, logger: logger, boundPort: boundPort)
        advanceClock()
        try startEngine()
        startServer(on: listeners)
        announceReady(ports: listeners.compactMap(\.localPort).map(String.init).joined(separator: ","))
        scheduleCountMaintenance()
        scheduleEvaluations()
        handleSignals()
        loop.run()
        finish()
    }

    private func startEngine() throws {
        do {
            try engine.start(on: loop)
        } catch .fileSources(let error) {
            throw CommandFailure(message: "state_dir \(config.stateDirectory): \(error)")
        } catch .journalSources(let error) {
            throw CommandFailure(message: "journald: \(error)")
        } catch .receiver(let source, let reason) {
            throw CommandFailure(message: "source \(source): grpc_access_log: \(reason)")
        }
    }

    private func startServer(on listeners: [Socket]) {
        let server = HTTPServer(listeners: listeners, logger: logger) { [unowned self] request in
            self.respond(to: request)
        }
        self.server = server
        server.start(on: loop)
        // Stopping ends the loop as soon as no response is in flight; the timer set by
        // beginStopping ends it at the stop budget otherwise.
        loop.whileBusy { [unowned self] in
            if isStopping && !(self.server?.isBusy ?? false) { loop.stop() }
            return false
        }
    }

    /// The listener is up and every source is open: the log says so, and systemd may start
    /// what depends on us; STATUS= and the watchdog pings follow from the loop.
    private func announceReady(ports: String) {
        isReady = true
        logger.info(
            "flagwatch \(BuildInfo.version) ready: \(config.sources.count) source(s), listening on \(config.listen) (port \(ports))",
            metadata: ["message_id": "\(LogMessageID.ready)"])
        statusMark = (counts.lines, monotonicSeconds())
        serviceManager.ready(status: "started: \(config.sources.count) source(s), listening on port \(ports)")
        if serviceManager.isListening {
            loop.every(Self.statusInterval) { [unowned self] in serviceManager.status(statusLine()) }
        }
        if let interval = serviceManager.watchdogPingInterval {
            // From the loop itself: a loop stuck in a read or a handler stops the pings and
            // systemd restarts the service.
            loop.every(interval) { [unowned self] in serviceManager.watchdog() }
            logger.info("systemd watchdog: WATCHDOG=1 every \(interval) s")
        }
    }

    /// Moves the counts' clock to now: windows count in monotonic seconds, and when a cluster was
    /// first seen failing is told in wall-clock time (the offset between the two).
    private func advanceClock() {
        let monotonic = monotonicSeconds()
        counts.now = Int(monotonic)
        counts.epochOffset = Int((wallClockSeconds() - monotonic).rounded())
    }

    /// The windows' clock, the failure-detail breakdown's age and idle clusters' expiry.
    private func scheduleCountMaintenance() {
        // Every loop iteration, before lines are counted.
        loop.whileBusy { [unowned self] in
            advanceClock()
            return false
        }
        // The likely-cause breakdown covers the last one to two minutes, not everything since start.
        loop.every(60) { [unowned self] in counts.rotateFailureDetails() }
        let idle = config.limits.idleSeriesExpiry.seconds
        loop.every(min(60, max(1, idle / 4))) { [unowned self] in
            advanceClock()
            let removed = counts.expireClusters(idleSeconds: Int(idle))
            if removed > 0 { logger.info("removed \(removed) cluster(s) idle for \(config.limits.idleSeriesExpiry)") }
        }
    }

    private func handleSignals() {
        loop.watch(signals.descriptor.rawValue) { [unowned self] _ in
            for signal in signals.received() {
                switch signal {
                case SIGHUP:
                    reload()
                default:
                    beginStopping(signal == SIGTERM ? "SIGTERM" : "SIGINT")
                }
            }
        }
    }

    /// After the loop: positions saved, the last alerts delivered.
    private func finish() {
        engine.stopReceivers()
        // A receiving source keeps nothing across a restart (no position to resume from): its
        // last counts, including what arrived after the last scrape, are logged here.
        for source in engine.sourceActivity() {
            guard let drops = source.receivedDrops else { continue }
            let received = source.lines?.lines ?? 0
            logger.info(
                """
                source \(source.name): received \(received) entries in this run, dropped \(drops.entries) at the \
                handoff; not kept across a restart
                """)
        }
        let saved = engine.saveCheckpoints()
        alerts?.beginShutdown(within: Self.alertDeliveryBudget)  // no-op if SIGTERM began it already
        alerts?.finishShutdown()
        if saved {
            logger.info("stopped; checkpoints saved", metadata: ["message_id": "\(LogMessageID.stopped)"])
        } else {
            // The errors were logged by the followers; a restart re-reads from the last good save.
            logger.warning("stopped; checkpoints not saved", metadata: ["message_id": "\(LogMessageID.stopped)"])
        }
    }

    /// From SIGTERM to exit: the listener drains (in-flight responses get `stopBudget`) while
    /// the last alerts are delivered (`alertDeliveryBudget`, ending earlier so that closing the
    /// HTTP client does not add to the listener's time); saving checkpoints and the exit fit in
    /// the rest of the 5 s docs/daemon.md promises.
    static let stopBudget = 4.0
    static let alertDeliveryBudget = 3.5

    /// Graceful stop: no new connections, in-flight responses finish and queued alerts are sent
    /// (both up to `stopBudget`), then exit.
    private func beginStopping(_ reason: String) {
        guard !isStopping else { return }
        logger.info("\(reason): stopping")
        serviceManager.stopping()
        isStopping = true
        alerts?.beginShutdown(within: Self.alertDeliveryBudget)
        server?.stopAccepting()
        // A response stuck on a slow reader wakes the loop no more: end it at the deadline.
        loop.every(Self.stopBudget) { [unowned self] in loop.stop() }
    }

    /// How often STATUS= is refreshed for `systemctl status`.
    static let statusInterval = 10.0

    /// One line for `systemctl status`: rate since the last one, clusters, firing alerts.
    private func statusLine() -> String {
        let now = monotonicSeconds()
        let elapsed = max(now - statusMark.at, 0.001)
        let rate = Double(counts.lines - statusMark.lines) / elapsed
        statusMark = (counts.lines, now)
        let firing = alerts?.engine.activeAlerts.filter { $0.state == .firing }.count ?? 0
        return
            "\(Int(rate.rounded())) lines/s, \(counts.clusters.count) clusters, \(firing) firing alert(s), \(counts.lines) lines in all"
    }

    private func scheduleEvaluations() {
        if let evaluationTimer { loop.cancel(evaluationTimer) }
        evaluationTimer = nil
        guard let alerts else { return }
        evaluationTimer = loop.every(alerts.evaluateEvery) { [unowned self] in
            advanceClock()
            self.alerts?.evaluate(counts, now: wallClockSeconds())
        }
        logger.info("alerting: \(alerts.engine.rules.count) rule(s), evaluated every \(alerts.evaluateEvery) s")
    }

    // MARK: - Reload

    /// SIGHUP: reads the config file again and applies it without losing counts, windows, alert
    /// states or file positions. A config that does not load, or asks for what cannot change
    /// while running, is rejected with the reason logged, and the running one stays in force.
    private func reload() {
        serviceManager.reloading()
        defer { serviceManager.ready(status: statusLine()) }
        var new: FlagwatchConfig
        do {
            new = try loadConfig()
        } catch {
            logger.error("reload rejected, the running configuration stays in force: \(error)")
            return
        }
        // What is bound or opened once: kept, with a warning, so the rest still applies.
        if new.listen != config.listen && !socketActivated {
            logger.warning(
                "reload: listen \(new.listen) takes effect at the next restart; still serving on \(config.listen)")
            new.listen = config.listen
        }
        if new.stateDirectory != config.stateDirectory {
            logger.warning("reload: state_dir \(new.stateDirectory) takes effect at the next restart")
            new.stateDirectory = config.stateDirectory
        }
        if new.limits.maxClusters != config.limits.maxClusters {
            logger.warning("reload: limits.max_clusters takes effect at the next restart")
            new.limits.maxClusters = config.limits.maxClusters
        }
        if new.follow.maxLineLength != config.follow.maxLineLength {
            logger.warning("reload: follow.max_line_length takes effect at the next restart")
            new.follow.maxLineLength = config.follow.maxLineLength
        }
        let windows = new.countedWindows.map { Int($0.seconds) }
        let groups = new.alertFlagGroups
        if windows != counts.rings?.windows ?? [] || groups != counts.flagGroupSets {
            guard counts.relayout(windows: windows, flagGroups: groups) else {
                logger.error(
                    "reload rejected, the running configuration stays in force: cannot change windows and rules' flags while running"
                )
                return
            }
        }
        let nextAlerts: AlertSupervisor?
        do {
            nextAlerts = try AlertSupervisor(config: new, logger: logger, boundPort: boundPort, previous: alerts)
        } catch {
            logger.error("reload rejected, the running configuration stays in force: \(error)")
            return
        }
        config = new
        windowNames = new.windows.map(\.description)
        if let nextAlerts, let previous = alerts { nextAlerts.adoptState(from: previous, now: wallClockSeconds()) }
        if alerts !== nextAlerts {
            alerts?.shutdown(within: 1)
            alerts = nextAlerts
            scheduleEvaluations()
        }
        engine.reload(new.followedSources)
        logger.notice(
            "configuration reloaded: \(new.sources.count) source(s), \(alerts?.engine.rules.count ?? 0) alert rule(s)")
    }

    private func openListeners() throws -> [Socket] {
        let activated = Socket.systemdListeners()
        if !activated.isEmpty {
            socketActivated = true
            logger.info("serving on \(activated.count) socket(s) passed by systemd")
            return activated
        }
        guard let address = ListenAddress(config.listen) else {
            throw CommandFailure(message: "listen: '\(config.listen)' is not host:port")
        }
        do {
            return [try Socket.listen(host: address.host, port: address.port)]
        } catch {
            throw CommandFailure(message: "cannot listen on \(config.listen): \(error)")
        }
    }

    // MARK: - HTTP

    private func respond(to request: HTTPRequest) -> HTTPResponse {
        let known = ["/metrics", "/-/healthy", "/-/ready", "/", "/api/v1/alerts"]
        guard known.contains(request.path) else { return .text(404, "not found; try /metrics") }
        guard request.method == "GET" || request.method == "HEAD" else {
            return HTTPResponse(
                status: 405, headers: [("Allow", "GET, HEAD"), ("Content-Type", "text/plain; charset=utf-8")],
                body: Array("method not allowed\n".utf8))
        }
        switch request.path {
        case "/metrics":
            let format = ExpositionFormat(accept: request.header("accept"))
            advanceClock()
            let body = DaemonMetrics.render(
                counts: counts, windowNames: windowNames, labels: labels, sources: sourceMetrics(),
                process: processMetrics(), version: BuildInfo.version, format: format,
                expectedBytes: lastMetricsPageBytes, alerting: alerts?.metrics(),
                connectionsEvicted: server?.evictedIdleTotal ?? 0, diagnoses: diagnoses.current(counts))
            lastMetricsPageBytes = body.count
            return HTTPResponse(status: 200, headers: [("Content-Type", format.contentType)], body: body)
        case "/api/v1/alerts":
            guard let alerts else {
                return HTTPResponse(
                    status: 200, contentType: "application/json",
                    body: #"{"status":"success","data":{"alerts":[]}}"# + "\n")
            }
            return HTTPResponse(status: 200, headers: [("Content-Type", "application/json")], body: alerts.alertsJSON())
        case "/-/healthy":
            return .text(200, "healthy")
        case "/-/ready":
            return isReady ? .text(200, "ready") : .text(503, "not ready: sources are being opened")
        default:
            // The page's windows count up to now, as /metrics' do.
            advanceClock()
            let counts = counts
            return HTTPResponse(
                status: 200, contentType: "text/html; charset=utf-8",
                body: StatusPage.html(
                    counts: counts, windowNames: windowNames, sources: sourceMetrics(), version: BuildInfo.version,
                    alerts: alerts?.statusRows(), diagnose: { StatusPage.ClusterDiagnosis.current(counts, cluster: $0) }
                ))
        }
    }

    private func sourceMetrics() -> [SourceMetrics] {
        engine.sourceActivity().map { source in
            var metrics = SourceMetrics(name: source.name)
            if let statistics = source.statistics {
                metrics.bytesRead = statistics.bytesRead
                metrics.files = statistics.openStreams
                metrics.errors = Dictionary(uniqueKeysWithValues: statistics.errors.map { ($0.key.rawValue, $0.value) })
            }
            if let drops = source.receivedDrops {
                metrics.receivedDrops = (messages: drops.messages, entries: drops.entries)
                metrics.receivedRejected = drops.rejectedMessages
            }
            if let lines = source.lines {
                metrics.lines = lines.lines
                for defect in LineDefect.allCases where lines.malformedCount(defect) > 0 {
                    metrics.malformed[defect.rawValue] = lines.malformedCount(defect)
                }
            }
            return metrics
        }
    }

    private func processMetrics() -> ProcessMetrics? {
        guard let status = ProcessStatus.current() else { return nil }
        return ProcessMetrics(
            cpuSeconds: status.cpuSeconds, residentBytes: Double(status.residentBytes),
            virtualBytes: Double(status.virtualBytes),
            openDescriptors: Double(status.openDescriptors), maxDescriptors: Double(status.maxDescriptors),
            startTimeSeconds: status.startTimeSeconds)
    }
}
