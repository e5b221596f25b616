import GRPCNIOTransportHTTP2

extension ReceiverSourceSpec {
    var transportSecurity: HTTP2ServerTransport.Posix.TransportSecurity {
        guard let tls else { return .plaintext }
        let chain: [TLSConfig.CertificateSource] = [.file(path: tls.certificateChainPath, format: .pem)]
        let key = TLSConfig.PrivateKeySource.file(path: tls.privateKeyPath, format: .pem)
        guard let clientCA = tls.clientCAPath else { return .tls(certificateChain: chain, privateKey: key) }
        return .mTLS(certificateChain: chain, privateKey: key) { config in
            config.trustRoots = .certificates([.file(path: clientCA, format: .pem)])
        }
    }

    var transportConfig: HTTP2ServerTransport.Posix.Config {
        .defaults { config in
            config.rpc.maxRequestPayloadSize = limits.maxMessageBytes
            config.http2.maxConcurrentStreams = limits.maxConcurrentStreams
            config.connection.maxIdleTime = .milliseconds(Int64(limits.idleTimeoutSeconds * 1000))
            if let age = limits.maxConnectionAgeSeconds {
                config.connection.maxAge = .milliseconds(Int64(age * 1000))
                config.connection.maxGraceTime = .milliseconds(Int64(limits.maxConnectionAgeGraceSeconds * 1000))
            }
        }
    }
}
