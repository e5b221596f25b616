import AsyncHTTPClient
import Dispatch
import Logging
import Synchronization

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Delivers alerts to Alertmanagers and webhooks in the background.
///
/// The daemon's synchronous poll loop calls `update` after each rule evaluation; it returns at
/// once. Every receiver gets every alert (as Prometheus sends to all its Alertmanagers), through
/// its own bounded queue and its own task on Swift concurrency's pool; the requests run on
/// AsyncHTTPClient's event loops.
///
/// Resending follows Prometheus: a firing alert is queued again when `update` sees it and its
/// last queueing for that receiver is `resendInterval` old (`webhookRepeatInterval` for
/// webhooks). Resends therefore stop when `update` stops being called, and Alertmanager then
/// resolves the alerts at their `endsAt`: a stuck daemon does not keep alerts firing forever.
///
/// Call `shutdown(within:)` before the last reference goes away to deliver what is pending;
/// releasing it without does not crash, it stops the deliveries at once.
public final class Notifier: Sendable {
    private let workers: [ReceiverWorker]
    private let workerTasks: [Task<Void, Never>]
    private let client: HTTPClient
    private let options: NotifierOptions
    private let logger: Logger
    private let ledger = Mutex(FiringLedger())
    private let isShutDown = Mutex(false)
    /// Set by beginShutdown, taken by finishShutdown (which runs once).
    private let drainDeadline = Mutex<ContinuousClock.Instant?>(nil)

    /// The firing alerts of the last `update`, and when each was last queued per receiver.
    private struct FiringLedger {
        struct Record {
            var alert: PostableAlert
            /// Indexed like `workers`.
            var lastQueuedAt: [ContinuousClock.Instant?]
        }
        var firing: [AlertFingerprint: Record] = [:]
    }

    /// Throws `NotifierError` when a receiver's token, secret or CA file cannot be read (the
    /// message names the file), or a receiver is misconfigured.
    public init(receivers: [ReceiverConfig], options: NotifierOptions, logger: Logger) throws {
        try Self.validate(receivers: receivers, options: options)
        let credentials = try receivers.map { try ReceiverCredentials(config: $0) }

        var clientConfiguration = HTTPClient.Configuration(
            redirectConfiguration: .disallow,
            // Per-request deadlines come from each receiver's timeout; this only bounds connect.
            timeout: .init(connect: .seconds(10))
        )
        // A failed connect (refused, TLS handshake rejected) fails the request at once, and the
        // worker's backoff with jitter decides when to try again. AsyncHTTPClient's default
        // retries the connection by itself until the request's deadline, which hid every such
        // failure for a whole timeout and took the retry schedule out of our hands.
        clientConfiguration.connectionPool.retryConnectionEstablishment = false
        // The singleton event loop group: the client is the only NIO user in this process, and
        // the group then needs no shutdown of its own.
        let client = HTTPClient(
            eventLoopGroupProvider: .singleton, configuration: clientConfiguration,
            backgroundActivityLogger: logger)
        let workers = zip(receivers, credentials).map { receiver, credentials in
            ReceiverWorker(
                config: receiver, credentials: credentials, options: options, client: client,
                logger: logger)
        }
        self.client = client
        self.workers = workers
        self.options = options
        self.logger = logger
        workerTasks = workers.map { worker in Task { await worker.run() } }
        for receiver in receivers {
            logger.info(
                "notifier receiver configured",
                metadata: ["receiver": "\(receiver.name)", "kind": "\(receiver.kind)", "url": "\(receiver.url)"])
        }
    }

    /// Released without `shutdown(within:)`: the delivery tasks (which hold the workers, not
    /// the Notifier) would go on retrying and posting for ever, to receivers nobody configures
    /// any more. Stop them and close the client without blocking: deinit can run on any thread,
    /// a task's included. Alerts still queued are lost, as after a shutdown whose time is up.
    deinit {
        guard !isShutDown.withLock({ $0 }) else { return }
        for worker in workers { worker.stop() }
        for task in workerTasks { task.cancel() }
        let logger = logger
        client.shutdown { error in
            if let error {
                logger.debug("notifier released: HTTP client did not close cleanly", metadata: ["error": "\(error)"])
            }
        }
    }

    private static func validate(receivers: [ReceiverConfig], options: NotifierOptions) throws {
        var names = Set<String>()
        for receiver in receivers {
            guard names.insert(receiver.name).inserted else {
                throw NotifierError.invalidReceiver(name: receiver.name, reason: "the name is used twice")
            }
            let lowercasedURL = receiver.url.lowercased()
            guard lowercasedURL.hasPrefix("http://") || lowercasedURL.hasPrefix("https://"),
                URL(string: receiver.url)?.host != nil
            else {
                throw NotifierError.invalidReceiver(
                    name: receiver.name, reason: "url \(receiver.url) is not an http:// or https:// URL")
            }
            guard receiver.queueCapacity > 0 else {
                throw NotifierError.invalidReceiver(name: receiver.name, reason: "queue capacity must be at least 1")
            }
            guard receiver.timeout > 0 else {
                throw NotifierError.invalidReceiver(name: receiver.name, reason: "timeout must be positive")
            }
        }
        guard options.resendInterval > 0, options.webhookRepeatInterval > 0, options.initialBackoff >= 0,
            options.maximumBackoff >= options.initialBackoff, options.alertmanagerBatchSize > 0
        else {
            throw NotifierError.invalidReceiver(
                name: "*", reason: "intervals must be positive and the maximum backoff at least the initial one")
        }
    }

