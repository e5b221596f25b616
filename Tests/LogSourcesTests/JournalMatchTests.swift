import Foundation
import LogSources
import Logging
import SystemCalls
import Testing

@Suite struct JournalMatchTests {
    @Test func fieldEqualsValue() throws {
        #expect(
            try JournalMatch(parsing: "_SYSTEMD_UNIT=envoy.service")
                == .field(name: "_SYSTEMD_UNIT", value: "envoy.service"))
        #expect(
            try JournalMatch(parsing: "SYSLOG_IDENTIFIER=envoy") == .field(name: "SYSLOG_IDENTIFIER", value: "envoy"))
        #expect(
            try JournalMatch(parsing: "CONTAINER_NAME=istio-proxy")
                == .field(name: "CONTAINER_NAME", value: "istio-proxy"))
        #expect(try JournalMatch(parsing: "+") == .disjunction)
    }

    @Test func valueMayBeEmptyOrHoldEquals() throws {
        #expect(try JournalMatch(parsing: "PRIORITY=") == .field(name: "PRIORITY", value: ""))
        // Only the first "=" separates: journalctl matches the rest literally.
        #expect(try JournalMatch(parsing: "MESSAGE_ID=a=b") == .field(name: "MESSAGE_ID", value: "a=b"))
        #expect(
            try JournalMatch(parsing: "CONTAINER_NAME= spaced value ")
                == .field(name: "CONTAINER_NAME", value: " spaced value "))
    }

    @Test func digitsAndUnderscoresInNames() throws {
        #expect(try JournalMatch(parsing: "_PID=1") == .field(name: "_PID", value: "1"))
        #expect(try JournalMatch(parsing: "FIELD_2=x") == .field(name: "FIELD_2", value: "x"))
        let longest = String(repeating: "A", count: JournalMatch.maximumFieldNameLength)
        #expect(try JournalMatch(parsing: longest + "=x") == .field(name: longest, value: "x"))
    }

    @Test(arguments: [
        ("envoy", "expected FIELD=VALUE"),
        ("", "expected FIELD=VALUE"),
        ("=envoy", "empty"),
        ("syslog_identifier=envoy", "upper-case"),
        ("Syslog_Identifier=envoy", "upper-case"),
        ("SYSLOG-IDENTIFIER=envoy", "upper-case"),
        ("SYSLOG IDENTIFIER=envoy", "upper-case"),
        ("ÉTAT=envoy", "upper-case"),
        ("1FIELD=envoy", "cannot start with a digit"),
        ("__CURSOR=s=abc", "\"__\""),
        (String(repeating: "A", count: 65) + "=x", "at most 64"),
        ("/usr/bin/envoy", "expected FIELD=VALUE"),
    ])
    func badMatchesNameTheMatch(text: String, problem: String) {
        do {
            _ = try JournalMatch(parsing: text)
            Issue.record("\(text) was accepted")
        } catch {
            guard case .badMatch(let match, let reason) = error.reason else {
                Issue.record("unexpected error \(error)")
                return
            }
            #expect(match == text)
            #expect(reason.contains(problem), "\(reason)")
            #expect(error.description.contains("\"\(text)\""))
        }
    }

    @Test func disjunctionsStandBetweenMatches() throws {
        let matches = try JournalMatch.parse([
            "SYSLOG_IDENTIFIER=envoy", "+", "CONTAINER_NAME=istio-proxy", "_SYSTEMD_UNIT=a.service",
        ])
        #expect(
            matches == [
                .field(name: "SYSLOG_IDENTIFIER", value: "envoy"), .disjunction,
                .field(name: "CONTAINER_NAME", value: "istio-proxy"), .field(name: "_SYSTEMD_UNIT", value: "a.service"),
            ])
        #expect(try JournalMatch.parse([]) == [])
        for misplaced in [["+"], ["+", "A=1"], ["A=1", "+"], ["A=1", "+", "+", "B=2"]] {
            #expect(throws: JournalError(source: "envoy", reason: .misplacedDisjunction)) {
                try JournalMatch.parse(misplaced, source: "envoy")
            }
        }
    }

    @Test func parseNamesTheSourceAndTheMatch() {
        do {
            _ = try JournalMatch.parse(["SYSLOG_IDENTIFIER=envoy", "unit=envoy.service"], source: "mesh")
            Issue.record("accepted")
        } catch {
            #expect(error.source == "mesh")
            #expect(error.description.hasPrefix("journal source mesh: bad journal match \"unit=envoy.service\": "))
        }
    }
}

