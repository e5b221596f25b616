import AccessLogParser
import ArgumentParser
import ConfigFile
import Diagnosis
import Engine
import Exposition
import FlagCounting
import LineFraming
import LogSources
import Logging
import SystemCalls

#if canImport(Glibc)
    import Glibc
#endif

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json, prometheus
}

extension ContainerFormat: ExpressibleByArgument {}
extension StartPosition: ExpressibleByArgument {}
extension Logger.Level: @retroactive ExpressibleByArgument {}

struct ScanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scan",
        abstract: "Count response flags per upstream cluster in access-log files or standard input.",
        discussion: """
            Examples:
              flagwatch scan /var/log/envoy/access.log
              kubectl logs --timestamps deploy/istio-ingressgateway -n istio-system | flagwatch scan -
              flagwatch scan --output json /var/log/pods/*/istio-proxy/*.log
              flagwatch scan --since 2026-12-07T05:00:00Z --until 2026-12-07T05:20:00Z access.log
              flagwatch scan --since 15m /var/log/envoy/access.log
              flagwatch scan --follow --file '/var/log/envoy/*.log' --state-dir /tmp/flagwatch-state
            """
    )

    @Option(
        help:
            "auto, envoy, istio, json, nginx-error, nginx, haproxy, or an Envoy format string (as in your Envoy or Istio config)."
    )
    var format: String = "auto"

    @Option(help: "Container log wrapper: none, cri, docker, or auto (recognised per line).")
    var containerFormat: ContainerFormat = .auto

    @Option(help: "table, json or prometheus.")
    var output: OutputFormat = .table

    @Option(help: "Lines longer than this many bytes are skipped whole and counted as too_long.")
    var maxLineLength: Int = 64 * 1024

    @Option(
        name: .customLong("json-key"),
        help: ArgumentHelp(
            "Rename a JSON key for --format json/auto, as FIELD=KEY (repeatable). FIELD is one of: "
                + JSONKeyMap.fieldNames.joined(separator: ", "),
            valueName: "field=key"))
    var jsonKeys: [String] = []

    @Option(
        help: ArgumentHelp(
            "Count only lines whose start time is at or after this: an RFC 3339 time (2026-12-07T05:00:00Z, 2026-12-07T06:00:00+01:00) or a time ago (90s, 15m, 2h, 1d).",
            valueName: "time"))
    var since: String?

    @Option(
        help: ArgumentHelp(
            "Count only lines whose start time is before this (the same forms as --since).", valueName: "time"))
    var until: String?

    @Argument(help: "Files to read; '-' or nothing for standard input. With --follow: paths or patterns to follow.")
    var files: [String] = []

    @Flag(help: "Keep following the files (and journal) and print the counts since start every --interval.")
    var follow = false

    @Option(
        help: ArgumentHelp(
            "With --follow: also follow the sources of this config file (its format, state_dir and follow settings apply to them).",
            valueName: "file"))
    var config: String?

    @Option(
        name: .customLong("file"),
        help: ArgumentHelp("With --follow: a path or wildcard pattern to follow (repeatable).", valueName: "glob"))
    var filePatterns: [String] = []

    @Option(
        name: .customLong("journal-match"),
        help: ArgumentHelp(
            "With --follow: read the journal (libsystemd) entries matching FIELD=VALUE, journalctl's syntax: same field = OR, different fields = AND, '+' = OR between groups (repeatable).",
            valueName: "field=value|+"))
    var journalMatches: [String] = []

    @Option(
        name: .customLong("journal-directory"),
        help: ArgumentHelp(
            "With --follow: read the journal files in this directory instead of the system journal.", valueName: "dir"))
    var journalDirectory: String?

    @Option(
        help: ArgumentHelp(
            "With --follow: seconds a rotated or deleted file stays open after it stopped growing.",
            valueName: "seconds"))
    var rotatedFileGrace: Double = 5

    @Option(help: "With --follow: where a file seen at startup without a checkpoint starts (end or beginning).")
    var startAt: StartPosition = .end

    @Option(
        help: ArgumentHelp(
            "With --follow: keep checkpoints here; a later run resumes where this one stopped.", valueName: "dir"))
    var stateDir: String?

    @Option(help: ArgumentHelp("With --follow: seconds between reports.", valueName: "seconds"))
    var interval: Double = 2

    @Option(
        help: ArgumentHelp(
            "With --follow: seconds between full rescans of the patterns (inotify does the rest).", valueName: "seconds"
        ))
    var rescanInterval: Double = 10

    @Option(
        help: ArgumentHelp("With --follow and --state-dir: seconds between checkpoint saves.", valueName: "seconds"))
    var checkpointInterval: Double = 5

    @Option(help: "With --follow: log level on standard error (trace, debug, info, notice, warning, error, critical).")
    var logLevel: Logger.Level = .info

    func validate() throws {
        guard maxLineLength > 0 && maxLineLength <= 64 * 1024 * 1024 else {
            throw ValidationError("--max-line-length must be between 1 and 67108864")
        }
        for (name, value) in [
            ("--interval", interval), ("--rescan-interval", rescanInterval),
            ("--checkpoint-interval", checkpointInterval),
        ] {
            guard value.isFinite, value >= 0.01, value <= 86400 else {
                throw ValidationError("\(name) must be between 0.01 and 86400 seconds")
            }
        }
        if !follow && !filePatterns.isEmpty { throw ValidationError("--file needs --follow") }
        if follow && output == .prometheus { throw ValidationError("--follow prints table or json") }
        if !follow && config != nil { throw ValidationError("--config needs --follow (the daemon is 'flagwatch run')") }
        let readsJournal = !journalMatches.isEmpty || journalDirectory != nil
        if !follow && readsJournal { throw ValidationError("--journal-match and --journal-directory need --follow") }
        if follow && (files + filePatterns).isEmpty && config == nil && !readsJournal {
            throw ValidationError("--follow needs --file, --journal-match, --journal-directory or --config")
        }
        guard rotatedFileGrace.isFinite, rotatedFileGrace >= 0, rotatedFileGrace <= 86400 else {
            throw ValidationError("--rotated-file-grace must be between 0 and 86400 seconds")
        }
        if follow && files.contains("-") { throw ValidationError("--follow reads files, not standard input") }
        if follow && (since != nil || until != nil) {
            throw ValidationError("--since and --until take a time window of files read once, not --follow")
        }
        let window = try timeWindow()
        if let since = window?.since, let until = window?.until, since >= until {
            throw ValidationError("--since must be before --until")
        }
    }

    /// A rotated log a compressor wrote (kubelet's and logrotate's `.gz`, `.zst`, ...) would be
    /// read as binary garbage, every "line" malformed: its magic bytes say so first.
    static func compression(of descriptor: FileDescriptor) throws -> (name: String, tool: String)? {
        var head = [UInt8](repeating: 0, count: 6)
        let count = try head.withUnsafeMutableBytes { (buffer) throws(Errno) in
            try descriptor.read(into: buffer, atOffset: 0)
        }
        let magics: [(bytes: [UInt8], name: String, tool: String)] = [
            ([0x1F, 0x8B], "gzip", "zcat"),
            ([0x28, 0xB5, 0x2F, 0xFD], "zstd", "zstdcat"),
            ([0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00], "xz", "xzcat"),
            ([0x42, 0x5A, 0x68], "bzip2", "bzcat"),
            ([0x04, 0x22, 0x4D, 0x18], "lz4", "lz4cat"),
        ]
        return magics.first { count >= $0.bytes.count && Array(head[0..<$0.bytes.count]) == $0.bytes }
            .map { ($0.name, $0.tool) }
    }

    /// `--since`/`--until` as a window of epoch seconds; nil when neither is given.
    func timeWindow(now: Int = Int(time(nil))) throws -> TimeWindow? {
        guard since != nil || until != nil else { return nil }
        func seconds(_ text: String?, _ option: String) throws -> Int? {
            guard let text else { return nil }
            if let absolute = LogTimestamp.epochSeconds(text) { return absolute }
            let units: [Character: Int] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
            if let unit = text.last.flatMap({ units[$0] }), let amount = Int(text.dropLast()), amount >= 0,
                amount <= 3650 * 86_400 / unit
            {
                return now - amount * unit
            }
            throw ValidationError(
                "\(option) \(text): expected an RFC 3339 time (2026-12-07T05:00:00Z) or a time ago (90s, 15m, 2h, 1d)")
        }
        return TimeWindow(since: try seconds(since, "--since"), until: try seconds(until, "--until"))
    }

    func run() throws {
        let logFormat = try parsedFormat()
        if follow { return try runFollowing(logFormat) }
        // Open everything first: an unreadable file is an error before any output.
        var inputs: [(name: String, descriptor: FileDescriptor)] = []
        // A file named twice (a shell glob overlapping a path, or /var/log/containers/*.log
        // beside the /var/log/pods files those links point to) is read once.
        var pathOfFile: [FileIdentity: String] = [:]
        for path in files.isEmpty ? ["-"] : files {
            if path == "-" {
                inputs.append(("standard input", .standardInput))
                continue
            }
            do {
                let descriptor = try FileDescriptor.openForReading(path)
                if try descriptor.isDirectory() {
                    throw CommandFailure(message: "cannot read \(path): Is a directory")
                }
                let status = try descriptor.status()
                let identity = FileIdentity(device: status.device, inode: status.inode)
                if let first = pathOfFile[identity] {
                    descriptor.close()
                    FlagwatchMain.printError("\(path) is the same file as \(first): read once")
                    continue
                }
                pathOfFile[identity] = path
                if let compression = try Self.compression(of: descriptor) {
                    descriptor.close()
                    throw CommandFailure(
                        message:
                            "cannot read \(path): it is \(compression.name)-compressed; decompress it into standard input: "
                            + "\(compression.tool) \(path) | flagwatch scan -")
                }
                inputs.append((path, descriptor))
            } catch let error as Errno {
                throw CommandFailure(message: "cannot read \(path): \(error)")
            }
        }

        let counts = FlagCounts()
        let window = try timeWindow()
        var leftOut = WindowLeftOut()
        var recognized: [String] = []
        for input in inputs {
            if var parallel = try parallelScan(for: input, format: logFormat) {
                parallel.scan.window = window
                for format in try parallel.scan.run(
                    input.descriptor, workers: parallel.workers, into: counts, leftOut: &leftOut)
                where !recognized.contains(format) {
                    recognized.append(format)
                }
                input.descriptor.close()
                continue
            }
            let pipeline: StreamPipeline
            do {
                pipeline = try StreamPipeline(
                    format: logFormat, containerFormat: containerFormat, maxLineLength: maxLineLength, counts: counts,
                    window: window)
            } catch {
                throw CommandFailure(message: "--format: \(error)")
            }
            do {
                while try pipeline.readAndCount({ (buffer) throws(Errno) in try input.descriptor.read(into: buffer) })
                    > 0
                {}
            } catch {
                throw CommandFailure(message: "cannot read \(input.name): \(error)")
            }
            if input.descriptor.rawValue != FileDescriptor.standardInput.rawValue { input.descriptor.close() }
            leftOut.add(WindowLeftOut(pipeline))
            if counts.lines > counts.malformedTotal && !recognized.contains(pipeline.recognizedFormat) {
                recognized.append(pipeline.recognizedFormat)
            }
        }

        if window != nil {
            // The output keeps its shape: what the window left out is said here.
            FlagwatchMain.printError(
                "--since/--until: \(counts.lines - counts.malformedTotal) lines in the window counted, "
                    + "\(leftOut.outside) before or after it left out"
                    + (leftOut.withoutTime > 0
                        ? ", \(leftOut.withoutTime) without a start time it can read left out (see docs/cli.md)" : ""))
        }
        let report = ScanReport(counts: counts, diagnose: counts.scanDiagnosis)
        switch output {
        case .json: print(report.json())
        case .table: print(report.table(recognizedFormats: recognized), terminator: "")
        case .prometheus: print(report.prometheus(source: "scan"), terminator: "")
        }
    }

    private func runFollowing(_ logFormat: LogFormat) throws {
        bootstrapLogging(level: logLevel)
        var sources = FollowedSources()
        sources.options.rescanInterval = rescanInterval
        sources.options.checkpointInterval = checkpointInterval
        sources.options.rotatedFileGrace = rotatedFileGrace
        sources.options.maxLineLength = maxLineLength
        sources.options.stateDirectory = stateDir
        if let config {
            let loaded: FlagwatchConfig
            do {
                loaded = try ConfigLoader.load(path: config)
            } catch {
                throw CommandFailure(message: error.description)
            }
            sources = loaded.followedSources
            sources.options.stateDirectory = stateDir ?? loaded.stateDirectory
        }
        let patterns = files + filePatterns
        if !patterns.isEmpty {
            let sourceName = "files"
            guard sources.parsing[sourceName] == nil else {
                throw CommandFailure(message: "--file: the config already has a source named '\(sourceName)'")
            }
            sources.files.append(FileSourceSpec(name: sourceName, patterns: patterns, startAt: startAt))
            sources.parsing[sourceName] = SourceParsing(format: logFormat, containerFormat: containerFormat)
        }
        if !journalMatches.isEmpty || journalDirectory != nil {
            let sourceName = "journal"
            guard sources.parsing[sourceName] == nil else {
                throw CommandFailure(message: "--journal-match: the config already has a source named '\(sourceName)'")
            }
            sources.journals.append(
                JournalSourceSpec(
                    name: sourceName, matches: journalMatches, directory: journalDirectory, startAt: startAt))
            // Journal messages are not wrapped by a container runtime.
            sources.parsing[sourceName] = SourceParsing(format: logFormat, containerFormat: .none)
        }
        let scan = FollowScan(
            sources: sources, reportInterval: interval, output: output, logger: Logger(label: "flagwatch"))
        try scan.run()
    }

    /// A large regular file that can be cut at line boundaries is read on all cores.
    private func parallelScan(for input: (name: String, descriptor: FileDescriptor), format: LogFormat) throws -> (
        scan: ParallelFileScan, workers: Int
    )? {
        guard input.descriptor.rawValue != FileDescriptor.standardInput.rawValue,
            let size = try input.descriptor.regularFileSize()
        else { return nil }
        let workers = ParallelFileScan.workerCount(forSize: size)
        guard workers > 1, try ParallelFileScan.canSplit(input.descriptor, containerFormat: containerFormat) else {
            return nil
        }
        let scan = ParallelFileScan(
            path: input.name, size: size, format: format, containerFormat: containerFormat,
            maxLineLength: maxLineLength)
        return (scan, workers)
    }

    private func parsedFormat() throws -> LogFormat {
        var keys = JSONKeyMap()
        for mapping in jsonKeys {
            let parts = mapping.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[1].isEmpty, keys.setKey(parts[1], forField: parts[0]) else {
                throw CommandFailure(
                    message: "--json-key \(mapping): expected FIELD=KEY with FIELD one of "
                        + JSONKeyMap.fieldNames.joined(separator: ", "))
            }
        }
        let format = LogFormat(argument: format, jsonKeys: keys)
        // Compile once here so a bad format string is reported before anything is read.
        do {
            _ = try AccessLogParser(format: format)
        } catch {
            throw CommandFailure(message: "--format: \(error)")
        }
        return format
    }
}

extension FlagCounts {
    /// A cluster's diagnosis as the scan report prints it.
    func scanDiagnosis(cluster id: Int) -> ScanDiagnosis? {
        Diagnoser.diagnose(self, cluster: id).map {
            ScanDiagnosis(
                flag: $0.flag.shortName, cause: $0.cause.rawValue, likelyCause: $0.likelyCause, nextSteps: $0.nextSteps,
                scope: $0.scope.rawValue, hosts: $0.hosts)
        }
    }
}

/// A file's device and inode: what tells two paths of one file apart from two files.
private struct FileIdentity: Hashable {
    var device: UInt64
    var inode: UInt64
}
