import AccessLogParser
import FlagCounting

/// Finds the likely cause of a cluster's flags from what the flagged lines themselves said:
/// their `%RESPONSE_CODE_DETAILS%` and `%UPSTREAM_TRANSPORT_FAILURE_REASON%` (counted by
/// ``FlagCounts/failureDetails(cluster:flag:)``), and the cluster's name for the next steps.
public enum Diagnoser {
    /// The diagnosis of the dominant flag among `flags` on `cluster`; nil when none of them
    /// was counted there.
    public static func diagnose(_ counts: FlagCounts, cluster: Int, among flags: [ResponseFlag]) -> Diagnosis? {
        guard cluster >= 0, cluster < counts.clusters.count else { return nil }
        let evidence = FlagEvidence(counts: counts, cluster: cluster)
        guard let flag = evidence.dominant(among: flags) else { return nil }
        let target = Target(cluster: counts.clusters.names[cluster])
        // URX says only that retries ran out; the flag set with it says why each try failed.
        let underlying = flag == .upstreamRetryLimitExceeded ? evidence.dominant(among: Self.retriedFailures) : nil
        var diagnosis: Diagnosis
        if let underlying {
            diagnosis = diagnose(underlying, evidence, target)
            let retries = evidence.count(.upstreamRetryLimitExceeded)
            diagnosis.likelyCause =
                "retries exhausted (\(retries) URX\(evidence.retryAmplification() ?? "")), each try failing with \(underlying.shortName): "
                + diagnosis.likelyCause
        } else if flag == .upstreamRetryLimitExceeded {
            diagnosis = retriesExhausted(evidence, target)
        } else {
            diagnosis = diagnose(flag, evidence, target)
            if Self.retriedFailures.contains(flag), let amplification = evidence.retryAmplification() {
                // URX,UF lines are diagnosed on their UF (also by a rule that asks about UF
                // alone); their tries still say how much load the retries added.
                diagnosis.likelyCause +=
                    "; retries exhausted on \(evidence.count(.upstreamRetryLimitExceeded)) URX\(amplification)"
            }
        }
        scope(&diagnosis, evidence, target)
        return diagnosis.withTrend(counts, cluster: cluster, flags: flags)
    }

    /// The diagnosis of a cluster whatever its flags (`flagwatch scan`): of its dominant
    /// upstream or routing failure, else of its dominant flag of any kind.
    public static func diagnose(_ counts: FlagCounts, cluster: Int) -> Diagnosis? {
        diagnose(counts, cluster: cluster, among: upstreamFailureFlags)
            ?? diagnose(counts, cluster: cluster, among: ResponseFlag.allCases)
    }

    /// The flags that say an upstream (or the routing to it) failed; earlier ones win a tie. The
    /// same flags start a failure in the counts (first seen failing).
    public static let upstreamFailureFlags = FlagCounts.failureFlagOrder

    /// The flags a retry can end on, i.e. what URX lines carry next to it.
    static let retriedFailures: [ResponseFlag] = [
        .upstreamConnectionFailure, .upstreamConnectionTermination, .upstreamRequestTimeout, .upstreamRemoteReset,
        .upstreamOverflow, .noHealthyUpstream, .upstreamProtocolError, .localReset,
    ]

    private static func diagnose(_ flag: ResponseFlag, _ evidence: FlagEvidence, _ target: Target) -> Diagnosis {
        // nginx's and HAProxy's lines carry the same flags with their own evidence and remedies.
        if let diagnosis = ProxyDiagnoser.diagnose(flag, evidence.tally(flag), cluster: target.cluster) {
            return diagnosis
        }
        return switch flag {
        case .upstreamConnectionFailure: connectionFailure(evidence, target)
        case .noHealthyUpstream: noHealthyUpstream(evidence, target)
        case .noRouteFound: noRoute(evidence, target)
        case .upstreamConnectionTermination: connectionTermination(evidence, target)
        case .upstreamOverflow: overflow(evidence, target)
        case .upstreamRequestTimeout: timeout(evidence, target)
        case .upstreamRemoteReset: remoteReset(evidence, target)
        case .upstreamProtocolError: protocolError(evidence, target)
        default: other(flag, evidence, target)
        }
    }

