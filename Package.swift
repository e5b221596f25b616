// swift-tools-version: 6.1
//
// Modules follow the data: sources → line framing (+ container unwrap) → record parser →
// counts → the engine (followers and counting, driven by both following commands) →
// diagnosis → alerts → exposition, listener and notifier → config (YAML mapped onto the values
// above) → the `flagwatch` executable. Targets are declared in that order, and a module imports
// only modules declared before it and listed as its dependencies (scripts/check-module-order.py,
// run by `make lint`); the two byte-level modules (LineFraming, AccessLogParser) depend on
// nothing.
import PackageDescription

let strictSwift6: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

/// The per-line modules: dynamic exclusivity checks on class properties cost more than the
/// parsing itself (measured with perf); the static checks still apply.
let hotPath: [SwiftSetting] =
    strictSwift6 + [
        .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))
    ]

let package = Package(
    name: "flagwatch",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "flagwatch", targets: ["flagwatch"]),
        .library(name: "AccessLogParser", targets: ["AccessLogParser"]),
        .library(name: "LineFraming", targets: ["LineFraming"]),
        .library(name: "FlagCounting", targets: ["FlagCounting"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        // 1.16: LogHandler.log(event:) (DaemonLogging's journal handler implements it).
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.0.0"),
        // Outbound alerts (Alertmanager, webhooks): HTTPS with the system trust store and a
        // per-receiver CA file, which FoundationNetworking's URLSession cannot do on Linux.
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        // Named directly because the Notifier uses their types (TLSConfiguration, ByteBuffer,
        // TimeAmount) in its own code, not only through AsyncHTTPClient.
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.30.0"),
        // The gRPC access-log receiver (issue 16): HTTP/2, gRPC framing, deadlines, limits and
        // TLS from grpc-swift 2 and its NIO transport. No swift-protobuf: the few messages are
        // read in place by AccessLogParser's hand-written wire reader, so the build needs no
        // protoc plugin.
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
    ],
    targets: [
        // Splits a byte stream into lines and strips CRI / docker json-file / kubectl wrappers.
        .target(name: "LineFraming", swiftSettings: hotPath),
        // The zero-copy access-log record parser: flags, format plans, presets, JSON.
        .target(name: "AccessLogParser", swiftSettings: hotPath),
        // Linux headers the Glibc module leaves out (signalfd).
        .target(name: "CLinuxShims"),
        // Thin typed wrappers over the POSIX and Linux calls flagwatch makes (files, inotify,
        // poll, signalfd): the only place they are called from.
        .target(name: "SystemCalls", dependencies: ["CLinuxShims"], swiftSettings: strictSwift6),
        // libsystemd through pkg-config: the journal reader and sd_notify.
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        // Follows files (inotify, rotation, checkpoints) and journald; hands lines to a sink.
        .target(
            name: "LogSources",
            dependencies: ["SystemCalls", "CSystemd", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSwift6
        ),
        // Per-cluster counts of codes and flags, interned cluster names.
        .target(
            name: "FlagCounting",
            dependencies: ["AccessLogParser", "LineFraming"],
            swiftSettings: hotPath
        ),
        // Receives access-log entries over the network (Envoy's gRPC access-log service): the
        // bounded handoff from the network threads to the poll loop (a ring, a Mutex, an eventfd)
        // and the loop's side, which decodes each message in place and counts its entries as
        // the source's lines.
        .target(
            name: "AccessLogReceiver",
            dependencies: [
                "AccessLogParser", "FlagCounting", "SystemCalls",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            ],
            swiftSettings: strictSwift6
        ),
        // Follows the sources and counts their lines: the followers' lifecycle and reloads, the
        // sink every line passes through, stream ids, each source's own line counts. Takes plain
        // values (source specs, parsing), so both commands and the tests drive the same engine.
        .target(
            name: "Engine",
            dependencies: [
                "LogSources", "AccessLogReceiver", "FlagCounting", "LineFraming", "AccessLogParser", "SystemCalls",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift6
        ),
        // Why a cluster's flags happen: the likely cause and next steps, from the flags and the
        // response-code details / transport failure reasons counted with them.
        .target(
            name: "Diagnosis",
            // LineFraming: `flagwatch explain` strips a pasted line's container wrapper.
            dependencies: ["AccessLogParser", "FlagCounting", "LineFraming"],
            swiftSettings: strictSwift6
        ),
        // Spike rules over the windows: baseline, pending/firing/resolved, alerts with a diagnosis.
        .target(
            name: "Alerting",
            dependencies: ["AccessLogParser", "FlagCounting", "Diagnosis"],
            swiftSettings: strictSwift6
        ),
        // libcrypto (OpenSSL) for HMAC-SHA256 signatures on webhook bodies.
        .systemLibrary(name: "CLibCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        // Delivers alerts to Alertmanager (API v2) and webhooks: queues, retries, HTTPS.
        .target(
            name: "Notifier",
            dependencies: [
                "CLibCrypto",
                "SystemCalls",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift6
        ),
        // Renders counts as a table, JSON and the Prometheus text format.
        .target(name: "Exposition", dependencies: ["AccessLogParser", "FlagCounting"], swiftSettings: strictSwift6),
        // The hand-written HTTP/1.1 listener on POSIX sockets (metrics, health, a status page).
        .target(
            name: "HTTPListener",
            dependencies: ["SystemCalls", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSwift6
        ),
        // The daemon's own log: a swift-log handler writing structured fields to journald
        // (sd_journal_sendv), and the JOURNAL_STREAM rule that picks it or standard error.
        .target(
            name: "DaemonLogging",
            dependencies: ["CSystemd", "SystemCalls", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSwift6
        ),
        // The YAML config file: strict keys, errors with the key and line. It maps YAML onto the
        // plain values of the modules it configures (source specs, alert rules, cluster
        // patterns), so it stands downstream of them and upstream of the executable alone.
        .target(
            name: "ConfigFile",
            dependencies: [
                "AccessLogParser", "LineFraming", "LogSources", "AccessLogReceiver", "Alerting", "SystemCalls",
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strictSwift6
        ),
        .executableTarget(
            name: "flagwatch",
            dependencies: [
                "SystemCalls", "LogSources", "AccessLogReceiver", "Engine", "DaemonLogging", "ConfigFile",
                "HTTPListener", "LineFraming",
                "AccessLogParser", "FlagCounting", "Exposition",
                "Diagnosis", "Alerting", "Notifier", "CSystemd",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift6
        ),
        .testTarget(
            name: "AccessLogParserTests",
            dependencies: ["AccessLogParser", "LineFraming"],
            // The Envoy ALS fixtures' sources (scripts/encode-envoy-als-fixtures.py encodes them
            // into EnvoyALSFixtures.swift).
            exclude: ["Fixtures"],
            swiftSettings: strictSwift6
        ),
        .testTarget(
            name: "AccessLogReceiverTests",
            dependencies: [
                "AccessLogReceiver", "AccessLogParser", "FlagCounting", "SystemCalls",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            ],
            swiftSettings: strictSwift6
        ),
        .testTarget(
            name: "LogSourcesTests",
            dependencies: ["LogSources", "SystemCalls"],
            swiftSettings: strictSwift6
        ),
        .testTarget(
            name: "ConfigFileTests",
            dependencies: ["ConfigFile", "AccessLogReceiver"],
            swiftSettings: strictSwift6
        ),
        .testTarget(
            name: "HTTPListenerTests",
            // SystemCalls and Logging: the connection-cap tests drive a real server on a PollLoop.
            dependencies: ["HTTPListener", "SystemCalls", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSwift6
        ),
        .testTarget(
            name: "LineFramingTests",
            dependencies: ["LineFraming"],
            swiftSettings: strictSwift6
        ),
        .testTarget(
            name: "DiagnosisTests",
            dependencies: ["Diagnosis", "FlagCounting", "AccessLogParser", "LineFraming"],
            swiftSettings: strictSwift6
        ),
        .testTarget(
            name: "AlertingTests",
            dependencies: ["Alerting", "Diagnosis", "FlagCounting", "AccessLogParser", "ConfigFile"],
            swiftSettings: strictSwift6
        ),
        .testTarget(
            name: "NotifierTests",
            // AsyncHTTPClient reads alerts back from a real Alertmanager.
            dependencies: [
                "Notifier",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift6
        ),
        .testTarget(
            name: "DaemonLoggingTests",
            dependencies: ["DaemonLogging", "SystemCalls", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSwift6
        ),
        .testTarget(
            name: "EngineTests",
            // LogSources and SystemCalls: the tests build the source specs and run the PollLoop.
            dependencies: [
                "Engine", "FlagCounting", "LogSources", "SystemCalls", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift6
        ),
        .testTarget(
            name: "FlagCountingTests",
            dependencies: ["FlagCounting", "Exposition", "AccessLogParser", "LineFraming"],
            swiftSettings: strictSwift6
        ),
    ]
)
