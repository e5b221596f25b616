import AccessLogReceiver
import ConfigFile
import Testing

@Suite("grpc_access_log sources in the config")
struct ReceiverConfigTests {
    private let valid = """
        sources:
          - name: files
            files: [/var/log/envoy/access.log]
          - name: mesh
            grpc_access_log: { listen: "127.0.0.1:9818" }
            format: istio
        """

    private func error(_ text: String) -> ConfigError? { configError(text) }

    @Test("the issue's example loads as one receiving source on 127.0.0.1:9818 with the default limits")
    func issueExample() throws {
        let config = try ConfigLoader.parse(valid)
        #expect(config.receiverSourceSpecs == [ReceiverSourceSpec(name: "mesh", host: "127.0.0.1", port: 9818)])
        #expect(config.fileSourceSpecs.map(\.name) == ["files"])
        #expect(config.journalSourceSpecs.isEmpty)
        // The format parses OTLP log records' bodies (docs/formats.md §10.3).
        #expect(config.sources[1].logFormat == .istio)
    }

    @Test("limits and TLS are read into the spec")
    func limitsAndTLS() throws {
        let config = try ConfigLoader.parse(
            valid.replacingOccurrences(
                of: #"{ listen: "127.0.0.1:9818" }"#,
                with: #"""
                    { listen: "0.0.0.0:9818", max_message_size: 65536, max_concurrent_streams: 100, idle_timeout: 30s, stream_idle_timeout: 45s, queue_messages: 10, queue_bytes: 1048576, tls: { certificate: /etc/flagwatch/tls.crt, key: /etc/flagwatch/tls.key, client_ca: /etc/flagwatch/ca.crt } }
                    """#))
        let spec = try #require(config.receiverSourceSpecs.first)
        #expect(spec.host == "0.0.0.0")
        #expect(spec.limits.maxMessageBytes == 65536)
        #expect(spec.limits.maxConcurrentStreams == 100)
        #expect(spec.limits.idleTimeoutSeconds == 30)
        #expect(spec.limits.streamIdleTimeoutSeconds == 45)
        #expect(spec.limits.handoff == HandoffLimits(maxMessages: 10, maxBytes: 1_048_576))
        #expect(
            spec.tls
                == ReceiverTLS(
                    certificateChainPath: "/etc/flagwatch/tls.crt", privateKeyPath: "/etc/flagwatch/tls.key",
                    clientCAPath: "/etc/flagwatch/ca.crt"))
    }

    @Test(
        "max_connection_age is off unless given; given, it and its grace are read, and out-of-range values name the key"
    )
    func maxConnectionAge() throws {
        let spec = try #require(ConfigLoader.parse(valid).receiverSourceSpecs.first)
        #expect(spec.limits.maxConnectionAgeSeconds == nil)
        #expect(spec.limits.maxConnectionAgeGraceSeconds == 10)
        let aged = try #require(
            ConfigLoader.parse(
                valid.replacingOccurrences(
                    of: #""127.0.0.1:9818" }"#,
                    with: #""127.0.0.1:9818", max_connection_age: 10m, max_connection_age_grace: 30s }"#)
            ).receiverSourceSpecs.first)
        #expect(aged.limits.maxConnectionAgeSeconds == 600)
        #expect(aged.limits.maxConnectionAgeGraceSeconds == 30)
        let tooLong = error(
            valid.replacingOccurrences(of: #""127.0.0.1:9818" }"#, with: #""127.0.0.1:9818", max_connection_age: 2d }"#)
        )
        #expect(tooLong?.key == "sources[1].grpc_access_log.max_connection_age")
        let graceZero = error(
            valid.replacingOccurrences(
                of: #""127.0.0.1:9818" }"#, with: #""127.0.0.1:9818", max_connection_age_grace: 0s }"#))
        #expect(graceZero?.key == "sources[1].grpc_access_log.max_connection_age_grace")
    }

    @Test("errors name the key and the line: a name for an address, plaintext off loopback, an unknown key, two inputs")
    func errors() {
        let name = error(valid.replacingOccurrences(of: "127.0.0.1:9818", with: "localhost:9818"))
        #expect(name?.key == "sources[1].grpc_access_log.listen")
        #expect(name?.line == 5)
        let plaintext = error(valid.replacingOccurrences(of: "127.0.0.1:9818", with: "0.0.0.0:9818"))
        #expect(plaintext?.key == "sources[1].grpc_access_log.listen")
        #expect(plaintext?.reason.contains("allow_plaintext") == true)
        #expect(
            error(
                valid.replacingOccurrences(
                    of: #""127.0.0.1:9818" }"#, with: #""0.0.0.0:9818", allow_plaintext: true }"#))
                == nil)
        let unknown = error(valid.replacingOccurrences(of: #"9818" }"#, with: #"9818", max_streams: 5 }"#))
        #expect(unknown?.key == "sources[1].grpc_access_log.max_streams")
        #expect(unknown?.line == 5)
        let idle = error(valid.replacingOccurrences(of: #"9818" }"#, with: #"9818", stream_idle_timeout: 0s }"#))
        #expect(idle?.key == "sources[1].grpc_access_log.stream_idle_timeout")
        #expect(idle?.reason.contains("between 1s and 1d") == true)
        let small = error(valid.replacingOccurrences(of: #"9818" }"#, with: #"9818", max_message_size: 10 }"#))
        #expect(small?.key == "sources[1].grpc_access_log.max_message_size")
        let both = error(
            valid.replacingOccurrences(of: "    format: istio", with: "    format: istio\n    files: [/a]"))
        #expect(both?.key?.hasPrefix("sources[1]") == true)
        #expect(both?.reason.contains("one of files, journald or grpc_access_log") == true)
    }
}
