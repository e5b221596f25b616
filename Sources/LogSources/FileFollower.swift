import Logging
import SystemCalls

#if canImport(Glibc)
    import Glibc
#endif

/// A configured set of files to follow: paths and wildcard patterns.
public struct FileSourceSpec: Sendable, Equatable {
    public var name: String
    public var patterns: [String]
    public var startAt: StartPosition

    public init(name: String, patterns: [String], startAt: StartPosition = .end) {
        self.name = name
        self.patterns = patterns
        self.startAt = startAt
    }
}

/// How files are followed; the defaults suit a node with a few busy logs or many quiet ones.
/// Where a source stands when its follower is replaced: what the next one resumes from.
public struct FileSourceHandoff: Sendable {
    public var files: [FileCheckpoint]
    public var statistics: SourceStatistics
}

public struct FollowOptions: Sendable, Equatable {
    /// Every so often every pattern is expanded again and every open file checked, whatever
    /// inotify said: this catches what it cannot see (NFS, a lost watch).
    public var rescanInterval: Double = 10
    /// How often positions are saved in the state directory (and rotated files closed).
    public var checkpointInterval: Double = 5
    /// A rotated or deleted file is closed once it has been read to its end and has not grown
    /// for this long (the writer may go on appending until it reopens its log).
    public var rotatedFileGrace: Double = 5
    /// Longer lines are skipped without being buffered (reported to the sink).
    public var maxLineLength = 64 * 1024
    /// One read buffer shared by all files; also the most read from one file in one go.
    public var readBufferSize = 4 * 1024 * 1024
    /// Where checkpoints are kept; nil: positions are not saved.
    public var stateDirectory: String?
    /// How many files may be open at once; nil: the soft RLIMIT_NOFILE less a reserve (see
    /// ``FileFollower/defaultDescriptorBudget()``). Files past it wait with their position.
    public var maxOpenFiles: Int?

    public init() {}
}

/// Follows the files of several sources: inotify tells when a file grows or a directory
/// changes, a slow rescan catches the rest, and each file is read from the end of the last
/// complete line handed to the sink, so nothing is counted twice or skipped.
///
/// Rotation by rename: the old file stays open (it is identified by device and inode, not by
/// name) and is read to its end; the new file is a new stream, read from offset 0. Copytruncate:
/// a size below the position, or changed first bytes, restart the file at 0. Everything runs on
/// the ``PollLoop``'s thread.
public final class FileFollower {
    /// The configured sources, in configuration order (a source's index is its position here).
    private var sources: [FollowedSource]
    private let options: FollowOptions
    private unowned let sink: any LineSink
    private let logger: Logger
    private let inotify: Inotify?
    /// Nil: positions are not saved (no state directory).
    private var checkpoints: CheckpointKeeper?
    private var buffer: UnsafeMutableRawBufferPointer

    /// How many files may be open at once (``FollowOptions/maxOpenFiles``).
    private let descriptorBudget: Int
    /// Orders files waiting for a descriptor: the longest waiting gets the next one.
    private var waitSequence: UInt64 = 0
    /// Whether the shortage of descriptors was logged (once: under a lasting shortage files take
    /// turns at every rescan, and the count of `fd_limit` errors tells how often).
    private var shortageLogged = false
    private var dirtySources = Set<Int>()
    private var pendingReads = Set<StreamID>()
    private var streams: [StreamID: FollowedFile] = [:]
    private var directoryWatches: [Int32: DirectoryWatch] = [:]
    private var fileWatches: [Int32: [StreamID]] = [:]
    private var nextStream: Int
    private var initialScanDone = false
    /// The duplicates (``FollowedSource/duplicates``) the running rescan matched.
    private var duplicatesSeen = Set<FileIdentity>()
    /// `fstat` of a followed file; replaced by tests to make it fail.
    var statusOfOpenFile: (FileDescriptor) throws(Errno) -> FileStatus = { descriptor throws(Errno) in
        try descriptor.status()
    }
    /// What ``start(on:)`` registered, so ``stop(on:)`` can take it back.
    private var registrations: (timers: [PollLoop.TimerID], busyHook: PollLoop.BusyHookID?) = ([], nil)

    /// One configured source and what the follower keeps about it.
    private struct FollowedSource {
        let spec: FileSourceSpec
        /// Its open files.
        var files: [FileIdentity: FollowedFile] = [:]
        /// Its matched files without a descriptor (see ``ParkedFile``).
        var parked: [FileIdentity: ParkedFile] = [:]
        /// Paths whose checkpoint entry was invalid: they start per the source's start_at, as
        /// if seen for the first time, although the source has saved state.
        var startsAsConfigured: Set<String> = []
        var statistics = SourceStatistics()
        /// Checkpoints loaded at startup (or handed over) and not yet matched to a file.
        var savedCheckpoints: [FileCheckpoint] = []
        /// Whether it had saved state: a file it does not know is new since the last run.
        var hadSavedState = false
        /// Errors already logged, by path, so each is logged once until it clears.
        var reportedErrors: Set<String> = []
        /// Matched files another source read first: skipped for as long as this source's
        /// patterns match them, also once the other source is done with them (a rotated file
        /// it read to its end), so that their lines are never read a second time. Each with the
        /// position this source saves for it: where the reading source is, and once that one
        /// let it go, the file's end. After a restart this source, if it is then the only one
        /// that matches the file, resumes there instead of reading it from its start.
        var duplicates: [FileIdentity: DuplicateFile] = [:]

        init(spec: FileSourceSpec) { self.spec = spec }
    }

    /// A matched file that holds no descriptor: there were none left when it was found, or it
    /// gave its descriptor up to a waiting file after being read to its end. It resumes from
    /// `checkpoint` (its fingerprint checked again when it is opened).
    struct ParkedFile {
        var checkpoint: FileCheckpoint
        /// Its size when it was last read to its end; nil if it was never read by this follower.
        var sizeWhenParked: Int?
        /// Set while it has something to read and waits for a descriptor (a ``waitSequence``).
        var waitingSince: UInt64?
    }