    // MARK: the causes

    private static func connectionFailure(_ evidence: FlagEvidence, _ target: Target) -> Diagnosis {
        let flag = ResponseFlag.upstreamConnectionFailure
        let tally = evidence.tally(flag)
        let total = tally.total
        let tls = tally.count(of: .tls)
        let connect = tally.count(of: [.connectionRefused, .connectTimeout, .unreachable, .connectionFailure])
        if tls > 0 && tls >= connect { return tlsFailure(tally, target) }
        let dominant = FailureTally.dominantConnectFailure(
            refused: tally.count(of: .connectionRefused), timedOut: tally.count(of: .connectTimeout),
            unreachable: tally.count(of: .unreachable))
        let (words, kinds): (String, Set<FailureKind>) =
            dominant.map { ($0.words, [$0.kind]) } ?? ("connection failures", [.connectionFailure])
        let matching = tally.count(of: kinds)
        if let dropped = packetsDropped(
            tally, timedOut: dominant?.kind == .connectTimeout ? matching : 0, evidence.lineStats(flag), target)
        {
            return dropped
        }
        let prefix = "backend down, wrong port or NetworkPolicy: "
        let sentence: String
        if matching > 0 {
            let example = tally.example(of: kinds).map { " (\($0))" } ?? ""
            sentence = prefix + "\(matching) of \(total) UF were \(words)\(example)"
        } else {
            sentence = prefix + "\(total) UF; the log gives no transport failure reason to tell a TLS failure apart"
        }
        return Diagnosis(flag: flag, cause: .backendDown, likelyCause: sentence, nextSteps: target.backendDownSteps())
    }

    private static func noHealthyUpstream(_ evidence: FlagEvidence, _ target: Target) -> Diagnosis {
        let flag = ResponseFlag.noHealthyUpstream
        let tally = evidence.tally(flag)
        if target.cluster == "BlackHoleCluster" {
            return Diagnosis(
                flag: flag, cause: .noHealthyUpstream,
                likelyCause:
                    "no ready endpoints: \(tally.total) UH on BlackHoleCluster, i.e. outbound traffic blocked by outboundTrafficPolicy REGISTRY_ONLY (no ServiceEntry for the destination)",
                nextSteps: [
                    "kubectl get serviceentry -A",
                    "kubectl get configmap istio -n istio-system -o yaml | grep -A2 outboundTrafficPolicy",
                    "istioctl proxy-config listeners <pod>",
                ])
        }
        var sentence = "no ready endpoints (selector mismatch, failing readiness probes, pods Pending): "
        sentence += tally.describe(flag, as: "no_healthy_upstream")
        if !target.istio.subset.isEmpty {
            sentence += "; the DestinationRule subset '\(target.istio.subset)' may match no pod's labels"
        }
        return Diagnosis(
            flag: flag, cause: .noHealthyUpstream, likelyCause: sentence, nextSteps: target.noEndpointsSteps())
    }

    private static func noRoute(_ evidence: FlagEvidence, _ target: Target) -> Diagnosis {
        let flag = ResponseFlag.noRouteFound
        let tally = evidence.tally(flag)
        let filterChain = tally.count(containing: "filter_chain_not_found")
        if filterChain > 0 && filterChain * 2 > tally.total {
            return Diagnosis(
                flag: flag, cause: .noRoute,
                likelyCause:
                    "no route: \(filterChain) of \(tally.total) NR were filter_chain_not_found, a connection no listener filter chain matched (port, SNI or protocol not declared)",
                nextSteps: [
                    "istioctl proxy-config listeners <pod>", "kubectl get gateway,serviceentry -A",
                    "istioctl analyze -A",
                ])
        }
        return Diagnosis(
            flag: flag, cause: .noRoute,
            likelyCause: "no route (VirtualService host or match): " + tally.describe(flag, as: "route_not_found"),
            nextSteps: [
                "istioctl proxy-config routes <pod>",
                "kubectl get virtualservice -A",
                "istioctl analyze -A",
            ])
    }

