import AsyncHTTPClient
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
import Synchronization
import SystemCalls

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// One receiver: its queue, its counters and the task that delivers the queue. Receivers share
/// nothing but the HTTP client, so one that is down or slow never delays another.
final class ReceiverWorker: Sendable {
    let config: ReceiverConfig
    private let endpointURL: String
    private let requestHeaders: HTTPHeaders
    private let hmacKey: [UInt8]?
    private let tlsConfiguration: TLSConfiguration?
    private let options: NotifierOptions
    private let client: HTTPClient
    private let logger: Logger
    private let wakeup = WakeupSignal()
    private let state: Mutex<State>

    private struct State {
        var queue: PendingAlerts
        var sent: UInt64 = 0
        var failed: UInt64 = 0
        var dropped: UInt64 = 0
        /// Set by shutdown: deliver what is pending until then, then stop.
        var drainDeadline: ContinuousClock.Instant?
        /// Set when shutdown's time is up: stop now.
        var isStopped = false
    }

    /// What one delivery round achieved, which decides whether the next one waits.
    private enum RoundOutcome {
        /// Everything tried was delivered or given up on for good.
        case progressed
        /// Something failed in a way worth retrying; back off before the next round.
        case mustRetry
    }

    private enum RequestOutcome {
        case delivered
        case permanentFailure(String)
        case retryableFailure(String)
    }

    init(
        config: ReceiverConfig, credentials: ReceiverCredentials, options: NotifierOptions,
        client: HTTPClient, logger: Logger
    ) {
        self.config = config
        switch config.kind {
        case .alertmanager:
            // Alertmanager may sit under a path prefix (--web.route-prefix): keep it.
            var base = config.url
            while base.hasSuffix("/") { base.removeLast() }
            endpointURL = base + "/api/v2/alerts"
        case .webhook:
            endpointURL = config.url
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "User-Agent", value: "flagwatch")
        if let token = credentials.bearerToken {
            headers.add(name: "Authorization", value: "Bearer \(token)")
        }
        requestHeaders = headers
        hmacKey = credentials.hmacKey
        tlsConfiguration = credentials.tlsConfiguration
        self.options = options
        self.client = client
        var receiverLogger = logger
        receiverLogger[metadataKey: "receiver"] = "\(config.name)"
        receiverLogger[metadataKey: "url"] = "\(endpointURL)"
        self.logger = receiverLogger
        state = Mutex(State(queue: PendingAlerts(capacity: config.queueCapacity)))
    }

    // MARK: Called from any thread

    /// Queues the alerts (coalesced per alert) and wakes the delivery task. Never blocks on I/O.
    func enqueue(_ alerts: [PostableAlert]) {
        guard !alerts.isEmpty else { return }
        let dropped = state.withLock { state -> [PostableAlert] in
            var dropped: [PostableAlert] = []
            for alert in alerts {
                dropped += state.queue.insert(alert)
            }
            state.dropped += UInt64(dropped.count)
            return dropped
        }
        if !dropped.isEmpty {
            logger.warning(
                "queue full: dropped alerts",
                metadata: [
                    "dropped": "\(dropped.count)", "capacity": "\(config.queueCapacity)",
                    "first_dropped": "\(dropped[0].labels)",
                ])
        }
        wakeup.signal()
    }

    func statistics() -> ReceiverStatistics {
        state.withLock { state in
            ReceiverStatistics(
                name: config.name, kind: config.kind, queueLength: state.queue.count,
                sent: state.sent, failed: state.failed, dropped: state.dropped)
        }
    }

    func beginDrain(until deadline: ContinuousClock.Instant) {
        state.withLock { $0.drainDeadline = deadline }
        wakeup.signal()
    }

    func stop() {
        state.withLock { $0.isStopped = true }
        wakeup.signal()
    }

    // MARK: The delivery task

