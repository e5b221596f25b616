import ArgumentParser
import DaemonLogging
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The version `flagwatch --version` prints and `flagwatch_build_info` will carry.
enum BuildInfo {
    static let version = "0.1.0"
}

struct Flagwatch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flagwatch",
        abstract: "Counts Envoy / Istio response flags per upstream cluster from access logs.",
        version: BuildInfo.version,
        subcommands: [RunCommand.self, ScanCommand.self, CheckConfigCommand.self, ExplainCommand.self]
    )
}

/// Logs at `level` go to `target`: the journal (structured fields, `JournalLogHandler`) or lines
/// on standard error; `.auto` picks the journal when standard error is the journal stream
/// systemd connected (`JOURNAL_STREAM`, see `JournalStream`).
func bootstrapLogging(level: Logger.Level, target: LogTarget = .stderr) {
    let toJournal = JournalStream.resolve(target) == .journal
    if target == .journal && !toJournal {
        FlagwatchMain.printError(
            "--log-target journal: no journald (\(JournalStream.socketPath) is missing); logging to standard error")
    }
    LoggingSystem.bootstrap { label -> any LogHandler in
        if toJournal {
            var handler = JournalLogHandler(label: label)
            handler.logLevel = level
            return handler
        }
        var handler = StandardErrorLogHandler(label: label)
        handler.logLevel = level
        return handler
    }
}

/// A failure the user should read as one line, with the exit status it calls for.
struct CommandFailure: Error, CustomStringConvertible {
    var message: String
    var exitStatus: Int32 = 2

    var description: String { message }
}

@main
enum FlagwatchMain {
    static func main() {
        do {
            var command = try Flagwatch.parseAsRoot()
            try command.run()
        } catch let failure as CommandFailure {
            printError(failure.message)
            exit(failure.exitStatus)
        } catch {
            let exitCode = Flagwatch.exitCode(for: error)
            if exitCode == .success {
                // --help, --version
                print(Flagwatch.fullMessage(for: error))
                exit(0)
            }
            if let code = error as? ExitCode {
                exit(code.rawValue)
            }
            // Bad arguments: one line, exit status 2 (not ArgumentParser's 64), as CLIs do.
            let message =
                Flagwatch.message(for: error)
                .split(whereSeparator: \.isNewline).first.map(String.init) ?? "invalid arguments"
            printError(message + " (see 'flagwatch --help')")
            exit(2)
        }
    }

    static func printError(_ message: String) {
        var line = "flagwatch: " + message
        if !line.hasSuffix("\n") { line += "\n" }
        // Straight to fd 2: no shared C stdio state involved.
        _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
    }
}
