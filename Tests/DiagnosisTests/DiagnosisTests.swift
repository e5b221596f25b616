import AccessLogParser
import FlagCounting
import Testing

@testable import Diagnosis

/// Counts `lines` through the real pipeline (parser with its default fields, then FlagCounts).
func counted(_ lines: [String], format: LogFormat = .auto) throws -> FlagCounts {
    let counts = FlagCounts()
    let pipeline = try StreamPipeline(format: format, containerFormat: .none, counts: counts)
    let text = lines.map { $0 + "\n" }.joined()
    Array(text.utf8).withUnsafeBytes { pipeline.feed($0) }
    return counts
}

func repeated(_ line: String, _ times: Int) -> [String] { Array(repeating: line, count: times) }

/// One row of the table: lines in, the diagnosis expected of one cluster.
struct DiagnosisCase: CustomTestStringConvertible, Sendable {
    var name: String
    var lines: [String]
    var format: LogFormat = .auto
    var cluster: String
    var among: [ResponseFlag]
    var flag: ResponseFlag
    var cause: LikelyCause
    /// Parts the likely-cause sentence must contain.
    var sentence: [String]
    /// Parts some next step must contain (each).
    var steps: [String]

    var testDescription: String { name }
}

let payments = "outbound|9001||payments.default.svc.cluster.local"
let ruleFlagsUF: [ResponseFlag] = [
    .upstreamConnectionFailure, .upstreamRetryLimitExceeded, .upstreamConnectionTermination,
]

