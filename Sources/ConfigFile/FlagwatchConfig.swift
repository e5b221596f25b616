import AccessLogParser
import AccessLogReceiver
import LineFraming
import LogSources

/// The daemon's configuration file (YAML; JSON loads too). Every key is documented in
/// `config/flagwatch.yaml` and docs/configuration.md; unknown keys are errors.
public struct FlagwatchConfig: Sendable, Equatable, Decodable {
    /// `host:port` or `[v6 address]:port`.
    public var listen = "127.0.0.1:9817"
    public var stateDirectory = "/var/lib/flagwatch"
    public var sources: [SourceConfig] = []
    public var windows: [ConfigDuration] = [
        ConfigDuration(seconds: 60), ConfigDuration(seconds: 300), ConfigDuration(seconds: 900),
    ]
    public var limits = Limits()
    public var follow = FollowSettings()
    /// Spike rules and receivers; nil: no alerting.
    public var alerting: AlertingConfig?

    public init() {}

    public struct Limits: Sendable, Equatable, Decodable {
        public var maxClusters = 5000
        public var idleSeriesExpiry = ConfigDuration(seconds: 1800)

        public init() {}

        enum CodingKeys: String, CodingKey, CaseIterable {
            case maxClusters = "max_clusters"
            case idleSeriesExpiry = "idle_series_expiry"
        }

        public init(from decoder: any Decoder) throws {
            let container = try strictContainer(decoder, CodingKeys.self)
            maxClusters = try container.decodeIfPresent(Int.self, forKey: .maxClusters) ?? maxClusters
            idleSeriesExpiry =
                try container.decodeIfPresent(ConfigDuration.self, forKey: .idleSeriesExpiry) ?? idleSeriesExpiry
            try require(
                maxClusters >= 1 && maxClusters <= 10_000_000, .maxClusters, in: container,
                "must be between 1 and 10000000")
            try require(idleSeriesExpiry.seconds >= 1, .idleSeriesExpiry, in: container, "must be at least 1s")
        }
    }

    /// How files are followed (all optional).
    public struct FollowSettings: Sendable, Equatable, Decodable {
        public var rescanInterval = ConfigDuration(seconds: 10)
        public var checkpointInterval = ConfigDuration(seconds: 5)
        public var rotatedFileGrace = ConfigDuration(seconds: 5)
        public var maxLineLength = 64 * 1024

        public init() {}

        enum CodingKeys: String, CodingKey, CaseIterable {
            case rescanInterval = "rescan_interval"
            case checkpointInterval = "checkpoint_interval"
            case rotatedFileGrace = "rotated_file_grace"
            case maxLineLength = "max_line_length"
        }

        public init(from decoder: any Decoder) throws {
            let container = try strictContainer(decoder, CodingKeys.self)
            rescanInterval =
                try container.decodeIfPresent(ConfigDuration.self, forKey: .rescanInterval) ?? rescanInterval
            checkpointInterval =
                try container.decodeIfPresent(ConfigDuration.self, forKey: .checkpointInterval) ?? checkpointInterval
            rotatedFileGrace =
                try container.decodeIfPresent(ConfigDuration.self, forKey: .rotatedFileGrace) ?? rotatedFileGrace
            maxLineLength = try container.decodeIfPresent(Int.self, forKey: .maxLineLength) ?? maxLineLength
            for key in [CodingKeys.rescanInterval, .checkpointInterval] {
                let value = key == .rescanInterval ? rescanInterval : checkpointInterval
                try require(
                    value.seconds >= 0.01 && value.seconds <= 86400, key, in: container, "must be between 10ms and 1d")
            }
            try require(
                rotatedFileGrace.seconds >= 0 && rotatedFileGrace.seconds <= 86400, .rotatedFileGrace, in: container,
                "must be between 0s and 1d")
            try require(
                maxLineLength >= 1 && maxLineLength <= 64 * 1024 * 1024, .maxLineLength, in: container,
                "must be between 1 and 67108864")
        }
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case listen
        case stateDirectory = "state_dir"
        case sources, windows, limits, follow, alerting
    }

