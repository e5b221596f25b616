import AccessLogParser
import FlagCounting

/// One cause a flag commonly has, the evidence that tells it from the flag's other causes, and
/// what to run.
public struct FlagCause: Sendable, Equatable {
    /// The cause label, as the diagnosis names it (``LikelyCause``) when it does.
    public var cause: String
    /// What in the line (details, transport failure reason, cluster, code) says it is this cause.
    public var evidence: String
    /// Commands, with `<service>`, `<namespace>`, `<port>` and `<pod>` to fill in.
    public var nextSteps: [String]

    public init(cause: String, evidence: String, nextSteps: [String]) {
        self.cause = cause
        self.evidence = evidence
        self.nextSteps = nextSteps
    }
}

/// What `flagwatch explain` says of one flag: its row of Envoy's table (``ResponseFlag``) and
/// the causes the diagnosis tells apart.
public struct FlagExplanation: Sendable, Equatable {
    public var flag: ResponseFlag
    /// The status codes the flag comes with (docs/formats.md §1.3); nil when Envoy sets none of
    /// its own (the request's code stands).
    public var statusCodes: String?
    /// The common causes, most frequent first; empty for flags the diagnosis has no cause for.
    public var causes: [FlagCause]

    public init(_ flag: ResponseFlag) {
        self.flag = flag
        (statusCodes, causes) = FlagGuide.entry(flag)
    }
}

/// The causes of each flag: the one place the diagnosis's causes are described flag by flag.
/// The next steps are the diagnosis's own (``Target``), for an Istio service with placeholders.
enum FlagGuide {
    /// An Istio service cluster with placeholders where a line's cluster gives the names.
    static let meshService = Target(
        cluster: "outbound|<port>||<service>.<namespace>.svc.cluster.local", placeholders: true)
    /// A ServiceEntry host outside the mesh.
    static let externalHost = Target(cluster: "outbound|443||<host>", placeholders: true)

