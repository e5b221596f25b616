import Foundation
import LogSources
import SystemCalls
import Testing

@Suite struct FileFollowerTests {
    private func follower(
        _ directory: TemporaryDirectory, sink: CollectingSink, startAt: StartPosition = .end,
        state: String? = nil, maxLineLength: Int = 64 * 1024
    ) throws -> FileFollower {
        var options = FollowOptions()
        options.stateDirectory = state
        options.maxLineLength = maxLineLength
        options.readBufferSize = 4096
        return try FileFollower(
            sources: [FileSourceSpec(name: "test", patterns: [directory.path + "/*.log"], startAt: startAt)],
            options: options, sink: sink, logger: quietLogger)
    }

    @Test func startsAtTheEndOfTheLastCompleteLineAndHoldsPartialLines() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanUp() }
        try directory.write("a.log", "old 1\nold 2\npartial")
        let sink = CollectingSink()
        let loop = PollLoop()
        let follower = try follower(directory, sink: sink)
        follower.start(on: loop)
        try directory.write("a.log", " end\nnew\nno newline yet")
        run(loop) { sink.lines.count >= 2 }
        #expect(sink.lines == ["partial end", "new"])
        try directory.write("a.log", "\n")
        run(loop) { sink.lines.count >= 3 }
        #expect(sink.lines == ["partial end", "new", "no newline yet"])
    }

    @Test("a file matched by two sources' patterns is read by the first one only, also once it is rotated")
    func overlappingPatternsReadEachFileOnce() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanUp() }
        try directory.write("a.log", "one\ntwo\n")
        try directory.write("b.txt", "three\n")
        var options = FollowOptions()
        options.readBufferSize = 4096
        options.rotatedFileGrace = 0.2
        options.checkpointInterval = 0.1
        options.rescanInterval = 0.1
        let sink = CollectingSink()
        let loop = PollLoop()
        // "all" matches a.log too; "envoy" comes first in the config, so it reads a.log.
        let follower = try FileFollower(
            sources: [
                FileSourceSpec(name: "envoy", patterns: [directory.path + "/*.log"], startAt: .beginning),
                FileSourceSpec(name: "all", patterns: [directory.path + "/*"], startAt: .beginning),
            ],
            options: options, sink: sink, logger: quietLogger)
        follower.start(on: loop)
        run(loop) { sink.lines.count >= 3 }
        #expect(sink.lines.sorted() == ["one", "three", "two"])
        #expect(
            Set(sink.opened.values.map { "\($0.source) \($0.path.split(separator: "/").last ?? "")" })
                == ["envoy a.log", "all b.txt"])
        #expect(follower.statistics(forSource: 1).errors[.duplicateFile] == 1)
        #expect(follower.statistics(forSource: 0).errors[.duplicateFile] == nil)

        // Rotated: a.log.1 is no longer "envoy"'s, but it read it; "all" must not read it
        // again once "envoy" has closed it.
        try FileManager.default.moveItem(atPath: directory.path + "/a.log", toPath: directory.path + "/a.log.1")
        try directory.write("a.log.1", "four\n")
        try directory.write("a.log", "five\n")
        run(loop) { sink.lines.count >= 5 && sink.closed.count >= 1 }
        run(loop, timeout: 1) { false }  // several rescans after the close
        #expect(sink.lines.sorted() == ["five", "four", "one", "three", "two"])
        #expect(sink.closed.count == 1)
        // Counted once per file: a.log.1 is the file counted as a.log, and the new a.log's path
        // is already reported.
        #expect(follower.statistics(forSource: 1).errors[.duplicateFile] == 1)
        _ = follower.stop(on: loop)
    }

    @Test("after a restart the second source resumes a rotated duplicate where the first left it")
    func overlappingPatternsAcrossARestart() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanUp() }
        let state = directory.path + "/state"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        let logs = directory.path + "/logs"
        try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
        try directory.write("logs/a.log", "one\ntwo\n")
        func follower(_ sink: CollectingSink) throws -> FileFollower {
            var options = FollowOptions()
            options.readBufferSize = 4096
            options.rotatedFileGrace = 0.2
            options.checkpointInterval = 0.1
            options.rescanInterval = 0.1
            options.stateDirectory = state
            return try FileFollower(
                sources: [
                    FileSourceSpec(name: "envoy", patterns: [logs + "/*.log"], startAt: .beginning),
                    FileSourceSpec(name: "all", patterns: [logs + "/*"], startAt: .beginning),
                ],
                options: options, sink: sink, logger: quietLogger)
        }
        let firstSink = CollectingSink()
        let loop = PollLoop()
        let first = try follower(firstSink)
        first.start(on: loop)
        run(loop) { firstSink.lines.count >= 2 }
        try FileManager.default.moveItem(atPath: logs + "/a.log", toPath: logs + "/a.log.1")
        try directory.write("logs/a.log.1", "three\n")
        try directory.write("logs/a.log", "four\n")
        run(loop) { firstSink.lines.count >= 4 && firstSink.closed.count >= 1 }
        run(loop, timeout: 0.5) { false }
        _ = first.stop(on: loop)
        #expect(firstSink.lines.sorted() == ["four", "one", "three", "two"])

        // Restarted: "envoy" resumes a.log, "all" alone matches a.log.1 and resumes it at its
        // end, where "envoy" left it; a.log's new line is read once.
        try directory.write("logs/a.log", "five\n")
        let secondSink = CollectingSink()
        let second = try follower(secondSink)
        second.start(on: loop)
        run(loop) { secondSink.lines.count >= 1 }
        run(loop, timeout: 0.5) { false }
        #expect(secondSink.lines == ["five"])
        #expect(
            Set(secondSink.opened.values.map { "\($0.source) \($0.path.split(separator: "/").last ?? "")" })
                == ["envoy a.log", "all a.log.1"])
        _ = second.stop(on: loop)
    }

    @Test func beginningReadsExistingLines() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanUp() }
        try directory.write("a.log", "one\ntwo\n")
        let sink = CollectingSink()
        let loop = PollLoop()
        let follower = try follower(directory, sink: sink, startAt: .beginning)
        follower.start(on: loop)
        run(loop) { sink.lines.count >= 2 }
        #expect(sink.lines == ["one", "two"])
    }

    @Test func longLinesAreSkippedWithTheirLength() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanUp() }
        try directory.write("a.log", "")
        let sink = CollectingSink()
        let loop = PollLoop()
        let follower = try follower(directory, sink: sink, maxLineLength: 100)
        follower.start(on: loop)
        let long = String(repeating: "x", count: 10_000)
        try directory.write("a.log", "short\n" + long + "\r\nafter\n")
        run(loop) { sink.lines.count >= 2 }
        #expect(sink.lines == ["short", "after"])
        #expect(sink.skipped == [10_000])
    }

    @Test func copytruncateRestartsAtZero() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanUp() }
        try directory.write("a.log", "")
        let sink = CollectingSink()
        let loop = PollLoop()
        let follower = try follower(directory, sink: sink)
        follower.start(on: loop)
        try directory.write("a.log", "first line that is long enough\nsecond\n")
        run(loop) { sink.lines.count >= 2 }
        try directory.write("a.log", "after truncation\n", append: false)
        run(loop) { sink.lines.count >= 3 }
        #expect(sink.lines == ["first line that is long enough", "second", "after truncation"])
    }

    @Test func checkpointsResumeExactlyAndSurviveRotationWhileStopped() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanUp() }
        let state = directory.file("state")
        try directory.write("a.log", "before start\n")
        do {
            let sink = CollectingSink()
            let loop = PollLoop()
            let follower = try follower(directory, sink: sink, state: state)
            follower.start(on: loop)
            try directory.write("a.log", "one\ntwo\n")
            run(loop) { sink.lines.count >= 2 }
            #expect(sink.lines == ["one", "two"])
            follower.saveCheckpoints()
        }
        // While stopped: more lines, then a rename rotation and a new file.
        try directory.write("a.log", "three\n")
        try FileSystem.rename(directory.file("a.log"), to: directory.file("a.log.1"))
        try directory.write("a.log", "four\n")
        let sink = CollectingSink()
        let loop = PollLoop()
        let follower = try follower(directory, sink: sink, state: state)
        follower.start(on: loop)
        run(loop) { sink.lines.count >= 2 }
        #expect(sink.lines.sorted() == ["four", "three"])
    }

    @Test func inodeReuseIsNotTakenForTheCheckpointedFile() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanUp() }
        let state = directory.file("state")
        try directory.write("a.log", "an old file with its own first bytes\n")
        let status = try FileStatus(path: directory.file("a.log"))
        // A checkpoint for this inode whose fingerprint belongs to other content.
        let store = try CheckpointStore(directory: state)
        let other = "different content\n".utf8.map { $0 }
        let fingerprint = other.withUnsafeBytes { FileFingerprint(of: $0) }
        try store.save(
            SourceCheckpoint(
                source: "test",
                files: [
                    FileCheckpoint(
                        path: directory.file("a.log"), device: status.device, inode: status.inode,
                        fingerprint: fingerprint, offset: 18)
                ]))
        let sink = CollectingSink()
        let loop = PollLoop()
        let follower = try follower(directory, sink: sink, state: state)
        follower.start(on: loop)
        run(loop) { !sink.lines.isEmpty }
        #expect(sink.lines == ["an old file with its own first bytes"])
    }
}

