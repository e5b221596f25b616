import AccessLogParser
import Testing

@testable import Diagnosis

@Suite("Envoy's own reply bodies, as a client sees them")
struct EnvoyReplyBodyTests {
    static let reset = "upstream connect error or disconnect/reset before headers. "

    /// Every body is one that Envoy 1.40 sent in the end-to-end tests' scenarios
    /// (test_envoy_reply_bodies.py), with the flags its access-log line carried.
    @Test(
        "each body of Envoy 1.40 gives the flags of its access-log line",
        arguments: [
            (reset + "reset reason: remote connection failure", ["UF"], 503),
            (reset + "retried and the latest reset reason: remote connection failure", ["URX", "UF"], 503),
            (reset + "reset reason: connection termination", ["UC"], 503),
            (reset + "reset reason: protocol error", ["UPE"], 502),
            (reset + "reset reason: remote reset", ["UR"], 503),
            ("no healthy upstream", ["UH"], 503),
            ("upstream request timeout", ["UT"], 504),
            ("stream timeout", ["SI"], 504),
            ("upstream max stream duration reached", ["UMSDR"], 504),
            ("fault filter abort", ["FI"], 503),
            ("downstream duration timeout", [], 504),
        ])
    func realBodies(body: String, flags: [String], status: Int) throws {
        let reply = try #require(EnvoyReplyBody.recognize(body))
        #expect(reply.flags.map(\.shortName) == flags)
        #expect(reply.defaultStatus == status)
        #expect(reply.text == body)
    }

    @Test("the reset reason and transport failure reason become the details the access log writes")
    func details() throws {
        let body =
            Self.reset
            + "retried and the latest reset reason: remote connection failure, transport failure reason: delayed connect error: 111"
        let reply = try #require(EnvoyReplyBody.recognize(body))
        #expect(reply.retried)
        #expect(reply.resetReason == "remote connection failure")
        #expect(reply.transportFailureReason == "delayed connect error: 111")
        #expect(
            reply.responseCodeDetails
                == "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_111}")
    }

    @Test("a pasted gRPC error, curl's trailing newline and blanks are looked through")
    func pasted() throws {
        let grpc = "rpc error: code = Unavailable desc = " + Self.reset + "reset reason: connection termination\n"
        #expect(try #require(EnvoyReplyBody.recognize(grpc)).flags == [.upstreamConnectionTermination])
        #expect(try #require(EnvoyReplyBody.recognize("  no healthy upstream\r\n")).flags == [.noHealthyUpstream])
        #expect(
            try #require(EnvoyReplyBody.recognize("code = Unavailable desc = no healthy upstream")).flags
                == [.noHealthyUpstream])
    }

    @Test("a percent-encoded grpc-message, as a raw gRPC client prints it, is decoded first")
    func percentEncoded() throws {
        let raw = "upstream%20connect%20error%20or%20disconnect/reset%20before%20headers.%20reset%20reason:%20overflow"
        let reply = try #require(EnvoyReplyBody.recognize("grpc-message: " + raw))
        #expect(reply.flags == [.upstreamOverflow])
        #expect(reply.text == Self.reset + "reset reason: overflow")
        #expect(EnvoyReplyBody.recognize("no%20healthy%20upstream")?.flags == [.noHealthyUpstream])
        // A broken escape or bytes that are not UTF-8: not decoded, so not recognised.
        #expect(EnvoyReplyBody.recognize("no%20healthy%2upstream") == nil)
        #expect(EnvoyReplyBody.recognize("no%20healthy%20upstream%FF") == nil)
    }

    @Test("text that is not Envoy's reply is not taken for one")
    func notABody() {
        #expect(EnvoyReplyBody.recognize("ok /reviews/1") == nil)
        #expect(EnvoyReplyBody.recognize("") == nil)
        #expect(EnvoyReplyBody.recognize("the service said no healthy upstreams today") == nil)
        #expect(EnvoyReplyBody.recognize("unhealthy upstream request timeout") == nil)
        #expect(EnvoyReplyBody.recognize("client error: upstream request timeout")?.flags == [.upstreamRequestTimeout])
        #expect(EnvoyReplyBody.recognize(Self.reset + "something else") == nil)
    }

    @Test("an unknown reset reason is recognised without a flag, and said so")
    func unknownReason() throws {
        let reply = try #require(
            EnvoyReplyBody.recognize(Self.reset + "reset reason: remote error with CONNECT request"))
        #expect(reply.flags.isEmpty)
        #expect(reply.meaning.hasSuffix("flagwatch knows no flag for this reset reason"))
        #expect(Explainer.explain(replyBody: reply.text)?.diagnosis == nil)
    }

    @Test("the diagnosis is the one a log line with the same flags and details gets, with placeholder steps")
    func diagnoses() throws {
        let refused = try #require(
            Explainer.explain(
                replyBody: Self.reset
                    + "reset reason: remote connection failure, transport failure reason: delayed connect error: Connection refused"
            ))
        #expect(refused.diagnosis?.cause == .backendDown)
        #expect(refused.diagnosis?.scope == .unknown)
        #expect(refused.diagnosis?.nextSteps.contains { $0.contains("<service>") } == true)
        let timeout = try #require(Explainer.explain(replyBody: Self.reset + "reset reason: connection timeout"))
        #expect(timeout.diagnosis?.cause == .packetsDropped)
        let tls = try #require(
            Explainer.explain(
                replyBody: Self.reset
                    + "reset reason: remote connection failure, transport failure reason: TLS_error:|268435703:SSL_routines:OPENSSL_internal:WRONG_VERSION_NUMBER:TLS_error_end"
            ))
        #expect(tls.diagnosis?.cause == .mtlsMismatch)
        let retried = try #require(
            Explainer.explain(replyBody: Self.reset + "retried and the latest reset reason: connection termination"))
        #expect(retried.diagnosis?.cause == .upstreamClosed)
        #expect(retried.explanations.map(\.flag) == [.upstreamRetryLimitExceeded, .upstreamConnectionTermination])
        #expect(try #require(Explainer.explain(replyBody: "no healthy upstream")).diagnosis?.flag == .noHealthyUpstream)
    }
}
