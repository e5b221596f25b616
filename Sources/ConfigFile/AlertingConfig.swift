import AccessLogParser
import Alerting

/// The `alerting:` section: spike rules and where their alerts go. Absent: no rules, nothing sent.
public struct AlertingConfig: Sendable, Equatable, Decodable {
    public var evaluateEvery = ConfigDuration(seconds: 10)
    /// Alertmanager base URLs; each gets every alert (as Prometheus does).
    public var alertmanagers: [String] = []
    public var webhooks: [WebhookConfig] = []
    /// Base of every alert's `generatorURL` (the daemon's status page). Default: from `listen`.
    public var externalURL: String?
    /// Firing alerts are sent again this often (with a fresh `endsAt`).
    public var resendEvery = ConfigDuration(seconds: 60)
    /// Firing alerts are sent to webhooks again this often (Alertmanager's repeat_interval:
    /// a webhook pages a person, so not every minute).
    public var webhookRepeatEvery = ConfigDuration(seconds: 4 * 3600)
    public var notificationTimeout = ConfigDuration(seconds: 10)
    /// Alerts waiting per receiver; beyond it the oldest are dropped (and counted).
    public var queueCapacity = 1000
    /// The default `baseline` of the rules.
    public var baseline = ConfigDuration(seconds: 3600)
    public var rules: [AlertRuleConfig] = []

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case evaluateEvery = "evaluate_every"
        case alertmanagers, webhooks
        case externalURL = "external_url"
        case resendEvery = "resend_every"
        case webhookRepeatEvery = "webhook_repeat_every"
        case notificationTimeout = "notification_timeout"
        case queueCapacity = "queue_capacity"
        case baseline, rules
    }

    public init(from decoder: any Decoder) throws {
        let container = try strictContainer(decoder, CodingKeys.self)
        evaluateEvery = try container.decodeIfPresent(ConfigDuration.self, forKey: .evaluateEvery) ?? evaluateEvery
        alertmanagers = try container.decodeIfPresent([String].self, forKey: .alertmanagers) ?? []
        webhooks = try container.decodeIfPresent([WebhookConfig].self, forKey: .webhooks) ?? []
        externalURL = try container.decodeIfPresent(String.self, forKey: .externalURL)
        resendEvery = try container.decodeIfPresent(ConfigDuration.self, forKey: .resendEvery) ?? resendEvery
        webhookRepeatEvery =
            try container.decodeIfPresent(ConfigDuration.self, forKey: .webhookRepeatEvery) ?? webhookRepeatEvery
        notificationTimeout =
            try container.decodeIfPresent(ConfigDuration.self, forKey: .notificationTimeout) ?? notificationTimeout
        queueCapacity = try container.decodeIfPresent(Int.self, forKey: .queueCapacity) ?? queueCapacity
        baseline = try container.decodeIfPresent(ConfigDuration.self, forKey: .baseline) ?? baseline
        rules = try container.decodeIfPresent([AlertRuleConfig].self, forKey: .rules) ?? []

        try require(
            evaluateEvery.seconds >= 1 && evaluateEvery.seconds <= 3600, .evaluateEvery, in: container,
            "must be between 1s and 1h")
        for url in alertmanagers {
            try require(isHTTPURL(url), .alertmanagers, in: container, "'\(url)' is not an http:// or https:// URL")
        }
        if let externalURL {
            try require(
                isHTTPURL(externalURL), .externalURL, in: container,
                "'\(externalURL)' is not an http:// or https:// URL")
        }
        try require(
            resendEvery.seconds >= 1 && resendEvery.seconds <= 86400, .resendEvery, in: container,
            "must be between 1s and 1d")
        try require(
            webhookRepeatEvery.seconds >= 1 && webhookRepeatEvery.seconds <= 30 * 86400, .webhookRepeatEvery,
            in: container, "must be between 1s and 30d")
        try require(
            notificationTimeout.seconds >= 0.1 && notificationTimeout.seconds <= 600, .notificationTimeout,
            in: container, "must be between 100ms and 10m")
        try require(
            queueCapacity >= 1 && queueCapacity <= 1_000_000, .queueCapacity, in: container,
            "must be between 1 and 1000000")
        try require(
            baseline.seconds >= 60 && baseline.seconds <= 30 * 86400, .baseline, in: container,
            "must be between 1m and 30d")
        var names = Set<String>()
        for rule in rules {
            try require(names.insert(rule.name).inserted, .rules, in: container, "two rules are named '\(rule.name)'")
        }
        var receiverNames = Set(alertmanagers.map { "alertmanager " + $0 })
        for webhook in webhooks {
            try require(
                receiverNames.insert(webhook.receiverName).inserted, .webhooks, in: container,
                "two receivers are named '\(webhook.receiverName)' (give each webhook its own name)")
        }
    }
}