let cases: [DiagnosisCase] = [
    DiagnosisCase(
        name: "UF, connection refused (real): backend down",
        lines: repeated(Real.paymentsRefused, 10) + repeated(Real.reviewsOK, 5), cluster: payments,
        among: ruleFlagsUF, flag: .upstreamConnectionFailure, cause: .backendDown,
        sentence: [
            "backend down, wrong port or NetworkPolicy: 10 of 10 UF were connection refused (delayed_connect_error:_Connection_refused)"
        ],
        steps: [
            "kubectl get endpointslice -n default -l kubernetes.io/service-name=payments",
            "istioctl proxy-config endpoints <pod> --cluster 'outbound|9001||payments.default.svc.cluster.local'",
            "kubectl get networkpolicy -n default",
        ]),
    DiagnosisCase(
        name: "UF, connection refused (real JSON log): backend down",
        lines: repeated(Real.paymentsRefusedJSON, 4), format: .json(JSONKeyMap()), cluster: payments,
        among: ruleFlagsUF, flag: .upstreamConnectionFailure, cause: .backendDown,
        sentence: ["4 of 4 UF were connection refused (delayed_connect_error:_Connection_refused)"],
        steps: ["kubectl get endpointslice -n default -l kubernetes.io/service-name=payments"]),
    DiagnosisCase(
        name: "UF, delayed_connect_error:_111 (old Envoy, written): backend down",
        lines: repeated(Written.paymentsRefusedErrno, 37)
            + repeated(
                Written.paymentsRefusedErrno.replacing(
                    "{connection_failure,delayed_connect_error:_111} - \"delayed_connect_error:_111\"",
                    with:
                        "{connection_failure,TLS_error:_Secret_is_not_supplied_by_SDS} - \"TLS error: Secret is not supplied by SDS\""
                ), 3),
        cluster: "outbound|9001||payments.shop.svc.cluster.local",
        among: ruleFlagsUF, flag: .upstreamConnectionFailure, cause: .backendDown,
        sentence: ["37 of 40 UF were connection refused (delayed_connect_error:_111)"],
        steps: [
            "kubectl get endpointslice -n shop -l kubernetes.io/service-name=payments",
            "kubectl describe service payments -n shop",
        ]),
    DiagnosisCase(
        name: "UF,URX from the TCP proxy (real, no details, only a reason): backend down",
        lines: repeated(Real.redisTCPRefused, 6), cluster: "outbound|6379||redis.default.svc.cluster.local",
        among: ruleFlagsUF, flag: .upstreamConnectionFailure, cause: .backendDown,
        sentence: ["6 of 6 UF were connection refused (delayed_connect_error:_Connection_refused)"],
        steps: ["kubectl get endpointslice -n default -l kubernetes.io/service-name=redis"]),
    DiagnosisCase(
        name: "UF, connect timeout (real): packets dropped",
        lines: repeated(Real.vaultConnectTimeout, 3), cluster: "outbound|8443||vault.default.svc.cluster.local",
        among: ruleFlagsUF, flag: .upstreamConnectionFailure, cause: .packetsDropped,
        sentence: ["3 of 3 UF were connect timeouts (connection_timeout)"],
        steps: ["kubectl get networkpolicy -n default"]),
    DiagnosisCase(
        name: "UF, CERTIFICATE_VERIFY_FAILED (real): TLS trust failure, wrong CA",
        lines: repeated(Real.authUntrustedCA, 5), cluster: "outbound|443||auth.default.svc.cluster.local",
        among: ruleFlagsUF, flag: .upstreamConnectionFailure, cause: .tlsTrustFailure,
        sentence: [
            "TLS trust failure (wrong CA): 5 of 5 UF failed certificate verification (CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate)",
            "caCertificates and subjectAltNames",
        ],
        steps: [
            "kubectl get destinationrule -A | grep auth", "istioctl proxy-config secret <pod>",
            "openssl s_client -connect auth.default.svc.cluster.local:443 -servername auth.default.svc.cluster.local -showcerts",
        ]),
    DiagnosisCase(
        name: "UF, WRONG_VERSION_NUMBER (real): mTLS mismatch",
        lines: repeated(Real.legacyPlainText, 2), cluster: "outbound|443||legacy.default.svc.cluster.local",
        among: ruleFlagsUF, flag: .upstreamConnectionFailure, cause: .mtlsMismatch,
        sentence: ["2 of 2 UF were TLS handshake failures (WRONG_VERSION_NUMBER)"],
        steps: ["kubectl get destinationrule -A | grep legacy"]),
    DiagnosisCase(
        name: "UF, WRONG_VERSION_NUMBER from a server without sidecar (written): mTLS mismatch",
        lines: repeated(Written.cartPlainTextServer, 9), cluster: "outbound|8080||cart.shop.svc.cluster.local",
        among: ruleFlagsUF, flag: .upstreamConnectionFailure, cause: .mtlsMismatch,
        sentence: ["9 of 9 UF were TLS handshake failures (WRONG_VERSION_NUMBER)", "no sidecar"],
        steps: ["kubectl get pods -n shop -o wide"]),
    DiagnosisCase(
        name: "UF, Secret is not supplied by SDS (old Envoy, written): mTLS mismatch",
        lines: repeated(Written.ordersNoSDSSecret, 4), cluster: "outbound|8080||orders.shop.svc.cluster.local",
        among: ruleFlagsUF, flag: .upstreamConnectionFailure, cause: .mtlsMismatch,
        sentence: ["4 of 4 UF were TLS handshake failures (Secret is not supplied by SDS)", "SDS"],
        steps: ["istioctl proxy-config secret <pod>"]),
    DiagnosisCase(
        name: "UH, failing health check (real): no ready endpoints",
        lines: repeated(Real.inventoryFailingHealthCheck, 10),
        cluster: "outbound|8080||inventory.default.svc.cluster.local",
        among: [.noHealthyUpstream], flag: .noHealthyUpstream, cause: .noHealthyUpstream,
        sentence: [
            "no ready endpoints (selector mismatch, failing readiness probes, pods Pending): 10 of 10 UH were no_healthy_upstream"
        ],
        steps: [
            "kubectl get endpointslice -n default -l kubernetes.io/service-name=inventory",
            "istioctl proxy-config endpoints <pod> --cluster 'outbound|8080||inventory.default.svc.cluster.local'",
        ]),
    DiagnosisCase(
        name: "UH, no endpoints (real): no ready endpoints",
        lines: repeated(Real.shippingNoEndpoints, 1), cluster: "outbound|80||shipping.default.svc.cluster.local",
        among: [.noHealthyUpstream], flag: .noHealthyUpstream, cause: .noHealthyUpstream,
        sentence: ["1 of 1 UH were no_healthy_upstream"],
        steps: [
            "kubectl get endpointslice -n default -l kubernetes.io/service-name=shipping",
            "kubectl describe service shipping -n default",
        ]),
    DiagnosisCase(
        name: "UH, subset without pods (written): no ready endpoints, names the subset",
        lines: repeated(Written.reviewsSubsetNoEndpoints, 3),
        cluster: "outbound|9080|v2|reviews.bookinfo.svc.cluster.local",
        among: [.noHealthyUpstream], flag: .noHealthyUpstream, cause: .noHealthyUpstream,
        sentence: ["subset 'v2'"],
        steps: ["kubectl get endpointslice -n bookinfo -l kubernetes.io/service-name=reviews", "name: v2"]),
    DiagnosisCase(
        name: "NR (real): no route",
        lines: repeated(Real.noRoute, 7), cluster: "-",
        among: [.noRouteFound], flag: .noRouteFound, cause: .noRoute,
        sentence: ["no route (VirtualService host or match): 7 of 7 NR were route_not_found"],
        steps: ["istioctl proxy-config routes <pod>", "kubectl get virtualservice -A"]),
    DiagnosisCase(
        name: "UC to a host outside the mesh (written): stale keep-alive",
        lines: repeated(Written.externalTerminated, 12), cluster: "outbound|443||api.example.com",
        among: ruleFlagsUF, flag: .upstreamConnectionTermination, cause: .staleKeepAlive,
        sentence: [
            "stale keep-alive connection: 12 of 12 UC were connection_termination to api.example.com",
            "ServiceEntry with resolution DNS", "connect-failure",
        ],
        steps: ["kubectl get serviceentry -A | grep api.example.com"]),
    DiagnosisCase(
        name: "UC on a mesh service (real): upstream closed the connection",
        lines: repeated(Real.catalogTerminated, 3), cluster: "outbound|8080||catalog.default.svc.cluster.local",
        among: ruleFlagsUF, flag: .upstreamConnectionTermination, cause: .upstreamClosed,
        sentence: ["3 of 3 UC were connection_termination"],
        steps: ["kubectl logs -n default deploy/catalog --previous"]),
    DiagnosisCase(
        name: "URX,UF (real): retries exhausted, pointing at UF",
        lines: repeated(Real.ledgerRetried, 8), cluster: "outbound|9002||ledger.default.svc.cluster.local",
        among: [.upstreamRetryLimitExceeded], flag: .upstreamConnectionFailure, cause: .backendDown,
        sentence: [
            "retries exhausted (8 URX), each try failing with UF: backend down", "8 of 8 UF were connection refused",
        ],
        steps: ["kubectl get endpointslice -n default -l kubernetes.io/service-name=ledger"]),
    DiagnosisCase(
        name: "URX alone (written): retries exhausted",
        lines: repeated(Written.retriesOnly, 2), cluster: "outbound|8080||stock.shop.svc.cluster.local",
        among: [.upstreamRetryLimitExceeded], flag: .upstreamRetryLimitExceeded, cause: .retriesExhausted,
        sentence: ["retries exhausted: 2 of 2 URX were via_upstream"],
        steps: ["kubectl get endpointslice -n shop -l kubernetes.io/service-name=stock"]),
    DiagnosisCase(
        name: "UO, pending/active overflow (real): circuit breaker",
        lines: repeated(Real.checkoutOverflow, 6), cluster: "outbound|8080||checkout.default.svc.cluster.local",
        among: [.upstreamOverflow], flag: .upstreamOverflow, cause: .circuitBreaker,
        sentence: ["circuit breaker (DestinationRule connectionPool limits): 6 of 6 UO were overflow"],
        steps: ["circuitBreakers", "connectionPool"]),
    DiagnosisCase(
        name: "UO,UF retry overflow (real): circuit breaker on a failing backend",
        lines: repeated(Real.fraudRetryOverflow, 5), cluster: "outbound|9003||fraud.default.svc.cluster.local",
        among: [.upstreamOverflow], flag: .upstreamOverflow, cause: .circuitBreaker,
        sentence: [
            "5 of 5 UO came with failed connections (delayed_connect_error:_Connection_refused)", "max_retries",
        ],
        steps: ["kubectl get destinationrule -A | grep fraud"]),
    DiagnosisCase(
        name: "UT (real): upstream timeout",
        lines: repeated(Real.searchTimeout, 4), cluster: "outbound|8080||search.default.svc.cluster.local",
        among: [.upstreamRequestTimeout], flag: .upstreamRequestTimeout, cause: .timeout,
        sentence: ["4 of 4 UT were response_timeout"],
        steps: ["istioctl proxy-config routes <pod>"]),
    DiagnosisCase(
        name: "UPE (real): protocol error",
        lines: repeated(Real.profileProtocolError, 2), cluster: "outbound|8080||profile.default.svc.cluster.local",
        among: [.upstreamProtocolError], flag: .upstreamProtocolError, cause: .protocolError,
        sentence: ["2 of 2 UPE were protocol_error", "appProtocol"],
        steps: ["kubectl get service profile -n default -o yaml"]),
    DiagnosisCase(
        name: "UR (real): upstream reset",
        lines: repeated(Real.ratingsReset, 2), cluster: "outbound|9080||ratings.default.svc.cluster.local",
        among: [.upstreamRemoteReset], flag: .upstreamRemoteReset, cause: .upstreamReset,
        sentence: ["2 of 2 UR were remote_reset"],
        steps: ["kubectl get pods -n default -o wide"]),
    DiagnosisCase(
        name: "UF on a plain Envoy cluster (written): generic admin commands",
        lines: repeated(Written.plainEnvoyRefused, 3), cluster: "backend_service",
        among: ruleFlagsUF, flag: .upstreamConnectionFailure, cause: .backendDown,
        sentence: ["3 of 3 UF were connection refused"],
        steps: [
            "curl -s localhost:15000/clusters | grep 'backend_service'",
            "curl -s localhost:15000/stats | grep 'cluster.backend_service.'",
        ]),
]

