import ArgumentParser
import ConfigFile
import DaemonLogging
import Logging

/// `flagwatch run --config FILE`: the node daemon.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the daemon: follow the configured sources and serve Prometheus metrics.",
        discussion: """
            Stops on SIGTERM or SIGINT: no new connections, in-flight responses finish,
            checkpoints are saved, exit 0.
            """
    )

    @Option(help: ArgumentHelp("The YAML (or JSON) config file.", valueName: "file"))
    var config: String

    @Option(help: ArgumentHelp("Use this state directory instead of the config's state_dir.", valueName: "dir"))
    var stateDir: String?

    @Option(help: ArgumentHelp("Listen here instead of the config's listen (host:port).", valueName: "address"))
    var listen: String?

    @Option(
        name: .customLong("file"),
        help: ArgumentHelp(
            "Also follow these paths or patterns, as a source named 'files' (format auto, start at end) (repeatable).",
            valueName: "glob"))
    var filePatterns: [String] = []

    @Option(help: "Log level (trace, debug, info, notice, warning, error, critical).")
    var logLevel: Logger.Level = .info

    @Option(
        help: ArgumentHelp(
            "Where the log goes: the journal (structured fields), stderr (lines), or auto: the journal when standard error is the journal stream (JOURNAL_STREAM, as under systemd).",
            valueName: "target"))
    var logTarget: LogTarget = .auto

    func run() throws {
        let loaded = try loadConfig()
        bootstrapLogging(level: logLevel, target: logTarget)
        try Daemon(config: loaded, logger: Logger(label: "flagwatch"), loadConfig: loadConfig).run()
    }

    /// The config file with the command line's overrides: at startup and on every reload.
    func loadConfig() throws -> FlagwatchConfig {
        var loaded: FlagwatchConfig
        do {
            loaded = try ConfigLoader.load(path: config)
            try ConfigLoader.checkFiles(of: loaded, file: config)
        } catch {
            throw CommandFailure(message: error.description)
        }
        if let stateDir { loaded.stateDirectory = stateDir }
        if let listen {
            guard ListenAddress(listen) != nil else {
                throw CommandFailure(message: "--listen '\(listen)' is not host:port")
            }
            loaded.listen = listen
        }
        if !filePatterns.isEmpty {
            guard !loaded.sources.contains(where: { $0.name == "files" }) else {
                throw CommandFailure(message: "--file: the config already has a source named 'files'")
            }
            loaded.sources.append(SourceConfig(name: "files", input: .files(filePatterns)))
        }
        return loaded
    }
}

// `flagwatch run --log-target auto|journal|stderr` (by the raw values).
extension LogTarget: ExpressibleByArgument {}