    /// A file another source reads (``FollowedSource/duplicates``), with the position this
    /// source saves for it; `released` once the reading source let it go (the position is then
    /// final: the file's end).
    private struct DuplicateFile {
        var checkpoint: FileCheckpoint
        var released = false
    }

    private struct DirectoryWatch {
        var path: String
        var sources: Set<Int>
    }

    /// Device and inode.
    struct FileIdentity: Hashable {
        var device: UInt64
        var inode: UInt64
    }

    final class FollowedFile {
        let stream: StreamID
        let source: Int
        let identity: FileIdentity
        let descriptor: FileDescriptor
        var path: String
        var fingerprint: FileFingerprint
        /// Just after the last complete line handed on: what a checkpoint saves.
        var committedOffset: Int
        /// Where the next read starts (ahead of `committedOffset` only inside a skipped line).
        var readOffset: Int
        /// Inside a line too long to keep: its length so far. `silent`: the line was already
        /// under way when following started, so it is dropped without a report.
        var skipping: (length: Int, silent: Bool, endsWithCR: Bool)?
        var watch: Int32?
        /// No longer reachable through the source's patterns (renamed away or deleted).
        var isOrphan = false
        var lastActivity: Double

        init(
            stream: StreamID, source: Int, identity: FileIdentity, descriptor: FileDescriptor, path: String,
            fingerprint: FileFingerprint, offset: Int, now: Double
        ) {
            self.stream = stream
            self.source = source
            self.identity = identity
            self.descriptor = descriptor
            self.path = path
            self.fingerprint = fingerprint
            committedOffset = offset
            readOffset = offset
            lastActivity = now
        }

        /// Its position as a checkpoint saves it: just after the last complete line handed on.
        var checkpoint: FileCheckpoint {
            FileCheckpoint(
                path: path, device: identity.device, inode: identity.inode, fingerprint: fingerprint,
                offset: committedOffset)
        }
    }

    /// - Parameter firstStream: stream ids handed out start here (so several sources' ids
    ///   do not collide).
    ///   - handoff: positions and statistics of a follower this one replaces (a reload), by
    ///     source name: those sources resume exactly there, ahead of any saved checkpoint.
    public init(
        sources: [FileSourceSpec], options: FollowOptions, sink: any LineSink, logger: Logger,
        firstStream: Int = 1, handoff: [String: FileSourceHandoff] = [:]
    ) throws(Errno) {
        self.sources = sources.map(FollowedSource.init(spec:))
        self.options = options
        self.sink = sink
        self.logger = logger
        do {
            inotify = try Inotify()
        } catch {
            // Without inotify (no instances left), the rescan still finds everything, late.
            logger.error("inotify unavailable (\(error)); falling back to rescans every \(options.rescanInterval) s")
            inotify = nil
        }
        // Without file sources there is nothing to checkpoint: a daemon that only receives over
        // gRPC needs no state directory (a reload that adds files opens it then).
        checkpoints =
            sources.isEmpty
            ? nil
            : try options.stateDirectory.map { (directory) throws(Errno) in
                CheckpointKeeper(store: try CheckpointStore(directory: directory))
            }
        let size = max(options.readBufferSize, options.maxLineLength + 2)
        buffer = .allocate(byteCount: size, alignment: 64)
        descriptorBudget = max(1, options.maxOpenFiles ?? Self.defaultDescriptorBudget())
        nextStream = firstStream
        if let checkpoints {
            for (index, source) in sources.enumerated() {
                guard
                    let loaded = checkpoints.load(
                        source: source.name, described: "source \(source.name)",
                        statistics: &self.sources[index].statistics, logger: logger)
                else { continue }
                self.sources[index].savedCheckpoints = loaded.checkpoint.files ?? []
                self.sources[index].hadSavedState = true
                for entry in loaded.rejectedFiles {
                    // Only this file loses its position; the source's others keep theirs.
                    logger.error(
                        "checkpoint \(checkpoints.store.path(forSource: source.name)): the entry for \(entry.path) is not valid (\(entry.reason)); that file starts at its \(source.startAt)"
                    )
                    self.sources[index].statistics.count(.checkpointCorrupt)
                    self.sources[index].startsAsConfigured.insert(entry.path)
                }
            }
        }
        for (index, source) in sources.enumerated() {
            guard let previous = handoff[source.name] else { continue }
            self.sources[index].savedCheckpoints = previous.files
            self.sources[index].hadSavedState = true
            self.sources[index].statistics = previous.statistics
            // Recounted as the files are opened again.
            self.sources[index].statistics.openStreams = 0
        }
    }

    /// Descriptors kept free for what else the process opens: the listener's connections, the
    /// journal's files, inotify, directory reads, checkpoint saves. A quarter of the limit, at
    /// most 256 (192 files of a 256 limit, 1,744 of 2,000).
    public static func defaultDescriptorBudget() -> Int {
        let soft = ProcessLimits.openFileLimit().soft
        return max(1, soft - min(256, soft / 4))
    }

    deinit {
        buffer.deallocate()
        for file in streams.values { file.descriptor.close() }
    }

    public func statistics(forSource index: Int) -> SourceStatistics { sources[index].statistics }

    /// Opens every matching file (positions fixed now), installs the watches, and registers
    /// with `loop`. Lines already in files read from the beginning are read by the loop.
    public func start(on loop: PollLoop) {
        for index in sources.indices { rescan(index) }
        initialScanDone = true
        for index in sources.indices { resumeRotatedFiles(index) }
        if let inotify {
            loop.watch(inotify.descriptor.rawValue) { [unowned self] _ in self.handleInotify() }
        }
        let rescan = loop.every(options.rescanInterval) { [unowned self] in
            dirtySources.formUnion(sources.indices)
            pendingReads.formUnion(streams.keys)
        }
        let checkpoint = loop.every(options.checkpointInterval) { [unowned self] in
            closeFinishedOrphans()
            shareDescriptors()
            saveCheckpoints()
        }
        let busyHook = loop.whileBusy { [unowned self] in self.work() }
        registrations = ([rescan, checkpoint], busyHook)
    }

