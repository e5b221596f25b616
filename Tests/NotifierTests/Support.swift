import Foundation
import Logging

@testable import Notifier

#if canImport(Glibc)
    import Glibc
#endif

// Everything here talks to 127.0.0.1 only, stops every process it starts by its PID, and bounds
// every wait.

/// Warnings from the notifier (failed deliveries are expected in these tests) are printed only
/// with FLAGWATCH_TEST_LOG=debug|info|warning.
let testLogger: Logger = {
    var logger = Logger(label: "notifier-tests")
    logger.logLevel =
        ProcessInfo.processInfo.environment["FLAGWATCH_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
    return logger
}()

/// Small enough that a retry comes within a fifth of a second; the tests' waits are seconds.
let fastOptions = NotifierOptions(
    resendInterval: 60, webhookRepeatInterval: 3600, initialBackoff: 0.05, maximumBackoff: 0.2,
    externalURL: "http://flagwatch.test:9817/")

enum TestFailure: Error, CustomStringConvertible {
    case message(String)
    var description: String {
        switch self {
        case .message(let text): return text
        }
    }
}

/// The repository's root, from this file's path (Tests/NotifierTests/Support.swift).
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// Debian's python3 when present (the receiver needs only the standard library): it starts in
/// a tenth of the time of a version manager's shim.
let pythonInterpreter =
    FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") ? "/usr/bin/python3" : "python3"

let receiverScript = repositoryRoot.appendingPathComponent("Tests/EndToEnd/receivers/webhook_receiver.py").path

/// A fresh directory under the system temporary directory; `remove()` in a defer.
struct ScratchDirectory {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "flagwatch-notifier-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> String { path + "/" + name }

    @discardableResult
    func write(_ name: String, _ text: String) throws -> String {
        try Data(text.utf8).write(to: URL(fileURLWithPath: file(name)))
        return file(name)
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// Monotonic seconds.
func monotonicNow() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}

/// Polls `condition` every `interval` until it holds or `timeout` seconds pass; returns whether
/// it held.
func eventually(
    timeout: Double, interval: Double = 0.02, _ condition: () throws -> Bool
) async rethrows -> Bool {
    let deadline = monotonicNow() + timeout
    while true {
        if try condition() { return true }
        if monotonicNow() >= deadline { return false }
        try? await Task.sleep(for: .seconds(interval))
    }
}

/// A child process started from `/usr/bin/env`, with stdout and stderr in files.
final class ChildProcess {
    let process = Process()
    let stdoutPath: String
    let stderrPath: String
    let name: String

    init(name: String, arguments: [String], directory: ScratchDirectory) throws {
        self.name = name
        stdoutPath = directory.file(name + ".stdout")
        stderrPath = directory.file(name + ".stderr")
        _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory.path)
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle(forWritingAtPath: stdoutPath)
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    func stdout() -> String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    func stderr() -> String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// SIGTERM to the PID, then SIGKILL after `grace` seconds; waits (bounded) for the exit.
    func stop(grace: Double = 3) {
        guard process.isRunning else { return }
        kill(pid, SIGTERM)
        let deadline = monotonicNow() + grace
        while process.isRunning, monotonicNow() < deadline { usleep(10_000) }
        if process.isRunning {
            kill(pid, SIGKILL)
            let killDeadline = monotonicNow() + 2
            while process.isRunning, monotonicNow() < killDeadline { usleep(10_000) }
        }
    }

    /// Waits for the exit (at most `timeout` seconds, then kills) and returns the exit status.
    /// Polls with Task.sleep: blocking a thread of the cooperative pool (two on two cores) would
    /// hold up the notifier's delivery tasks of the tests running meanwhile.
    func waitForExit(timeout: Double) async throws -> Int32 {
        let deadline = monotonicNow() + timeout
        while process.isRunning, monotonicNow() < deadline { try? await Task.sleep(for: .milliseconds(10)) }
        if process.isRunning {
            stop(grace: 0)
            throw TestFailure.message("\(name) did not finish within \(timeout) s:\n\(stderr())")
        }
        return process.terminationStatus
    }
}

/// Runs a short command to completion and returns its stdout; throws on a non-zero exit.
@discardableResult
func runTool(_ arguments: [String], in directory: ScratchDirectory, timeout: Double = 60) async throws -> String {
    let name = "tool-" + UUID().uuidString
    let child = try ChildProcess(name: name, arguments: arguments, directory: directory)
    let status = try await child.waitForExit(timeout: timeout)
    guard status == 0 else {
        throw TestFailure.message("\(arguments.joined(separator: " ")) exited \(status):\n\(child.stderr())")
    }
    return child.stdout()
}

/// A port on 127.0.0.1 that nothing listens on right now (bound to port 0, then closed).
func unusedLocalPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestFailure.message("socket: errno \(errno)") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard bound == 0 else { throw TestFailure.message("bind: errno \(errno)") }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    guard named == 0 else { throw TestFailure.message("getsockname: errno \(errno)") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// A TCP socket bound to a port on 127.0.0.1 but not listening: connecting to it is refused,
/// and no other process (another test's listener on port 0) can take the port until
/// `release()`, which frees it for a receiver started later on that port.
final class RefusingPort {
    let port: Int
    private var fd: Int32

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure.message("socket: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard bound == 0, named == 0 else {
            close(fd)
            throw TestFailure.message("bind/getsockname: errno \(errno)")
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        self.fd = fd
    }

    var url: String { "http://127.0.0.1:\(port)/hook" }

    func release() {
        if fd >= 0 { close(fd) }
        fd = -1
    }

    deinit { release() }
}

/// One request as the test receiver recorded it.
struct RecordedRequest {
    var method: String
    var path: String
    /// Lower-cased names.
    var headers: [String: String]
    var body: [UInt8]
    /// "200", "500" or "stall".
    var status: String
    var receivedAt: Double

    /// The body parsed as JSON.
    func json() throws -> Any {
        try JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed])
    }
}

/// Tests/EndToEnd/receivers/webhook_receiver.py on 127.0.0.1, recording every request.
final class TestReceiver {
    let child: ChildProcess
    let port: Int
    let recordPath: String

    /// `port` 0: the kernel chooses. `options`: the script's flags (--fail-first N, ...).
    init(directory: ScratchDirectory, name: String, port: Int = 0, options: [String] = []) async throws {
        recordPath = directory.file(name + ".jsonl")
        child = try ChildProcess(
            name: name,
            arguments: [pythonInterpreter, receiverScript, "--port", String(port), "--record", recordPath] + options,
            directory: directory)
        var chosenPort: Int?
        let child = self.child
        _ = await eventually(timeout: 15) {
            if let line = child.stdout().split(separator: "\n").first,
                let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let port = object["port"] as? Int
            {
                chosenPort = port
                return true
            }
            return !child.isRunning
        }
        guard let chosenPort else {
            child.stop()
            throw TestFailure.message("webhook_receiver.py \(name) did not start:\n\(child.stderr())")
        }
        self.port = chosenPort
    }

    func url(_ path: String, scheme: String = "http") -> String { "\(scheme)://127.0.0.1:\(port)\(path)" }

    func stop() { child.stop() }

    func requests() throws -> [RecordedRequest] {
        guard let text = try? String(contentsOfFile: recordPath, encoding: .utf8) else { return [] }
        return try text.split(separator: "\n").map { line in
            guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let bodyBase64 = object["body_b64"] as? String, let body = Data(base64Encoded: bodyBase64)
            else { throw TestFailure.message("bad record line: \(line)") }
            return RecordedRequest(
                method: object["method"] as? String ?? "",
                path: object["path"] as? String ?? "",
                headers: object["headers"] as? [String: String] ?? [:],
                body: Array(body),
                status: object["status"].map { "\($0)" } ?? "",
                receivedAt: object["received_at"] as? Double ?? 0)
        }
    }

    /// Every request's count (0 when the file cannot be read yet).
    func requestCount() -> Int { (try? requests().count) ?? 0 }
}

/// A test CA and a server certificate for 127.0.0.1 signed by it, made with openssl now (no keys
/// are committed).
struct TestCertificates {
    let caFile: String
    let serverCertificate: String
    let serverKey: String

    init(in directory: ScratchDirectory) async throws {
        caFile = directory.file("ca.pem")
        serverCertificate = directory.file("server.pem")
        serverKey = directory.file("server.key")
        let caKey = directory.file("ca.key")
        let request = directory.file("server.csr")
        let extensions = try directory.write(
            "server.ext",
            """
            subjectAltName = IP:127.0.0.1
            basicConstraints = critical, CA:FALSE
            keyUsage = critical, digitalSignature, keyEncipherment
            extendedKeyUsage = serverAuth
            authorityKeyIdentifier = keyid
            subjectKeyIdentifier = hash

            """)
        try await runTool(
            [
                "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", caKey, "-out", caFile, "-days", "2", "-subj", "/CN=flagwatch notifier test CA",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            ], in: directory)
        try await runTool(
            [
                "openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", serverKey, "-out", request, "-subj", "/CN=127.0.0.1",
            ], in: directory)
        try await runTool(
            [
                "openssl", "x509", "-req", "-in", request, "-CA", caFile, "-CAkey", caKey, "-CAcreateserial",
                "-out", serverCertificate, "-days", "2", "-extfile", extensions,
            ], in: directory)
    }
}

/// Shuts the notifier down from a plain thread: `shutdown(within:)` blocks, and must not take a
/// thread of the cooperative pool that the delivery tasks run on.
func shutDown(_ notifier: Notifier, within seconds: Double) async {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        Thread.detachNewThread {
            notifier.shutdown(within: seconds)
            continuation.resume()
        }
    }
}

/// Parses the RFC 3339 times flagwatch writes (with or without fractional seconds).
func parseTime(_ text: String) -> Date? {
    (try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true)))
        ?? (try? Date(text, strategy: Date.ISO8601FormatStyle()))
}

/// A date on a whole millisecond, so that it survives RFC 3339 with milliseconds unchanged.
func wholeMilliseconds(_ date: Date) -> Date {
    Date(timeIntervalSince1970: (date.timeIntervalSince1970 * 1000).rounded(.down) / 1000)
}

extension Notifier {
    func statistics(of name: String) -> ReceiverStatistics? {
        statistics().first { $0.name == name }
    }
}

/// A JSON value that is an RFC 3339 time string, parsed.
func timeValue(_ value: Any?) -> Date? {
    (value as? String).flatMap(parseTime)
}

/// Equal to the millisecond (RFC 3339 with milliseconds, and Double seconds, both round).
func sameMillisecond(_ first: Date?, _ second: Date?) -> Bool {
    guard let first, let second else { return false }
    return abs(first.timeIntervalSince(second)) < 0.0015
}