    func run() async {
        var consecutiveFailures = 0
        var retryAt: ContinuousClock.Instant?
        var hasStartedDraining = false
        while true {
            let (isEmpty, drainDeadline, isStopped) = state.withLock {
                ($0.queue.isEmpty, $0.drainDeadline, $0.isStopped)
            }
            let now = ContinuousClock.now
            if isStopped || Task.isCancelled { return }
            if let drainDeadline {
                if isEmpty || now >= drainDeadline { return }
                if !hasStartedDraining {
                    // Shutdown gets one immediate attempt, whatever backoff was running.
                    hasStartedDraining = true
                    retryAt = nil
                }
            }
            if isEmpty {
                await wakeup.wait(until: nil)
                continue
            }
            if let retryAt, now < retryAt {
                // New alerts do not cut a backoff short: they wake this task, which finds the
                // backoff still running and waits again.
                let wakeAt = drainDeadline.map { min($0, retryAt) } ?? retryAt
                await wakeup.wait(until: wakeAt)
                continue
            }
            switch await deliverRound(drainDeadline: drainDeadline) {
            case .progressed:
                consecutiveFailures = 0
                retryAt = nil
            case .mustRetry:
                consecutiveFailures += 1
                retryAt = ContinuousClock.now + .seconds(backoffDelay(afterFailures: consecutiveFailures))
            }
        }
    }

    /// Exponential backoff with full jitter (uniform in [0, min(max, initial × 2^(n-1))]), so
    /// many flagwatch daemons retrying one Alertmanager do not arrive in lockstep.
    private func backoffDelay(afterFailures failures: Int) -> Double {
        let ceiling = min(
            options.maximumBackoff,
            options.initialBackoff * Double(sign: .plus, exponent: min(failures - 1, 62), significand: 1))
        return Double.random(in: 0...max(ceiling, 0))
    }

    private func deliverRound(drainDeadline: ContinuousClock.Instant?) async -> RoundOutcome {
        switch config.kind {
        case .alertmanager:
            let batch = state.withLock { $0.queue.oldest(limit: options.alertmanagerBatchSize) }
            let body: [UInt8]
            do {
                body = try Payloads.alertmanagerBody(
                    batch.map(\.alert), now: Date(), firingValidity: 4 * options.resendInterval)
            } catch {
                return settle(batch, .permanentFailure("cannot encode alerts: \(error)"))
            }
            return settle(batch, await post(body, drainDeadline: drainDeadline))
        case .webhook:
            // One POST per alertname, as Alertmanager's default grouping; groups in the order
            // of their oldest pending alert.
            let pending = state.withLock { $0.queue.oldest(limit: Int.max) }
            var groups: [(alertname: String, entries: [PendingAlerts.Entry])] = []
            var groupIndex: [String: Int] = [:]
            for entry in pending {
                let alertname = entry.alert.labels[Payloads.groupingLabel] ?? ""
                if let index = groupIndex[alertname] {
                    groups[index].entries.append(entry)
                } else {
                    groupIndex[alertname] = groups.count
                    groups.append((alertname, [entry]))
                }
            }
            for group in groups {
                let body: [UInt8]
                do {
                    body = try Payloads.webhookBody(
                        alertname: group.alertname, alerts: group.entries.map(\.alert),
                        receiver: config.name, externalURL: options.externalURL)
                } catch {
                    _ = settle(group.entries, .permanentFailure("cannot encode alerts: \(error)"))
                    continue
                }
                // The remaining groups wait for the retry: the receiver is most likely down.
                let outcome = settle(group.entries, await post(body, drainDeadline: drainDeadline))
                if case .mustRetry = outcome { return .mustRetry }
            }
            return .progressed
        }
    }

    /// Updates the queue and the counters after a request, and logs a failure.
    private func settle(_ entries: [PendingAlerts.Entry], _ outcome: RequestOutcome) -> RoundOutcome {
        let count = UInt64(entries.count)
        switch outcome {
        case .delivered:
            state.withLock {
                $0.queue.removeIfUnchanged(entries)
                $0.sent += count
            }
            logger.debug("delivered alerts", metadata: ["alerts": "\(count)"])
            return .progressed
        case .permanentFailure(let reason):
            state.withLock {
                $0.queue.removeIfUnchanged(entries)
                $0.failed += count
                $0.dropped += count
            }
            logger.error(
                "receiver rejected alerts; not retrying them",
                metadata: ["alerts": "\(count)", "reason": "\(reason)"])
            return .progressed
        case .retryableFailure(let reason):
            state.withLock { $0.failed += count }
            logger.warning(
                "delivery failed; will retry", metadata: ["alerts": "\(count)", "reason": "\(reason)"])
            return .mustRetry
        }
    }