    public init(from decoder: any Decoder) throws {
        let container = try strictContainer(decoder, CodingKeys.self)
        listen = try container.decodeIfPresent(String.self, forKey: .listen) ?? listen
        stateDirectory = try container.decodeIfPresent(String.self, forKey: .stateDirectory) ?? stateDirectory
        sources = try container.decodeIfPresent([SourceConfig].self, forKey: .sources) ?? []
        windows = try container.decodeIfPresent([ConfigDuration].self, forKey: .windows) ?? windows
        limits = try container.decodeIfPresent(Limits.self, forKey: .limits) ?? limits
        follow = try container.decodeIfPresent(FollowSettings.self, forKey: .follow) ?? follow
        alerting = try container.decodeIfPresent(AlertingConfig.self, forKey: .alerting)

        try require(
            ListenAddress(listen) != nil, .listen, in: container,
            "'\(listen)' is not host:port (e.g. 127.0.0.1:9817 or [::]:9817)")
        try require(!stateDirectory.isEmpty, .stateDirectory, in: container, "must not be empty")
        try require(!sources.isEmpty, .sources, in: container, "at least one source is needed")
        var names = Set<String>()
        for source in sources {
            try require(
                names.insert(source.name).inserted, .sources, in: container, "two sources are named '\(source.name)'")
        }
        try require(!windows.isEmpty && windows.count <= 10, .windows, in: container, "give 1 to 10 windows")
        for window in windows {
            try require(
                window.seconds >= 1 && window.seconds <= 86400 && window.seconds == window.seconds.rounded(),
                .windows, in: container, "\(window) must be whole seconds between 1s and 1d")
        }
        try require(Set(windows).count == windows.count, .windows, in: container, "windows must be different")
        // Rule windows are read from the same per-second rings, which are as long as the
        // longest window: a longer rule window would need longer rings for every series.
        let longest = windows.max() ?? ConfigDuration(seconds: 0)
        for (index, rule) in (alerting?.rules ?? []).enumerated() where rule.window > longest {
            throw DecodingError.dataCorrupted(
                .init(
                    codingPath: container.codingPath + [
                        CodingKeys.alerting, AnyKey(stringValue: "rules"), IndexKey(index),
                        AnyKey(stringValue: "window"),
                    ],
                    debugDescription:
                        "\(rule.window) is longer than the longest of `windows` (\(longest)); add it to `windows` or shorten it"
                ))
        }
    }

    /// Every window the counts keep: the configured ones, then rule windows not among them.
    public var countedWindows: [ConfigDuration] {
        var result = windows
        for rule in alerting?.rules ?? [] where !result.contains(rule.window) { result.append(rule.window) }
        return result
    }
}

/// One source: files or the journal, and how its lines are parsed.
public struct SourceConfig: Sendable, Equatable, Decodable {
    public enum Input: Sendable, Equatable {
        case files([String])
        case journald(matches: [String], directory: String?)
        /// Envoy's gRPC access-log service, received on an address (docs/formats.md §10).
        case grpcAccessLog(ReceiverSettings)
    }

    /// `grpc_access_log:`: where to listen, the limits and TLS.
    public struct ReceiverSettings: Sendable, Equatable, Decodable {
        public var listen: ListenAddress
        public var limits = ReceiverLimits()
        public var tls: ReceiverTLS?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case listen
            case maxMessageSize = "max_message_size"
            case maxConcurrentStreams = "max_concurrent_streams"
            case idleTimeout = "idle_timeout"
            case streamIdleTimeout = "stream_idle_timeout"
            case maxConnectionAge = "max_connection_age"
            case maxConnectionAgeGrace = "max_connection_age_grace"
            case queueMessages = "queue_messages"
            case queueBytes = "queue_bytes"
            case tls
            case allowPlaintext = "allow_plaintext"
        }

        struct TLS: Decodable {
            var certificate: String
            var key: String
            var clientCA: String?

            enum CodingKeys: String, CodingKey, CaseIterable {
                case certificate, key
                case clientCA = "client_ca"
            }

            init(from decoder: any Decoder) throws {
                let container = try strictContainer(decoder, CodingKeys.self)
                certificate = try container.decode(String.self, forKey: .certificate)
                key = try container.decode(String.self, forKey: .key)
                clientCA = try container.decodeIfPresent(String.self, forKey: .clientCA)
                try require(!certificate.isEmpty, .certificate, in: container, "must not be empty")
                try require(!key.isEmpty, .key, in: container, "must not be empty")
            }
        }

