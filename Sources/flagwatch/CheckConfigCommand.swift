import ArgumentParser
import ConfigFile

/// `flagwatch check-config FILE`: validates a config file without starting anything.
struct CheckConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate a config file: exit 0 if the daemon would start with it, else say where it is wrong."
    )

    @Argument(help: "The YAML (or JSON) config file.")
    var file: String

    func run() throws {
        let config: FlagwatchConfig
        do {
            config = try ConfigLoader.load(path: file)
            try ConfigLoader.checkFiles(of: config, file: file)
        } catch {
            throw CommandFailure(message: error.description)
        }
        var summary = "\(file): OK: listen \(config.listen), state_dir \(config.stateDirectory), "
        summary += "\(config.sources.count) source\(config.sources.count == 1 ? "" : "s") ("
        summary += config.sources.map { source in
            switch source.input {
            case .files(let patterns):
                "\(source.name): \(patterns.count) pattern\(patterns.count == 1 ? "" : "s"), format \(source.format)"
            case .grpcAccessLog(let settings):
                "\(source.name): grpc_access_log on \(settings.listen.host):\(settings.listen.port), "
                    + "OTLP bodies as format \(source.format)"
            case .journald(let matches, _):
                "\(source.name): journald \(matches.joined(separator: " ")), format \(source.format)"
            }
        }.joined(separator: "; ")
        summary += "), windows " + config.windows.map(\.description).joined(separator: ",")
        if let alerting = config.alerting {
            let receivers = alerting.alertmanagers.count + alerting.webhooks.count
            summary +=
                "; alerting: \(alerting.rules.count) rule(s) (" + alerting.rules.map(\.name).joined(separator: ", ")
                + "), \(receivers) receiver(s), evaluated every \(alerting.evaluateEvery)"
        }
        print(summary)
    }
}