    private static func connectionTermination(_ evidence: FlagEvidence, _ target: Target) -> Diagnosis {
        let flag = ResponseFlag.upstreamConnectionTermination
        let tally = evidence.tally(flag)
        let description = tally.describe(flag, as: "connection_termination")
        if target.istio.isExternalHost {
            return Diagnosis(
                flag: flag, cause: .staleKeepAlive,
                likelyCause:
                    "stale keep-alive connection: \(description) to \(target.istio.host), outside the mesh: it closes idle connections Envoy still reuses; a ServiceEntry with resolution DNS plus retries on connect-failure,reset (or a DestinationRule idleTimeout below the server's) avoids them",
                nextSteps: target.externalHostSteps())
        }
        return Diagnosis(
            flag: flag, cause: .upstreamClosed,
            likelyCause:
                "upstream closed connection before responding: \(description); the app crashed or restarted, or its keep-alive timeout is shorter than Envoy's idle timeout",
            nextSteps: target.upstreamClosedSteps())
    }

    private static func overflow(_ evidence: FlagEvidence, _ target: Target) -> Diagnosis {
        let flag = ResponseFlag.upstreamOverflow
        let tally = evidence.tally(flag)
        let connectFailures = tally.count(of: [
            .connectionRefused, .connectTimeout, .unreachable, .connectionFailure, .tls,
        ])
        var sentence = "circuit breaker (DestinationRule connectionPool limits): "
        if connectFailures > 0 && connectFailures * 2 > tally.total {
            let example =
                tally.example(of: [.connectionRefused, .connectTimeout, .unreachable, .connectionFailure, .tls]).map {
                    " (\($0))"
                } ?? ""
            sentence +=
                "\(connectFailures) of \(tally.total) UO came with failed connections\(example): the retry budget (max_retries) overflowed while the backend fails"
        } else {
            sentence += tally.describe(flag, as: "overflow")
        }
        return Diagnosis(
            flag: flag, cause: .circuitBreaker, likelyCause: sentence, nextSteps: target.circuitBreakerSteps())
    }

    private static func timeout(_ evidence: FlagEvidence, _ target: Target) -> Diagnosis {
        let flag = ResponseFlag.upstreamRequestTimeout
        let tally = evidence.tally(flag)
        let perTry = tally.count(containing: "upstream_per_try_timeout")
        var description =
            perTry * 2 > tally.total
            ? "\(perTry) of \(tally.total) UT were upstream_per_try_timeout (the retry policy's perTryTimeout)"
            : tally.describe(flag, as: "response_timeout")
        if let timeout = wholeSecondTimeout(evidence.lineStats(flag)) {
            let what = perTry * 2 > tally.total ? "per-try timeout" : "route timeout"
            description +=
                "; they lasted \(timeout.durations), a \(what) of \(timeout.seconds) s"
                + (timeout.seconds == 15 && what == "route timeout" ? " (Envoy's default)" : "")
        }
        return Diagnosis(
            flag: flag, cause: .timeout,
            likelyCause: "upstream timeout (route timeout shorter than the backend's answers): " + description,
            nextSteps: target.timeoutSteps())
    }

    private static func remoteReset(_ evidence: FlagEvidence, _ target: Target) -> Diagnosis {
        described(
            .upstreamRemoteReset, evidence, cause: .upstreamReset, "upstream reset the stream: ", as: "remote_reset",
            then: "; the app (often an HTTP/2 or gRPC server) refuses or cancels requests",
            nextSteps: target.upstreamClosedSteps())
    }

    private static func protocolError(_ evidence: FlagEvidence, _ target: Target) -> Diagnosis {
        described(
            .upstreamProtocolError, evidence, cause: .protocolError, "upstream protocol error: ", as: "protocol_error",
            then:
                "; the Service port's name or appProtocol (http, http2, grpc, tcp) does not match what the app speaks",
            nextSteps: target.protocolSteps())
    }

