import AccessLogParser
import Alerting
import ConfigFile
import Exposition
import FlagCounting
import HTTPListener
import LogSources
import Logging
import SystemCalls

#if canImport(Glibc)
import Glibc
#endif

/// `flagwatch run`: the sources, the counts and the HTTP listener on one poll loop, in one
/// thread. Nothing is shared between threads, so nothing is locked; a scrape is answered
/// between two reads, which take about a millisecond each.
final class Daemon {
    /// The configuration in force (replaced by a successful reload).
    private var config: FlagwatchConfig
    /// Reads the config file again, with the command line's overrides (SIGHUP).
    private let loadConfig: () throws -> FlagwatchConfig
    private let logger: Logger
    private let loop = PollLoop()
    private let counts: FlagCounts
    private let sink: CountingSink
    private let labels = ClusterLabelCache()
    private var windowNames: [String]
    /// Stream ids of the next follower a reload creates (ids of replaced ones are not reused).
    /// Stream ids of every follower, at start and after reloads, from disjoint ranges.
    private var streamRanges = StreamIDRanges()
    private var socketActivated = false
    /// The listener's port (the config may ask for 0): the default base of alerts' links.
    private var boundPort: Int?
    private var fileFollower: FileFollower?
    private var journalFollower: JournalFollower?
    private var server: HTTPServer?
    private var fileSourceNames: [String] = []
    private var journalSourceNames: [String] = []
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
        counts = FlagCounts(maxClusters: config.limits.maxClusters, windows: config.countedWindows.map { Int($0.seconds) },
                            flagGroups: config.alertFlagGroups)
        var parsing: [String: SourceParsing] = [:]
        for source in config.sources {
            parsing[source.name] = SourceParsing(format: source.logFormat, containerFormat: source.containerFormat)
        }
        sink = CountingSink(counts: counts, parsing: parsing, maxLineLength: config.follow.maxLineLength, logger: logger)
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
        counts.now = Int(monotonicSeconds())

        let options = config.followOptions
        let fileSpecs = config.fileSourceSpecs
        let journalSpecs = config.journalSourceSpecs
        fileSourceNames = fileSpecs.map(\.name)
        journalSourceNames = journalSpecs.map(\.name)
        do {
            fileFollower = try FileFollower(sources: fileSpecs, options: options, sink: sink, logger: logger,
                                            firstStream: streamRanges.fileFollower() ?? 1)
        } catch {
            throw CommandFailure(message: "state_dir \(config.stateDirectory): \(error)")
        }
        if !journalSpecs.isEmpty {
            do {
                journalFollower = try JournalFollower(
                    sources: journalSpecs, stateDirectory: config.stateDirectory, sink: sink, logger: logger,
                    firstStream: streamRanges.journalFollower() ?? 1 << 62)
            } catch {
                throw CommandFailure(message: "journald: \(error)")
            }
            journalFollower?.maxLineLength = config.follow.maxLineLength
        }

        let server = HTTPServer(listeners: listeners, logger: logger) { [unowned self] request in
            self.respond(to: request)
        }
        self.server = server
        server.start(on: loop)
        fileFollower?.start(on: loop)
        journalFollower?.start(on: loop)
        isReady = true
        let ports = listeners.compactMap(\.localPort).map(String.init).joined(separator: ",")
        logger.info("flagwatch \(BuildInfo.version) ready: \(config.sources.count) source(s), listening on \(config.listen) (port \(ports))",
                    metadata: ["message_id": "\(LogMessageID.ready)"])
        // The listener is up and every source is open: systemd may start what depends on us.
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

        // The windows' clock: every loop iteration, before lines are counted.
        loop.whileBusy { [unowned self] in
            counts.now = Int(monotonicSeconds())
            return false
        }
        loop.every(config.follow.checkpointInterval.seconds) { [unowned self] in
            journalFollower?.saveCheckpoints()
        }
        scheduleEvaluations()
        // The likely-cause breakdown covers the last one to two minutes, not everything since start.
        loop.every(60) { [unowned self] in counts.rotateFailureDetails() }
        let idle = config.limits.idleSeriesExpiry.seconds
        loop.every(min(60, max(1, idle / 4))) { [unowned self] in
            counts.now = Int(monotonicSeconds())
            let removed = counts.expireClusters(idleSeconds: Int(idle))
            if removed > 0 { logger.info("removed \(removed) cluster(s) idle for \(config.limits.idleSeriesExpiry)") }
        }
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
        // Stopping ends the loop as soon as no response is in flight; the timer set by
        // beginStopping ends it at the stop budget otherwise.
        loop.whileBusy { [unowned self] in
            if isStopping && !(self.server?.isBusy ?? false) { loop.stop() }
            return false
        }
        loop.run()
        let filesSaved = fileFollower?.saveCheckpoints() ?? true
        let journalSaved = journalFollower?.saveCheckpoints() ?? true
        alerts?.beginShutdown(within: Self.alertDeliveryBudget)  // no-op if SIGTERM began it already
        alerts?.finishShutdown()
        if filesSaved && journalSaved {
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
        return "\(Int(rate.rounded())) lines/s, \(counts.clusters.count) clusters, \(firing) firing alert(s), \(counts.lines) lines in all"
    }