@Suite struct PathPatternTests {
    @Test func wildcardsInDirectoriesAndNames() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanUp() }
        for pod in ["ns_a_1", "ns_b_2", "ns_c_3"] {
            try FileManager.default.createDirectory(
                atPath: directory.file("\(pod)/istio-proxy"), withIntermediateDirectories: true)
            try directory.write("\(pod)/istio-proxy/0.log", "x\n")
        }
        try FileManager.default.createDirectory(atPath: directory.file("ns_d_4/app"), withIntermediateDirectories: true)
        let expansion = PathPattern(directory.path + "/*/istio-proxy/*.log").expand()
        #expect(
            expansion.paths
                == ["a", "b", "c"].enumerated().map {
                    directory.file("ns_\($0.element)_\($0.offset + 1)/istio-proxy/0.log")
                })
        #expect(expansion.errors.isEmpty)
        // Watched: the pods directory, every pod directory (istio-proxy may appear), each istio-proxy.
        #expect(
            Set(expansion.directories).isSuperset(of: [
                directory.path, directory.file("ns_d_4"), directory.file("ns_a_1/istio-proxy"),
            ]))
    }

    @Test func missingFixedDirectoryIsAnErrorAndItsParentIsWatched() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanUp() }
        let expansion = PathPattern(directory.path + "/envoy/*.log").expand()
        #expect(expansion.paths.isEmpty)
        #expect(expansion.errors.map(\.path) == [directory.file("envoy")])
        #expect(expansion.directories == [directory.path])
    }
}

