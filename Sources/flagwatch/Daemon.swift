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
    private let config: FlagwatchConfig
    private let logger: Logger
    private let loop = PollLoop()
    private let counts: FlagCounts
    private let sink: CountingSink
    private let labels = ClusterLabelCache()
    private let windowNames: [String]
    private var fileFollower: FileFollower?
    private var journalFollower: JournalFollower?
    private var server: HTTPServer?
    private var fileSourceNames: [String] = []
    private var journalSourceNames: [String] = []
    private var isReady = false
    /// Size of the last /metrics page: the next one reserves about that much at once.
    private var lastMetricsPageBytes = 0
    private var stopDeadline: Double?
    /// Rules, alert states and delivery; nil without an `alerting:` section.
    private let alerts: AlertSupervisor?

    init(config: FlagwatchConfig, logger: Logger) throws {
        self.config = config
        self.logger = logger
        // The metrics show the configured windows; rules may add windows after them.
        windowNames = config.windows.map(\.description)
        counts = FlagCounts(maxClusters: config.limits.maxClusters, windows: config.countedWindows.map { Int($0.seconds) },
                            flagGroups: config.alertFlagGroups)
        alerts = try AlertSupervisor(config: config, logger: logger)
        var parsing: [String: SourceParsing] = [:]
        for source in config.sources {
            parsing[source.name] = SourceParsing(format: source.logFormat, containerFormat: source.containerFormat)
        }
        sink = CountingSink(counts: counts, parsing: parsing, maxLineLength: config.follow.maxLineLength, logger: logger)
    }

    /// Runs until SIGTERM or SIGINT. Throws (before serving) if the listener or the state
    /// directory cannot be set up.
    func run() throws {
        let signals: SignalDescriptor
        do {
            signals = try SignalDescriptor([SIGTERM, SIGINT, SIGHUP])
        } catch {
            throw CommandFailure(message: "cannot set up signal handling: \(error)")
        }
        let descriptorLimit = ProcessLimits.raiseOpenFileLimit()
        ProcessLimits.returnLargeAllocationsToSystem()
        logger.debug("open file limit \(descriptorLimit)")
        let listeners = try openListeners()
        counts.now = Int(monotonicSeconds())

        let options = config.followOptions
        let fileSpecs = config.fileSourceSpecs
        let journalSpecs = config.journalSourceSpecs
        fileSourceNames = fileSpecs.map(\.name)
        journalSourceNames = journalSpecs.map(\.name)
        do {
            fileFollower = try FileFollower(sources: fileSpecs, options: options, sink: sink, logger: logger, firstStream: 1)
        } catch {
            throw CommandFailure(message: "state_dir \(config.stateDirectory): \(error)")
        }
        if !journalSpecs.isEmpty {
            do {
                journalFollower = try JournalFollower(
                    sources: journalSpecs, stateDirectory: config.stateDirectory, sink: sink, logger: logger,
                    firstStream: 1 << 40)
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

        // The windows' clock: every loop iteration, before lines are counted.
        loop.whileBusy { [unowned self] in
            counts.now = Int(monotonicSeconds())
            return false
        }
        loop.every(config.follow.checkpointInterval.seconds) { [unowned self] in
            journalFollower?.saveCheckpoints()
        }
        if let alerts {
            loop.every(alerts.evaluateEvery) { [unowned self] in
                counts.now = Int(monotonicSeconds())
                alerts.evaluate(counts, now: wallClockSeconds())
            }
            logger.info("alerting: \(alerts.engine.rules.count) rule(s), evaluated every \(alerts.evaluateEvery) s")
        }
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
                    logger.warning("SIGHUP: reloading the configuration is not supported yet; restart to apply changes")
                default:
                    beginStopping(signal == SIGTERM ? "SIGTERM" : "SIGINT")
                }
            }
        }
        loop.whileBusy { [unowned self] in
            guard let deadline = stopDeadline else { return false }
            if !(self.server?.isBusy ?? false) || monotonicSeconds() > deadline { loop.stop() }
            return false
        }
        loop.run()
        fileFollower?.saveCheckpoints()
        journalFollower?.saveCheckpoints()
        alerts?.shutdown()
        logger.info("stopped; checkpoints saved", metadata: ["message_id": "\(LogMessageID.stopped)"])
    }

    /// Graceful stop: no new connections, in-flight responses finish (up to 5 s), then exit.
    private func beginStopping(_ reason: String) {
        guard stopDeadline == nil else { return }
        logger.info("\(reason): stopping")
        stopDeadline = monotonicSeconds() + 5
        server?.stopAccepting()
    }

    private func openListeners() throws -> [Socket] {
        let activated = Socket.systemdListeners()
        if !activated.isEmpty {
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
                expectedBytes: lastMetricsPageBytes, alerting: alerts?.metrics())
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
            metrics.errors = statistics.errors
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