    private func scheduleEvaluations() {
        if let evaluationTimer { loop.cancel(evaluationTimer) }
        evaluationTimer = nil
        guard let alerts else { return }
        evaluationTimer = loop.every(alerts.evaluateEvery) { [unowned self] in
            counts.now = Int(monotonicSeconds())
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
            logger.warning("reload: listen \(new.listen) takes effect at the next restart; still serving on \(config.listen)")
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
                logger.error("reload rejected, the running configuration stays in force: cannot change windows and rules' flags while running")
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
        let previousConfig = config
        config = new
        windowNames = new.windows.map(\.description)
        var parsing: [String: SourceParsing] = [:]
        for source in new.sources {
            parsing[source.name] = SourceParsing(format: source.logFormat, containerFormat: source.containerFormat)
        }
        sink.parsing = parsing
        if let nextAlerts, let previous = alerts { nextAlerts.adoptState(from: previous, now: wallClockSeconds()) }
        if alerts !== nextAlerts {
            alerts?.shutdown(within: 1)
            alerts = nextAlerts
            scheduleEvaluations()
        }
        replaceFollowers(previous: previousConfig)
        logger.notice("configuration reloaded: \(new.sources.count) source(s), \(alerts?.engine.rules.count ?? 0) alert rule(s)")
    }

    /// New followers for sources whose settings changed; each source kept by name resumes where
    /// the old follower stood (a source whose format changed too: its files keep their place).
    private func replaceFollowers(previous: FlagwatchConfig) {
        let sourcesChanged = previous.sources != config.sources
        if sourcesChanged || previous.follow != config.follow {
            guard let firstStream = streamRanges.fileFollower() else {
                logger.error("reload: file sources not restarted: stream ids used up (restart flagwatch)")
                return
            }
            let handoff = fileFollower?.stop(on: loop) ?? [:]
            fileFollower = nil
            let specs = config.fileSourceSpecs
            fileSourceNames = specs.map(\.name)
            do {
                let follower = try FileFollower(
                    sources: specs, options: config.followOptions, sink: sink, logger: logger,
                    firstStream: firstStream, handoff: handoff)
                follower.start(on: loop)
                fileFollower = follower
            } catch {
                // The state directory worked at startup; sources keep nothing but the handoff.
                logger.error("reload: file sources not restarted: \(error)")
            }
        }
        if sourcesChanged {
            guard let firstStream = streamRanges.journalFollower() else {
                logger.error("reload: journal sources not restarted: stream ids used up (restart flagwatch)")
                return
            }
            let handoff = journalFollower?.stop() ?? [:]
            journalFollower = nil
            let specs = config.journalSourceSpecs
            journalSourceNames = specs.map(\.name)
            guard !specs.isEmpty else { return }
            do {
                let follower = try JournalFollower(
                    sources: specs, stateDirectory: config.stateDirectory, sink: sink, logger: logger,
                    firstStream: firstStream, handoff: handoff)
                follower.maxLineLength = config.follow.maxLineLength
                follower.start(on: loop)
                journalFollower = follower
            } catch {
                logger.error("reload: journal sources not restarted: \(error)")
            }
        }
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
            return HTTPResponse(status: 405, headers: [("Allow", "GET, HEAD"), ("Content-Type", "text/plain; charset=utf-8")],
                                body: Array("method not allowed\n".utf8))
        }
        switch request.path {
        case "/metrics":
            let format = ExpositionFormat(accept: request.header("accept"))
            counts.now = Int(monotonicSeconds())
            let body = DaemonMetrics.render(
                counts: counts, windowNames: windowNames, labels: labels, sources: sourceMetrics(),
                process: processMetrics(), version: BuildInfo.version, format: format,
                expectedBytes: lastMetricsPageBytes, alerting: alerts?.metrics(),
                connectionsEvicted: server?.evictedIdleTotal ?? 0)
            lastMetricsPageBytes = body.count
            return HTTPResponse(status: 200, headers: [("Content-Type", format.contentType)], body: body)
        case "/api/v1/alerts":
            guard let alerts else {
                return HTTPResponse(status: 200, contentType: "application/json",
                                    body: #"{"status":"success","data":{"alerts":[]}}"# + "\n")
            }
            return HTTPResponse(status: 200, headers: [("Content-Type", "application/json")], body: alerts.alertsJSON())
        case "/-/healthy":
            return .text(200, "healthy")
        case "/-/ready":
            return isReady ? .text(200, "ready") : .text(503, "not ready: sources are being opened")
        default:
            return HTTPResponse(status: 200, contentType: "text/html; charset=utf-8", body: StatusPage.html(
                counts: counts, windowNames: windowNames, sources: sourceMetrics(), version: BuildInfo.version,
                alerts: alerts?.statusRows()))
        }
    }

    private func sourceMetrics() -> [SourceMetrics] {
        var result: [SourceMetrics] = []
        for (index, name) in fileSourceNames.enumerated() {
            result.append(metrics(name, statistics: fileFollower?.statistics(forSource: index)))
        }
        for (index, name) in journalSourceNames.enumerated() {
            result.append(metrics(name, statistics: journalFollower?.statistics(forSource: index)))
        }
        return result
    }

    private func metrics(_ name: String, statistics: SourceStatistics?) -> SourceMetrics {
        var metrics = SourceMetrics(name: name)
        if let statistics {
            metrics.bytesRead = statistics.bytesRead
            metrics.files = statistics.openStreams
            metrics.errors = Dictionary(uniqueKeysWithValues: statistics.errors.map { ($0.key.rawValue, $0.value) })
        }
        if let lines = sink.sourceLines[name] {
            metrics.lines = lines.lines
            for (index, defect) in LineDefect.allCases.enumerated() where lines.malformed[index] > 0 {
                metrics.malformed[defect.rawValue] = lines.malformed[index]
            }
        }
        return metrics
    }

    private func processMetrics() -> ProcessMetrics? {
        guard let status = ProcessStatus.current() else { return nil }
        return ProcessMetrics(
            cpuSeconds: status.cpuSeconds, residentBytes: Double(status.residentBytes), virtualBytes: Double(status.virtualBytes),
            openDescriptors: Double(status.openDescriptors), maxDescriptors: Double(status.maxDescriptors),
            startTimeSeconds: status.startTimeSeconds)
    }
}