    private static func retriesExhausted(_ evidence: FlagEvidence, _ target: Target) -> Diagnosis {
        described(
            .upstreamRetryLimitExceeded, evidence, cause: .retriesExhausted, "retries exhausted: ", as: nil,
            then: (evidence.retryAmplification() ?? "")
                + " with no underlying flag; look at the tries' failures in the details",
            nextSteps: target.backendDownSteps())
    }

    private static func other(_ flag: ResponseFlag, _ evidence: FlagEvidence, _ target: Target) -> Diagnosis {
        described(
            flag, evidence, cause: .unknown, "\(flag.shortName) (\(flag.longName)): ", as: nil, then: "",
            nextSteps: target.genericSteps())
    }

    /// A cause the flag alone tells: the flag's tally described (as `detail` when that detail
    /// dominates) between a fixed lead and tail.
    private static func described(
        _ flag: ResponseFlag, _ evidence: FlagEvidence, cause: LikelyCause, _ lead: String, as detail: String?,
        then tail: String, nextSteps: [String]
    ) -> Diagnosis {
        Diagnosis(
            flag: flag, cause: cause, likelyCause: lead + evidence.tally(flag).describe(flag, as: detail) + tail,
            nextSteps: nextSteps)
    }
}

// MARK: evidence

/// What the counts say about one cluster's flags.
struct FlagEvidence {
    let counts: FlagCounts
    let cluster: Int

    /// Recent flagged lines (the failure details' period, then the shortest window), else all.
    func count(_ flag: ResponseFlag) -> Int {
        let recent = counts.failureDetailTotal(cluster: cluster, flag: flag)
        if recent > 0 { return recent }
        if let rings = counts.rings,
            let shortest = rings.windows.indices.min(by: { rings.windows[$0] < rings.windows[$1] })
        {
            let windowed = Int(counts.windowCount(cluster: cluster, flag: flag, window: shortest))
            if windowed > 0 { return windowed }
        }
        return counts.flagTotal(cluster: cluster, flag: flag)
    }

    /// The flag of `flags` with the most lines; the first one on a tie; nil if none has any.
    func dominant(among flags: [ResponseFlag]) -> ResponseFlag? {
        var best: (flag: ResponseFlag, count: Int)?
        for flag in flags {
            let count = count(flag)
            if count > 0 && count > (best?.count ?? 0) { best = (flag, count) }
        }
        return best?.flag
    }

    func tally(_ flag: ResponseFlag) -> FailureTally {
        FailureTally(details: counts.failureDetails(cluster: cluster, flag: flag), flagCount: count(flag))
    }

    func lineStats(_ flag: ResponseFlag) -> FlaggedLineStats? {
        counts.flaggedLineStats(cluster: cluster, flag: flag)
    }

    /// ", 3.0 tries per request (90 tries for 30 requests)" when the URX lines carried
    /// `%UPSTREAM_REQUEST_ATTEMPT_COUNT%`: how much load the retries multiplied.
    func retryAmplification() -> String? {
        guard let stats = lineStats(.upstreamRetryLimitExceeded), stats.attemptLines > 0 else { return nil }
        let perRequest = Diagnoser.oneDecimal(Double(stats.attempts) / Double(stats.attemptLines))
        return
            ", \(perRequest) tries per request (\(stats.attempts) tries upstream for \(stats.attemptLines) requests: retry amplification)"
    }
}

/// What a failed line's details and transport failure reason say happened.
enum FailureKind: Hashable {
    case tls, connectionRefused, connectTimeout, unreachable, connectionFailure, other

