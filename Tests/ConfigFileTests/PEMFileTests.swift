import ConfigFile
import Testing

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// `check-config` and `run` read each receiver's TLS files before anything starts: a damaged
/// PEM block is named with its file and line, not left to the TLS library at listen time.
@Suite("TLS files of a receiver, checked before it starts")
struct PEMFileTests {
    /// base64 of `30 03 02 01 01`: a DER SEQUENCE holding INTEGER 1. Not a real certificate,
    /// but what the check reads: base64 that decodes to DER.
    static let derBody = "MAMCAQE="

    /// Writes `certificate`, `key` and `client_ca` into a new directory and checks a config
    /// naming them; returns the error's text, or nil.
    func check(certificate: String, key: String, clientCA: String? = nil) throws -> String? {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "flagwatch-pem-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var files = ["tls.crt": certificate, "tls.key": key]
        if let clientCA { files["ca.crt"] = clientCA }
        for (name, text) in files {
            try Data(text.utf8).write(to: directory.appendingPathComponent(name))
        }
        let ca = clientCA == nil ? "" : ", client_ca: \(directory.path)/ca.crt"
        let config = try ConfigLoader.parse(
            """
            sources:
              - name: mesh
                grpc_access_log: { listen: "127.0.0.1:9818", tls: { certificate: \(directory.path)/tls.crt, key: \(directory.path)/tls.key\(ca) } }
            """)
        do {
            try ConfigLoader.checkFiles(of: config, file: "flagwatch.yaml")
            return nil
        } catch {
            return error.description.replacingOccurrences(of: directory.path, with: "DIR")
        }
    }

    static func pem(_ label: String, _ body: String) -> String {
        "-----BEGIN \(label)-----\n\(body)\n-----END \(label)-----\n"
    }

    @Test("a certificate and a key that are base64 of DER pass, with or without a client CA")
    func wholeFilesPass() throws {
        let certificate = Self.pem("CERTIFICATE", Self.derBody)
        #expect(try check(certificate: certificate, key: Self.pem("PRIVATE KEY", Self.derBody)) == nil)
        #expect(
            try check(certificate: certificate, key: Self.pem("EC PRIVATE KEY", Self.derBody), clientCA: certificate)
                == nil)
        // Text before the block and a legacy encrypted key's headers are fine.
        let legacy =
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\n"
            + "\(Self.derBody)\n-----END RSA PRIVATE KEY-----\n"
        #expect(try check(certificate: "subject=CN=x\n" + certificate, key: legacy) == nil)
    }

    @Test("a certificate whose body is not base64 is named with its file and line")
    func notBase64() throws {
        let damaged = Self.pem("CERTIFICATE", "MIIB!!this is not base64")
        let error = try check(certificate: damaged, key: Self.pem("PRIVATE KEY", Self.derBody))
        #expect(
            error?.contains(
                "sources[0].grpc_access_log.tls.certificate: DIR/tls.crt line 2: the PEM certificate is damaged")
                == true,
            "\(error ?? "no error")")
    }

    @Test("base64 that is not DER, and a block without its END line, are damaged too")
    func notDERAndUnclosed() throws {
        let certificate = Self.pem("CERTIFICATE", Self.derBody)
        // "hello": base64, but not a DER SEQUENCE.
        let notDER = try check(certificate: certificate, key: Self.pem("PRIVATE KEY", "aGVsbG8="))
        #expect(
            notDER?.contains("tls.key: DIR/tls.key line 2: the PEM private key is damaged") == true, "\(notDER ?? "")")
        // A SEQUENCE that says 5 bytes and holds 3 (cut short), and one with a byte after it.
        for body in ["MAUCAQE=", "MAMCAQEA"] {
            let cut = try check(certificate: Self.pem("CERTIFICATE", body), key: Self.pem("PRIVATE KEY", Self.derBody))
            #expect(
                cut?.contains("DIR/tls.crt line 2: the PEM certificate is damaged") == true, "\(body): \(cut ?? "")")
        }
        let unclosed = try check(certificate: certificate, key: "-----BEGIN PRIVATE KEY-----\n\(Self.derBody)\n")
        #expect(unclosed?.contains("DIR/tls.key line 3: the PEM private key is damaged") == true, "\(unclosed ?? "")")
        let damagedCA = try check(
            certificate: certificate, key: Self.pem("PRIVATE KEY", Self.derBody),
            clientCA: Self.pem("CERTIFICATE", "%%%"))
        #expect(damagedCA?.contains("tls.client_ca: DIR/ca.crt line 2") == true, "\(damagedCA ?? "")")
    }

    @Test("a file without the block its key needs still says so")
    func noBlock() throws {
        let certificate = Self.pem("CERTIFICATE", Self.derBody)
        let error = try check(certificate: certificate, key: certificate)
        #expect(error?.contains("DIR/tls.key holds no PEM private key") == true, "\(error ?? "")")
    }
}