        public init(from decoder: any Decoder) throws {
            let container = try strictContainer(decoder, CodingKeys.self)
            let text = try container.decode(String.self, forKey: .listen)
            guard let address = ListenAddress(text), address.isIPv4Literal else {
                throw DecodingError.dataCorruptedError(
                    forKey: .listen, in: container,
                    debugDescription: "'\(text)' is not IPv4-address:port (e.g. 127.0.0.1:9818 or 0.0.0.0:9818)")
            }
            listen = address
            limits.maxMessageBytes =
                try container.decodeIfPresent(Int.self, forKey: .maxMessageSize) ?? limits.maxMessageBytes
            limits.maxConcurrentStreams =
                try container.decodeIfPresent(Int.self, forKey: .maxConcurrentStreams) ?? limits.maxConcurrentStreams
            if let idle = try container.decodeIfPresent(ConfigDuration.self, forKey: .idleTimeout) {
                limits.idleTimeoutSeconds = idle.seconds
            }
            if let idle = try container.decodeIfPresent(ConfigDuration.self, forKey: .streamIdleTimeout) {
                limits.streamIdleTimeoutSeconds = idle.seconds
            }
            limits.maxConnectionAgeSeconds =
                try container.decodeIfPresent(ConfigDuration.self, forKey: .maxConnectionAge)?.seconds
            if let grace = try container.decodeIfPresent(ConfigDuration.self, forKey: .maxConnectionAgeGrace) {
                limits.maxConnectionAgeGraceSeconds = grace.seconds
            }
            let queueMessages = try container.decodeIfPresent(Int.self, forKey: .queueMessages)
            let queueBytes = try container.decodeIfPresent(Int.self, forKey: .queueBytes)
            limits.handoff = HandoffLimits(
                maxMessages: queueMessages ?? limits.handoff.maxMessages,
                maxBytes: queueBytes ?? limits.handoff.maxBytes)
            try require(
                limits.maxMessageBytes >= 1024 && limits.maxMessageBytes <= 64 * 1024 * 1024, .maxMessageSize,
                in: container, "must be between 1024 and 67108864 bytes")
            try require(
                limits.maxConcurrentStreams >= 1 && limits.maxConcurrentStreams <= 100_000, .maxConcurrentStreams,
                in: container, "must be between 1 and 100000")
            try require(
                limits.idleTimeoutSeconds >= 1 && limits.idleTimeoutSeconds <= 86400, .idleTimeout, in: container,
                "must be between 1s and 1d")
            try require(
                limits.streamIdleTimeoutSeconds >= 1 && limits.streamIdleTimeoutSeconds <= 86400, .streamIdleTimeout,
                in: container, "must be between 1s and 1d")
            try require(
                (limits.maxConnectionAgeSeconds ?? 1) >= 1 && (limits.maxConnectionAgeSeconds ?? 1) <= 86400,
                .maxConnectionAge, in: container, "must be between 1s and 1d")
            try require(
                limits.maxConnectionAgeGraceSeconds >= 1 && limits.maxConnectionAgeGraceSeconds <= 3600,
                .maxConnectionAgeGrace, in: container, "must be between 1s and 1h")
            try require(
                (queueMessages ?? 1) >= 1 && (queueMessages ?? 1) <= 1_000_000, .queueMessages, in: container,
                "must be between 1 and 1000000")
            try require(
                (queueBytes ?? limits.maxMessageBytes) >= limits.maxMessageBytes
                    && (queueBytes ?? 0) <= 4 * 1024 * 1024 * 1024, .queueBytes, in: container,
                "must be at least max_message_size and at most 4294967296")
            if let tls = try container.decodeIfPresent(TLS.self, forKey: .tls) {
                self.tls = ReceiverTLS(
                    certificateChainPath: tls.certificate, privateKeyPath: tls.key, clientCAPath: tls.clientCA)
            }
            let allowPlaintext = try container.decodeIfPresent(Bool.self, forKey: .allowPlaintext) ?? false
            try require(
                tls != nil || listen.host.hasPrefix("127.") || allowPlaintext, .listen, in: container,
                "plaintext off loopback: give tls: (certificate, key) or allow_plaintext: true (e.g. inside a mesh's mTLS)"
            )
        }
    }

    public var name: String
    public var input: Input
    /// `auto`, `envoy`, `istio`, `json`, or an Envoy format string.
    public var format = "auto"
    /// For `json` / `auto`: keys renamed, as FIELD → KEY.
    public var jsonKeys: [String: String] = [:]
    public var containerFormat = ContainerFormat.none
    public var startAt = StartPosition.end

    public init(name: String, input: Input) {
        self.name = name
        self.input = input
    }

    struct Journald: Decodable, Equatable {
        var matches: [String]
        var directory: String?

        enum CodingKeys: String, CodingKey, CaseIterable { case matches, directory }

        init(from decoder: any Decoder) throws {
            let container = try strictContainer(decoder, CodingKeys.self)
            matches = try container.decodeIfPresent([String].self, forKey: .matches) ?? []
            directory = try container.decodeIfPresent(String.self, forKey: .directory)
            for match in matches where match != "+" {
                let parts = match.split(separator: "=", maxSplits: 1)
                let fieldIsValid =
                    parts.count == 2 && !parts[0].isEmpty
                    && parts[0].allSatisfy { $0.isASCII && ($0.isUppercase || $0.isNumber || $0 == "_") }
                    && !(parts[0].first?.isNumber ?? true)
                try require(
                    fieldIsValid, .matches, in: container,
                    "'\(match)' is not FIELD=VALUE (e.g. _SYSTEMD_UNIT=envoy.service) or +")
            }
        }
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, files, journald, format
        case grpcAccessLog = "grpc_access_log"
        case jsonKeys = "json_keys"
        case containerFormat = "container_format"
        case startAt = "start_at"
    }

    public init(from decoder: any Decoder) throws {
        let container = try strictContainer(decoder, CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        try require(!name.isEmpty && name.count <= 100, .name, in: container, "must be 1 to 100 characters")
        let files = try container.decodeIfPresent([String].self, forKey: .files)
        let journald = try container.decodeIfPresent(Journald.self, forKey: .journald)
        let receiver = try container.decodeIfPresent(ReceiverSettings.self, forKey: .grpcAccessLog)
        let inputs = [files != nil, journald != nil, receiver != nil].filter { $0 }.count
        if inputs > 1 {
            throw DecodingError.dataCorruptedError(
                forKey: receiver != nil ? .grpcAccessLog : .journald, in: container,
                debugDescription: "a source has one of files, journald or grpc_access_log")
        }
        if let receiver {
            input = .grpcAccessLog(receiver)
        } else {
            switch (files, journald) {
            case (let files?, nil):
                try require(
                    !files.isEmpty && files.allSatisfy { !$0.isEmpty }, .files, in: container,
                    "give at least one path or pattern")
                input = .files(files)
            case (nil, let journal?):
                input = .journald(matches: journal.matches, directory: journal.directory)
            case (.some, .some):
                throw DecodingError.dataCorruptedError(
                    forKey: .journald, in: container,
                    debugDescription: "a source has either files or journald, not both")
            case (nil, nil):
                throw DecodingError.keyNotFound(
                    CodingKeys.files,
                    .init(
                        codingPath: container.codingPath,
                        debugDescription: "a source needs files, journald or grpc_access_log"))
            }
        }
        format = try container.decodeIfPresent(String.self, forKey: .format) ?? format
        jsonKeys = try container.decodeIfPresent([String: String].self, forKey: .jsonKeys) ?? [:]
        var keyMap = JSONKeyMap()
        for (field, key) in jsonKeys.sorted(by: { $0.key < $1.key }) {
            try require(
                !key.isEmpty && keyMap.setKey(key, forField: field), .jsonKeys, in: container,
                "'\(field)' is not one of " + JSONKeyMap.fieldNames.joined(separator: ", "))
        }
        do {
            _ = try AccessLogParser(format: LogFormat(argument: format, jsonKeys: keyMap))
        } catch {
            throw DecodingError.dataCorruptedError(forKey: .format, in: container, debugDescription: "\(error)")
        }
        let container_ = try container.decodeIfPresent(String.self, forKey: .containerFormat)
        if let text = container_ {
            guard let value = ContainerFormat(rawValue: text) else {
                throw DecodingError.dataCorruptedError(
                    forKey: .containerFormat, in: container,
                    debugDescription: "'\(text)' is not one of none, cri, docker, auto")
            }
            containerFormat = value
        }
        if let text = try container.decodeIfPresent(String.self, forKey: .startAt) {
            guard let value = StartPosition(rawValue: text) else {
                throw DecodingError.dataCorruptedError(
                    forKey: .startAt, in: container, debugDescription: "'\(text)' is not one of end, beginning")
            }
            startAt = value
        }
    }

    /// The parser's format for this source.
    public var logFormat: LogFormat {
        var keyMap = JSONKeyMap()
        for (field, key) in jsonKeys { _ = keyMap.setKey(key, forField: field) }
        return LogFormat(argument: format, jsonKeys: keyMap)
    }
}