    /// Reads what the files hold now, then leaves `loop` and closes every file: the follower
    /// is being replaced (a reload). Returns where each source stands, for the next one's
    /// `handoff`; lines past the last complete one are read again by it, so none is lost.
    public func stop(on loop: PollLoop) -> [String: FileSourceHandoff] {
        catchUp()
        saveCheckpoints()
        if let inotify { loop.unwatch(inotify.descriptor.rawValue) }
        for timer in registrations.timers { loop.cancel(timer) }
        if let busyHook = registrations.busyHook { loop.removeBusyHook(busyHook) }
        registrations = ([], nil)
        var result: [String: FileSourceHandoff] = [:]
        for (index, source) in sources.enumerated() {
            // With the files without a descriptor and checkpoints not matched to a file yet (a
            // rotated file not reopened): they stay valid.
            result[source.spec.name] = FileSourceHandoff(files: checkpointEntries(index), statistics: source.statistics)
        }
        for file in streams.values {
            file.descriptor.close()
            sink.streamClosed(file.stream)
        }
        streams.removeAll()
        for index in sources.indices {
            sources[index].files.removeAll()
            sources[index].parked.removeAll()
        }
        pendingReads.removeAll()
        return result
    }

    /// Reads what every open file holds now (bounded), e.g. before a last report at shutdown.
    public func catchUp() {
        for index in sources.indices where dirtySources.contains(index) { rescan(index) }
        dirtySources.removeAll()
        pendingReads.formUnion(streams.keys)
        CatchUp.run {
            // Files waiting for a descriptor get one from files read to their end.
            shareDescriptors()
            if pendingReads.isEmpty { return false }
            _ = work()
            return true
        }
    }

    /// One round of work: rescans asked for by events, then reads. True if reads are left.
    private func work() -> Bool {
        if !dirtySources.isEmpty {
            let dirty = dirtySources
            dirtySources.removeAll()
            for index in dirty.sorted() { rescan(index) }
            shareDescriptors()
        }
        guard !pendingReads.isEmpty else { return false }
        let pending = pendingReads
        pendingReads.removeAll()
        for stream in pending {
            guard let file = streams[stream] else { continue }
            if read(file, budget: 4 * buffer.count) { pendingReads.insert(stream) }
        }
        return !pendingReads.isEmpty
    }

    // MARK: - Events

    private func handleInotify() {
        guard let inotify else { return }
        do {
            try inotify.readEvents { event in
                if event.has(Inotify.queueOverflow) {
                    // Events were lost: look at everything again.
                    logger.warning("inotify queue overflowed; rescanning every source")
                    dirtySources.formUnion(sources.indices)
                    pendingReads.formUnion(streams.keys)
                    return
                }
                if let directory = directoryWatches[event.watch] {
                    dirtySources.formUnion(directory.sources)
                    if event.has(Inotify.watchRemoved) { directoryWatches[event.watch] = nil }
                }
                if let watchers = fileWatches[event.watch] {
                    if event.has(Inotify.watchRemoved) {
                        fileWatches[event.watch] = nil
                        for stream in watchers { streams[stream]?.watch = nil }
                    }
                    for stream in watchers {
                        pendingReads.insert(stream)
                        // Links changed (deleted, renamed over): see whether it is still matched.
                        if event.has(UInt32(IN_ATTRIB)), let file = streams[stream] { dirtySources.insert(file.source) }
                    }
                }
            }
        } catch {
            logger.error("reading inotify events failed: \(error)")
        }
    }

    // MARK: - Discovery

    /// Expands the source's patterns: opens new files, notes files no longer matched, watches
    /// the directories that decide what matches.
    private func rescan(_ index: Int) {
        duplicatesSeen.removeAll(keepingCapacity: true)
        defer {
            sources[index].duplicates = sources[index].duplicates.filter { duplicatesSeen.contains($0.key) }
        }
        var seen = Set<FileIdentity>()
        var directories = Set<String>()
        var currentErrors = Set<String>()
        // Directories that exist but could not be read (EMFILE, EACCES): what they hold is
        // unknown, not gone, so their files and watches stay as the last rescan left them.
        var unreadable: [String] = []
        for pattern in sources[index].spec.patterns {
            let expansion = PathPattern(pattern).expand()
            directories.formUnion(expansion.directories)
            for (path, error) in expansion.errors {
                currentErrors.insert(path)
                if error != .noSuchFile && error != .notDirectory { unreadable.append(path) }
                report(
                    index, path: path, kind: SourceErrorKind(opening: error), "cannot read directory \(path): \(error)")
            }
            for path in expansion.paths where !Self.isCompressed(path) {
                if let identity = open(path, source: index, errors: &currentErrors) { seen.insert(identity) }
            }
        }
        let isUnknown = { (path: String) in
            unreadable.contains { path == $0 || path.hasPrefix($0 == "/" ? "/" : $0 + "/") }
        }
        // Errors that no longer occur may be reported again if they come back.
        sources[index].reportedErrors.formIntersection(currentErrors)
        for (identity, file) in sources[index].files where !isUnknown(file.path) {
            let orphan = !seen.contains(identity)
            if orphan && !file.isOrphan {
                logger.debug("\(file.path) is no longer matched (rotated or deleted); reading it to its end")
                pendingReads.insert(file.stream)
            }
            file.isOrphan = orphan
        }
        for (identity, waiting) in sources[index].parked
        where !seen.contains(identity) && !isUnknown(waiting.checkpoint.path) {
            // Renamed away or deleted without a descriptor: looked for next to where it was.
            sources[index].parked[identity] = nil
            sources[index].savedCheckpoints.append(waiting.checkpoint)
        }
        if !unreadable.isEmpty {
            directories.formUnion(
                directoryWatches.values.filter { $0.sources.contains(index) && isUnknown($0.path) }.map(\.path))
        }
        updateDirectoryWatches(index, directories)
        if initialScanDone && !sources[index].savedCheckpoints.isEmpty { resumeRotatedFiles(index) }
    }