@Suite struct JournalFollowerSetupTests {
    @Test func badMatchFailsBeforeAnythingOpens() {
        let sink = CollectingSink()
        let spec = JournalSourceSpec(name: "envoy", matches: ["_systemd_unit=envoy.service"], directory: "/nonexistent")
        do {
            _ = try JournalFollower(
                sources: [spec], stateDirectory: nil, sink: sink, logger: quietLogger, firstStream: 1)
            Issue.record("accepted a lower-case field name")
        } catch {
            guard case .badMatch(let match, _) = error.reason else {
                Issue.record("unexpected error \(error)")
                return
            }
            #expect(match == "_systemd_unit=envoy.service")
            #expect(error.source == "envoy")
        }
    }

    @Test func openFailureNamesTheErrnoText() {
        let sink = CollectingSink()
        let spec = JournalSourceSpec(
            name: "envoy", matches: ["SYSLOG_IDENTIFIER=envoy"], directory: "/nonexistent/journal")
        do {
            _ = try JournalFollower(
                sources: [spec], stateDirectory: nil, sink: sink, logger: quietLogger, firstStream: 1)
            Issue.record("opened a directory that does not exist")
        } catch {
            #expect(
                error.description
                    == "journal source envoy: cannot open the journal in /nonexistent/journal: No such file or directory"
            )
        }
    }

    @Test func duplicateNamesAreRefused() {
        let sink = CollectingSink()
        let specs = [
            JournalSourceSpec(name: "mesh", matches: [], directory: "/nonexistent"),
            JournalSourceSpec(name: "mesh", matches: ["SYSLOG_IDENTIFIER=envoy"], directory: "/nonexistent"),
        ]
        #expect(throws: JournalError(source: "mesh", reason: .duplicateSource)) {
            try JournalFollower(sources: specs, stateDirectory: nil, sink: sink, logger: quietLogger, firstStream: 1)
        }
    }

    /// A directory without journal files yet (journald has not written any) is no error: the
    /// source opens its stream and waits.
    @Test func emptyJournalDirectoryOpensOneStream() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanUp() }
        let sink = CollectingSink()
        let spec = JournalSourceSpec(
            name: "mesh", matches: ["SYSLOG_IDENTIFIER=envoy", "+", "CONTAINER_NAME=istio-proxy"],
            directory: directory.path)
        let follower = try JournalFollower(
            sources: [spec], stateDirectory: nil, sink: sink, logger: quietLogger, firstStream: 7)
        let loop = PollLoop()
        follower.start(on: loop)
        follower.catchUp()
        #expect(sink.opened == [StreamID(7): StreamInfo(source: "mesh", path: "journal")])
        #expect(sink.lines.isEmpty)
        #expect(follower.statistics(forSource: 0).openStreams == 1)
        #expect(follower.statistics(forSource: 0).errors.isEmpty)
    }
}

/// Writes real journal files without a running journald: systemd-journal-remote turns journal
/// export format on its standard input into a journal file (appending if it exists).
struct JournalFiles {
    static let remote = "/lib/systemd/systemd-journal-remote"
    static var available: Bool { FileManager.default.isExecutableFile(atPath: remote) }

    let directory: TemporaryDirectory
    private static let bootID = "0123456789abcdef0123456789abcdef"
    /// Timestamps go up across calls, as in a real journal.
    private static let clock = Clock()

    final class Clock: @unchecked Sendable {
        private let lock = NSLock()
        private var last: UInt64 = 0
        func tick() -> UInt64 {
            lock.lock()
            defer { lock.unlock() }
            last = max(last + 1, UInt64(Date().timeIntervalSince1970 * 1_000_000))
            return last
        }
    }

