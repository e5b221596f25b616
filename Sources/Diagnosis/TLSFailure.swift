import AccessLogParser
import FlagCounting

/// What a TLS transport failure reason says went wrong in the handshake, by the BoringSSL
/// reason and the verify detail Envoy writes (docs/formats.md §4). The classes call for
/// different fixes, so each gets its own cause.
enum TLSFailure: CaseIterable {
    /// The certificate was refused: a wrong CA, an expired certificate, a SAN mismatch.
    /// `CERTIFICATE_VERIFY_FAILED` is the client refusing the server's certificate; the
    /// `*_ALERT_*` reasons are the server refusing the client's.
    case verification
    /// TLS spoken to a port that answered in plain text (`WRONG_VERSION_NUMBER`).
    case plaintextPeer
    /// `Secret is not supplied by SDS`: the sidecar has no certificate to offer yet.
    case noSecret
    /// Any other TLS reason.
    case other

    /// The BoringSSL reasons that say a certificate was refused. `CERTIFICATE_VERIFY_FAILED`
    /// (268435581) is the local check; the alerts are the peer's answer to our certificate:
    /// `SSLV3_ALERT_CERTIFICATE_EXPIRED` (268436501, istio/istio#46619) and
    /// `TLSV1_ALERT_UNKNOWN_CA` (268436504), the others their siblings in BoringSSL's table
    /// (`SSL_R_SSLV3_ALERT_*`, 1042 to 1048).
    static let verificationCodes = [
        "certificate_verify_failed", "verify_cert_failed", "sslv3_alert_certificate_expired",
        "tlsv1_alert_unknown_ca", "sslv3_alert_bad_certificate", "sslv3_alert_certificate_unknown",
        "sslv3_alert_certificate_revoked",
    ]

    init(_ detail: FailureDetail) {
        let text = Self.folded(detail)
        if text.contains("secret_is_not_supplied_by_sds") {
            self = .noSecret
        } else if Self.verificationCodes.contains(where: { text.contains($0) }) {
            self = .verification
        } else if text.contains("wrong_version_number") {
            self = .plaintextPeer
        } else {
            self = .other
        }
    }

    /// The reason and the details lower-cased, spaces as `_`: old Envoy wrote `TLS error: ...`
    /// with spaces, newer writes `TLS_error:|...` (docs/formats.md §4).
    static func folded(_ detail: FailureDetail) -> String {
        let text = (detail.transportFailureReason ?? "") + " " + (detail.details ?? "")
        return String(text.lowercased().map { $0 == " " ? "_" : $0 })
    }

    /// Which of the three trust failures the reason names, when it names one: Envoy 1.37+
    /// appends the verify error (`...:CERTIFICATE_VERIFY_FAILED:verify_cert_failed:_X509_verify_cert:
    /// _certificate_verification_error_at_depth_0:_certificate_has_expired:TLS_error_end`, and
    /// `verify_cert_failed:_SAN_matcher,_certificate_SANs_are_[...]`, both seen from Envoy 1.40),
    /// and the peer's alerts name theirs.
    static func trustProblem(_ detail: FailureDetail) -> String? {
        let text = folded(detail)
        if text.contains("san_matcher") { return "SAN mismatch" }
        if text.contains("certificate_has_expired") || text.contains("certificate_expired") {
            return "expired certificate"
        }
        if text.contains("certificate_is_not_yet_valid") { return "certificate not yet valid" }
        if [
            "unable_to_get_local_issuer_certificate", "unable_to_get_issuer_certificate", "self_signed_certificate",
            "unknown_ca",
        ].contains(where: { text.contains($0) }) {
            return "wrong CA"
        }
        return nil
    }

