import Foundation
@testable import LogSources
import SystemCalls
import Testing

/// Source errors are counted by ``SourceErrorKind``, whose raw values are the metric's `kind`
/// labels, and none is swallowed.
@Suite struct SourceErrorTests {
    private func follower(_ directory: TemporaryDirectory, sink: CollectingSink, startAt: StartPosition = .end,
                          state: String? = nil) throws -> FileFollower {
        var options = FollowOptions()
        options.stateDirectory = state
        options.readBufferSize = 4096
        return try FileFollower(
            sources: [FileSourceSpec(name: "test", patterns: [directory.path + "/*.log"], startAt: startAt)],
            options: options, sink: sink, logger: quietLogger)
    }

    @Test func theKindLabelsAreTheDocumentedOnes() {
        #expect(SourceErrorKind.allCases.map(\.rawValue) == [
            "permission_denied", "not_found", "open_error", "read_error", "watch_limit", "watch_error", "fd_limit",
            "checkpoint_corrupt", "checkpoint_write", "journal_error",
        ])
        #expect(SourceErrorKind(opening: .permissionDenied) == .permissionDenied)
        #expect(SourceErrorKind(opening: .noSuchFile) == .notFound)
        #expect(SourceErrorKind(opening: .tooManyOpenFiles) == .fdLimit)
        #expect(SourceErrorKind(opening: .fileTooLarge) == .openError)
    }

    @Test(.enabled(if: getuid() != 0, "root reads a file of mode 000"))
    func anUnreadableFileCountsPermissionDeniedOnce() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanUp() }
        try directory.write("a.log", "secret\n")
        #expect(chmod(directory.file("a.log"), 0) == 0)
        let sink = CollectingSink()
        let loop = PollLoop()
        let follower = try follower(directory, sink: sink)
        follower.start(on: loop)
        follower.catchUp()
        follower.catchUp()
        let errors = follower.statistics(forSource: 0).errors
        #expect(errors == [.permissionDenied: 1])
        #expect(errors.keys.map(\.rawValue) == ["permission_denied"])
        #expect(sink.opened.isEmpty)
    }

    @Test func aFailedSaveCountsCheckpointWriteOnceUntilASaveSucceeds() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanUp() }
        let state = directory.file("state")
        try directory.write("a.log", "one\n")
        let sink = CollectingSink()
        let loop = PollLoop()
        let follower = try follower(directory, sink: sink, startAt: .beginning, state: state)
        follower.start(on: loop)
        run(loop) { sink.lines.count >= 1 }
        // The state directory replaced by a file: even root cannot create a file in it.
        try FileManager.default.removeItem(atPath: state)
        try directory.write("state", "not a directory\n")
        #expect(!follower.saveCheckpoints())
        try directory.write("a.log", "two\n")
        run(loop) { sink.lines.count >= 2 }
        #expect(!follower.saveCheckpoints())
        #expect(follower.statistics(forSource: 0).errors == [.checkpointWrite: 1])
        try FileManager.default.removeItem(atPath: state)
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: false)
        #expect(follower.saveCheckpoints())
        #expect(follower.statistics(forSource: 0).errors == [.checkpointWrite: 1])
    }

    /// `fstat` failing on a followed file: the file is not read (its position may be past a
    /// truncation), the failure is counted once as `read_error`, and once `fstat` works again
    /// the truncation is found and the file read from its start.
    @Test func aFailingFstatIsCountedAndTheFileIsNotReadPastATruncation() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanUp() }
        try directory.write("a.log", "")
        let sink = CollectingSink()
        let loop = PollLoop()
        let follower = try follower(directory, sink: sink)
        follower.start(on: loop)
        try directory.write("a.log", "first line that is long enough\n")
        run(loop) { sink.lines.count >= 1 }
        #expect(sink.lines == ["first line that is long enough"])

        follower.statusOfOpenFile = { _ throws(Errno) in throw Errno(rawValue: EIO) }
        // Truncated and written again past the old position: read from there, this would hand
        // on the tail of the new first line.
        try directory.write("a.log", "a new first line, longer than the old one was\n", append: false)
        run(loop, timeout: 0.5) { false }
        follower.catchUp()
        #expect(sink.lines == ["first line that is long enough"])
        #expect(follower.statistics(forSource: 0).errors == [.readError: 1])

        follower.statusOfOpenFile = { descriptor throws(Errno) in try descriptor.status() }
        follower.catchUp()
        #expect(sink.lines == ["first line that is long enough", "a new first line, longer than the old one was"])
        #expect(follower.statistics(forSource: 0).errors == [.readError: 1])
    }
}