    /// Appends one entry per message (`SYSLOG_IDENTIFIER` = `identifier`) to `file`.
    func append(_ messages: [[UInt8]], identifier: String, to file: String = "system.journal") throws {
        var export: [UInt8] = []
        for message in messages {
            let now = Self.clock.tick()
            export += Array("__REALTIME_TIMESTAMP=\(now)\n__MONOTONIC_TIMESTAMP=\(now)\n_BOOT_ID=\(Self.bootID)\n".utf8)
            export += Array("SYSLOG_IDENTIFIER=\(identifier)\n".utf8)
            if message.isEmpty {
                // journal-remote drops a zero-length binary field; the text form keeps it.
                export += Array("MESSAGE=\n\n".utf8)
                continue
            }
            // The binary form (name, newline, 64-bit little-endian length, bytes): any byte goes.
            export += Array("MESSAGE\n".utf8)
            withUnsafeBytes(of: UInt64(message.count).littleEndian) { export += $0 }
            export += message + [0x0A, 0x0A]
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.remote)
        process.arguments = ["--split-mode=none", "--output=" + directory.file(file), "-"]
        let input = Pipe()
        process.standardInput = input
        process.standardError = FileHandle.nullDevice
        try process.run()
        input.fileHandleForWriting.write(Data(export))
        try input.fileHandleForWriting.close()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw CocoaError(.fileWriteUnknown) }
    }

    func append(_ messages: [String], identifier: String, to file: String = "system.journal") throws {
        try append(messages.map { Array($0.utf8) }, identifier: identifier, to: file)
    }
}

@Suite(.enabled(if: JournalFiles.available, "needs systemd-journal-remote (Debian: systemd-journal-remote)"))
struct JournalFollowerReadingTests {
    func makeFollower(
        _ directory: TemporaryDirectory, matches: [String], startAt: StartPosition, state: String? = nil,
        sink: CollectingSink
    ) throws -> JournalFollower {
        let spec = JournalSourceSpec(name: "mesh", matches: matches, directory: directory.path, startAt: startAt)
        return try JournalFollower(
            sources: [spec], stateDirectory: state, sink: sink, logger: quietLogger, firstStream: 1)
    }

