import AccessLogParser
import FlagCounting

/// What the upstream hosts and durations of the flagged lines add to a diagnosis: one bad host
/// or all of them, connects that time out (dropped packets) rather than being refused, a route
/// timeout read off the durations.
extension Diagnoser {
    /// A share of the flagged lines at or above this (80 %) on one host, while another host
    /// answered 2xx, makes the scope "one host".
    static let oneHostShare = (numerator: 4, denominator: 5)

    /// Sets the diagnosis's hosts and scope; with one host, names it in the likely cause and
    /// puts the commands that find it first among the next steps.
    static func scope(_ diagnosis: inout Diagnosis, _ evidence: FlagEvidence, _ target: Target) {
        let hosts = evidence.counts.upstreamHosts(cluster: evidence.cluster, flag: diagnosis.flag)
        diagnosis.hosts = hosts
        let total = hosts.reduce(0) { $0 + $1.count }
        guard total > 0 else {
            // UH lines name no host because none was healthy: that is every host.
            diagnosis.scope = diagnosis.flag == .noHealthyUpstream ? .allHosts : .unknown
            return
        }
        let answered = evidence.counts.answeredHosts(cluster: evidence.cluster)
        guard let top = hosts.first, top.host != FlagCounts.otherUpstreamHost,
            top.count * oneHostShare.denominator >= total * oneHostShare.numerator,
            answered.contains(where: { $0 != top.host })
        else {
            diagnosis.scope = .allHosts
            return
        }
        diagnosis.scope = .oneHost
        let others = answered.filter { $0 != top.host }.count
        let otherHosts = others == 1 ? "1 other host" : "\(others) other hosts"
        // "backend down, wrong port or NetworkPolicy: 18 of 18 UF were ..." loses its lead: the
        // host replaces the guesses it makes for a whole service.
        var evidence = diagnosis.likelyCause
        if evidence.hasPrefix(diagnosis.cause.rawValue), let lead = evidence.firstRange(of: ": ") {
            evidence = String(evidence[lead.upperBound...])
        }
        diagnosis.likelyCause =
            "\(diagnosis.cause.rawValue) on one host, \(top.host) (\(top.count) of \(total) \(diagnosis.flag.shortName); \(otherHosts) answered 2xx): "
            + evidence
        diagnosis.nextSteps = target.oneHostSteps(top.host) + diagnosis.nextSteps
    }

    /// UF whose connects timed out: nothing answered, not even with a refusal, so something
    /// drops the packets. Also UF without any transport failure reason whose durations all sit
    /// at one value of a second or more: the connect timeout struck. Nil otherwise.
    static func packetsDropped(
        _ tally: FailureTally, timedOut: Int, _ stats: FlaggedLineStats?, _ target: Target
    ) -> Diagnosis? {
        let flag = ResponseFlag.upstreamConnectionFailure
        // With retries (Istio retries connect failures twice by default) a line lasts all its
        // tries: the connect timeout is the duration per try.
        let perTry = stats.map(perTryStats)
        var evidence: String
        if timedOut > 0 {
            let example = tally.example(of: .connectTimeout).map { " (\($0))" } ?? ""
            evidence = "\(timedOut) of \(tally.total) UF were connect timeouts\(example)"
            if let stats, let range = durations(stats) {
                evidence += ", after \(range)"
                if let perTry, perTry != stats, let each = durations(perTry) {
                    evidence +=
                        " (\(each) per try of \(oneDecimal(Double(stats.attempts) / Double(stats.attemptLines))))"
                }
            }
        } else if tally.count(of: [.tls, .connectionRefused, .connectTimeout, .unreachable, .connectionFailure]) == 0,
            let perTry, let timeout = wholeSecondTimeout(perTry)
        {
            evidence =
                "\(tally.total) UF without a transport failure reason, all after \(timeout.durations) per try: the connect timeout struck"
        } else {
            return nil
        }
        var sentence =
            "packets dropped (NetworkPolicy, firewall or a dead node): " + evidence
            + "; nothing answered the connect, not even with a refusal"
        if let perTry, let timeout = wholeSecondTimeout(perTry), timeout.seconds == 10 {
            sentence += " (10 s is Istio's default connect timeout)"
        }
        return Diagnosis(flag: flag, cause: .packetsDropped, likelyCause: sentence, nextSteps: target.droppedSteps())
    }

    /// The durations divided by the mean tries per line, when every line gave its tries and
    /// some made more than one; else the durations as they are.
    static func perTryStats(_ stats: FlaggedLineStats) -> FlaggedLineStats {
        guard stats.attemptLines == stats.lines, stats.attempts > stats.attemptLines,
            let low = stats.minDurationMilliseconds, let high = stats.maxDurationMilliseconds
        else { return stats }
        var perTry = stats
        let tries = Double(stats.attempts) / Double(stats.attemptLines)
        perTry.minDurationMilliseconds = Int((Double(low) / tries).rounded())
        perTry.maxDurationMilliseconds = Int((Double(high) / tries).rounded())
        return perTry
    }

