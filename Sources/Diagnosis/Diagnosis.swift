import AccessLogParser
import FlagCounting

/// Why a cluster's flags happen: the likely cause, in words an SRE acts on, and the commands to
/// run next. Made by ``Diagnoser`` from the counts and the failure details counted with them.
public struct Diagnosis: Sendable, Equatable {
    /// The flag the diagnosis is about (the dominant one among those asked about).
    public var flag: ResponseFlag
    public var cause: LikelyCause
    /// One sentence with the evidence (e.g. "backend down: 37 of 40 UF were connection refused").
    public var likelyCause: String
    /// Commands with the cluster's real names filled in.
    public var nextSteps: [String]
    /// Whether one upstream host carries the failures or all of them do.
    public var scope: DiagnosisScope
    /// The upstream hosts of the flag's lines with the most lines, most first (at most 8, plus
    /// ``FlagCounts/otherUpstreamHost`` for the rest); empty when the lines name no host.
    public var hosts: [UpstreamHostCount]
    /// Whether the flagged rate is rising, steady or falling; nil without trailing windows
    /// (`scan`, `explain`).
    public var trend: FlaggedRateTrend?
    /// When the cluster was first seen failing, in seconds since the epoch (the daemon's clock),
    /// for the failure going on now; nil without trailing windows.
    public var firstSeenFailing: Int?

    public init(
        flag: ResponseFlag, cause: LikelyCause, likelyCause: String, nextSteps: [String],
        scope: DiagnosisScope = .unknown, hosts: [UpstreamHostCount] = [], trend: FlaggedRateTrend? = nil,
        firstSeenFailing: Int? = nil
    ) {
        self.flag = flag
        self.cause = cause
        self.likelyCause = likelyCause
        self.nextSteps = nextSteps
        self.scope = scope
        self.hosts = hosts
        self.trend = trend
        self.firstSeenFailing = firstSeenFailing
    }
}

extension Diagnosis {
    /// This diagnosis with the trend of the cluster's lines with any of `flags` (the flags asked
    /// about: an alert rule's, or the page's recent failures) and when the cluster was first seen
    /// failing; both stay nil when the counts keep no windows (`scan`, `explain`).
    func withTrend(_ counts: FlagCounts, cluster: Int, flags: [ResponseFlag]) -> Diagnosis {
        var diagnosis = self
        diagnosis.trend = counts.flaggedRateTrend(cluster: cluster, flags: ResponseFlagSet(flags))
        diagnosis.firstSeenFailing = counts.firstSeenFailing(cluster: cluster)
        return diagnosis
    }
}

/// How far a failure reaches within a cluster. The raw value is what JSON, metrics and the page
/// show.
public enum DiagnosisScope: String, Sendable, CaseIterable {
    /// One host carries at least 80 % of the flagged lines while another host answered 2xx.
    case oneHost = "one host"
    /// The failures are spread over the hosts, or no host answered 2xx.
    case allHosts = "all hosts"
    /// The lines name no upstream host (the format has no `%UPSTREAM_HOST%`).
    case unknown
}

/// The causes flagwatch can name; the raw value is the short label shown in tables and alerts.
public enum LikelyCause: String, Sendable, CaseIterable {
    /// TLS spoken to a plaintext port (PeerAuthentication / DestinationRule modes, a server
    /// without sidecar), or no certificate from SDS yet.
    case mtlsMismatch = "mTLS mismatch"
    /// A certificate was refused: a wrong CA, an expired certificate or a SAN mismatch.
    case tlsTrustFailure = "TLS trust failure"
    case backendDown = "backend down"
    case noHealthyUpstream = "no ready endpoints"
    case noRoute = "no route"
    case staleKeepAlive = "stale keep-alive connection"
    case retriesExhausted = "retries exhausted"
    case circuitBreaker = "circuit breaker"
    case timeout = "upstream timeout"
    /// UC on a mesh service: the app closed the connection (crash, restart, or a keep-alive
    /// timeout shorter than Envoy's).
    case upstreamClosed = "upstream closed connection"
    /// UR: the upstream reset the stream.
    case upstreamReset = "upstream reset"
    /// UPE: the upstream's answer is not the protocol Envoy expects (port protocol declared wrong).
    case protocolError = "upstream protocol error"
    /// The TLS handshake with the upstream failed for a reason no other cause names (Envoy),
    /// or any TLS failure (nginx, HAProxy, whose texts do not tell the kinds apart).
    case upstreamTLSFailure = "upstream TLS failure"
    /// nginx or HAProxy: connects timed out rather than being refused, so something drops the
    /// packets (a firewall, a NetworkPolicy) or the host is gone.
    case packetsDropped = "packets dropped"
    /// nginx `no live upstreams`, HAProxy `<NOSRV>`: every server of the group is marked down.
    case noLiveServers = "no live upstream servers"
    /// HAProxy: requests timed out in the queue of servers at their `maxconn`.
    case queueFull = "server queue full"
    case unknown = "unknown"
}