    /// Classifies by the texts Envoy writes (docs/formats.md §4), old (spaces, `,`) and new (`_`, `|`).
    init(_ detail: FailureDetail) {
        let text = (detail.transportFailureReason ?? "") + " " + (detail.details ?? "")
        // Every report classifies every detail again (scan --follow: four times a second), so
        // the usual all-ASCII text is lower-cased and searched as bytes; it finds exactly what
        // the String search finds, since the needles are ASCII and hold no "\r\n".
        var bytes = Array(text.utf8)
        guard bytes.allSatisfy({ $0 < 0x80 }) else {
            let folded = text.lowercased().replacingSpaces()
            self.init { needle in folded.contains(needle) }
            return
        }
        for index in bytes.indices {
            switch bytes[index] {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): bytes[index] |= 0x20
            case UInt8(ascii: " "): bytes[index] = UInt8(ascii: "_")
            default: break
            }
        }
        self.init { needle in bytes.containsASCII(needle) }
    }

    /// - Parameter contains: whether the lower-cased text, spaces as `_`, contains a needle.
    private init(_ contains: (String) -> Bool) {
        func has(_ needles: String...) -> Bool { needles.contains(where: contains) }
        if has(
            "tls_error", "ssl_routines", "certificate_verify_failed", "wrong_version_number",
            "secret_is_not_supplied_by_sds", "handshake", "certificate_expired", "ssl_handshaking")
        {
            self = .tls
        } else if has("connection_refused", "connect_error:_111") {
            self = .connectionRefused
        } else if has("connection_timeout", "connect_timeout", "connect_error:_110", "timed_out") {
            self = .connectTimeout
        } else if has("connect_error:_113", "no_route_to_host", "network_is_unreachable", "connect_error:_101") {
            self = .unreachable
        } else if has("connection_failure", "connect_error") {
            self = .connectionFailure
        } else {
            self = .other
        }
    }
}

extension [UInt8] {
    fileprivate func containsASCII(_ needle: String) -> Bool {
        var needle = needle
        return needle.withUTF8 { pattern in withUnsafeBufferPointer { occurs(pattern, in: $0) } }
    }
}

extension String {
    /// The same answer as `contains(_:)` for an ASCII needle without `\r\n` (every needle
    /// here), found in the bytes when the text is ASCII too: the Character-wise search costs
    /// more than the rest of a report (each report searches every failure detail again).
    fileprivate func containsText(_ needle: String) -> Bool {
        var text = self
        var needle = needle
        let found = text.withUTF8 { text -> Bool? in
            guard text.allSatisfy({ $0 < 0x80 }) else { return nil }
            return needle.withUTF8 { occurs($0, in: text) }
        }
        return found ?? contains(needle)
    }
}

/// Whether `pattern` occurs in `text`, byte for byte (a plain search: texts of a few hundred
/// bytes, patterns of a few dozen).
private func occurs(_ pattern: UnsafeBufferPointer<UInt8>, in text: UnsafeBufferPointer<UInt8>) -> Bool {
    guard let first = pattern.first else { return true }
    guard pattern.count <= text.count else { return false }
    for start in 0...(text.count - pattern.count) where text[start] == first {
        if (1..<pattern.count).allSatisfy({ text[start + $0] == pattern[$0] }) { return true }
    }
    return false
}

/// One flag's failure details, classified.
struct FailureTally {
    let details: [FailureDetail]
    /// Each detail's kind, classified once (the texts run to hundreds of bytes).
    let kinds: [FailureKind]
    /// Lines of the flag: the details' total when there are details, else the flag's count.
    let total: Int

    init(details: [FailureDetail], flagCount: Int) {
        self.details = details
        kinds = details.map(FailureKind.init)
        let detailTotal = details.reduce(0) { $0 + $1.count }
        total = detailTotal > 0 ? detailTotal : flagCount
    }

    func count(of kind: FailureKind) -> Int { count(of: [kind]) }

    /// The connect failure most lines had (refused first on a tie, then timeouts, then no
    /// route to the host) and how a sentence names it; nil when there was none of them.
    static func dominantConnectFailure(refused: Int, timedOut: Int, unreachable: Int) -> (
        kind: FailureKind, words: String
    )? {
        if refused > 0 && refused >= timedOut && refused >= unreachable {
            return (.connectionRefused, "connection refused")
        }
        if timedOut > 0 && timedOut >= unreachable { return (.connectTimeout, "connect timeouts") }
        if unreachable > 0 { return (.unreachable, "no route to the host") }
        return nil
    }