    @Test func messagesAreHandedOnByteForByte() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanUp() }
        let files = JournalFiles(directory: directory)
        // No trailing newline, a NUL inside, invalid UTF-8: the message is its bytes.
        try files.append([Array("first".utf8), [0x61, 0x00, 0x62, 0xFF], []], identifier: "envoy")
        try files.append(["from someone else"], identifier: "sshd")
        let sink = BytesSink()
        let spec = JournalSourceSpec(
            name: "mesh", matches: ["SYSLOG_IDENTIFIER=envoy"], directory: directory.path, startAt: .beginning)
        let follower = try JournalFollower(
            sources: [spec], stateDirectory: nil, sink: sink, logger: quietLogger, firstStream: 1)
        follower.start(on: PollLoop())
        follower.catchUp()
        #expect(sink.lines == [Array("first".utf8), [0x61, 0x00, 0x62, 0xFF], []])
        #expect(follower.statistics(forSource: 0).bytesRead == 9)
    }

    @Test func sameFieldOrsDifferentFieldsAndPlusOrsGroups() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanUp() }
        let files = JournalFiles(directory: directory)
        try files.append(["e1", "e2"], identifier: "envoy")
        try files.append(["i1"], identifier: "istio")
        try files.append(["s1"], identifier: "sshd")
        for (matches, expected) in [
            (["SYSLOG_IDENTIFIER=envoy"], ["e1", "e2"]),
            (["SYSLOG_IDENTIFIER=envoy", "SYSLOG_IDENTIFIER=istio"], ["e1", "e2", "i1"]),
            (["SYSLOG_IDENTIFIER=envoy", "+", "SYSLOG_IDENTIFIER=istio"], ["e1", "e2", "i1"]),
            (["SYSLOG_IDENTIFIER=envoy", "MESSAGE=e2"], ["e2"]),
            (["SYSLOG_IDENTIFIER=envoy", "MESSAGE=e2", "+", "SYSLOG_IDENTIFIER=sshd"], ["e2", "s1"]),
            (["SYSLOG_IDENTIFIER=nobody"], []),
        ] {
            let sink = CollectingSink()
            let follower = try makeFollower(directory, matches: matches, startAt: .beginning, sink: sink)
            follower.start(on: PollLoop())
            follower.catchUp()
            #expect(sink.lines == expected, "\(matches)")
        }
    }

    @Test func startAtEndReadsOnlyNewEntriesEvenWithNoMatchYet() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanUp() }
        let files = JournalFiles(directory: directory)
        try files.append(["old1", "old2"], identifier: "envoy")
        try files.append(["other"], identifier: "sshd")
        let sink = CollectingSink()
        let follower = try makeFollower(directory, matches: ["SYSLOG_IDENTIFIER=envoy"], startAt: .end, sink: sink)
        let loop = PollLoop()
        follower.start(on: loop)
        follower.catchUp()
        #expect(sink.lines.isEmpty)
        try files.append(["new1", "new2", "new3"], identifier: "envoy")
        run(loop) { sink.lines.count >= 3 }
        #expect(sink.lines == ["new1", "new2", "new3"])

        // With nothing matching at the start, the first entries must not be jumped over
        // (after seek_tail, sd_journal_next would land on the newest of them).
        let quietSink = CollectingSink()
        let quiet = try makeFollower(directory, matches: ["SYSLOG_IDENTIFIER=istio"], startAt: .end, sink: quietSink)
        let quietLoop = PollLoop()
        quiet.start(on: quietLoop)
        try files.append(["a", "b", "c"], identifier: "istio")
        run(quietLoop) { quietSink.lines.count >= 3 }
        #expect(quietSink.lines == ["a", "b", "c"])
    }

    @Test func newJournalFilesAreFollowed() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanUp() }
        let files = JournalFiles(directory: directory)
        try files.append(["before"], identifier: "envoy")
        let sink = CollectingSink()
        let follower = try makeFollower(directory, matches: ["SYSLOG_IDENTIFIER=envoy"], startAt: .end, sink: sink)
        let loop = PollLoop()
        follower.start(on: loop)
        // As after a rotation: a new file next to the old one.
        try files.append(["rotated1", "rotated2"], identifier: "envoy", to: "system@rotated.journal")
        run(loop) { sink.lines.count >= 2 }
        #expect(sink.lines == ["rotated1", "rotated2"])
    }

    @Test func resumesAfterTheSavedCursor() throws {
        let directory = try TemporaryDirectory()
        let state = try TemporaryDirectory()
        defer {
            directory.cleanUp()
            state.cleanUp()
        }
        let files = JournalFiles(directory: directory)
        try files.append(["one", "two"], identifier: "envoy")
        let first = CollectingSink()
        do {
            let follower = try makeFollower(
                directory, matches: ["SYSLOG_IDENTIFIER=envoy"], startAt: .beginning, state: state.path, sink: first)
            follower.start(on: PollLoop())
            follower.catchUp()
            follower.saveCheckpoints()
        }
        #expect(first.lines == ["one", "two"])
        let saved = try CheckpointStore(directory: state.path).load(source: "mesh")?.checkpoint
        #expect(saved?.journal?.cursor != nil)
        #expect(saved?.journal?.readUntilMicroseconds != nil)

        try files.append(["three"], identifier: "envoy")
        try files.append(["noise"], identifier: "sshd")
        let second = CollectingSink()
        let follower = try makeFollower(
            directory, matches: ["SYSLOG_IDENTIFIER=envoy"], startAt: .beginning, state: state.path, sink: second)
        follower.start(on: PollLoop())
        follower.catchUp()
        #expect(second.lines == ["three"])
    }

    @Test func resumesAfterAVacuumedCursorWithTheNextEntry() throws {
        let directory = try TemporaryDirectory()
        let state = try TemporaryDirectory()
        defer {
            directory.cleanUp()
            state.cleanUp()
        }
        let files = JournalFiles(directory: directory)
        try files.append(["one", "two"], identifier: "envoy", to: "system@old.journal")
        do {
            let earlier = CollectingSink()
            let follower = try makeFollower(
                directory, matches: ["SYSLOG_IDENTIFIER=envoy"], startAt: .beginning, state: state.path, sink: earlier)
            follower.start(on: PollLoop())
            follower.catchUp()
            follower.saveCheckpoints()
            withExtendedLifetime(earlier) {}
        }
        try files.append(["three", "four"], identifier: "envoy")
        try FileManager.default.removeItem(atPath: directory.file("system@old.journal"))
        let sink = CollectingSink()
        let follower = try makeFollower(
            directory, matches: ["SYSLOG_IDENTIFIER=envoy"], startAt: .beginning, state: state.path, sink: sink)
        follower.start(on: PollLoop())
        follower.catchUp()
        #expect(sink.lines == ["three", "four"])
    }

    @Test func resumesFromTheSavedTimeWhenNothingMatchedYet() throws {
        let directory = try TemporaryDirectory()
        let state = try TemporaryDirectory()
        defer {
            directory.cleanUp()
            state.cleanUp()
        }
        let files = JournalFiles(directory: directory)
        try files.append(["noise"], identifier: "sshd")
        do {
            let earlier = CollectingSink()
            let follower = try makeFollower(
                directory, matches: ["SYSLOG_IDENTIFIER=envoy"], startAt: .end, state: state.path, sink: earlier)
            let loop = PollLoop()
            follower.start(on: loop)
            follower.catchUp()
            follower.saveCheckpoints()
            withExtendedLifetime(earlier) {}
        }
        let saved = try CheckpointStore(directory: state.path).load(source: "mesh")?.checkpoint
        #expect(saved?.journal?.cursor == nil)
        #expect(saved?.journal?.readUntilMicroseconds != nil)
        // Written while stopped: start-at-end alone would skip them.
        try files.append(["while stopped"], identifier: "envoy")
        let sink = CollectingSink()
        let follower = try makeFollower(
            directory, matches: ["SYSLOG_IDENTIFIER=envoy"], startAt: .end, state: state.path, sink: sink)
        follower.start(on: PollLoop())
        follower.catchUp()
        #expect(sink.lines == ["while stopped"])
    }

    @Test func startAtEndSavesTheTailAsItsPosition() throws {
        let directory = try TemporaryDirectory()
        let state = try TemporaryDirectory()
        defer {
            directory.cleanUp()
            state.cleanUp()
        }
        let files = JournalFiles(directory: directory)
        try files.append(["old"], identifier: "envoy")
        do {
            let earlier = CollectingSink()
            let follower = try makeFollower(
                directory, matches: ["SYSLOG_IDENTIFIER=envoy"], startAt: .end, state: state.path, sink: earlier)
            follower.start(on: PollLoop())
            follower.saveCheckpoints()
            withExtendedLifetime(earlier) {}
        }
        try files.append(["new"], identifier: "envoy")
        let sink = CollectingSink()
        let follower = try makeFollower(
            directory, matches: ["SYSLOG_IDENTIFIER=envoy"], startAt: .end, state: state.path, sink: sink)
        follower.start(on: PollLoop())
        follower.catchUp()
        #expect(sink.lines == ["new"])
    }

    @Test func unchangedPositionIsNotSavedAgain() throws {
        let directory = try TemporaryDirectory()
        let state = try TemporaryDirectory()
        defer {
            directory.cleanUp()
            state.cleanUp()
        }
        try JournalFiles(directory: directory).append(["one"], identifier: "envoy")
        let earlier = CollectingSink()
        let follower = try makeFollower(
            directory, matches: ["SYSLOG_IDENTIFIER=envoy"], startAt: .beginning, state: state.path, sink: earlier)
        follower.start(on: PollLoop())
        follower.catchUp()
        follower.saveCheckpoints()
        let path = try CheckpointStore(directory: state.path).path(forSource: "mesh")
        try FileManager.default.removeItem(atPath: path)
        follower.saveCheckpoints()
        #expect(!FileManager.default.fileExists(atPath: path))
        withExtendedLifetime(earlier) {}
    }

    @Test func longMessagesAreSkippedWithTheirLength() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanUp() }
        try JournalFiles(directory: directory).append(
            ["short", String(repeating: "x", count: 100), "after"], identifier: "envoy")
        let sink = CollectingSink()
        let follower = try makeFollower(
            directory, matches: ["SYSLOG_IDENTIFIER=envoy"], startAt: .beginning, sink: sink)
        follower.maxLineLength = 50
        follower.start(on: PollLoop())
        follower.catchUp()
        #expect(sink.lines == ["short", "after"])
        #expect(sink.skipped.count == 1)
        #expect(sink.skipped.first.map { $0 > 50 } == true)
    }
}

/// Keeps each line's bytes (the collecting sink decodes them as UTF-8).
final class BytesSink: LineSink {
    var lines: [[UInt8]] = []
    func streamOpened(_ stream: StreamID, info: StreamInfo) {}
    func receive(lines: UnsafeRawBufferPointer, from stream: StreamID) {}
    func receive(line: UnsafeRawBufferPointer, from stream: StreamID) { lines.append(Array(line)) }
    func skippedLongLine(length: Int, from stream: StreamID) {}
    func streamClosed(_ stream: StreamID) {}
}