    private func post(_ body: [UInt8], drainDeadline: ContinuousClock.Instant?) async -> RequestOutcome {
        var request = HTTPClientRequest(url: endpointURL)
        request.method = .POST
        request.headers = requestHeaders
        if let hmacKey {
            guard let signature = HMACSHA256.signatureHeader(key: hmacKey, message: body) else {
                return .retryableFailure("libcrypto could not compute the HMAC signature")
            }
            request.headers.add(name: "X-Flagwatch-Signature", value: signature)
        }
        request.body = .bytes(ByteBuffer(bytes: body))
        request.tlsConfiguration = tlsConfiguration

        var timeout = Duration.seconds(config.timeout)
        if let drainDeadline {
            timeout = min(timeout, ContinuousClock.now.duration(to: drainDeadline))
        }
        let timeoutNanoseconds = max(
            timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000, 1)
        do {
            let response = try await client.execute(
                request, timeout: .nanoseconds(timeoutNanoseconds), logger: logger)
            // Read the whole body so the connection can be reused, keeping its start for the log.
            let keptBodyLimit = 512
            var bodyStart: [UInt8] = []
            for try await chunk in response.body where bodyStart.count < keptBodyLimit {
                bodyStart += chunk.readableBytesView.prefix(keptBodyLimit - bodyStart.count)
            }
            let status = Int(response.status.code)
            let summary = "HTTP \(status): \(String(decoding: bodyStart, as: UTF8.self))"
            switch status {
            case 200..<300:
                return .delivered
            case 408, 429:
                return .retryableFailure(summary)
            case 300..<400:
                // Redirects are not followed: a POST must not silently go elsewhere, and a
                // configured URL that redirects needs fixing, not retrying.
                return .permanentFailure(summary + " (redirects are not followed)")
            case 400..<500:
                return .permanentFailure(summary)
            default:
                return .retryableFailure(summary)
            }
        } catch {
            return .retryableFailure(String(describing: error))
        }
    }
}

/// What a receiver's files held, read once at start.
struct ReceiverCredentials: Sendable {
    var bearerToken: String?
    var hmacKey: [UInt8]?
    var tlsConfiguration: TLSConfiguration?

    init(config: ReceiverConfig) throws {
        if let path = config.bearerTokenFile {
            bearerToken = try Self.readTrimmed(path, purpose: "bearer token")
        }
        if let path = config.hmacSecretFile {
            hmacKey = Array(try Self.readTrimmed(path, purpose: "HMAC secret").utf8)
        }
        if let path = config.caFile {
            // Read here, not lazily by NIOSSL at the first connection, so a wrong path stops the
            // daemon at start with the file's name instead of failing every delivery.
            _ = try Self.readTrimmed(path, purpose: "CA")
            let certificates: [NIOSSLCertificate]
            do {
                certificates = try NIOSSLCertificate.fromPEMFile(path)
            } catch {
                throw NotifierError.unreadableFile(
                    path: path, purpose: "CA", reason: "not PEM certificates (\(error))")
            }
            guard !certificates.isEmpty else { throw NotifierError.emptyFile(path: path, purpose: "CA") }
            var tls = TLSConfiguration.makeClientConfiguration()
            // In addition to, not instead of, the system trust store: a receiver with a private
            // CA works and public CAs still do.
            tls.additionalTrustRoots = [.certificates(certificates)]
            tlsConfiguration = tls
        }
    }

    /// Token and secret files usually end with a newline that is not part of the secret.
    private static func readTrimmed(_ path: String, purpose: String) throws -> String {
        let contents: String
        do {
            contents = String(decoding: try FileSystem.contents(of: path, maxBytes: 1 << 20), as: UTF8.self)
        } catch {
            throw NotifierError.unreadableFile(path: path, purpose: purpose, reason: error.description)
        }
        let trimmed = String(contents.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
        guard !trimmed.isEmpty else { throw NotifierError.emptyFile(path: path, purpose: purpose) }
        return trimmed
    }
}