    func count(of kinds: Set<FailureKind>) -> Int {
        details.indices.filter { kinds.contains(self.kinds[$0]) }.reduce(0) { $0 + details[$1].count }
    }

    func count(containing needle: String) -> Int {
        details.filter {
            ($0.details ?? "").containsText(needle) || ($0.transportFailureReason ?? "").containsText(needle)
        }
        .reduce(0) { $0 + $1.count }
    }

    /// The most frequent text of that kind, shortened to what names the failure.
    func example(of kinds: Set<FailureKind>) -> String? {
        details.indices.first { kinds.contains(self.kinds[$0]) }.map { Self.shortText(details[$0]) }
    }

    func example(of kind: FailureKind) -> String? { example(of: [kind]) }

    func examples(of kind: FailureKind) -> [String] {
        details.indices.filter { kinds[$0] == kind }.map { Self.shortText(details[$0]) }
    }

    /// "10 of 10 UH were no_healthy_upstream" when the top detail says that (or `expected` is
    /// nil), else "7 of 10 UH were <top detail>"; "10 UH" without details.
    func describe(_ flag: ResponseFlag, as expected: String?) -> String {
        guard let top = details.first, top.details != nil || top.transportFailureReason != nil else {
            return "\(total) \(flag.shortName)"
        }
        if let expected {
            let matching = count(containing: expected)
            if matching > 0 && matching * 2 >= total {
                return "\(matching) of \(total) \(flag.shortName) were \(expected)"
            }
        }
        return "\(top.count) of \(total) \(flag.shortName) were \(Self.shortText(top))"
    }

    /// The part of a failure detail that names the failure: the TLS error's code
    /// (`CERTIFICATE_VERIFY_FAILED`), else the transport failure reason, else the details.
    static func shortText(_ detail: FailureDetail) -> String {
        let reason =
            detail.transportFailureReason ?? Self.transportPart(of: detail.details ?? "") ?? detail.details ?? "-"
        if reason.containsText("SDS") { return "Secret is not supplied by SDS" }
        // `TLS_error:|268435581:SSL_routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:...`
        let parts = reason.split(whereSeparator: { $0 == ":" || $0 == "|" })
        if reason.uppercased().containsText("TLS") || reason.containsText("SSL"),
            let code = parts.first(where: Self.isErrorCode)
        {
            return String(code)
        }
        return reason
    }

    /// `CERTIFICATE_VERIFY_FAILED`: upper-case letters, digits and underscores, a letter first.
    private static func isErrorCode(_ part: Substring) -> Bool {
        guard part.count > 4, let first = part.first, first.isLetter, first.isUppercase else { return false }
        return part.contains("_") && part.allSatisfy { ($0.isLetter && $0.isUppercase) || $0.isNumber || $0 == "_" }
            && !part.hasPrefix("TLS_") && !part.hasPrefix("SSL_") && !part.hasPrefix("OPENSSL_")
    }

    /// In `upstream_reset_before_response_started{reason,transport}` or `{reason|transport}`:
    /// the transport failure (split on the first `,` or `|` after `{`, up to the last `}`).
    static func transportPart(of details: String) -> String? {
        guard let open = details.firstIndex(of: "{"), let close = details.lastIndex(of: "}"), open < close else {
            return nil
        }
        let inside = details[details.index(after: open)..<close]
        guard let separator = inside.firstIndex(where: { $0 == "," || $0 == "|" }) else { return String(inside) }
        return String(inside[inside.index(after: separator)...])
    }
}

extension String {
    fileprivate func replacingSpaces() -> String {
        String(map { $0 == " " ? "_" : $0 })
    }
}

// MARK: next steps

/// The cluster a diagnosis is about, with the names its commands need.
struct Target {
    let cluster: String
    let istio: IstioClusterName

    /// - Parameter placeholders: the name holds `<service>`-style placeholders (`explain`'s
    ///   guide), left as they are; else every part is one shell word.
    init(cluster: String, placeholders: Bool = false) {
        self.cluster = cluster
        var istio = IstioClusterName(cluster)
        guard !placeholders else {
            self.istio = istio
            return
        }
        // The parts go into commands as they are: each one word, quoted when a hostile name
        // holds more than DNS names do.
        istio.port = ShellWord.word(istio.port)
        istio.subset = ShellWord.word(istio.subset)
        istio.host = ShellWord.word(istio.host)
        istio.service = ShellWord.word(istio.service)
        istio.namespace = ShellWord.word(istio.namespace)
        self.istio = istio
    }