/// Counts the row's lines and checks the diagnosis of its cluster against the row.
func expectDiagnosis(_ row: DiagnosisCase, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let counts = try counted(row.lines, format: row.format)
    #expect(counts.malformedTotal == 0, "lines must parse: \(counts.malformed)", sourceLocation: sourceLocation)
    let cluster = try #require(
        counts.clusters.lookUp(row.cluster), "cluster \(row.cluster) counted", sourceLocation: sourceLocation)
    let diagnosis = try #require(
        Diagnoser.diagnose(counts, cluster: cluster, among: row.among), sourceLocation: sourceLocation)
    #expect(diagnosis.flag == row.flag, sourceLocation: sourceLocation)
    #expect(diagnosis.cause == row.cause, "\(diagnosis.likelyCause)", sourceLocation: sourceLocation)
    for part in row.sentence {
        #expect(
            diagnosis.likelyCause.contains(part), "\(diagnosis.likelyCause)\n  lacks: \(part)",
            sourceLocation: sourceLocation)
    }
    for part in row.steps {
        #expect(
            diagnosis.nextSteps.contains { $0.contains(part) }, "\(diagnosis.nextSteps)\n  lacks: \(part)",
            sourceLocation: sourceLocation)
    }
    #expect(!diagnosis.likelyCause.contains("\n"), "one sentence", sourceLocation: sourceLocation)
}