    static func entry(_ flag: ResponseFlag) -> (statusCodes: String?, causes: [FlagCause]) {
        let tcp = flag.isSetForTCP ? "; 0 on TCP proxy lines" : ""
        let mesh = meshService
        switch flag {
        case .upstreamConnectionFailure:
            return (
                "503" + tcp,
                [
                    FlagCause(
                        cause: LikelyCause.backendDown.rawValue,
                        evidence:
                            "the transport failure reason (also in the details after `|` or `,`) says the connect was refused (delayed_connect_error:_Connection_refused, older delayed_connect_error:_111) or found no route (_113, Network_is_unreachable): nothing listens there or the Service's targetPort is wrong. When one host carries the failures while others answer 2xx (scope \"one host\"), that pod is down",
                        nextSteps: mesh.backendDownSteps()),
                    FlagCause(
                        cause: LikelyCause.packetsDropped.rawValue,
                        evidence:
                            "the connects timed out (connection_timeout, delayed_connect_error:_Connection_timed_out) rather than being refused, each after the connect timeout (%DURATION%; Istio's default is 10 s): a NetworkPolicy, a firewall or a dead node drops the packets",
                        nextSteps: mesh.droppedSteps()),
                    FlagCause(
                        cause: LikelyCause.tlsTrustFailure.rawValue,
                        evidence:
                            "a TLS reason with CERTIFICATE_VERIFY_FAILED (Envoy 1.37+ adds the verify error: certificate_has_expired, unable_to_get_local_issuer_certificate, SAN_matcher), or the server's alert SSLV3_ALERT_CERTIFICATE_EXPIRED or TLSV1_ALERT_UNKNOWN_CA: a wrong CA, an expired certificate or a SAN mismatch",
                        nextSteps: mesh.trustSteps()),
                    FlagCause(
                        cause: LikelyCause.mtlsMismatch.rawValue,
                        evidence:
                            "a TLS reason with WRONG_VERSION_NUMBER: TLS spoken to a plaintext port (PeerAuthentication / DestinationRule TLS mode mismatch, or no sidecar on the server); or `Secret is not supplied by SDS`: the sidecar has no certificate yet",
                        nextSteps: mesh.mtlsSteps(sds: true)),
                    FlagCause(
                        cause: LikelyCause.upstreamTLSFailure.rawValue,
                        evidence:
                            "any other TLS reason (TLS_error:|<code>:SSL_routines:...): its code names the failure",
                        nextSteps: mesh.tlsFailureSteps()),
                ]
            )
        case .noHealthyUpstream:
            return (
                "503" + tcp,
                [
                    FlagCause(
                        cause: LikelyCause.noHealthyUpstream.rawValue,
                        evidence:
                            "details no_healthy_upstream: the cluster has no ready endpoint (Service selector mismatch, failing readiness probes, pods Pending, a DestinationRule subset matching no pod's labels); on BlackHoleCluster it is outboundTrafficPolicy REGISTRY_ONLY without a ServiceEntry",
                        nextSteps: mesh.noEndpointsSteps())
                ]
            )
        case .upstreamRequestTimeout:
            return (
                "504",
                [
                    FlagCause(
                        cause: LikelyCause.timeout.rawValue,
                        evidence:
                            "details response_timeout (the route's timeout, Envoy's default 15 s) or upstream_per_try_timeout (the retry policy's perTryTimeout); %DURATION% sits at that timeout",
                        nextSteps: mesh.timeoutSteps())
                ]
            )
        case .localReset:
            return (
                "503",
                [
                    FlagCause(
                        cause: "local reset",
                        evidence:
                            "details upstream_reset_before_response_started{local_reset}: Envoy itself reset the upstream stream (a connection it closed, drained or found half-closed)",
                        nextSteps: mesh.genericSteps())
                ]
            )
        case .upstreamRemoteReset:
            return (
                "503",
                [
                    FlagCause(
                        cause: LikelyCause.upstreamReset.rawValue,
                        evidence:
                            "details remote_reset or remote_refused_stream_reset: the app (often an HTTP/2 or gRPC server) reset or refused the stream",
                        nextSteps: mesh.upstreamClosedSteps())
                ]
            )
        case .upstreamConnectionTermination:
            return (
                "503",
                [
                    FlagCause(
                        cause: LikelyCause.upstreamClosed.rawValue,
                        evidence:
                            "details connection_termination on a mesh service: the app crashed or restarted, or its keep-alive timeout is shorter than Envoy's idle timeout",
                        nextSteps: mesh.upstreamClosedSteps()),
                    FlagCause(
                        cause: LikelyCause.staleKeepAlive.rawValue,
                        evidence:
                            "connection_termination on a host outside the mesh (outbound|443||api.example.com): it closes idle connections Envoy still reuses",
                        nextSteps: externalHost.externalHostSteps()),
                ]
            )
        case .upstreamOverflow:
            return (
                "503" + tcp,
                [
                    FlagCause(
                        cause: LikelyCause.circuitBreaker.rawValue,
                        evidence:
                            "details overflow: the DestinationRule's connectionPool limits were reached; UO together with UF (failed connects in the reasons) is the retry budget overflowing while the backend fails",
                        nextSteps: mesh.circuitBreakerSteps())
                ]
            )
        case .noRouteFound:
            return (
                "404" + tcp,
                [
                    FlagCause(
                        cause: LikelyCause.noRoute.rawValue,
                        evidence:
                            "details route_not_found: no VirtualService host or match for the request; filter_chain_not_found: a connection no listener filter chain matched (port, SNI or protocol not declared)",
                        nextSteps: [
                            "istioctl proxy-config routes <pod>", "kubectl get virtualservice -A",
                            "istioctl proxy-config listeners <pod>", "istioctl analyze -A",
                        ])
                ]
            )
        case .upstreamRetryLimitExceeded:
            return (
                "503" + tcp,
                [
                    FlagCause(
                        cause: LikelyCause.retriesExhausted.rawValue,
                        evidence:
                            "the flag the line carries with it (UF, UC, UT, UR) says why each try failed, and the diagnosis is that flag's; URX alone: the tries got answers the retry policy retries on (5xx) until it gave up",
                        nextSteps: mesh.genericSteps())
                ]
            )
        case .noClusterFound:
            return (
                "503 (the route's cluster_not_found_response_code: 404 or 500 if configured)" + tcp,
                [
                    FlagCause(
                        cause: "cluster not found",
                        evidence:
                            "details cluster_not_found: the route names a cluster the proxy does not have (a DestinationRule subset not defined, or configuration not pushed yet)",
                        nextSteps: [
                            "istioctl proxy-config clusters <pod>", "istioctl proxy-status", "istioctl analyze -A",
                        ])
                ]
            )
        case .upstreamProtocolError:
            return (
                "502",
                [
                    FlagCause(
                        cause: LikelyCause.protocolError.rawValue,
                        evidence:
                            "details protocol_error: the upstream's answer is not the protocol Envoy expects; the Service port's name or appProtocol (http, http2, grpc, tcp) does not match what the app speaks",
                        nextSteps: mesh.protocolSteps())
                ]
            )
        case .downstreamConnectionTermination:
            return (
                "0",
                [
                    FlagCause(
                        cause: "client went away",
                        evidence:
                            "code 0, details downstream_remote_disconnect: the client closed the connection before the response; not an upstream failure, unless %DURATION% sits at the client's own timeout",
                        nextSteps: [])
                ]
            )
        case .streamIdleTimeout:
            return (
                "408 or 504",
                [
                    FlagCause(
                        cause: "stream idle timeout",
                        evidence:
                            "details stream_idle_timeout: no bytes moved on the stream for the idle timeout (Envoy's default 5 min); a streaming or long-polling request without a longer idleTimeout",
                        nextSteps: [])
                ]
            )
        case .rateLimited: return ("429", [])
        case .invalidEnvoyRequestHeaders: return ("400", [])
        case .failedLocalHealthCheck, .dropOverload, .unconditionalDropOverload, .overloadManagerTerminated:
            return ("503", [])
        default: return (nil, [])
        }
    }
}