    /// `outbound|8080||api.default.svc.cluster.local`: a Kubernetes service in the mesh.
    var isMeshService: Bool { istio.direction == "outbound" && !istio.namespace.isEmpty }
    var isInbound: Bool { istio.direction.hasPrefix("inbound") }
    /// The cluster name quoted for a shell (Istio names hold `|`).
    var quoted: String { ShellWord.quoted(cluster) }

    private var endpointSlices: String {
        "kubectl get endpointslice -n \(istio.namespace) -l kubernetes.io/service-name=\(istio.service)"
    }
    private var proxyEndpoints: String { "istioctl proxy-config endpoints <pod> --cluster \(quoted)" }
    private var describeService: String { "kubectl describe service \(istio.service) -n \(istio.namespace)" }

    func backendDownSteps() -> [String] {
        if isMeshService {
            return [
                endpointSlices,
                proxyEndpoints,
                "\(describeService)  # selector and targetPort vs the port the app listens on (\(istio.port))",
                "kubectl get pods -n \(istio.namespace) -o wide",
                "kubectl get networkpolicy -n \(istio.namespace)",
            ]
        }
        if isInbound { return inboundSteps() }
        if istio.isExternalHost { return externalHostSteps() }
        return genericSteps()
    }

    func mtlsSteps(sds: Bool) -> [String] {
        var steps: [String] = []
        if isMeshService {
            steps += [
                "istioctl x describe pod <pod>",
                "kubectl get peerauthentication -A",
                "kubectl get destinationrule -A | grep \(istio.service)",
                "istioctl proxy-config cluster <pod> --fqdn \(istio.host) -o json | grep -A3 -i tls",
                "kubectl get pods -n \(istio.namespace) -o wide  # READY 2/2: the server pods have their sidecar",
            ]
        } else if istio.isExternalHost {
            steps += [
                "kubectl get destinationrule -A | grep \(istio.host)",
                "istioctl proxy-config cluster <pod> --fqdn \(istio.host) -o json | grep -A3 -i tls",
            ]
        } else {
            steps += genericSteps()
        }
        if sds { steps.append("istioctl proxy-config secret <pod>") }
        return steps
    }

    /// A certificate was refused: the trust settings on both sides and the certificates
    /// themselves (chain, dates, SANs).
    func trustSteps() -> [String] {
        let hostPort = istio.port.isEmpty ? istio.host : istio.host + ":" + istio.port
        if isMeshService || istio.isExternalHost {
            return [
                "kubectl get destinationrule -A | grep \(isMeshService ? istio.service : istio.host)  # then its trafficPolicy.tls: caCertificates, subjectAltNames, credentialName",
                "istioctl proxy-config secret <pod>  # the client's certificate and root CA, with their dates",
                "istioctl proxy-config cluster <pod> --fqdn \(istio.host) -o json | grep -A8 -i validationContext",
                "openssl s_client -connect \(hostPort) -servername \(istio.host) -showcerts </dev/null  # the server's chain, dates and SANs",
            ]
        }
        if !istio.direction.isEmpty {
            return genericSteps() + [
                "istioctl proxy-config secret <pod>  # the certificates and root CA, with their dates",
                "openssl s_client -connect <upstream host> -showcerts </dev/null  # the server's chain, dates and SANs",
            ]
        }
        return genericSteps() + [
            "curl -s localhost:15000/certs  # the certificates Envoy holds, with their dates and SANs",
            "openssl s_client -connect <upstream host> -showcerts </dev/null  # the server's chain, dates and SANs",
        ]
    }

    /// A TLS failure of no known kind: the TLS settings on both sides, and the handshake itself.
    func tlsFailureSteps() -> [String] {
        mtlsSteps(sds: false) + trustSteps().filter { $0.hasPrefix("openssl ") }
    }