@Suite("Diagnosis from real Envoy lines")
struct DiagnosisTests {
    @Test("each cause", arguments: cases + proxyCases)
    func diagnosis(_ row: DiagnosisCase) throws {
        try expectDiagnosis(row)
    }

    @Test("no diagnosis for flags the cluster does not have, nor for an unknown cluster")
    func nothingToSay() throws {
        let counts = try counted(repeated(Real.reviewsOK, 3) + repeated(Real.paymentsRefused, 2))
        let reviews = try #require(counts.clusters.lookUp("outbound|8080||reviews.default.svc.cluster.local"))
        #expect(Diagnoser.diagnose(counts, cluster: reviews, among: ruleFlagsUF) == nil)
        #expect(Diagnoser.diagnose(counts, cluster: reviews) == nil)
        let paymentsID = try #require(counts.clusters.lookUp(payments))
        #expect(Diagnoser.diagnose(counts, cluster: paymentsID, among: [.noHealthyUpstream]) == nil)
        #expect(Diagnoser.diagnose(counts, cluster: 99, among: ruleFlagsUF) == nil)
    }

    @Test("the dominant flag among several: the one with the most lines")
    func dominantFlag() throws {
        let counts = try counted(
            repeated(Real.catalogTerminated, 2)
                + repeated(
                    Real.catalogTerminated.replacing(
                        " 503 UC upstream_reset_before_response_started{connection_termination} - \"-\" ",
                        with:
                            " 503 UF upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused} - \"delayed_connect_error:_Connection_refused\" "
                    ), 5))
        let catalog = try #require(counts.clusters.lookUp("outbound|8080||catalog.default.svc.cluster.local"))
        let diagnosis = try #require(Diagnoser.diagnose(counts, cluster: catalog, among: ruleFlagsUF))
        #expect(diagnosis.flag == .upstreamConnectionFailure && diagnosis.cause == .backendDown)
        #expect(
            Diagnoser.diagnose(counts, cluster: catalog, among: [.upstreamConnectionTermination])?.cause
                == .upstreamClosed)
    }

    @Test("the daemon's recent view: after two rotations the old failures no longer decide")
    func recentFailuresDecide() throws {
        let counts = FlagCounts(windows: [60])
        let pipeline = try StreamPipeline(format: .istio, containerFormat: .none, counts: counts)
        func feed(_ lines: [String]) {
            Array(lines.map { $0 + "\n" }.joined().utf8).withUnsafeBytes { pipeline.feed($0) }
        }
        feed(
            repeated(
                Real.authUntrustedCA.replacing("outbound|443||auth.default", with: "outbound|9001||payments.default"),
                20))
        counts.rotateFailureDetails()
        counts.rotateFailureDetails()
        feed(repeated(Real.paymentsRefused, 3))
        let id = try #require(counts.clusters.lookUp(payments))
        let diagnosis = try #require(Diagnoser.diagnose(counts, cluster: id, among: ruleFlagsUF))
        #expect(diagnosis.cause == .backendDown, "\(diagnosis.likelyCause)")
        #expect(diagnosis.likelyCause.contains("3 of 3 UF"))
    }

    @Test("scan's diagnosis of a cluster prefers upstream failures to other flags")
    func scanPrefersUpstreamFailures() throws {
        let disconnect = Real.reviewsOK.replacing(" 200 - via_upstream ", with: " 0 DC downstream_remote_disconnect ")
        let counts = try counted(
            repeated(disconnect, 9)
                + repeated(Real.reviewsOK.replacing(" 200 - via_upstream ", with: " 503 UH no_healthy_upstream "), 2))
        let reviews = try #require(counts.clusters.lookUp("outbound|8080||reviews.default.svc.cluster.local"))
        #expect(Diagnoser.diagnose(counts, cluster: reviews)?.cause == .noHealthyUpstream)
        let onlyDisconnects = try counted(repeated(disconnect, 3))
        let id = try #require(onlyDisconnects.clusters.lookUp("outbound|8080||reviews.default.svc.cluster.local"))
        let other = try #require(Diagnoser.diagnose(onlyDisconnects, cluster: id))
        #expect(other.cause == .unknown && other.flag == .downstreamConnectionTermination)
        #expect(other.likelyCause.contains("3 of 3 DC were downstream_remote_disconnect"), "\(other.likelyCause)")
    }

    @Test(
        "the cause labels are the contract",
        arguments: [
            (LikelyCause.backendDown, "backend down"), (.noHealthyUpstream, "no ready endpoints"),
            (.mtlsMismatch, "mTLS mismatch"), (.tlsTrustFailure, "TLS trust failure"),
            (.noRoute, "no route"), (.staleKeepAlive, "stale keep-alive connection"),
            (.retriesExhausted, "retries exhausted"),
            (.circuitBreaker, "circuit breaker"),
        ])
    func labels(_ cause: LikelyCause, _ label: String) {
        #expect(cause.rawValue == label)
    }

    @Test("transport failure part of the details, old and new separators")
    func transportPart() {
        #expect(
            FailureTally.transportPart(
                of: "upstream_reset_before_response_started{connection_failure,delayed_connect_error:_111}")
                == "delayed_connect_error:_111")
        #expect(
            FailureTally.transportPart(
                of:
                    "upstream_reset_before_response_started{remote_connection_failure|TLS_error:|268435581:SSL_routines:X}"
            ) == "TLS_error:|268435581:SSL_routines:X")
        #expect(FailureTally.transportPart(of: "upstream_reset_before_response_started{overflow}") == "overflow")
        #expect(FailureTally.transportPart(of: "no_healthy_upstream") == nil)
    }
}