@Suite struct CheckpointStoreTests {
    @Test func roundTripAndSafeNames() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanUp() }
        let store = try CheckpointStore(directory: directory.file("state/nested"))
        let checkpoint = SourceCheckpoint(
            source: "../evil name",
            files: [
                FileCheckpoint(path: "/x", device: 1, inode: 2, fingerprint: .empty, offset: 3)
            ])
        try store.save(checkpoint)
        #expect(try store.load(source: "../evil name")?.checkpoint == checkpoint)
        #expect(store.path(forSource: "../evil name").hasPrefix(directory.file("state/nested/")))
        #expect(!store.path(forSource: "../evil name").dropFirst(directory.file("state/nested/").count).contains("/"))
        #expect(try store.load(source: "absent") == nil)
    }
}

@Suite struct BytesReadTests {
    @Test func partialLinesAreCountedOnceWhenConsumed() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanUp() }
        try directory.write("a.log", "")
        let sink = CollectingSink()
        let loop = PollLoop()
        var options = FollowOptions()
        options.readBufferSize = 4096
        let follower = try FileFollower(
            sources: [FileSourceSpec(name: "test", patterns: [directory.path + "/*.log"])],
            options: options, sink: sink, logger: quietLogger)
        follower.start(on: loop)
        try directory.write("a.log", "first\nsec")
        run(loop) { sink.lines.count >= 1 }
        run(loop, timeout: 0.2) { false }
        try directory.write("a.log", "ond\n")
        run(loop) { sink.lines.count >= 2 }
        #expect(sink.lines == ["first", "second"])
        #expect(follower.statistics(forSource: 0).bytesRead == UInt64("first\nsecond\n".utf8.count))
    }
}