    func noEndpointsSteps() -> [String] {
        guard isMeshService else { return isInbound ? inboundSteps() : genericSteps() }
        var steps = [
            endpointSlices,
            "\(describeService)  # its selector must match ready pods",
            "kubectl get pods -n \(istio.namespace) -o wide  # Pending, or not READY: readiness probes",
            proxyEndpoints,
        ]
        if !istio.subset.isEmpty {
            steps.append("kubectl get destinationrule -n \(istio.namespace) -o yaml | grep -A4 'name: \(istio.subset)'")
        }
        return steps
    }

    func externalHostSteps() -> [String] {
        [
            "kubectl get serviceentry -A | grep \(istio.host)",
            "kubectl get destinationrule -A | grep \(istio.host)",
            proxyEndpoints,
            "kubectl exec <pod> -c istio-proxy -- pilot-agent request GET stats | grep \(quoted)",
        ]
    }

    func upstreamClosedSteps() -> [String] {
        guard isMeshService else { return isInbound ? inboundSteps() : genericSteps() }
        return [
            "kubectl get pods -n \(istio.namespace) -o wide  # RESTARTS",
            "kubectl logs -n \(istio.namespace) deploy/\(istio.service) --previous",
            proxyEndpoints,
            "kubectl get destinationrule -A | grep \(istio.service)  # connectionPool.http.idleTimeout",
        ]
    }

    func circuitBreakerSteps() -> [String] {
        guard isMeshService || istio.isExternalHost else { return genericSteps() }
        return [
            "kubectl get destinationrule -A | grep \(istio.service)  # trafficPolicy.connectionPool",
            "istioctl proxy-config cluster <pod> --fqdn \(istio.host) -o json | grep -A12 circuitBreakers",
            "kubectl exec <pod> -c istio-proxy -- pilot-agent request GET stats | grep \(quoted) | grep overflow",
        ]
    }

    func timeoutSteps() -> [String] {
        guard isMeshService || istio.isExternalHost else { return genericSteps() }
        return [
            "kubectl get virtualservice -A -o yaml | grep -B8 -A2 'timeout:' | grep -A10 \(istio.service)",
            "istioctl proxy-config routes <pod> -o json | grep -B2 -A2 '\"timeout\"'",
            proxyEndpoints,
        ]
    }

    func protocolSteps() -> [String] {
        guard isMeshService else { return isInbound ? inboundSteps() : genericSteps() }
        return [
            "kubectl get service \(istio.service) -n \(istio.namespace) -o yaml | grep -A4 'ports:'  # name / appProtocol",
            proxyEndpoints,
        ]
    }

    /// `inbound|8080||`: the sidecar in front of the local app.
    func inboundSteps() -> [String] {
        [
            "kubectl logs <pod> -c <app container>",
            "kubectl exec <pod> -c istio-proxy -- pilot-agent request GET clusters | grep \(quoted)",
            "kubectl exec <pod> -c istio-proxy -- ss -ltn  # the app listens on \(istio.port.isEmpty ? "its port" : istio.port)",
        ]
    }

    /// Plain Envoy (or an Istio cluster without names to fill in): the admin interface.
    func genericSteps() -> [String] {
        if !istio.direction.isEmpty {
            // A sidecar's admin interface is reached through pilot-agent; Istio 1.23+ stat names
            // end in `;`, so grep for the name alone.
            return [
                proxyEndpoints,
                "kubectl exec <pod> -c istio-proxy -- pilot-agent request GET stats | grep \(quoted)",
            ]
        }
        if cluster == FlagCounts.noCluster {
            return [
                "curl -s localhost:15000/config_dump?resource=dynamic_route_configs",
                "curl -s localhost:15000/stats | grep -E 'no_route|no_cluster'",
            ]
        }
        return [
            "curl -s localhost:15000/clusters | grep \(quoted)",
            "curl -s localhost:15000/stats | grep \(ShellWord.quoted("cluster." + cluster + "."))",
        ]
    }
}