    /// Rotated copies that a compressor writes are never read: their lines were read from the
    /// file before it was rotated.
    static func isCompressed(_ path: String) -> Bool {
        [".gz", ".xz", ".zst", ".bz2", ".lz4", ".zip"].contains { path.hasSuffix($0) }
    }

    /// Counts and logs an error about `path`, once until a rescan finds it gone.
    /// - Parameter retried: whether the next rescan tries again (else the message says what is lost).
    private func report(
        _ index: Int, path: String, kind: SourceErrorKind, _ message: @autoclosure () -> String,
        retried: Bool = true
    ) {
        guard sources[index].reportedErrors.insert(path).inserted else { return }
        sources[index].statistics.count(kind)
        logger.warning(
            "source \(sources[index].spec.name): \(message())\(retried ? "; retrying on the next rescan" : "")")
    }

    /// Opens `path` if it is a regular file this source does not follow yet; returns the
    /// identity of the file at `path` (followed now) or nil.
    private func open(_ path: String, source index: Int, errors: inout Set<String>) -> FileIdentity? {
        let pathStatus: FileStatus
        do {
            pathStatus = try FileStatus(path: path)
        } catch {
            // Gone since its directory was read (a rotation under way): the next rescan sees
            // what replaced it. Anything else is an error of this path.
            if error != .noSuchFile && error != .notDirectory {
                errors.insert(path)
                report(index, path: path, kind: SourceErrorKind(opening: error), "cannot look at \(path): \(error)")
            }
            return nil
        }
        guard pathStatus.isRegularFile else { return nil }
        let known = FileIdentity(device: pathStatus.device, inode: pathStatus.inode)
        if skipsAsDuplicate(known, path: path, size: pathStatus.size, source: index, errors: &errors) { return nil }
        if let file = sources[index].files[known] {
            if file.path != path { file.path = path }
            return known
        }
        var resumed: ParkedFile?
        if var waiting = sources[index].parked[known] {
            waiting.checkpoint.path = path
            if waiting.waitingSince == nil && waiting.sizeWhenParked != pathStatus.size {
                waiting.waitingSince = nextWaitSequence()
                if streams.count >= descriptorBudget { sources[index].statistics.count(.fdLimit) }
            }
            sources[index].parked[known] = waiting
            guard waiting.waitingSince != nil, streams.count < descriptorBudget else { return known }
            // A descriptor is free: it resumes at its position (checked by takeCheckpoint).
            sources[index].parked[known] = nil
            sources[index].savedCheckpoints.append(waiting.checkpoint)
            resumed = waiting
        } else if streams.count >= descriptorBudget {
            parkNewFile(path, identity: known, size: pathStatus.size, source: index)
            return known
        }
        let descriptor: FileDescriptor
        let status: FileStatus
        do {
            descriptor = try FileDescriptor.openForReading(path)
            status = try descriptor.status()
        } catch {
            if let resumed {
                sources[index].savedCheckpoints.removeAll { $0.device == known.device && $0.inode == known.inode }
                sources[index].parked[known] = resumed
            }
            if error.isDescriptorShortage {
                // Not a property of the file: it waits for a descriptor with its position.
                if resumed == nil { parkNewFile(path, identity: known, size: pathStatus.size, source: index) }
                return known
            }
            errors.insert(path)
            report(index, path: path, kind: SourceErrorKind(opening: error), "cannot open \(path): \(error)")
            return nil
        }
        // The path may have been replaced between stat and open: the descriptor is the truth.
        let identity = FileIdentity(device: status.device, inode: status.inode)
        if sources[index].files[identity] != nil || sources[index].parked[identity] != nil {
            descriptor.close()
            return identity
        }
        if identity != known
            && skipsAsDuplicate(identity, path: path, size: status.size, source: index, errors: &errors)
        {
            descriptor.close()
            return nil
        }
        let fingerprint = fingerprintOrEmpty(descriptor, path: path, source: index)
        let offset = startOffset(index, path: path, identity: identity, size: status.size, descriptor: descriptor)
        follow(
            descriptor, path: path, source: index, identity: identity, fingerprint: fingerprint, offset: offset,
            quietly: resumed != nil)
        return identity
    }

    /// Whether another source already reads (or holds parked) the file `identity`: then this
    /// source leaves it alone, so that overlapping patterns never count a line twice. Rescans
    /// run in config order, so the first source that matches a file reads it. Counted and
    /// logged once per path as `duplicate_file`.
    private func skipsAsDuplicate(
        _ identity: FileIdentity, path: String, size: Int, source index: Int, errors: inout Set<String>
    ) -> Bool {
        let owner = source(reading: identity, besides: index)
        if var known = sources[index].duplicates[identity] {
            duplicatesSeen.insert(identity)
            errors.insert(path)
            if let owner {
                known.checkpoint = position(of: identity, readBy: owner, path: path) ?? known.checkpoint
            } else if !known.released {
                // The reading source closed it once read to its end: its end is where it stands.
                known.released = true
                known.checkpoint.path = path
                known.checkpoint.offset = max(known.checkpoint.offset, size)
            }
            sources[index].duplicates[identity] = known
            return true
        }
        guard let owner, let position = position(of: identity, readBy: owner, path: path) else { return false }
        sources[index].duplicates[identity] = DuplicateFile(checkpoint: position)
        duplicatesSeen.insert(identity)
        errors.insert(path)
        report(
            index, path: path, kind: .duplicateFile,
            "\(path) is already read by source \(sources[owner].spec.name), whose patterns match it too; "
                + "its lines are counted by that source only", retried: false)
        return true
    }