/// Checkpoints are read from a state directory that outlives versions, disks and hands: whatever
/// is there must neither stall a file nor stop the follower.
@Suite struct DamagedCheckpointTests {
    private func follower(_ directory: TemporaryDirectory, sink: CollectingSink, state: String) throws -> FileFollower {
        var options = FollowOptions()
        options.stateDirectory = state
        options.readBufferSize = 4096
        return try FileFollower(
            sources: [FileSourceSpec(name: "test", patterns: [directory.path + "/*.log"], startAt: .end)],
            options: options, sink: sink, logger: quietLogger)
    }

    @Test func aNegativeCheckpointOffsetIsCountedAsCorruptAndTheFileStartsAtItsEnd() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanUp() }
        let state = directory.file("state")
        try directory.write("a.log", "written before the start\n")
        let status = try FileStatus(path: directory.file("a.log"))
        let fingerprint = Array("written before the start\n".utf8).withUnsafeBytes { FileFingerprint(of: $0) }
        try CheckpointStore(directory: state).save(
            SourceCheckpoint(
                source: "test",
                files: [
                    FileCheckpoint(
                        path: directory.file("a.log"), device: status.device, inode: status.inode,
                        fingerprint: fingerprint, offset: -5)
                ]))
        let sink = CollectingSink()
        let loop = PollLoop()
        let follower = try follower(directory, sink: sink, state: state)
        follower.start(on: loop)
        try directory.write("a.log", "after the start\n")
        run(loop) { !sink.lines.isEmpty }
        #expect(sink.lines == ["after the start"])
        #expect(follower.statistics(forSource: 0).errors == [.checkpointCorrupt: 1])
    }

    @Test func aCheckpointOfAnUnknownVersionIsCorrupt() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanUp() }
        let store = try CheckpointStore(directory: directory.path)
        try Data(#"{"version":2,"source":"test","files":[]}"#.utf8).write(
            to: URL(fileURLWithPath: store.path(forSource: "test")))
        #expect(throws: CheckpointStore.LoadError.self) { try store.load(source: "test") }
    }

    @Test func aCheckpointFileLargerThanTheCapIsRefusedUnread() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanUp() }
        let store = try CheckpointStore(directory: directory.path)
        // Valid JSON, padded with spaces to one byte over 4 MiB.
        let valid = #"{"version":1,"source":"test","files":[]}"#
        let padded = valid + String(repeating: " ", count: 4 * 1024 * 1024 + 1 - valid.utf8.count)
        try Data(padded.utf8).write(to: URL(fileURLWithPath: store.path(forSource: "test")))
        #expect(throws: CheckpointStore.LoadError.self) { try store.load(source: "test") }
        // At the cap exactly it is read.
        try Data(padded.utf8.dropLast()).write(to: URL(fileURLWithPath: store.path(forSource: "test")))
        #expect(try store.load(source: "test") != nil)
    }

    @Test func aCheckpointPathThatIsASymbolicLinkIsNotFollowed() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanUp() }
        let store = try CheckpointStore(directory: directory.file("state"))
        try Data(#"{"version":1,"source":"test","files":[]}"#.utf8).write(
            to: URL(fileURLWithPath: directory.file("elsewhere.json")))
        try FileManager.default.createSymbolicLink(
            atPath: store.path(forSource: "test"), withDestinationPath: directory.file("elsewhere.json"))
        #expect(throws: CheckpointStore.LoadError.self) { try store.load(source: "test") }
    }

    @Test func aFIFOAtTheCheckpointPathIsRefusedWithoutBlocking() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanUp() }
        let store = try CheckpointStore(directory: directory.path)
        #expect(mkfifo(store.path(forSource: "test"), 0o600) == 0)
        // Without O_NONBLOCK, open(2) would wait for a writer forever here.
        #expect(throws: CheckpointStore.LoadError.self) { try store.load(source: "test") }
    }
}