    /// The durations' range as text ("10.0 s", "0.9 to 10.0 s"); nil without durations.
    static func durations(_ stats: FlaggedLineStats) -> String? {
        guard let low = stats.minDurationMilliseconds, let high = stats.maxDurationMilliseconds else { return nil }
        let lowText = seconds(low)
        let highText = seconds(high)
        return lowText == highText ? "\(lowText) s" : "\(lowText) to \(highText) s"
    }

    /// Every duration within 0.1 s (or 2 %) of one whole number of seconds, at least one: a
    /// timeout of that many seconds (a route's, a connect's, which Envoy may overshoot by a few
    /// milliseconds) struck each line. Nil otherwise.
    static func wholeSecondTimeout(_ stats: FlaggedLineStats?) -> (seconds: Int, durations: String)? {
        guard let stats, stats.timedLines == stats.lines, let low = stats.minDurationMilliseconds,
            let high = stats.maxDurationMilliseconds, let text = durations(stats)
        else { return nil }
        let seconds = (low + 500) / 1000
        guard seconds >= 1 else { return nil }
        let slack = max(100, seconds * 20)
        guard low >= seconds * 1000 - slack, high <= seconds * 1000 + slack else { return nil }
        return (seconds, text)
    }

    /// Milliseconds as seconds with one decimal ("10.0").
    static func seconds(_ milliseconds: Int) -> String {
        oneDecimal(Double(milliseconds) / 1000)
    }

    /// One decimal, rounded half up ("2.5"); for counts and durations, never negative.
    static func oneDecimal(_ value: Double) -> String {
        guard value.isFinite, value >= 0 else { return "\(value)" }
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }
}

extension Target {
    /// The host's address without its port (`10.8.3.14:8080` → `10.8.3.14`,
    /// `[fd00::1]:8080` → `fd00::1`), for finding its pod.
    static func address(of host: String) -> String {
        if host.hasPrefix("["), let close = host.firstIndex(of: "]") {
            return String(host[host.index(after: host.startIndex)..<close])
        }
        if let colon = host.lastIndex(of: ":"), host.firstIndex(of: ":") == colon {
            return String(host[..<colon])
        }
        return host
    }

    /// One host fails: find its pod, read its logs, and let outlier detection eject it.
    func oneHostSteps(_ host: String) -> [String] {
        let address = ShellWord.quoted(Self.address(of: host))
        if isMeshService || isInbound || istio.isExternalHost || !istio.direction.isEmpty {
            let namespace = istio.namespace.isEmpty ? "<namespace>" : istio.namespace
            return [
                "kubectl get pods -A -o wide | grep -F -w \(address)  # the pod behind \(host)",
                "kubectl logs -n \(namespace) <that pod> --previous  # why it fails (restarts, crashes)",
                "kubectl get destinationrule -n \(namespace) -o yaml | grep -A6 outlierDetection  # ejects a failing host automatically",
            ]
        }
        return [
            "curl -s localhost:15000/clusters | grep -F \(ShellWord.quoted(host))  # its health flags and failures",
            "curl -s localhost:15000/config_dump | grep -A6 outlier_detection  # ejects a failing host automatically",
        ]
    }

    /// Connects time out: what drops the packets (policies, firewalls) and whether the node lives.
    func droppedSteps() -> [String] {
        if isMeshService {
            return [
                "kubectl get networkpolicy -n \(istio.namespace)  # a policy that selects the pods but lets nothing in on \(istio.port.isEmpty ? "the port" : istio.port)",
                "kubectl get pods -n \(istio.namespace) -o wide  # the pods' nodes; then kubectl get nodes (NotReady: a dead node)",
                "istioctl proxy-config endpoints <pod> --cluster \(quoted)  # the endpoints Envoy still sends to",
                "istioctl proxy-config cluster <pod> --fqdn \(istio.host) -o json | grep connectTimeout",
            ]
        }
        if istio.isExternalHost {
            return [
                "kubectl get networkpolicy -A  # egress policies",
                "kubectl get serviceentry,destinationrule -A | grep \(istio.host)",
                "istioctl proxy-config cluster <pod> --fqdn \(istio.host) -o json | grep connectTimeout",
            ]
        }
        return genericSteps() + [
            "nft list ruleset; iptables -S  # a firewall rule that drops the connects (on this host and the upstream's)"
        ]
    }
}