    /// The verify error Envoy appended after `verify_cert_failed:`, in words: `certificate has
    /// expired`, `unable to get local issuer certificate`, `SAN matcher, certificate SANs are
    /// [...]`; nil when the reason has none (Envoy before 1.37, or a peer's alert).
    static func verifyError(_ detail: FailureDetail) -> String? {
        let reason = detail.transportFailureReason ?? FailureTally.transportPart(of: detail.details ?? "") ?? ""
        guard let start = reason.firstRange(of: "verify_cert_failed:") ?? reason.firstRange(of: "verify cert failed:")
        else {
            return nil
        }
        var rest = reason[start.upperBound...]
        if let end = rest.firstRange(of: ":TLS_error_end") { rest = rest[..<end.lowerBound] }
        var words = String(rest.map { $0 == "_" ? " " : $0 }).trimmingSpaces()
        // `X509_verify_cert: certificate verification error at depth 0: <the error>`: the
        // last part names the error.
        if words.hasPrefix("X509 verify cert:"), let last = words.ranges(of: ": ").last {
            words = String(words[last.upperBound...])
        }
        return words.isEmpty ? nil : words
    }
}

extension String {
    fileprivate func trimmingSpaces() -> String {
        let start = firstIndex { $0 != " " } ?? endIndex
        let end = lastIndex { $0 != " " }.map { index(after: $0) } ?? start
        return start < end ? String(self[start..<end]) : ""
    }
}

extension Diagnoser {
    /// UF whose lines were mostly TLS handshake failures: the cause their reasons name.
    static func tlsFailure(_ tally: FailureTally, _ target: Target) -> Diagnosis {
        let flag = ResponseFlag.upstreamConnectionFailure
        let total = tally.total
        let tlsDetails = tally.details.indices.filter { tally.kinds[$0] == .tls }.map { tally.details[$0] }
        let classes = tlsDetails.map(TLSFailure.init)
        func lines(_ kind: TLSFailure) -> Int {
            classes.indices.filter { classes[$0] == kind }.reduce(0) { $0 + tlsDetails[$1].count }
        }
        // The class with the most lines; the earlier in `allCases` on a tie.
        var dominant = TLSFailure.verification
        for kind in TLSFailure.allCases where lines(kind) > lines(dominant) { dominant = kind }
        let count = lines(dominant)
        let first = classes.firstIndex(of: dominant).map { tlsDetails[$0] }
        let code = first.map(FailureTally.shortText) ?? "TLS"
        switch dominant {
        case .verification:
            let problem = first.flatMap(TLSFailure.trustProblem) ?? "wrong CA, expired certificate or SAN mismatch"
            let example = code + (first.flatMap(TLSFailure.verifyError).map { ": " + $0 } ?? "")
            return Diagnosis(
                flag: flag, cause: .tlsTrustFailure,
                likelyCause:
                    "TLS trust failure (\(problem)): \(count) of \(total) UF failed certificate verification (\(example)); compare the certificates with the DestinationRule's caCertificates and subjectAltNames",
                nextSteps: target.trustSteps())
        case .plaintextPeer:
            return Diagnosis(
                flag: flag, cause: .mtlsMismatch,
                likelyCause:
                    "mTLS mismatch: \(count) of \(total) UF were TLS handshake failures (\(code)); TLS spoken to a plaintext port: a PeerAuthentication / DestinationRule TLS mode mismatch, or the server has no sidecar",
                nextSteps: target.mtlsSteps(sds: false))
        case .noSecret:
            return Diagnosis(
                flag: flag, cause: .mtlsMismatch,
                likelyCause:
                    "mTLS mismatch: \(count) of \(total) UF were TLS handshake failures (\(code)); the sidecar has no certificate from SDS yet (istiod unreachable, or a Secret for a DestinationRule's credentialName missing)",
                nextSteps: target.mtlsSteps(sds: true))
        case .other:
            return Diagnosis(
                flag: flag, cause: .upstreamTLSFailure,
                likelyCause:
                    "TLS handshake failure: \(count) of \(total) UF were TLS handshake failures (\(code)); neither a refused certificate nor TLS to a plaintext port: the reason names what the two sides disagree on",
                nextSteps: target.tlsFailureSteps())
        }
    }
}