/// More files than descriptors: they take turns, each read from where it stood, never from 0 again.
@Suite struct DescriptorBudgetTests {
    private func follower(_ directory: TemporaryDirectory, sink: CollectingSink, state: String? = nil) throws
        -> FileFollower
    {
        var options = FollowOptions()
        options.stateDirectory = state
        options.readBufferSize = 4096
        options.maxOpenFiles = 2
        options.rescanInterval = 0.05
        options.checkpointInterval = 0.05
        return try FileFollower(
            sources: [FileSourceSpec(name: "test", patterns: [directory.path + "/*.log"], startAt: .end)],
            options: options, sink: sink, logger: quietLogger)
    }

    @Test func filesBeyondTheDescriptorBudgetWaitTheirTurnAndKeepTheirStartPosition() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanUp() }
        let names = (0..<5).map { "f\($0).log" }
        for name in names { try directory.write(name, "before the start in \(name)\n") }
        let sink = CollectingSink()
        let loop = PollLoop()
        let follower = try follower(directory, sink: sink)
        follower.start(on: loop)
        #expect(follower.statistics(forSource: 0).openStreams == 2)
        #expect(follower.statistics(forSource: 0).errors == [.fdLimit: 3])
        for name in names { try directory.write(name, "first in \(name)\n") }
        run(loop) { sink.lines.count >= 5 }
        run(loop, timeout: 0.5) { false }  // ten more rescans: nothing is read twice
        #expect(sink.lines.sorted() == names.map { "first in \($0)" })
        for name in names { try directory.write(name, "second in \(name)\n") }
        run(loop) { sink.lines.count >= 10 }
        run(loop, timeout: 0.5) { false }
        #expect(sink.lines.sorted() == (names.map { "first in \($0)" } + names.map { "second in \($0)" }).sorted())
        #expect(follower.statistics(forSource: 0).openStreams <= 2)
    }

    @Test func positionsOfFilesWithoutADescriptorAreSavedAndResumed() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanUp() }
        let state = directory.file("state")
        let names = (0..<5).map { "f\($0).log" }
        for name in names { try directory.write(name, "before the start in \(name)\n") }
        do {
            let sink = CollectingSink()
            let loop = PollLoop()
            let follower = try follower(directory, sink: sink, state: state)
            follower.start(on: loop)
            for name in names { try directory.write(name, "first in \(name)\n") }
            run(loop) { sink.lines.count >= 5 }
            #expect(follower.saveCheckpoints())
        }
        for name in names { try directory.write(name, "while stopped in \(name)\n") }
        let sink = CollectingSink()
        let loop = PollLoop()
        let follower = try follower(directory, sink: sink, state: state)
        follower.start(on: loop)
        run(loop) { sink.lines.count >= 5 }
        run(loop, timeout: 0.5) { false }
        #expect(sink.lines.sorted() == names.map { "while stopped in \($0)" })
    }
}

@Suite struct CheckpointValidationTests {
    private func load(_ json: String) throws -> LoadedCheckpoint? {
        let directory = try TemporaryDirectory()
        defer { directory.cleanUp() }
        let store = try CheckpointStore(directory: directory.path)
        try Data(json.utf8).write(to: URL(fileURLWithPath: store.path(forSource: "test")))
        return try store.load(source: "test")
    }

