import AccessLogParser
import FlagCounting
import Testing

@testable import Diagnosis

/// The diagnosis of `lines`' only cluster, as scan gives it.
private func diagnosis(_ lines: [String], cluster: String) throws -> Diagnosis {
    let counts = try counted(lines)
    let id = try #require(counts.clusters.lookUp(cluster))
    return try #require(Diagnoser.diagnose(counts, cluster: id))
}

private let auth = "outbound|443||auth.default.svc.cluster.local"
private let authTrustSteps = [
    "kubectl get destinationrule -A | grep auth  # then its trafficPolicy.tls: caCertificates, subjectAltNames, credentialName",
    "istioctl proxy-config secret <pod>  # the client's certificate and root CA, with their dates",
    "istioctl proxy-config cluster <pod> --fqdn auth.default.svc.cluster.local -o json | grep -A8 -i validationContext",
    "openssl s_client -connect auth.default.svc.cluster.local:443 -servername auth.default.svc.cluster.local -showcerts </dev/null  # the server's chain, dates and SANs",
]
private let trustTail = "; compare the certificates with the DestinationRule's caCertificates and subjectAltNames"

@Suite("TLS failures told apart")
struct TLSDiagnosisTests {
    @Test("a certificate from a CA the client does not trust is a trust failure naming the wrong CA (real)")
    func wrongCA() throws {
        let found = try diagnosis(repeated(Real.authUntrustedCA, 5), cluster: auth)
        #expect(found.cause == .tlsTrustFailure)
        #expect(
            found.likelyCause
                == "TLS trust failure (wrong CA): 5 of 5 UF failed certificate verification (CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate)"
                + trustTail)
        #expect(found.nextSteps == authTrustSteps)
    }

    @Test("an expired server certificate is a trust failure naming the expiry (real Envoy 1.40)")
    func expiredCertificate() throws {
        let found = try diagnosis(repeated(Real.authExpiredCertificate, 3), cluster: auth)
        #expect(found.cause == .tlsTrustFailure)
        #expect(
            found.likelyCause
                == "TLS trust failure (expired certificate): 3 of 3 UF failed certificate verification (CERTIFICATE_VERIFY_FAILED: certificate has expired)"
                + trustTail)
        #expect(found.nextSteps == authTrustSteps)
    }

    @Test(
        "a certificate whose SANs the DestinationRule does not allow is a trust failure naming the SANs (real Envoy 1.40)"
    )
    func sanMismatch() throws {
        let found = try diagnosis([Real.billingSANMismatch], cluster: "outbound|443||billing.default.svc.cluster.local")
        #expect(found.cause == .tlsTrustFailure)
        #expect(
            found.likelyCause
                == "TLS trust failure (SAN mismatch): 1 of 1 UF failed certificate verification (CERTIFICATE_VERIFY_FAILED: SAN matcher, certificate SANs are [auth.default.svc.cluster.local, spiffe://cluster.local/ns/default/sa/auth])"
                + trustTail)
        #expect(found.nextSteps.first?.hasPrefix("kubectl get destinationrule -A | grep billing  #") == true)
    }

    @Test("the server refusing the client's expired certificate is a trust failure too (written, old Envoy)")
    func peerRejectsExpiredCertificate() throws {
        let found = try diagnosis(
            repeated(Written.ordersPeerRejectsExpired, 2), cluster: "outbound|8080||orders.shop.svc.cluster.local")
        #expect(found.cause == .tlsTrustFailure)
        #expect(
            found.likelyCause
                == "TLS trust failure (expired certificate): 2 of 2 UF failed certificate verification (SSLV3_ALERT_CERTIFICATE_EXPIRED)"
                + trustTail)
    }

    @Test("WRONG_VERSION_NUMBER stays the mTLS mode mismatch: TLS spoken to a plaintext port (real)")
    func plaintextPort() throws {
        let found = try diagnosis(
            repeated(Real.legacyPlainText, 2), cluster: "outbound|443||legacy.default.svc.cluster.local")
        #expect(found.cause == .mtlsMismatch)
        #expect(
            found.likelyCause
                == "mTLS mismatch: 2 of 2 UF were TLS handshake failures (WRONG_VERSION_NUMBER); TLS spoken to a plaintext port: a PeerAuthentication / DestinationRule TLS mode mismatch, or the server has no sidecar"
        )
        #expect(
            found.nextSteps == [
                "istioctl x describe pod <pod>",
                "kubectl get peerauthentication -A",
                "kubectl get destinationrule -A | grep legacy",
                "istioctl proxy-config cluster <pod> --fqdn legacy.default.svc.cluster.local -o json | grep -A3 -i tls",
                "kubectl get pods -n default -o wide  # READY 2/2: the server pods have their sidecar",
            ])
    }

    @Test("a TLS reason of no known kind keeps a generic TLS failure cause")
    func unknownTLSReason() throws {
        let found = try diagnosis(
            repeated(Written.cartHandshakeFailure, 4), cluster: "outbound|8080||cart.shop.svc.cluster.local")
        #expect(found.cause == .upstreamTLSFailure)
        #expect(
            found.likelyCause
                == "TLS handshake failure: 4 of 4 UF were TLS handshake failures (SSLV3_ALERT_HANDSHAKE_FAILURE); neither a refused certificate nor TLS to a plaintext port: the reason names what the two sides disagree on"
        )
        #expect(
            found.nextSteps.last
                == "openssl s_client -connect cart.shop.svc.cluster.local:8080 -servername cart.shop.svc.cluster.local -showcerts </dev/null  # the server's chain, dates and SANs"
        )
    }

    @Test("with both kinds on one cluster the kind with more lines decides, and counts only its own")
    func mixedKinds() throws {
        let plain = Real.legacyPlainText.replacing("legacy.default", with: "auth.default")
        let found = try diagnosis(repeated(Real.authExpiredCertificate, 3) + repeated(plain, 2), cluster: auth)
        #expect(found.cause == .tlsTrustFailure)
        #expect(found.likelyCause.hasPrefix("TLS trust failure (expired certificate): 3 of 5 UF failed"))
        let other = try diagnosis(repeated(Real.authExpiredCertificate, 1) + repeated(plain, 2), cluster: auth)
        #expect(other.cause == .mtlsMismatch)
        #expect(
            other.likelyCause.hasPrefix("mTLS mismatch: 2 of 3 UF were TLS handshake failures (WRONG_VERSION_NUMBER)"))
    }
}
