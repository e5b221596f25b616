import AccessLogParser
import ConfigFile
import Testing

@Suite struct AlertingConfigTests {
    private let base = """
        sources:
          - name: envoy
            files: ["/var/log/envoy/access*.log"]
        windows: [1m, 5m, 15m]

        """

    private let issueExample = """
        alerting:
          evaluate_every: 10s
          alertmanagers: ["http://127.0.0.1:9093"]
          webhooks: [{url: "https://hooks.example/flagwatch", bearer_token_file: /etc/flagwatch/token, hmac_secret_file: /etc/flagwatch/hmac, ca_file: /etc/flagwatch/ca.pem}]
          rules:
            - name: UpstreamConnectFailures
              flags: [UF, URX, UC]
              clusters: {include: ".*", exclude: "^BlackHoleCluster$"}
              window: 1m
              min_count: 10        # gate: always required
              ratio: 0.05          # flagged / all responses on the cluster in the window
              spike_factor: 5      # window rate >= 5x the cluster's own baseline
              for: 30s
              severity: critical
        """

    private func error(_ text: String) -> ConfigError? {
        do {
            _ = try ConfigLoader.parse(base + text, file: "f.yaml")
            return nil
        } catch {
            return error
        }
    }

    @Test func theIssueExampleLoads() throws {
        let config = try ConfigLoader.parse(base + issueExample)
        let alerting = try #require(config.alerting)
        #expect(alerting.evaluateEvery.seconds == 10)
        #expect(alerting.alertmanagers == ["http://127.0.0.1:9093"])
        #expect(alerting.webhooks.first?.hmacSecretFile == "/etc/flagwatch/hmac")
        let rule = try #require(alerting.rules.first)
        #expect(
            rule.flags == [.upstreamConnectionFailure, .upstreamRetryLimitExceeded, .upstreamConnectionTermination])
        #expect(rule.include == ".*" && rule.exclude == "^BlackHoleCluster$")
        #expect(rule.minCount == 10 && rule.ratio == 0.05 && rule.spikeFactor == 5)
        #expect(rule.pendingFor.seconds == 30 && rule.resolveAfter.seconds == 60)
        #expect(rule.severity == "critical")
        #expect(config.countedWindows.map(\.seconds) == [60, 300, 900])
    }

    @Test func longFlagNamesAndExtraWindows() throws {
        let config = try ConfigLoader.parse(
            base + """
                alerting:
                  rules:
                    - {name: NoHealthyUpstream, flags: [NoHealthyUpstream], window: 2m}
                """)
        #expect(config.alerting?.rules.first?.flags == [.noHealthyUpstream])
        #expect(config.countedWindows.map(\.seconds) == [60, 300, 900, 120])
    }

    @Test func errorsNameTheKeyAndLine() {
        let badFlag = error("alerting:\n  rules:\n    - name: X\n      flags: [UF, NOPE]\n")
        #expect(badFlag?.key == "alerting.rules[0].flags")
        #expect(badFlag?.line == 8)
        #expect(badFlag?.reason.contains("'NOPE' is not an Envoy response flag") == true)

        let longWindow = error("alerting:\n  rules:\n    - name: X\n      flags: [UF]\n      window: 1h\n")
        #expect(longWindow?.key == "alerting.rules[0].window")
        #expect(longWindow?.line == 9)
        #expect(longWindow?.reason.contains("longer than the longest of `windows`") == true)

        let badRegex = error(
            "alerting:\n  rules:\n    - name: X\n      flags: [UF]\n      clusters: {include: \"([\"}\n")
        #expect(badRegex?.key == "alerting.rules[0].clusters.include")
        let backreference = error(
            "alerting:\n  rules:\n    - name: X\n      flags: [UF]\n      clusters:\n        exclude: '(a)\\1'\n")
        #expect(backreference?.key == "alerting.rules[0].clusters.exclude")
        #expect(backreference?.line == 10)
        #expect(backreference?.reason.contains("backreferences are not supported") == true)

        #expect(
            error("alerting:\n  rules:\n    - {name: X, flags: [UF], ratio: 1.5}\n")?.key == "alerting.rules[0].ratio")
        #expect(error("alerting:\n  rules:\n    - {name: X, flags: []}\n")?.key == "alerting.rules[0].flags")
        #expect(error("alerting:\n  rules:\n    - {name: 9x, flags: [UF]}\n")?.key == "alerting.rules[0].name")
        #expect(
            error("alerting:\n  rules:\n    - {name: X, flags: [UF], forr: 1m}\n")?.reason.hasPrefix("unknown key")
                == true)
        #expect(
            error("alerting:\n  rules:\n    - {name: X, flags: [UF]}\n    - {name: X, flags: [UH]}\n")?.reason.contains(
                "two rules are named 'X'") == true)
        #expect(error("alerting:\n  alertmanagers: [\"127.0.0.1:9093\"]\n")?.key == "alerting.alertmanagers")
        #expect(
            error("alerting:\n  webhooks: [{url: \"https://h/x\", ca_file: relative.pem}]\n")?.key
                == "alerting.webhooks[0].ca_file")
        #expect(error("alerting:\n  evaluate_every: 0s\n")?.key == "alerting.evaluate_every")
    }
}
