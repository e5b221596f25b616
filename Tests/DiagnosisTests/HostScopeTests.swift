import AccessLogParser
import FlagCounting
import Testing

@testable import Diagnosis

/// Real lines with another upstream host, code or duration: the fields the host rules read.
enum Shaped {
    /// `Real.paymentsRefused` (host 127.0.0.1:18019) sent to `host`.
    static func refused(host: String) -> String {
        Real.paymentsRefused.replacing("\"127.0.0.1:18019\"", with: "\"\(host)\"")
    }

    /// A 200 from `host` on the payments cluster, in the same format.
    static func answered(host: String) -> String {
        refused(host: host).replacing(
            "503 UF upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused} - \"delayed_connect_error:_Connection_refused\" 0 98 0",
            with: "200 - via_upstream - \"-\" 0 14 3")
    }

    /// `line` with its `%DURATION%` (the field after the two byte counts) set to `milliseconds`.
    static func lasting(_ line: String, from old: String, _ milliseconds: Int) -> String {
        line.replacing(old, with: old.split(separator: " ").dropLast().joined(separator: " ") + " \(milliseconds)")
    }
}

private func diagnosis(_ lines: [String], _ cluster: String = payments, format: LogFormat = .auto) throws
    -> Diagnosis
{
    let counts = try counted(lines, format: format)
    let id = try #require(counts.clusters.lookUp(cluster))
    return try #require(Diagnoser.diagnose(counts, cluster: id))
}