    private static let good =
        #"{"path":"/var/log/a.log","device":2049,"inode":77,"fingerprint":{"length":3,"hash":5},"offset":10}"#

    @Test(arguments: [
        (#""offset":10"#, #""offset":-1"#, "offset -1 below zero"),
        (#""length":3"#, #""length":257"#, "fingerprint length 257 outside 0...256"),
        (#""length":3"#, #""length":-2"#, "fingerprint length -2 outside 0...256"),
        (#""length":3"#, #""length":0"#, "fingerprint of no bytes with a hash of some"),
        (#""inode":77"#, #""inode":0"#, "inode 0"),
        (#""device":2049"#, #""device":0"#, "device 0"),
        (#""path":"/var/log/a.log""#, #""path":"""#, "empty path"),
        (#""path":"/var/log/a.log""#, #""path":"/var/log/a\u0000.log""#, "NUL byte in the path"),
    ])
    func eachInvalidFileEntryIsLeftOutWithItsReason(field: String, damaged: String, reason: String) throws {
        let other = Self.good.replacingOccurrences(of: "\"inode\":77", with: "\"inode\":78")
        let entry = Self.good.replacingOccurrences(of: field, with: damaged)
        let loaded = try #require(try load(#"{"version":1,"source":"test","files":["# + entry + "," + other + "]}"))
        #expect(loaded.checkpoint.files?.map(\.inode) == [78])
        #expect(loaded.rejectedFiles.map(\.reason) == [reason])
    }

    @Test func aSecondEntryForOneFileIsLeftOut() throws {
        let loaded = try #require(
            try load(#"{"version":1,"source":"test","files":["# + Self.good + "," + Self.good + "]}"))
        #expect(loaded.checkpoint.files?.count == 1)
        #expect(loaded.rejectedFiles.map(\.reason) == ["a second entry for device 2049 inode 77"])
    }

    @Test(arguments: [
        #"{"version":1,"source":"another","files":[]}"#,
        #"{"version":0,"source":"test","files":[]}"#,
        #"{"version":1,"source":"test","journal":{"cursor":"not a cursor"}}"#,
        #"{"version":1,"source":"test","journal":{"cursor":""}}"#,
        #"{"version":1,"source":"test","journal":{"readUntilMicroseconds":5}}"#,
        #"{"version":1,"source":"test","journal":{"readUntilMicroseconds":99999999999999999}}"#,
    ])
    func aCheckpointOfAnotherSourceOrWithAnInvalidJournalPositionIsCorrupt(json: String) throws {
        #expect(throws: CheckpointStore.LoadError.self) { try load(json) }
    }

    @Test func aRealJournalPositionIsAccepted() throws {
        let now = UInt64(Date().timeIntervalSince1970 * 1e6)
        let cursor =
            "s=739ad463348b4ceca5a9e69c95a3c93f;i=4ece7;b=6c7c6013a8cc4d1e8d1e3a0b2d1c6a5e;m=5f2ba38a;t=56c4c4b0b6b1b;x=eb8b0c1b3d6ec1a3"
        let loaded = try load(
            #"{"version":1,"source":"test","journal":{"cursor":""# + cursor + #"","readUntilMicroseconds":\#(now)}}"#)
        #expect(loaded?.checkpoint.journal == JournalCheckpoint(cursor: cursor, readUntilMicroseconds: now))
    }

    @Test func aCheckpointOverTheCapIsNotWritten() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanUp() }
        let store = try CheckpointStore(directory: directory.path)
        let longPath = "/" + String(repeating: "p", count: 4000)
        let files = (1...1100).map {
            FileCheckpoint(path: longPath, device: 1, inode: UInt64($0), fingerprint: .empty, offset: 0)
        }
        #expect(throws: Errno.fileTooLarge) { try store.save(SourceCheckpoint(source: "test", files: files)) }
        #expect(try store.load(source: "test") == nil)
    }
}