    /// Where source `owner` stands in the file `identity`, as a checkpoint of it at `path`.
    private func position(of identity: FileIdentity, readBy owner: Int, path: String) -> FileCheckpoint? {
        guard var position = sources[owner].files[identity]?.checkpoint ?? sources[owner].parked[identity]?.checkpoint
        else { return nil }
        position.path = path
        return position
    }

    /// The other source that reads `identity` (open or parked), if one does.
    private func source(reading identity: FileIdentity, besides index: Int) -> Int? {
        sources.indices.first {
            $0 != index && (sources[$0].files[identity] != nil || sources[$0].parked[identity] != nil)
        }
    }

    private func nextWaitSequence() -> UInt64 {
        waitSequence += 1
        return waitSequence
    }

    /// Whether a file without a checkpoint is read from its beginning: it appeared while
    /// running, or since the last run, or the source starts at the beginning.
    private func startsAtBeginning(_ index: Int, path: String) -> Bool {
        initialScanDone || (sources[index].hadSavedState && !sources[index].startsAsConfigured.contains(path))
            || sources[index].spec.startAt == .beginning
    }

    /// A file found when no descriptor is left for it: its start position is fixed now (as if
    /// it had been opened) and it waits, counted as `fd_limit`.
    private func parkNewFile(_ path: String, identity: FileIdentity, size: Int, source index: Int) {
        var checkpoint = FileCheckpoint(
            path: path, device: identity.device, inode: identity.inode, fingerprint: .empty, offset: 0)
        if let position = sources[index].savedCheckpoints.firstIndex(where: {
            $0.device == identity.device && $0.inode == identity.inode
        }) {
            // Its fingerprint is checked when it is opened.
            checkpoint = sources[index].savedCheckpoints.remove(at: position)
            checkpoint.path = path
        } else if !startsAtBeginning(index, path: path) {
            // At its end: found with a descriptor of the reserve, held only for this.
            do throws(Errno) {
                let descriptor = try FileDescriptor.openForReading(path)
                defer { descriptor.close() }
                let status = try descriptor.status()
                if status.device == identity.device && status.inode == identity.inode {
                    checkpoint.fingerprint = try FileFingerprint.read(descriptor)
                    checkpoint.offset =
                        endOfLastCompleteLine(descriptor, path: path, size: status.size, source: index).offset
                }
            } catch {
                // No descriptor even for this (the usual case here), or the file could not be
                // looked at: its size now; at worst the line under way is counted malformed.
                // What keeps it from being opened is reported when it is (``open(_:source:errors:)``).
                checkpoint.fingerprint = .empty
                checkpoint.offset = size
            }
        }
        sources[index].parked[identity] = ParkedFile(
            checkpoint: checkpoint, sizeWhenParked: nil, waitingSince: nextWaitSequence())
        sources[index].statistics.count(.fdLimit)
        logShortage()
    }

    private func logShortage() {
        guard !shortageLogged else { return }
        shortageLogged = true
        logger.warning(
            "more files to read than file descriptors for them (\(descriptorBudget) of RLIMIT_NOFILE \(ProcessLimits.openFileLimit().soft)); the others wait with their position, and files read to their end give theirs up"
        )
    }

    /// Files waiting for a descriptor get those of the open files that have been idle longest
    /// (read to their end first; each resumes at its position when it grows).
    private func shareDescriptors() {
        var waiting: [(sequence: UInt64, source: Int, identity: FileIdentity)] = []
        for (index, source) in sources.enumerated() {
            for (identity, file) in source.parked {
                if let sequence = file.waitingSince { waiting.append((sequence, index, identity)) }
            }
        }
        guard !waiting.isEmpty else { return }
        logShortage()
        var free = descriptorBudget - streams.count
        if free < waiting.count {
            // Pending or not (a rescan marks every file pending): park() reads first.
            let idle = streams.values.filter { !$0.isOrphan && $0.skipping == nil }.sorted {
                $0.lastActivity < $1.lastActivity
            }
            for file in idle where free < waiting.count {
                if park(file) { free += 1 }
            }
        }
        var unused = Set<String>()
        for entry in waiting.sorted(by: { $0.sequence < $1.sequence }).prefix(max(0, free)) {
            guard let file = sources[entry.source].parked[entry.identity] else { continue }
            _ = open(file.checkpoint.path, source: entry.source, errors: &unused)
        }
    }

    /// Gives `file`'s descriptor up after reading what it holds; false if it has more to read.
    private func park(_ file: FollowedFile) -> Bool {
        if read(file, budget: 4 * buffer.count) { return false }
        guard file.skipping == nil else { return false }
        let status: FileStatus
        do {
            status = try statusOfOpenFile(file.descriptor)
        } catch {
            // Its size when parked decides when it is opened again: without it, it stays open.
            reportReadError(file.source, path: file.path, "looking at \(file.path) failed: \(error)")
            return false
        }
        sources[file.source].parked[file.identity] = ParkedFile(
            checkpoint: file.checkpoint, sizeWhenParked: status.size, waitingSince: nil)
        release(file)
        return true
    }

    /// Where a newly opened file starts: its checkpoint if it has one, else the beginning
    /// (a file that appeared while running, or since the last run), else the source's choice.
    private func startOffset(_ index: Int, path: String, identity: FileIdentity, size: Int, descriptor: FileDescriptor)
        -> (offset: Int, skipPartial: Bool)
    {
        if let saved = takeCheckpoint(index, identity: identity, descriptor: descriptor) {
            if saved.offset <= size { return (saved.offset, false) }
            logger.info("\(path) is shorter than its checkpoint (truncated while stopped); reading from the start")
            return (0, false)
        }
        if startsAtBeginning(index, path: path) { return (0, false) }
        return endOfLastCompleteLine(descriptor, path: path, size: size, source: index)
    }