/// One generic webhook (Alertmanager's webhook payload, version 4).
public struct WebhookConfig: Sendable, Equatable, Decodable {
    public var url: String
    /// The `receiver` label and the payload's `receiver`; default: the URL.
    public var name: String?
    public var bearerTokenFile: String?
    public var hmacSecretFile: String?
    /// Trusted in addition to the system's CAs.
    public var caFile: String?

    public var receiverName: String { name ?? url }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case url, name
        case bearerTokenFile = "bearer_token_file"
        case hmacSecretFile = "hmac_secret_file"
        case caFile = "ca_file"
    }

    public init(from decoder: any Decoder) throws {
        let container = try strictContainer(decoder, CodingKeys.self)
        url = try container.decode(String.self, forKey: .url)
        name = try container.decodeIfPresent(String.self, forKey: .name)
        bearerTokenFile = try container.decodeIfPresent(String.self, forKey: .bearerTokenFile)
        hmacSecretFile = try container.decodeIfPresent(String.self, forKey: .hmacSecretFile)
        caFile = try container.decodeIfPresent(String.self, forKey: .caFile)
        try require(isHTTPURL(url), .url, in: container, "'\(url)' is not an http:// or https:// URL")
        if let name {
            try require(!name.isEmpty && name.count <= 100, .name, in: container, "must be 1 to 100 characters")
        }
        for (key, path) in [
            (CodingKeys.bearerTokenFile, bearerTokenFile), (.hmacSecretFile, hmacSecretFile), (.caFile, caFile),
        ] {
            if let path { try require(path.hasPrefix("/"), key, in: container, "'\(path)' must be an absolute path") }
        }
    }
}

