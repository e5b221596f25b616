import AccessLogParser
import FlagCounting
import Testing

@testable import Diagnosis

@Suite("flagwatch explain: what it says of flags and lines")
struct ExplainerTests {
    @Test("flags are found by short or long name in any case, and a comma list keeps its order")
    func names() throws {
        #expect(try Explainer.flags(named: "uf").get() == [.upstreamConnectionFailure])
        #expect(try Explainer.flags(named: "UpstreamConnectionFailure").get() == [.upstreamConnectionFailure])
        #expect(try Explainer.flags(named: "upstreamretrylimitexceeded").get() == [.upstreamRetryLimitExceeded])
        #expect(
            try Explainer.flags(named: "URX,uf").get() == [.upstreamRetryLimitExceeded, .upstreamConnectionFailure])
        #expect(
            try Explainer.flags(named: "UF, URX").get() == [.upstreamConnectionFailure, .upstreamRetryLimitExceeded])
    }

    @Test("an unknown name fails with itself and the flags a typo away, closest first")
    func unknownNames() {
        #expect(Explainer.flags(named: "UF,UFX") == .failure(Explainer.UnknownFlag(name: "UFX")))
        #expect(
            Explainer.UnknownFlag(name: "UFX").suggestions == [.upstreamConnectionFailure, .upstreamRetryLimitExceeded])
        #expect(
            Explainer.UnknownFlag(name: "UpstreamConnectFailure").suggestions == [.upstreamConnectionFailure])
        #expect(
            Explainer.UnknownFlag(name: "timeout").suggestions == [
                .upstreamRequestTimeout, .streamIdleTimeout, .durationTimeout,
            ])
        #expect(Explainer.UnknownFlag(name: "XYZZY").suggestions == [])
        #expect(Explainer.flags(named: "UF,") == .failure(Explainer.UnknownFlag(name: "")))
    }

    @Test("UF's explanation: Envoy's table row, its codes, and the five causes the diagnosis tells apart")
    func upstreamConnectionFailure() {
        let explanation = FlagExplanation(.upstreamConnectionFailure)
        #expect(explanation.flag.meaning == "Upstream connection failure, in addition to 503")
        #expect(explanation.flag.sinceEnvoy == "≤1.5" && explanation.flag.isSetForTCP)
        #expect(explanation.statusCodes == "503; 0 on TCP proxy lines")
        #expect(
            explanation.causes.map(\.cause) == [
                "backend down", "packets dropped", "TLS trust failure", "mTLS mismatch", "upstream TLS failure",
            ])
        #expect(
            explanation.causes[0].nextSteps.first
                == "kubectl get endpointslice -n <namespace> -l kubernetes.io/service-name=<service>")
        #expect(explanation.causes[1].evidence.contains("connection_timeout"))
        #expect(explanation.causes[2].evidence.contains("CERTIFICATE_VERIFY_FAILED"))
        #expect(explanation.causes[3].evidence.contains("WRONG_VERSION_NUMBER"))
    }

    @Test("every flag has a meaning and a release; those without a cause say so by an empty list")
    func everyFlag() {
        for flag in ResponseFlag.allCases {
            let explanation = FlagExplanation(flag)
            #expect(!flag.meaning.isEmpty && !flag.sinceEnvoy.isEmpty, "\(flag)")
            for cause in explanation.causes { #expect(!cause.evidence.isEmpty, "\(flag) \(cause.cause)") }
        }
        #expect(FlagExplanation(.unconditionalDropOverload).causes.isEmpty)
        #expect(ResponseFlag.unconditionalDropOverload.sinceEnvoy == "1.34")
        #expect(FlagExplanation(.upstreamRequestTimeout).statusCodes == "504")
        #expect(FlagExplanation(.delayInjected).statusCodes == nil)
    }

    @Test("a real Istio line with UF and CERTIFICATE_VERIFY_FAILED: its fields and scan's diagnosis")
    func istioLine() throws {
        let line = try Explainer.explain(line: Real.authUntrustedCA, format: .auto)
        let reason =
            "TLS_error:|268435581:SSL_routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:verify_cert_failed:_X509_verify_cert:_certificate_verification_error_at_depth_0:_unable_to_get_local_issuer_certificate:TLS_error_end"
        #expect(line.format == "istio (1.9+)")
        #expect(line.upstreamCluster == "outbound|443||auth.default.svc.cluster.local")
        #expect(line.responseCode == 503 && line.flags == [.upstreamConnectionFailure] && line.unknownFlags == [])
        #expect(line.upstreamHost == "127.0.0.1:18014")
        #expect(line.upstreamTransportFailureReason == reason)
        #expect(
            line.responseCodeDetails
                == "upstream_reset_before_response_started{remote_connection_failure|" + reason + "}")
        let counts = try counted([Real.authUntrustedCA])
        var scanned = try #require(Diagnoser.diagnose(counts, cluster: 0))
        scanned.scope = .unknown  // one line cannot tell one host from all
        #expect(line.diagnosis == scanned)
        #expect(line.diagnosis?.cause == .tlsTrustFailure)
        #expect(line.explanations == [FlagExplanation(.upstreamConnectionFailure)])
    }

    @Test("a JSON line, a CRI-wrapped line, nginx and HAProxy lines, and a line without flags")
    func otherShapes() throws {
        let json = try Explainer.explain(line: Real.paymentsRefusedJSON, format: .auto)
        #expect(json.format == "json" && json.upstreamCluster == payments && json.diagnosis?.cause == .backendDown)
        let wrapped = try Explainer.explain(
            line: "2026-11-22T02:34:28.577123456Z stdout F " + Real.legacyPlainText + "\n", format: .auto)
        #expect(wrapped.upstreamCluster == "outbound|443||legacy.default.svc.cluster.local")
        #expect(wrapped.diagnosis?.cause == .mtlsMismatch)
        let nginx = try Explainer.explain(
            line: ProxyWritten.nginx(
                "connect() failed (111: Connection refused) while connecting to upstream",
                upstream: "http://10.0.0.5:8080/cart"), format: .auto)
        #expect(nginx.format == "nginx-error" && nginx.upstreamCluster == "10.0.0.5:8080")
        #expect(nginx.upstreamTransportFailureReason == "111: Connection refused")
        #expect(
            nginx.diagnosis?.likelyCause
                == "backend down or wrong port (connection refused): 1 of 1 UF were 111: Connection refused; nothing listens on the server's address and port"
        )
        let haproxy = try Explainer.explain(line: ProxyWritten.haproxy("be_app", "srv1", "503", "SC--"), format: .auto)
        #expect(haproxy.format == "haproxy" && haproxy.upstreamCluster == "be_app" && haproxy.upstreamHost == "srv1")
        #expect(haproxy.responseCodeDetails == "SC--" && haproxy.diagnosis?.cause == .backendDown)
        let ok = try Explainer.explain(line: Real.reviewsOK, format: .istio)
        #expect(ok.flags == [] && ok.diagnosis == nil && ok.explanations == [] && ok.responseCode == 200)
    }

    @Test("a line of no known format, or not of the format given, is refused with scan's reason")
    func notALine() {
        #expect(throws: LineExplanationError.malformed("not_access_log")) {
            try Explainer.explain(line: "hello world", format: .auto)
        }
        #expect(throws: LineExplanationError.malformed("bad_json")) {
            try Explainer.explain(line: "{\"response_flags\": ", format: .auto)
        }
        #expect(throws: LineExplanationError.self) {
            try Explainer.explain(line: Real.paymentsRefused, format: .nginx)
        }
    }
}
