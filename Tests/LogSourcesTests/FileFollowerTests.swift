import Foundation
import LogSources
import SystemCalls
import Testing

@Suite struct FileFollowerTests {
    private func follower(_ directory: TemporaryDirectory, sink: CollectingSink, startAt: StartPosition = .end,
                          state: String? = nil, maxLineLength: Int = 64 * 1024) throws -> FileFollower {
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
        try store.save(SourceCheckpoint(source: "test", files: [
            FileCheckpoint(path: directory.file("a.log"), device: status.device, inode: status.inode,
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
            try FileManager.default.createDirectory(atPath: directory.file("\(pod)/istio-proxy"), withIntermediateDirectories: true)
            try directory.write("\(pod)/istio-proxy/0.log", "x\n")
        }
        try FileManager.default.createDirectory(atPath: directory.file("ns_d_4/app"), withIntermediateDirectories: true)
        let expansion = PathPattern(directory.path + "/*/istio-proxy/*.log").expand()
        #expect(expansion.paths == ["a", "b", "c"].enumerated().map { directory.file("ns_\($0.element)_\($0.offset + 1)/istio-proxy/0.log") })
        #expect(expansion.errors.isEmpty)
        // Watched: the pods directory, every pod directory (istio-proxy may appear), each istio-proxy.
        #expect(Set(expansion.directories).isSuperset(of: [directory.path, directory.file("ns_d_4"), directory.file("ns_a_1/istio-proxy")]))
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
        let checkpoint = SourceCheckpoint(source: "../evil name", files: [
            FileCheckpoint(path: "/x", device: 1, inode: 2, fingerprint: .empty, offset: 3)
        ])
        try store.save(checkpoint)
        #expect(try store.load(source: "../evil name") == checkpoint)
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