/// `host:port`, `[v6]:port`.
public struct ListenAddress: Sendable, Equatable {
    public var host: String
    public var port: UInt16

    public init?(_ text: String) {
        let hostPart: Substring
        let portPart: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                return nil
            }
            hostPart = text[text.index(after: text.startIndex)..<close]
            portPart = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else { return nil }
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
        }
        guard !hostPart.isEmpty, let port = UInt16(portPart) else { return nil }
        host = String(hostPart)
        self.port = port
    }

    /// A dotted IPv4 address such as 127.0.0.1 (not a name, not IPv6).
    public var isIPv4Literal: Bool {
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { part in !part.isEmpty && part.count <= 3 && UInt8(part) != nil }
    }
}

// MARK: - Strict decoding

/// Any key, to list what a mapping holds.
struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// A position in a list, for error paths built by hand.
struct IndexKey: CodingKey {
    var intValue: Int?
    var stringValue: String { "\(intValue ?? 0)" }
    init(_ index: Int) { intValue = index }
    init?(intValue: Int) { self.intValue = intValue }
    init?(stringValue: String) { nil }
}

/// A keyed container that refuses keys the type does not know (a typo must not silently
/// fall back to a default).
func strictContainer<Key: CodingKey & CaseIterable>(_ decoder: any Decoder, _ keys: Key.Type) throws
    -> KeyedDecodingContainer<Key>
{
    let all = try decoder.container(keyedBy: AnyKey.self)
    let known = Set(Key.allCases.map(\.stringValue))
    for key in all.allKeys where !known.contains(key.stringValue) {
        throw DecodingError.dataCorrupted(
            .init(
                codingPath: decoder.codingPath + [key],
                debugDescription: "unknown key (known here: \(Key.allCases.map(\.stringValue).joined(separator: ", ")))"
            ))
    }
    return try decoder.container(keyedBy: Key.self)
}