@Suite("One host or all of them")
struct HostScopeTests {
    @Test("One of three hosts refusing while the others answer 2xx is 'one host', named with its count")
    func oneHostRefusing() throws {
        let lines =
            repeated(Shaped.refused(host: "10.8.3.14:8080"), 18)
            + repeated(Shaped.answered(host: "10.8.3.15:8080"), 20)
            + repeated(Shaped.answered(host: "10.8.3.16:8080"), 20)
        let result = try diagnosis(lines)
        #expect(result.cause == .backendDown)
        #expect(result.scope == .oneHost)
        #expect(result.hosts == [UpstreamHostCount(host: "10.8.3.14:8080", count: 18)])
        #expect(
            result.likelyCause.hasPrefix(
                "backend down on one host, 10.8.3.14:8080 (18 of 18 UF; 2 other hosts answered 2xx): 18 of 18 UF were connection refused"
            ))
        #expect(
            result.nextSteps.first
                == "kubectl get pods -A -o wide | grep -F -w '10.8.3.14'  # the pod behind 10.8.3.14:8080")
        #expect(result.nextSteps.contains { $0.contains("outlierDetection") })
        #expect(result.nextSteps.contains("kubectl get networkpolicy -n default"), "the cluster's steps follow")
    }

    @Test("Failures spread over the hosts are 'all hosts', hosts listed most first")
    func spreadOverHosts() throws {
        let lines =
            repeated(Shaped.refused(host: "10.8.3.14:8080"), 6) + repeated(Shaped.refused(host: "10.8.3.15:8080"), 5)
            + repeated(Shaped.refused(host: "10.8.3.16:8080"), 5) + repeated(Shaped.answered(host: "10.8.3.16:8080"), 3)
        let result = try diagnosis(lines)
        #expect(result.scope == .allHosts)
        #expect(
            result.hosts == [
                UpstreamHostCount(host: "10.8.3.14:8080", count: 6),
                UpstreamHostCount(host: "10.8.3.15:8080", count: 5),
                UpstreamHostCount(host: "10.8.3.16:8080", count: 5),
            ])
        #expect(result.likelyCause.hasPrefix("backend down, wrong port or NetworkPolicy: 16 of 16 UF"))
    }

    @Test("80 % of the flagged lines on one host is 'one host'; 70 % is not")
    func shareThreshold() throws {
        let answered = repeated(Shaped.answered(host: "10.8.3.20:8080"), 2)
        let eighty = try diagnosis(
            repeated(Shaped.refused(host: "10.8.3.14:8080"), 8) + repeated(Shaped.refused(host: "10.8.3.15:8080"), 2)
                + answered)
        #expect(eighty.scope == .oneHost)
        let seventy = try diagnosis(
            repeated(Shaped.refused(host: "10.8.3.14:8080"), 7) + repeated(Shaped.refused(host: "10.8.3.15:8080"), 3)
                + answered)
        #expect(seventy.scope == .allHosts)
    }

    @Test("2xx answered before a cluster's first flagged line are not noted: healthy clusters cost no host lookups")
    func answeredOnlyOnceFailing() throws {
        let before = try counted(
            repeated(Shaped.answered(host: "10.8.3.20:8080"), 3) + [Shaped.refused(host: "10.8.3.14:8080")])
        let id = try #require(before.clusters.lookUp(payments))
        #expect(before.answeredHosts(cluster: id).isEmpty)
        // One in 8 unflagged 2xx lines is read for its host: the 1st and the 9th here.
        let after = try counted(
            [Shaped.refused(host: "10.8.3.14:8080")] + repeated(Shaped.answered(host: "10.8.3.20:8080"), 8)
                + [Shaped.answered(host: "10.8.3.21:8080")])
        #expect(after.answeredHosts(cluster: id) == ["10.8.3.20:8080", "10.8.3.21:8080"])
    }

    @Test("One failing host and no other host answering 2xx is 'all hosts': nothing shows the others work")
    func noOtherHostAnswered() throws {
        let result = try diagnosis(
            repeated(Shaped.refused(host: "10.8.3.14:8080"), 10) + repeated(Shaped.answered(host: "10.8.3.14:8080"), 10)
        )
        #expect(result.scope == .allHosts)
        #expect(result.hosts == [UpstreamHostCount(host: "10.8.3.14:8080", count: 10)])
    }

    @Test("UH lines name no host since none is healthy: 'all hosts'; NR lines name none: 'unknown'")
    func linesWithoutHost() throws {
        let uh = try diagnosis(
            repeated(Real.shippingNoEndpoints, 4), "outbound|80||shipping.default.svc.cluster.local")
        #expect(uh.scope == .allHosts)
        #expect(uh.hosts.isEmpty)
        let nr = try diagnosis(repeated(Real.noRoute, 3), "-")
        #expect(nr.scope == .unknown)
    }

    @Test("A host quoted in a next step cannot break out of its shell quotes")
    func hostIsShellQuoted() throws {
        let lines =
            repeated(Shaped.refused(host: "10.8.3.14';reboot;'"), 9)
            + repeated(Shaped.answered(host: "10.8.3.15:8080"), 1)
        let result = try diagnosis(lines)
        #expect(result.scope == .oneHost)
        #expect(
            result.nextSteps.first?.hasPrefix("kubectl get pods -A -o wide | grep -F -w '10.8.3.14'\\'';reboot;'\\'''")
                == true)
    }

    @Test("URX alone (no underlying flag) carries its hosts and scope like any other diagnosis")
    func retriesAloneHaveHosts() throws {
        let line = Real.paymentsRefusedJSON.replacing("\"response_flags\":\"UF\"", with: "\"response_flags\":\"URX\"")
        let result = try diagnosis(repeated(line, 3), format: .json(JSONKeyMap()))
        #expect(result.cause == .retriesExhausted)
        #expect(result.hosts == [UpstreamHostCount(host: "127.0.0.1:18019", count: 3)])
        #expect(result.scope == .allHosts)
    }

    @Test("A one-line explanation leaves the scope unknown: one line cannot tell")
    func explainedLine() throws {
        let explanation = try Explainer.explain(line: Real.paymentsRefused, format: .auto)
        #expect(explanation.diagnosis?.scope == .unknown)
        #expect(explanation.diagnosis?.hosts == [UpstreamHostCount(host: "127.0.0.1:18019", count: 1)])
    }
}

@Suite("Refused or dropped, and timeouts read off the durations")
struct DurationRuleTests {
    static let vaultCluster = "outbound|8443||vault.default.svc.cluster.local"