/// One spike rule. It fires per cluster when the window holds at least `min_count` responses
/// with any of `flags`, and (the ratio OR the spike condition holds; only the gate if neither
/// is set), for `for`; it resolves once the condition has been false for `resolve_after`.
public struct AlertRuleConfig: Sendable, Equatable, Decodable {
    public var name: String
    public var flags: [ResponseFlag]
    /// Regular expressions searched in the cluster name (anchor with ^...$ for a whole match).
    public var include: String?
    public var exclude: String?
    public var window = ConfigDuration(seconds: 60)
    public var minCount = 10
    public var ratio: Double?
    public var spikeFactor: Double?
    public var pendingFor = ConfigDuration(seconds: 0)
    public var resolveAfter = ConfigDuration(seconds: 60)
    public var severity = "warning"
    public var baseline: ConfigDuration?
    public var runbookURL: String?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, flags, clusters, window
        case minCount = "min_count"
        case ratio
        case spikeFactor = "spike_factor"
        case pendingFor = "for"
        case resolveAfter = "resolve_after"
        case severity, baseline
        case runbookURL = "runbook_url"
    }

    struct ClusterMatch: Decodable {
        var include: String?
        var exclude: String?

        enum CodingKeys: String, CodingKey, CaseIterable { case include, exclude }

        init(from decoder: any Decoder) throws {
            let container = try strictContainer(decoder, CodingKeys.self)
            include = try container.decodeIfPresent(String.self, forKey: .include)
            exclude = try container.decodeIfPresent(String.self, forKey: .exclude)
            for (key, pattern) in [(CodingKeys.include, include), (.exclude, exclude)] {
                guard let pattern else { continue }
                do {
                    _ = try ClusterPattern(pattern)
                } catch {
                    throw DecodingError.dataCorruptedError(
                        forKey: key, in: container,
                        debugDescription: "'\(pattern)' is not a pattern flagwatch can match in linear time: \(error)")
                }
            }
        }
    }

    public init(from decoder: any Decoder) throws {
        let container = try strictContainer(decoder, CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        try require(
            Self.isLabelValueName(name), .name, in: container,
            "'\(name)' must be letters, digits and _ (an alertname), not starting with a digit")
        let flagNames = try container.decode([String].self, forKey: .flags)
        var flags: [ResponseFlag] = []
        for flagName in flagNames {
            guard let flag = ResponseFlag(name: flagName) else {
                throw DecodingError.dataCorruptedError(
                    forKey: .flags, in: container,
                    debugDescription:
                        "'\(flagName)' is not an Envoy response flag (short or long name, e.g. UF or UpstreamConnectionFailure)"
                )
            }
            if !flags.contains(flag) { flags.append(flag) }
        }
        try require(!flags.isEmpty, .flags, in: container, "give at least one flag")
        self.flags = flags
        if let clusters = try container.decodeIfPresent(ClusterMatch.self, forKey: .clusters) {
            include = clusters.include
            exclude = clusters.exclude
        }
        window = try container.decodeIfPresent(ConfigDuration.self, forKey: .window) ?? window
        minCount = try container.decodeIfPresent(Int.self, forKey: .minCount) ?? minCount
        ratio = try container.decodeIfPresent(Double.self, forKey: .ratio)
        spikeFactor = try container.decodeIfPresent(Double.self, forKey: .spikeFactor)
        pendingFor = try container.decodeIfPresent(ConfigDuration.self, forKey: .pendingFor) ?? pendingFor
        resolveAfter = try container.decodeIfPresent(ConfigDuration.self, forKey: .resolveAfter) ?? resolveAfter
        severity = try container.decodeIfPresent(String.self, forKey: .severity) ?? severity
        baseline = try container.decodeIfPresent(ConfigDuration.self, forKey: .baseline)
        runbookURL = try container.decodeIfPresent(String.self, forKey: .runbookURL)

        try require(
            window.seconds >= 1 && window.seconds <= 86400 && window.seconds == window.seconds.rounded(),
            .window, in: container, "must be whole seconds between 1s and 1d")
        try require(minCount >= 1, .minCount, in: container, "must be at least 1")
        if let ratio { try require(ratio > 0 && ratio <= 1, .ratio, in: container, "must be above 0 and at most 1") }
        if let spikeFactor {
            try require(
                spikeFactor >= 1 && spikeFactor <= 1_000_000, .spikeFactor, in: container,
                "must be between 1 and 1000000")
        }
        try require(
            pendingFor.seconds >= 0 && pendingFor.seconds <= 86400, .pendingFor, in: container,
            "must be between 0s and 1d")
        try require(
            resolveAfter.seconds >= 0 && resolveAfter.seconds <= 86400, .resolveAfter, in: container,
            "must be between 0s and 1d")
        try require(!severity.isEmpty && severity.count <= 50, .severity, in: container, "must be 1 to 50 characters")
        if let baseline {
            try require(
                baseline.seconds >= 60 && baseline.seconds <= 30 * 86400, .baseline, in: container,
                "must be between 1m and 30d")
        }
        if let runbookURL {
            try require(
                isHTTPURL(runbookURL), .runbookURL, in: container, "'\(runbookURL)' is not an http:// or https:// URL")
        }
    }

    static func isLabelValueName(_ text: String) -> Bool {
        guard let first = text.unicodeScalars.first, !(first.properties.numericType != nil) else { return false }
        return text.count <= 100
            && text.unicodeScalars.allSatisfy {
                $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_")
            }
    }
}

func isHTTPURL(_ text: String) -> Bool {
    for scheme in ["http://", "https://"] where text.hasPrefix(scheme) {
        return text.count > scheme.count && !text.contains(where: { $0 == " " || $0 == "\n" })
    }
    return false
}
