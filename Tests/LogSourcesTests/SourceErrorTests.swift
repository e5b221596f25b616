import Foundation
import SystemCalls
import Testing

@testable import LogSources

/// Source errors are counted by ``SourceErrorKind``, whose raw values are the metric's `kind`
/// labels, and none is swallowed.
@Suite struct SourceErrorTests {
    /// A follower of `*.log` in a fresh directory, started on its own loop.
    private struct Following {
        let directory: TemporaryDirectory
        let sink = CollectingSink()
        let loop = PollLoop()
        let follower: FileFollower

        init(writing initial: String, startAt: StartPosition, stateDirectory: String? = nil) throws {
            directory = try TemporaryDirectory()
            try directory.write("a.log", initial)
            var options = FollowOptions()
            options.stateDirectory = stateDirectory.map(directory.file)
            options.readBufferSize = 4096
            follower = try FileFollower(
                sources: [FileSourceSpec(name: "test", patterns: [directory.path + "/*.log"], startAt: startAt)],
                options: options, sink: sink, logger: quietLogger)
            follower.start(on: loop)
        }

        var errors: [SourceErrorKind: UInt64] { follower.statistics(forSource: 0).errors }
    }

    @Test func theKindLabelsAreTheDocumentedOnes() {
        #expect(
            SourceErrorKind.allCases.map(\.rawValue) == [
                "permission_denied", "not_found", "open_error", "read_error", "watch_limit", "watch_error", "fd_limit",
                "checkpoint_corrupt", "checkpoint_write", "journal_error", "duplicate_file",
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
        var options = FollowOptions()
        options.rescanInterval = 0.05
        let sink = CollectingSink()
        let loop = PollLoop()
        let follower = try FileFollower(
            sources: [FileSourceSpec(name: "test", patterns: [directory.file("a.log")])],
            options: options, sink: sink, logger: quietLogger)
        follower.start(on: loop)
        // Several rescans: the error is counted once, until it clears.
        run(loop, timeout: 0.3) { false }
        let errors = follower.statistics(forSource: 0).errors
        #expect(errors == [.permissionDenied: 1])
        #expect(errors.keys.map(\.rawValue) == ["permission_denied"])
        #expect(sink.opened.isEmpty)
    }

    @Test func aFailedSaveCountsCheckpointWriteOnceUntilASaveSucceeds() throws {
        let following = try Following(writing: "one\n", startAt: .beginning, stateDirectory: "state")
        let (directory, follower) = (following.directory, following.follower)
        defer { directory.cleanUp() }
        let state = directory.file("state")
        run(following.loop) { following.sink.lines.count >= 1 }
        // The state directory replaced by a file: even root cannot create a file in it.
        try FileManager.default.removeItem(atPath: state)
        try directory.write("state", "not a directory\n")
        #expect(!follower.saveCheckpoints())
        try directory.write("a.log", "two\n")
        run(following.loop) { following.sink.lines.count >= 2 }
        #expect(!follower.saveCheckpoints())
        #expect(following.errors == [.checkpointWrite: 1])
        try FileManager.default.removeItem(atPath: state)
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: false)
        #expect(follower.saveCheckpoints())
        #expect(following.errors == [.checkpointWrite: 1])
    }

    /// `fstat` failing on a followed file: the file is not read (its position may be past a
    /// truncation), the failure is counted once as `read_error`, and once `fstat` works again
    /// the truncation is found and the file read from its start.
    @Test func aFailingFstatIsCountedAndTheFileIsNotReadPastATruncation() throws {
        let following = try Following(writing: "first line that is long enough\n", startAt: .beginning)
        let (directory, sink, loop, follower) = (
            following.directory, following.sink, following.loop, following.follower
        )
        defer { directory.cleanUp() }
        follower.catchUp()
        #expect(sink.lines == ["first line that is long enough"])

        follower.statusOfOpenFile = { _ throws(Errno) in throw Errno(rawValue: EIO) }
        // Truncated and written again past the old position: read from there, this would hand
        // on the tail of the new first line.
        try directory.write("a.log", "a new first line, longer than the old one was\n", append: false)
        run(loop, timeout: 0.5) { false }
        follower.catchUp()
        #expect(sink.lines == ["first line that is long enough"])
        #expect(following.errors == [.readError: 1])

        follower.statusOfOpenFile = { descriptor throws(Errno) in try descriptor.status() }
        follower.catchUp()
        #expect(sink.lines == ["first line that is long enough", "a new first line, longer than the old one was"])
        #expect(following.errors == [.readError: 1])
    }
}