    @Test("UF connect timeouts (real) are packets dropped, with their duration, not backend down")
    func connectTimeoutIsDropped() throws {
        let result = try diagnosis(repeated(Real.vaultConnectTimeout, 3), Self.vaultCluster)
        #expect(result.cause == .packetsDropped)
        #expect(
            result.likelyCause
                == "packets dropped (NetworkPolicy, firewall or a dead node): 3 of 3 UF were connect timeouts (connection_timeout), after 0.3 s; nothing answered the connect, not even with a refusal"
        )
        #expect(
            result.nextSteps.first
                == "kubectl get networkpolicy -n default  # a policy that selects the pods but lets nothing in on 8443")
    }

    @Test("Connect timeouts at 10 s are named as Istio's default connect timeout")
    func istioDefaultConnectTimeout() throws {
        let old = "0 91 251"
        let lines = [
            Shaped.lasting(Real.vaultConnectTimeout, from: old, 10_001),
            Shaped.lasting(Real.vaultConnectTimeout, from: old, 10_004),
        ]
        let result = try diagnosis(lines, Self.vaultCluster)
        #expect(result.cause == .packetsDropped)
        #expect(result.likelyCause.contains("2 of 2 UF were connect timeouts (connection_timeout), after 10.0 s"))
        #expect(result.likelyCause.hasSuffix("(10 s is Istio's default connect timeout)"))
    }

    @Test("Connects dropped under Istio's retries (URX,UF, 3 tries of 10 s: real Envoy 1.40) give the per-try timeout")
    func droppedUnderRetries() throws {
        // Envoy 1.40, a route retrying connect-failure twice, an nftables rule dropping the SYNs.
        let line =
            #"{"authority":"ratings.default.svc.cluster.local","bytes_received":0,"bytes_sent":91,"connection_termination_details":null,"downstream_local_address":"127.0.0.1:39283","downstream_remote_address":"127.0.0.1:46270","duration":30030,"method":"GET","path":"/","protocol":"HTTP/1.1","request_id":"5f2f1726-e700-464d-8698-2d133f15d9ee","requested_server_name":null,"response_code":503,"response_code_details":"upstream_reset_before_response_started{connection_timeout}","response_flags":"URX,UF","route_name":"ratings-default","start_time":"2026-12-07T02:20:53.248Z","upstream_cluster":"outbound|9080||ratings.default.svc.cluster.local","upstream_host":"198.18.82.8:9080","upstream_local_address":null,"upstream_request_attempt_count":3,"upstream_service_time":null,"upstream_transport_failure_reason":null,"user_agent":"flagwatch-e2e-diagnosis","x_forwarded_for":null}"#
        let result = try diagnosis(
            [line, line], "outbound|9080||ratings.default.svc.cluster.local", format: .json(JSONKeyMap()))
        #expect(result.cause == .packetsDropped)
        #expect(
            result.likelyCause.contains(
                "2 of 2 UF were connect timeouts (connection_timeout), after 30.0 s (10.0 s per try of 3.0)"))
        #expect(result.likelyCause.contains("(10 s is Istio's default connect timeout)"))
        #expect(
            result.likelyCause.hasSuffix(
                "; retries exhausted on 2 URX, 3.0 tries per request (6 tries upstream for 2 requests: retry amplification)"
            ))
    }

    @Test("Refusals outnumbering timeouts stay backend down")
    func refusalsWin() throws {
        let lines =
            repeated(Real.paymentsRefused, 3) + [Real.vaultConnectTimeout.replacing(Self.vaultCluster, with: payments)]
        let result = try diagnosis(lines)
        #expect(result.cause == .backendDown)
    }

    @Test("UT lasting a whole number of seconds names the route timeout; 15 s is Envoy's default")
    func routeTimeout() throws {
        let old = "0 24 253"
        let search = "outbound|8080||search.default.svc.cluster.local"
        let fifteen = try diagnosis(
            [15_001, 15_003, 15_040].map { Shaped.lasting(Real.searchTimeout, from: old, $0) }, search)
        #expect(fifteen.cause == .timeout)
        #expect(
            fifteen.likelyCause.hasSuffix(
                "3 of 3 UT were response_timeout; they lasted 15.0 s, a route timeout of 15 s (Envoy's default)"))
        let three = try diagnosis([3_002, 3_010].map { Shaped.lasting(Real.searchTimeout, from: old, $0) }, search)
        #expect(three.likelyCause.hasSuffix("they lasted 3.0 s, a route timeout of 3 s"))
        let real = try diagnosis([Real.searchTimeout], search)
        #expect(!real.likelyCause.contains("route timeout of"), "253 ms is no whole second")
        let spread = try diagnosis([1_000, 4_000].map { Shaped.lasting(Real.searchTimeout, from: old, $0) }, search)
        #expect(!spread.likelyCause.contains("route timeout of"), "durations apart are no one timeout")
    }

    @Test("URX with %UPSTREAM_REQUEST_ATTEMPT_COUNT% reports the retry amplification, also to a rule on UF alone")
    func retryAmplification() throws {
        let line = Real.paymentsRefusedJSON.replacing(
            "\"response_flags\":\"UF\"", with: "\"response_flags\":\"URX,UF\""
        )
        .replacing("\"duration\":0,", with: "\"duration\":0,\"upstream_request_attempt_count\":3,")
        let counts = try counted(repeated(line, 4), format: .json(JSONKeyMap()))
        let id = try #require(counts.clusters.lookUp(payments))
        let rule = try #require(Diagnoser.diagnose(counts, cluster: id, among: [.upstreamRetryLimitExceeded]))
        #expect(
            rule.likelyCause.hasPrefix(
                "retries exhausted (4 URX, 3.0 tries per request (12 tries upstream for 4 requests: retry amplification)), each try failing with UF: "
            ))
        let scan = try #require(Diagnoser.diagnose(counts, cluster: id))
        #expect(scan.flag == .upstreamConnectionFailure)
        #expect(
            scan.likelyCause.hasSuffix(
                "; retries exhausted on 4 URX, 3.0 tries per request (12 tries upstream for 4 requests: retry amplification)"
            ))
        // A rule that asks about UF alone (the default UpstreamConnectFailures) gets it too.
        let ufRule = try #require(Diagnoser.diagnose(counts, cluster: id, among: [.upstreamConnectionFailure]))
        #expect(ufRule.likelyCause == scan.likelyCause)
        let withoutCount = try counted(repeated(Real.ledgerRetried, 2))
        let ledger = try #require(withoutCount.clusters.lookUp("outbound|9002||ledger.default.svc.cluster.local"))
        #expect(Diagnoser.diagnose(withoutCount, cluster: ledger)?.likelyCause.contains("tries") == false)
    }
}