    /// The offset after the last newline before `size`; if the file ends inside a line longer
    /// than the cap, its end, with that line's remainder skipped.
    /// A read that fails gives the same answer as a line longer than the window: the file's
    /// end, the line under way dropped.
    private func endOfLastCompleteLine(_ descriptor: FileDescriptor, path: String, size: Int, source index: Int) -> (
        offset: Int, skipPartial: Bool
    ) {
        var end = size
        let window = min(buffer.count, options.maxLineLength + 2)
        while end > 0 && size - end < window {
            let start = max(0, end - 4096, size - window)
            let count: Int
            do {
                count = try descriptor.read(
                    into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<(end - start)]), atOffset: start)
            } catch {
                reportReadError(index, path: path, "finding the last complete line of \(path) failed: \(error)")
                break
            }
            guard count == end - start else { break }
            if let newline = UnsafeRawBufferPointer(rebasing: buffer[0..<count]).lastIndex(of: 0x0A) {
                return (start + newline + 1, false)
            }
            end = start
        }
        return end == 0 ? (0, false) : (size, true)
    }

    /// Removes and returns the saved checkpoint for this identity, if its fingerprint agrees.
    private func takeCheckpoint(_ index: Int, identity: FileIdentity, descriptor: FileDescriptor) -> FileCheckpoint? {
        guard
            let position = sources[index].savedCheckpoints.firstIndex(where: {
                $0.device == identity.device && $0.inode == identity.inode
            })
        else { return nil }
        let saved = sources[index].savedCheckpoints.remove(at: position)
        // The saved hash covers the first `saved.fingerprint.length` bytes: compare those.
        let prefix: FileFingerprint
        do {
            prefix = try FileFingerprint.read(descriptor, length: saved.fingerprint.length)
        } catch {
            // Unverified, it is taken for a new file, as a reused inode would be.
            reportReadError(
                index, path: saved.path,
                "reading the first bytes of \(saved.path) failed (\(error)); it is read as a new file")
            return nil
        }
        guard prefix == saved.fingerprint else {
            logger.info(
                "\(saved.path): same inode, different content (inode reused); reading the new file from the start")
            return nil
        }
        return saved
    }

    /// - Parameter quietly: a file resuming after waiting for a descriptor (logged at debug level:
    ///   under a shortage, files take turns).
    private func follow(
        _ descriptor: FileDescriptor, path: String, source index: Int, identity: FileIdentity,
        fingerprint: FileFingerprint, offset: (offset: Int, skipPartial: Bool), quietly: Bool = false
    ) {
        let stream = StreamID(nextStream)
        nextStream += 1
        let file = FollowedFile(
            stream: stream, source: index, identity: identity, descriptor: descriptor, path: path,
            fingerprint: fingerprint, offset: offset.offset, now: monotonicSeconds())
        if offset.skipPartial { file.skipping = (0, true, false) }
        sources[index].files[identity] = file
        streams[stream] = file
        sources[index].statistics.openStreams += 1
        if let inotify {
            do {
                let watch = try inotify.addWatch(descriptor, mask: Inotify.fileEvents)
                file.watch = watch
                fileWatches[watch, default: []].append(stream)
            } catch {
                let kind: SourceErrorKind = error == .noSpace ? .watchLimit : .watchError
                sources[index].statistics.count(kind)
                logger.warning("cannot watch \(path) (\(error)); it is read on rescans only")
            }
        }
        if quietly {
            logger.debug("following \(path) again from offset \(offset.offset) (source \(sources[index].spec.name))")
        } else {
            logger.info("following \(path) from offset \(offset.offset) (source \(sources[index].spec.name))")
        }
        sink.streamOpened(
            stream, info: StreamInfo(source: sources[index].spec.name, path: path, pod: PodLogPath(path: path)))
        pendingReads.insert(stream)
    }

    /// Checkpoints whose file is no longer matched (rotated while flagwatch was stopped): look
    /// for the same file (device, inode, fingerprint) next to where it was, read the rest.
    /// Checkpoints that could not be looked at for lack of descriptors stay for the next rescan.
    private func resumeRotatedFiles(_ index: Int) {
        let leftovers = sources[index].savedCheckpoints
        sources[index].savedCheckpoints = []
        for saved in leftovers {
            let identity = FileIdentity(device: saved.device, inode: saved.inode)
            // Found again meanwhile: one file is never two streams.
            if sources[index].files[identity] != nil || sources[index].parked[identity] != nil { continue }
            // Read by another source (a duplicate of this one's): its lines are counted there.
            if sources[index].duplicates[identity] != nil || source(reading: identity, besides: index) != nil {
                continue
            }
            guard streams.count < descriptorBudget else {
                sources[index].savedCheckpoints.append(saved)
                continue
            }
            let directory = FileSystem.directory(of: saved.path)
            let names: [String]
            do {
                names = try FileSystem.directoryEntries(directory)
            } catch {
                if error.isDescriptorShortage {
                    sources[index].savedCheckpoints.append(saved)
                } else if error == .noSuchFile || error == .notDirectory {
                    logger.info(
                        "\(saved.path) was rotated while stopped or waiting, and its directory is gone: its rest is not read"
                    )
                } else {
                    report(
                        index, path: directory, kind: SourceErrorKind(opening: error),
                        "cannot read directory \(directory) to find \(saved.path) rotated (\(error)); its rest is not read",
                        retried: false)
                }
                continue
            }
            for name in names where !Self.isCompressed(name) {
                let path = directory == "/" ? "/" + name : directory + "/" + name
                let status: FileStatus
                do {
                    status = try FileStatus(path: path)
                } catch {
                    // Gone since the directory was read: not the file looked for, or it is gone.
                    if error != .noSuchFile {
                        report(
                            index, path: path, kind: SourceErrorKind(opening: error),
                            "cannot look at \(path) while looking for \(saved.path) rotated: \(error)", retried: false)
                    }
                    continue
                }
                guard status.isRegularFile, status.device == saved.device, status.inode == saved.inode else { continue }
                let descriptor: FileDescriptor
                do {
                    descriptor = try FileDescriptor.openForReading(path)
                } catch {
                    if error.isDescriptorShortage {
                        sources[index].savedCheckpoints.append(saved)
                    } else {
                        report(
                            index, path: path, kind: SourceErrorKind(opening: error),
                            "cannot open \(path), where \(saved.path) was rotated to (\(error)); its rest is not read",
                            retried: false)
                    }
                    break
                }
                let fingerprint: FileFingerprint
                let size: Int
                do {
                    fingerprint = try FileFingerprint.read(descriptor, length: saved.fingerprint.length)
                    size = try descriptor.status().size
                } catch {
                    reportReadError(
                        index, path: path,
                        "looking at \(path), where \(saved.path) was rotated to, failed (\(error)); its rest is not read"
                    )
                    descriptor.close()
                    break
                }
                guard fingerprint == saved.fingerprint, saved.offset <= size else {
                    descriptor.close()
                    break
                }
                logger.info("\(saved.path) was rotated to \(path) while stopped or waiting; reading its rest")
                // If the longer one cannot be read, the prefix serves: a young file's fingerprint
                // is extended as it is read.
                let full = fingerprintOrEmpty(descriptor, path: path, source: index, orElse: fingerprint)
                follow(
                    descriptor, path: path, source: index, identity: identity, fingerprint: full,
                    offset: (saved.offset, false))
                sources[index].files[identity]?.isOrphan = true
                break
            }
        }
    }

    private func updateDirectoryWatches(_ index: Int, _ directories: Set<String>) {
        guard let inotify else { return }
        for (watch, directory) in directoryWatches
        where directory.sources.contains(index) && !directories.contains(directory.path) {
            directoryWatches[watch]?.sources.remove(index)
            if directoryWatches[watch]?.sources.isEmpty == true {
                directoryWatches[watch] = nil
                inotify.removeWatch(watch)
            }
        }
        for path in directories {
            if directoryWatches.contains(where: { $0.value.path == path && $0.value.sources.contains(index) }) {
                continue
            }
            do {
                let watch = try inotify.addWatch(path, mask: Inotify.directoryEvents | UInt32(IN_ONLYDIR))
                directoryWatches[watch, default: DirectoryWatch(path: path, sources: [])].sources.insert(index)
            } catch {
                let kind: SourceErrorKind = error == .noSpace ? .watchLimit : .watchError
                if sources[index].reportedErrors.insert("watch:" + path).inserted {
                    sources[index].statistics.count(kind)
                    logger.warning("cannot watch directory \(path) (\(error)); new files there are found on rescans")
                }
            }
        }
    }

    // MARK: - Reading

    /// Reads up to `budget` bytes of complete lines from `file` and hands them on. True if
    /// there may be more to read now.
    private func read(_ file: FollowedFile, budget: Int) -> Bool {
        switch checkTruncation(file) {
        case .unchanged: break
        case .truncated: return true
        // Read again on its next event or rescan: reading at a position that may be past a
        // truncation would hand on the middle of a line, or of another file's content.
        case .unknown: return false
        }
        var remaining = budget
        while remaining > 0 {
            let count: Int
            do {
                count = try file.descriptor.read(into: buffer, atOffset: file.readOffset)
            } catch {
                reportReadError(file.source, path: file.path, "reading \(file.path) failed: \(error)")
                return false
            }
            if count == 0 { return false }
            file.lastActivity = monotonicSeconds()
            remaining -= count
            let bytes = UnsafeRawBufferPointer(rebasing: buffer[0..<count])
            if file.skipping != nil {
                guard let newline = bytes.firstIndex(of: 0x0A) else {
                    sources[file.source].statistics.bytesRead += UInt64(count)
                    file.skipping?.length += count
                    file.skipping?.endsWithCR = bytes[count - 1] == 0x0D
                    file.readOffset += count
                    continue
                }
                sources[file.source].statistics.bytesRead += UInt64(newline + 1)
                finishSkipping(file, newlineIndex: newline, bytes: bytes)
                continue
            }
            guard let lastNewline = bytes.lastIndex(of: 0x0A) else {
                if count > options.maxLineLength + 1 {
                    // No newline within the cap: skip the line without holding it.
                    sources[file.source].statistics.bytesRead += UInt64(count)
                    file.skipping = (count, false, bytes[count - 1] == 0x0D)
                    file.readOffset += count
                    continue
                }
                // A partial line: wait for its newline (it is read again then).
                return false
            }
            // Counted once, when consumed: a partial last line is read again with its rest.
            sources[file.source].statistics.bytesRead += UInt64(lastNewline + 1)
            sink.receive(lines: UnsafeRawBufferPointer(rebasing: bytes[0...lastNewline]), from: file.stream)
            file.committedOffset += lastNewline + 1
            file.readOffset = file.committedOffset
            if count < buffer.count { return false }
        }
        return true
    }

    private func finishSkipping(_ file: FollowedFile, newlineIndex: Int, bytes: UnsafeRawBufferPointer) {
        guard let skipping = file.skipping else { return }
        var length = skipping.length + newlineIndex
        let endsWithCR = newlineIndex > 0 ? bytes[newlineIndex - 1] == 0x0D : skipping.endsWithCR
        if endsWithCR { length -= 1 }
        file.skipping = nil
        file.readOffset += newlineIndex + 1
        file.committedOffset = file.readOffset
        if !skipping.silent { sink.skippedLongLine(length: length, from: file.stream) }
    }

    enum TruncationCheck { case unchanged, truncated, unknown }

    /// Copytruncate: the file is shorter than what was read, or its first bytes changed; then
    /// it is restarted at 0. `unknown` when its size or first bytes cannot be read (counted as
    /// `read_error` and logged once per rescan).
    private func checkTruncation(_ file: FollowedFile) -> TruncationCheck {
        let status: FileStatus
        var truncated: Bool
        do throws(Errno) {
            status = try statusOfOpenFile(file.descriptor)
            truncated = status.size < file.readOffset
            if !truncated && file.fingerprint.length < FileFingerprint.maximumLength
                && status.size > file.fingerprint.length
            {
                // Young file: extend its fingerprint (and check the part already hashed).
                let longer = try FileFingerprint.read(file.descriptor)
                truncated =
                    try FileFingerprint.read(file.descriptor, length: file.fingerprint.length) != file.fingerprint
                if !truncated { file.fingerprint = longer }
            } else if !truncated && file.fingerprint.length > 0 && status.size > file.readOffset {
                truncated =
                    try FileFingerprint.read(file.descriptor, length: file.fingerprint.length) != file.fingerprint
            }
        } catch {
            reportReadError(
                file.source, path: file.path,
                "looking at \(file.path) failed (\(error)); it is not read until its size and first bytes can be checked"
            )
            return .unknown
        }
        guard truncated else { return .unchanged }
        logger.info(
            "\(file.path) was truncated (size \(status.size) < position \(file.readOffset), or its start changed); reading from the start"
        )
        file.committedOffset = 0
        file.readOffset = 0
        file.skipping = nil
        // Empty if unreadable: it is extended as the file is read, like a young file's.
        file.fingerprint = fingerprintOrEmpty(file.descriptor, path: file.path, source: file.source)
        return .truncated
    }

    /// The fingerprint of the file's first bytes; `fallback` if they cannot be read (counted
    /// and logged): the fingerprint of fewer bytes is extended as the file is read.
    private func fingerprintOrEmpty(
        _ descriptor: FileDescriptor, path: String, source index: Int,
        orElse fallback: FileFingerprint = .empty
    ) -> FileFingerprint {
        do {
            return try FileFingerprint.read(descriptor)
        } catch {
            reportReadError(index, path: path, "reading the first bytes of \(path) failed: \(error)")
            return fallback
        }
    }

    /// Counts and logs a failure to read or look at a file: once per path until the next
    /// rescan (a failure that lasts is counted once per rescan interval).
    private func reportReadError(_ index: Int, path: String, _ message: @autoclosure () -> String) {
        guard sources[index].reportedErrors.insert("read:" + path).inserted else { return }
        sources[index].statistics.count(.readError)
        logger.error("source \(sources[index].spec.name): \(message())")
    }

    // MARK: - Closing and checkpoints

    /// Closes rotated or deleted files that were read to their end and have stopped growing.
    private func closeFinishedOrphans() {
        let now = monotonicSeconds()
        for file in streams.values where file.isOrphan && now - file.lastActivity >= options.rotatedFileGrace {
            let size: Int
            do {
                size = try statusOfOpenFile(file.descriptor).size
            } catch {
                // Kept open: it may still hold lines, and is looked at again next time.
                reportReadError(file.source, path: file.path, "looking at \(file.path) failed: \(error)")
                continue
            }
            guard size <= file.readOffset else {
                pendingReads.insert(file.stream)
                continue
            }
            close(file)
        }
    }

    private func close(_ file: FollowedFile) {
        logger.info("closing \(file.path): rotated or deleted, read to its end")
        release(file)
    }

    /// Closes the descriptor and forgets the stream (its position is the caller's business).
    private func release(_ file: FollowedFile) {
        if let watch = file.watch, var watchers = fileWatches[watch] {
            watchers.removeAll { $0 == file.stream }
            if watchers.isEmpty {
                fileWatches[watch] = nil
                inotify?.removeWatch(watch)
            } else {
                fileWatches[watch] = watchers
            }
        }
        file.descriptor.close()
        sources[file.source].files[file.identity] = nil
        streams[file.stream] = nil
        pendingReads.remove(file.stream)
        sources[file.source].statistics.openStreams -= 1
        sink.streamClosed(file.stream)
    }

    /// Where source `index`'s files stand: the open ones just after the last complete line
    /// handed on, then those without a descriptor, then checkpoints not matched to a file yet
    /// (once the first scan is done; before it, they are what was loaded). One entry per file.
    private func checkpointEntries(_ index: Int) -> [FileCheckpoint] {
        var entries = sources[index].files.values.sorted { $0.stream.value < $1.stream.value }.map(\.checkpoint)
        entries += sources[index].parked.values.map(\.checkpoint).sorted {
            ($0.device, $0.inode) < ($1.device, $1.inode)
        }
        entries += sources[index].duplicates.values.map(\.checkpoint).sorted {
            ($0.device, $0.inode) < ($1.device, $1.inode)
        }
        entries += sources[index].savedCheckpoints
        var identities = Set<FileIdentity>()
        return entries.filter { identities.insert(FileIdentity(device: $0.device, inode: $0.inode)).inserted }
    }

    /// Saves every source's positions (atomically) if they changed since the last save; a
    /// failure is counted and logged once until a save succeeds, and retried next time.
    /// Returns whether every source's positions are saved now.
    @discardableResult
    public func saveCheckpoints() -> Bool {
        guard checkpoints != nil else { return true }
        var allSaved = true
        for index in sources.indices {
            let name = sources[index].spec.name
            let checkpoint = SourceCheckpoint(source: name, files: checkpointEntries(index))
            if checkpoints?.save(
                checkpoint, described: "source \(name)", statistics: &sources[index].statistics,
                logger: logger) == false
            {
                allSaved = false
            }
        }
        return allSaved
    }
}