/// Throws a decoding error at `key` unless `condition` holds.
func require<Key: CodingKey>(
    _ condition: Bool, _ key: Key, in container: KeyedDecodingContainer<Key>, _ message: @autoclosure () -> String
) throws {
    guard !condition else { return }
    throw DecodingError.dataCorruptedError(forKey: key, in: container, debugDescription: message())
}

// MARK: - What the sources take

extension FlagwatchConfig {
    /// The `follow:` settings and `state_dir` as the sources take them.
    public var followOptions: FollowOptions {
        var options = FollowOptions()
        options.rescanInterval = follow.rescanInterval.seconds
        options.checkpointInterval = follow.checkpointInterval.seconds
        options.rotatedFileGrace = follow.rotatedFileGrace.seconds
        options.maxLineLength = follow.maxLineLength
        options.stateDirectory = stateDirectory
        return options
    }

    /// The file sources, in config order.
    public var fileSourceSpecs: [FileSourceSpec] {
        sources.compactMap { source in
            guard case .files(let patterns) = source.input else { return nil }
            return FileSourceSpec(name: source.name, patterns: patterns, startAt: source.startAt)
        }
    }

    /// The receiving sources (`grpc_access_log:`), in config order.
    public var receiverSourceSpecs: [ReceiverSourceSpec] {
        sources.compactMap { source in
            guard case .grpcAccessLog(let settings) = source.input else { return nil }
            return ReceiverSourceSpec(
                name: source.name, host: settings.listen.host, port: Int(settings.listen.port), limits: settings.limits,
                tls: settings.tls)
        }
    }

    /// The journald sources, in config order.
    public var journalSourceSpecs: [JournalSourceSpec] {
        sources.compactMap { source in
            guard case .journald(let matches, let directory) = source.input else { return nil }
            return JournalSourceSpec(name: source.name, matches: matches, directory: directory, startAt: source.startAt)
        }
    }
}