@Suite("Names from log lines stay one shell word in the next steps")
struct ShellWordTests {
    @Test("a hostile Istio service name is quoted wherever a command uses it; plain names are not")
    func hostileIstioName() throws {
        let hostile = "outbound|9001||x;reboot.default.svc.cluster.local"
        let result = try diagnosis(repeated(Real.paymentsRefused.replacing(payments, with: hostile), 3), hostile)
        #expect(
            result.nextSteps.contains(
                "kubectl get endpointslice -n default -l kubernetes.io/service-name='x;reboot'"))
        #expect(!result.nextSteps.contains { $0.contains("=x;reboot") || $0.contains(" x;reboot") })
        let plain = try diagnosis(repeated(Real.paymentsRefused, 3))
        #expect(plain.nextSteps.contains("kubectl get endpointslice -n default -l kubernetes.io/service-name=payments"))
    }

    @Test("ShellWord: plain words stay, others are single-quoted with their quotes escaped")
    func words() {
        #expect(ShellWord.word("reviews.default.svc.cluster.local") == "reviews.default.svc.cluster.local")
        #expect(ShellWord.word("") == "")
        #expect(ShellWord.word("a b") == "'a b'")
        #expect(ShellWord.word("it's") == "'it'\\''s'")
        #expect(ShellWord.word("$(reboot)") == "'$(reboot)'")
    }
}