    /// Hands over the rule engine's state: every firing alert, plus the alerts that resolved
    /// since the last call (with `endsAt` = the resolve time). Thread-safe; never blocks on the
    /// network.
    ///
    /// New and changed firing alerts and resolved alerts are queued for every receiver at once;
    /// unchanged firing alerts when their resend interval has passed. A firing alert that is
    /// missing from a later call is no longer resent (Alertmanager resolves it at its `endsAt`).
    ///
    /// Alerts without labels are not sent: they have no identity, and Alertmanager answers
    /// "at least one label pair required" with 400 for the whole request they are in.
    public func update(_ alerts: [PostableAlert]) {
        guard !isShutDown.withLock({ $0 }) else {
            logger.debug("update after shutdown ignored", metadata: ["alerts": "\(alerts.count)"])
            return
        }
        var alerts = alerts
        let received = alerts.count
        alerts.removeAll { $0.labels.isEmpty }
        if alerts.count < received {
            logger.warning("alerts without labels are not sent", metadata: ["alerts": "\(received - alerts.count)"])
        }
        let now = ContinuousClock.now
        let repeatIntervals = workers.map { worker in
            Duration.seconds(
                worker.config.kind == .alertmanager ? options.resendInterval : options.webhookRepeatInterval)
        }
        // Queues are filled under the ledger's lock so that two concurrent updates reach every
        // receiver in the same order (the later state wins everywhere).
        ledger.withLock { ledger in
            var stillFiring: [AlertFingerprint: FiringLedger.Record] = [:]
            var toQueue = Array(repeating: [PostableAlert](), count: workers.count)
            for alert in alerts {
                let fingerprint = alert.fingerprint
                if alert.isResolved {
                    stillFiring[fingerprint] = nil
                    for index in workers.indices { toQueue[index].append(alert) }
                    continue
                }
                let previous = stillFiring[fingerprint] ?? ledger.firing[fingerprint]
                let isNewOrChanged = previous?.alert != alert
                var lastQueuedAt = previous?.lastQueuedAt ?? Array(repeating: nil, count: workers.count)
                for index in workers.indices {
                    let isDue = lastQueuedAt[index].map { $0.duration(to: now) >= repeatIntervals[index] } ?? true
                    if isNewOrChanged || isDue {
                        toQueue[index].append(alert)
                        lastQueuedAt[index] = now
                    }
                }
                stillFiring[fingerprint] = FiringLedger.Record(alert: alert, lastQueuedAt: lastQueuedAt)
            }
            ledger.firing = stillFiring
            for (worker, queued) in zip(workers, toQueue) {
                worker.enqueue(queued)
            }
        }
    }

    /// Per receiver, in configuration order.
    public func statistics() -> [ReceiverStatistics] {
        workers.map { $0.statistics() }
    }

    /// Blocks for at most about `seconds`: delivers what is pending (retrying within the time),
    /// then stops the delivery tasks and the HTTP client. Alerts still queued then are lost.
    /// Call it from a thread that may block (the daemon's main thread), not from a task.
    public func shutdown(within seconds: Double) {
        beginShutdown(within: seconds)
        finishShutdown()
    }

    /// Starts the final delivery without blocking: pending alerts are sent, with retries, until
    /// `seconds` from now; new updates are ignored. The daemon calls it when SIGTERM arrives, so
    /// that the delivery runs while its listener drains, within one stop budget.
    public func beginShutdown(within seconds: Double) {
        let wasShutDown = isShutDown.withLock { isShutDown in
            defer { isShutDown = true }
            return isShutDown
        }
        guard !wasShutDown else { return }
        let deadline = ContinuousClock.now + .seconds(max(seconds, 0))
        drainDeadline.withLock { $0 = deadline }
        for worker in workers { worker.beginDrain(until: deadline) }
    }

    /// Blocks until the drain begun by ``beginShutdown(within:)`` is over (its deadline, plus a
    /// quarter second for the tasks to notice it), then stops the HTTP client.
    public func finishShutdown() {
        let claimed = drainDeadline.withLock { deadline -> ContinuousClock.Instant? in
            defer { deadline = nil }
            return deadline
        }
        guard let deadline = claimed else { return }
        let allWorkersFinished = DispatchSemaphore(value: 0)
        let tasks = workerTasks
        Task {
            for task in tasks { await task.value }
            allWorkersFinished.signal()
        }
        // A request in flight is bounded by the deadline too; the extra quarter second covers
        // the tasks noticing it.
        let waitLimit = max(ContinuousClock.now.duration(to: deadline), .zero) + .milliseconds(250)
        let waitNanoseconds =
            Int(waitLimit.components.seconds) * 1_000_000_000
            + Int(waitLimit.components.attoseconds / 1_000_000_000)
        if allWorkersFinished.wait(timeout: .now() + .nanoseconds(waitNanoseconds)) == .timedOut {
            logger.warning("notifier shutdown: time is up, stopping deliveries in flight")
            for worker in workers { worker.stop() }
            for task in workerTasks { task.cancel() }
        }
        for statistics in statistics() where statistics.queueLength > 0 {
            logger.warning(
                "notifier shutdown: alerts not delivered",
                metadata: ["receiver": "\(statistics.name)", "alerts": "\(statistics.queueLength)"])
        }
        do {
            try client.syncShutdown()
        } catch {
            logger.warning("notifier shutdown: HTTP client did not close cleanly", metadata: ["error": "\(error)"])
        }
    }
}
