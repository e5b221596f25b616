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
    private let sources: [FileSourceSpec]
    private let options: FollowOptions
    private unowned let sink: any LineSink
    private let logger: Logger
    private let inotify: Inotify?
    private let store: CheckpointStore?
    private var buffer: UnsafeMutableRawBufferPointer

    private var files: [[FileIdentity: FollowedFile]]
    /// Matched files without a descriptor, per source (see ``ParkedFile``).
    private var parked: [[FileIdentity: ParkedFile]]
    /// How many files may be open at once (``FollowOptions/maxOpenFiles``).
    private let descriptorBudget: Int
    /// Orders files waiting for a descriptor: the longest waiting gets the next one.
    private var waitSequence: UInt64 = 0
    /// Whether the shortage of descriptors was logged (once: under a lasting shortage files take
    /// turns at every rescan, and the count of `fd_limit` errors tells how often).
    private var shortageLogged = false
    /// Paths whose checkpoint entry was invalid, per source: they start per the source's
    /// start_at, as if seen for the first time, although the source has saved state.
    private var startsAsConfigured: [Set<String>]
    private var statistics: [SourceStatistics]
    /// Checkpoints loaded at startup and not yet matched to a file, per source.
    private var savedCheckpoints: [[FileCheckpoint]]
    /// Sources that had saved state: a file they do not know is new since the last run.
    private var hadSavedState: [Bool]
    /// Errors already logged, per source and path, so each is logged once until it clears.
    private var reportedErrors: [Set<String>]
    private var dirtySources = Set<Int>()
    private var pendingReads = Set<StreamID>()
    private var streams: [StreamID: FollowedFile] = [:]
    private var directoryWatches: [Int32: DirectoryWatch] = [:]
    private var fileWatches: [Int32: [StreamID]] = [:]
    private var nextStream: Int
    private var initialScanDone = false
    /// What was last saved per source, so an idle follower does not rewrite its state.
    private var lastSaved: [SourceCheckpoint?]
    /// What ``start(on:)`` registered, so ``stop(on:)`` can take it back.
    private var registrations: (timers: [PollLoop.TimerID], busyHook: PollLoop.BusyHookID?) = ([], nil)

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

        init(stream: StreamID, source: Int, identity: FileIdentity, descriptor: FileDescriptor, path: String,
             fingerprint: FileFingerprint, offset: Int, now: Double) {
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
    }

    /// - Parameter firstStream: stream ids handed out start here (so several sources' ids
    ///   do not collide).
    ///   - handoff: positions and statistics of a follower this one replaces (a reload), by
    ///     source name: those sources resume exactly there, ahead of any saved checkpoint.
    public init(sources: [FileSourceSpec], options: FollowOptions, sink: any LineSink, logger: Logger,
                firstStream: Int = 1, handoff: [String: FileSourceHandoff] = [:]) throws(Errno) {
        self.sources = sources
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
        store = try options.stateDirectory.map { (directory) throws(Errno) in try CheckpointStore(directory: directory) }
        let size = max(options.readBufferSize, options.maxLineLength + 2)
        buffer = .allocate(byteCount: size, alignment: 64)
        files = Array(repeating: [:], count: sources.count)
        parked = Array(repeating: [:], count: sources.count)
        startsAsConfigured = Array(repeating: [], count: sources.count)
        descriptorBudget = max(1, options.maxOpenFiles ?? Self.defaultDescriptorBudget())
        statistics = Array(repeating: SourceStatistics(), count: sources.count)
        savedCheckpoints = Array(repeating: [], count: sources.count)
        hadSavedState = Array(repeating: false, count: sources.count)
        reportedErrors = Array(repeating: [], count: sources.count)
        lastSaved = Array(repeating: nil, count: sources.count)
        nextStream = firstStream
        if let store {
            for (index, source) in sources.enumerated() {
                do {
                    if let loaded = try store.load(source: source.name) {
                        savedCheckpoints[index] = loaded.checkpoint.files ?? []
                        hadSavedState[index] = true
                        for entry in loaded.rejectedFiles {
                            // Only this file loses its position; the source's others keep theirs.
                            logger.error("checkpoint \(store.path(forSource: source.name)): the entry for \(entry.path) is not valid (\(entry.reason)); that file starts at its \(source.startAt)")
                            statistics[index].errors["checkpoint_corrupt", default: 0] += 1
                            startsAsConfigured[index].insert(entry.path)
                        }
                    }
                } catch {
                    // Starting as if for the first time loses at most the lines written while
                    // stopped; refusing to start would lose everything from now on.
                    logger.error("\(error); source \(source.name) starts without it")
                    statistics[index].errors["checkpoint_corrupt", default: 0] += 1
                }
            }
        }
        for (index, source) in sources.enumerated() {
            guard let previous = handoff[source.name] else { continue }
            savedCheckpoints[index] = previous.files
            hadSavedState[index] = true
            statistics[index] = previous.statistics
            // Recounted as the files are opened again.
            statistics[index].openStreams = 0
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

    public func statistics(forSource index: Int) -> SourceStatistics { statistics[index] }

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
            result[source.name] = FileSourceHandoff(files: checkpointEntries(index), statistics: statistics[index])
        }
        for file in streams.values {
            file.descriptor.close()
            sink.streamClosed(file.stream)
        }
        streams.removeAll()
        files = Array(repeating: [:], count: sources.count)
        parked = Array(repeating: [:], count: sources.count)
        pendingReads.removeAll()
        return result
    }

    /// Reads what every open file holds now (bounded), e.g. before a last report at shutdown.
    public func catchUp() {
        for index in sources.indices where dirtySources.contains(index) { rescan(index) }
        dirtySources.removeAll()
        pendingReads.formUnion(streams.keys)
        var rounds = 0
        while rounds < 16 {
            // Files waiting for a descriptor get one from files read to their end.
            shareDescriptors()
            if pendingReads.isEmpty { break }
            _ = work()
            rounds += 1
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
        var seen = Set<FileIdentity>()
        var directories = Set<String>()
        var currentErrors = Set<String>()
        // Directories that exist but could not be read (EMFILE, EACCES): what they hold is
        // unknown, not gone, so their files and watches stay as the last rescan left them.
        var unreadable: [String] = []
        for pattern in sources[index].patterns {
            let expansion = PathPattern(pattern).expand()
            directories.formUnion(expansion.directories)
            for (path, error) in expansion.errors {
                currentErrors.insert(path)
                if error != .noSuchFile && error != .notDirectory { unreadable.append(path) }
                report(index, path: path, kind: errorKind(error), "cannot read directory \(path): \(error)")
            }
            for path in expansion.paths where !Self.isCompressed(path) {
                if let identity = open(path, source: index, errors: &currentErrors) { seen.insert(identity) }
            }
        }
        let isUnknown = { (path: String) in
            unreadable.contains { path == $0 || path.hasPrefix($0 == "/" ? "/" : $0 + "/") }
        }
        // Errors that no longer occur may be reported again if they come back.
        reportedErrors[index].formIntersection(currentErrors)
        for (identity, file) in files[index] where !isUnknown(file.path) {
            let orphan = !seen.contains(identity)
            if orphan && !file.isOrphan {
                logger.debug("\(file.path) is no longer matched (rotated or deleted); reading it to its end")
                pendingReads.insert(file.stream)
            }
            file.isOrphan = orphan
        }
        for (identity, waiting) in parked[index] where !seen.contains(identity) && !isUnknown(waiting.checkpoint.path) {
            // Renamed away or deleted without a descriptor: looked for next to where it was.
            parked[index][identity] = nil
            savedCheckpoints[index].append(waiting.checkpoint)
        }
        if !unreadable.isEmpty {
            directories.formUnion(directoryWatches.values.filter { $0.sources.contains(index) && isUnknown($0.path) }.map(\.path))
        }
        updateDirectoryWatches(index, directories)
        if initialScanDone && !savedCheckpoints[index].isEmpty { resumeRotatedFiles(index) }
    }

    /// Rotated copies that a compressor writes are never read: their lines were read from the
    /// file before it was rotated.
    static func isCompressed(_ path: String) -> Bool {
        [".gz", ".xz", ".zst", ".bz2", ".lz4", ".zip"].contains { path.hasSuffix($0) }
    }

    private func errorKind(_ error: Errno) -> String {
        switch error {
        case .permissionDenied: "permission_denied"
        case .noSuchFile, .notDirectory: "not_found"
        case .tooManyOpenFiles, .tooManyOpenFilesInSystem: "fd_limit"
        default: "open_error"
        }
    }

    private func report(_ index: Int, path: String, kind: String, _ message: String) {
        guard reportedErrors[index].insert(path).inserted else { return }
        statistics[index].errors[kind, default: 0] += 1
        logger.warning("source \(sources[index].name): \(message); retrying on the next rescan")
    }

    /// Opens `path` if it is a regular file this source does not follow yet; returns the
    /// identity of the file at `path` (followed now) or nil.
    private func open(_ path: String, source index: Int, errors: inout Set<String>) -> FileIdentity? {
        guard let pathStatus = try? FileStatus(path: path), pathStatus.isRegularFile else { return nil }
        let known = FileIdentity(device: pathStatus.device, inode: pathStatus.inode)
        if let file = files[index][known] {
            if file.path != path { file.path = path }
            return known
        }
        var resumed: ParkedFile?
        if var waiting = parked[index][known] {
            waiting.checkpoint.path = path
            if waiting.waitingSince == nil && waiting.sizeWhenParked != pathStatus.size {
                waiting.waitingSince = nextWaitSequence()
                if streams.count >= descriptorBudget { statistics[index].errors["fd_limit", default: 0] += 1 }
            }
            parked[index][known] = waiting
            guard waiting.waitingSince != nil, streams.count < descriptorBudget else { return known }
            // A descriptor is free: it resumes at its position (checked by takeCheckpoint).
            parked[index][known] = nil
            savedCheckpoints[index].append(waiting.checkpoint)
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
                savedCheckpoints[index].removeAll { $0.device == known.device && $0.inode == known.inode }
                parked[index][known] = resumed
            }
            if error.isDescriptorShortage {
                // Not a property of the file: it waits for a descriptor with its position.
                if resumed == nil { parkNewFile(path, identity: known, size: pathStatus.size, source: index) }
                return known
            }
            errors.insert(path)
            report(index, path: path, kind: errorKind(error), "cannot open \(path): \(error)")
            return nil
        }
        // The path may have been replaced between stat and open: the descriptor is the truth.
        let identity = FileIdentity(device: status.device, inode: status.inode)
        if files[index][identity] != nil || parked[index][identity] != nil {
            descriptor.close()
            return identity
        }
        let fingerprint = (try? FileFingerprint.read(descriptor)) ?? .empty
        let offset = startOffset(index, path: path, identity: identity, size: status.size, descriptor: descriptor)
        follow(descriptor, path: path, source: index, identity: identity, fingerprint: fingerprint, offset: offset,
               quietly: resumed != nil)
        return identity
    }

    private func nextWaitSequence() -> UInt64 {
        waitSequence += 1
        return waitSequence
    }

    /// Whether a file without a checkpoint is read from its beginning: it appeared while
    /// running, or since the last run, or the source starts at the beginning.
    private func startsAtBeginning(_ index: Int, path: String) -> Bool {
        initialScanDone || (hadSavedState[index] && !startsAsConfigured[index].contains(path)) || sources[index].startAt == .beginning
    }

    /// A file found when no descriptor is left for it: its start position is fixed now (as if
    /// it had been opened) and it waits, counted as `fd_limit`.
    private func parkNewFile(_ path: String, identity: FileIdentity, size: Int, source index: Int) {
        var checkpoint = FileCheckpoint(path: path, device: identity.device, inode: identity.inode, fingerprint: .empty, offset: 0)
        if let position = savedCheckpoints[index].firstIndex(where: { $0.device == identity.device && $0.inode == identity.inode }) {
            // Its fingerprint is checked when it is opened.
            checkpoint = savedCheckpoints[index].remove(at: position)
            checkpoint.path = path
        } else if !startsAtBeginning(index, path: path) {
            // At its end: found with a descriptor of the reserve, held only for this.
            if let descriptor = try? FileDescriptor.openForReading(path) {
                if let status = try? descriptor.status(), status.device == identity.device, status.inode == identity.inode {
                    checkpoint.fingerprint = (try? FileFingerprint.read(descriptor)) ?? .empty
                    checkpoint.offset = endOfLastCompleteLine(descriptor, size: status.size).offset
                }
                descriptor.close()
            } else {
                // Not even that: its size now; at worst the line under way is counted malformed.
                checkpoint.offset = size
            }
        }
        parked[index][identity] = ParkedFile(checkpoint: checkpoint, sizeWhenParked: nil, waitingSince: nextWaitSequence())
        statistics[index].errors["fd_limit", default: 0] += 1
        logShortage()
    }

    private func logShortage() {
        guard !shortageLogged else { return }
        shortageLogged = true
        logger.warning("more files to read than file descriptors for them (\(descriptorBudget) of RLIMIT_NOFILE \(ProcessLimits.openFileLimit().soft)); the others wait with their position, and files read to their end give theirs up")
    }

    /// Files waiting for a descriptor get those of the open files that have been idle longest
    /// (read to their end first; each resumes at its position when it grows).
    private func shareDescriptors() {
        var waiting: [(sequence: UInt64, source: Int, identity: FileIdentity)] = []
        for (index, sourceParked) in parked.enumerated() {
            for (identity, file) in sourceParked { if let sequence = file.waitingSince { waiting.append((sequence, index, identity)) } }
        }
        guard !waiting.isEmpty else { return }
        logShortage()
        var free = descriptorBudget - streams.count
        if free < waiting.count {
            // Pending or not (a rescan marks every file pending): park() reads first.
            let idle = streams.values.filter { !$0.isOrphan && $0.skipping == nil }.sorted { $0.lastActivity < $1.lastActivity }
            for file in idle where free < waiting.count {
                if park(file) { free += 1 }
            }
        }
        var unused = Set<String>()
        for entry in waiting.sorted(by: { $0.sequence < $1.sequence }).prefix(max(0, free)) {
            guard let file = parked[entry.source][entry.identity] else { continue }
            _ = open(file.checkpoint.path, source: entry.source, errors: &unused)
        }
    }

    /// Gives `file`'s descriptor up after reading what it holds; false if it has more to read.
    private func park(_ file: FollowedFile) -> Bool {
        if read(file, budget: 4 * buffer.count) { return false }
        guard file.skipping == nil, let status = try? file.descriptor.status() else { return false }
        parked[file.source][file.identity] = ParkedFile(
            checkpoint: FileCheckpoint(path: file.path, device: file.identity.device, inode: file.identity.inode,
                                       fingerprint: file.fingerprint, offset: file.committedOffset),
            sizeWhenParked: status.size, waitingSince: nil)
        release(file)
        return true
    }

    /// Where a newly opened file starts: its checkpoint if it has one, else the beginning
    /// (a file that appeared while running, or since the last run), else the source's choice.
    private func startOffset(_ index: Int, path: String, identity: FileIdentity, size: Int, descriptor: FileDescriptor) -> (offset: Int, skipPartial: Bool) {
        if let saved = takeCheckpoint(index, identity: identity, descriptor: descriptor) {
            if saved.offset <= size { return (saved.offset, false) }
            logger.info("\(path) is shorter than its checkpoint (truncated while stopped); reading from the start")
            return (0, false)
        }
        if startsAtBeginning(index, path: path) { return (0, false) }
        return endOfLastCompleteLine(descriptor, size: size)
    }

    /// The offset after the last newline before `size`; if the file ends inside a line longer
    /// than the cap, its end, with that line's remainder skipped.
    private func endOfLastCompleteLine(_ descriptor: FileDescriptor, size: Int) -> (offset: Int, skipPartial: Bool) {
        var end = size
        let window = min(buffer.count, options.maxLineLength + 2)
        while end > 0 && size - end < window {
            let start = max(0, end - 4096, size - window)
            let count = (try? descriptor.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<(end - start)]), atOffset: start)) ?? 0
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
        guard let position = savedCheckpoints[index].firstIndex(where: { $0.device == identity.device && $0.inode == identity.inode })
        else { return nil }
        let saved = savedCheckpoints[index].remove(at: position)
        // The saved hash covers the first `saved.fingerprint.length` bytes: compare those.
        guard let prefix = try? FileFingerprint.read(descriptor, length: saved.fingerprint.length), prefix == saved.fingerprint else {
            logger.info("\(saved.path): same inode, different content (inode reused); reading the new file from the start")
            return nil
        }
        return saved
    }

    /// - Parameter quietly: a file resuming after waiting for a descriptor (logged at debug level:
    ///   under a shortage, files take turns).
    private func follow(_ descriptor: FileDescriptor, path: String, source index: Int, identity: FileIdentity,
                        fingerprint: FileFingerprint, offset: (offset: Int, skipPartial: Bool), quietly: Bool = false) {
        let stream = StreamID(nextStream)
        nextStream += 1
        let file = FollowedFile(
            stream: stream, source: index, identity: identity, descriptor: descriptor, path: path,
            fingerprint: fingerprint, offset: offset.offset, now: monotonicSeconds())
        if offset.skipPartial { file.skipping = (0, true, false) }
        files[index][identity] = file
        streams[stream] = file
        statistics[index].openStreams += 1
        if let inotify {
            do {
                let watch = try inotify.addWatch(descriptor, mask: Inotify.fileEvents)
                file.watch = watch
                fileWatches[watch, default: []].append(stream)
            } catch {
                let kind = error == .noSpace ? "watch_limit" : "watch_error"
                statistics[index].errors[kind, default: 0] += 1
                logger.warning("cannot watch \(path) (\(error)); it is read on rescans only")
            }
        }
        if quietly {
            logger.debug("following \(path) again from offset \(offset.offset) (source \(sources[index].name))")
        } else {
            logger.info("following \(path) from offset \(offset.offset) (source \(sources[index].name))")
        }
        sink.streamOpened(stream, info: StreamInfo(source: sources[index].name, path: path, pod: PodLogPath(path: path)))
        pendingReads.insert(stream)
    }

    /// Checkpoints whose file is no longer matched (rotated while flagwatch was stopped): look
    /// for the same file (device, inode, fingerprint) next to where it was, read the rest.
    /// Checkpoints that could not be looked at for lack of descriptors stay for the next rescan.
    private func resumeRotatedFiles(_ index: Int) {
        let leftovers = savedCheckpoints[index]
        savedCheckpoints[index] = []
        for saved in leftovers {
            let identity = FileIdentity(device: saved.device, inode: saved.inode)
            // Found again meanwhile: one file is never two streams.
            if files[index][identity] != nil || parked[index][identity] != nil { continue }
            guard streams.count < descriptorBudget else {
                savedCheckpoints[index].append(saved)
                continue
            }
            let directory = FileSystem.directory(of: saved.path)
            let names: [String]
            do {
                names = try FileSystem.directoryEntries(directory)
            } catch {
                if error.isDescriptorShortage { savedCheckpoints[index].append(saved) }
                continue
            }
            for name in names where !Self.isCompressed(name) {
                let path = directory == "/" ? "/" + name : directory + "/" + name
                guard let status = try? FileStatus(path: path), status.isRegularFile,
                    status.device == saved.device, status.inode == saved.inode
                else { continue }
                let descriptor: FileDescriptor
                do {
                    descriptor = try FileDescriptor.openForReading(path)
                } catch {
                    if error.isDescriptorShortage { savedCheckpoints[index].append(saved) }
                    break
                }
                let fingerprint = (try? FileFingerprint.read(descriptor, length: saved.fingerprint.length)) ?? .empty
                guard fingerprint == saved.fingerprint, let size = try? descriptor.status().size, saved.offset <= size else {
                    descriptor.close()
                    break
                }
                logger.info("\(saved.path) was rotated to \(path) while stopped or waiting; reading its rest")
                let full = (try? FileFingerprint.read(descriptor)) ?? fingerprint
                follow(descriptor, path: path, source: index, identity: identity, fingerprint: full, offset: (saved.offset, false))
                files[index][identity]?.isOrphan = true
                break
            }
        }
    }

    private func updateDirectoryWatches(_ index: Int, _ directories: Set<String>) {
        guard let inotify else { return }
        for (watch, directory) in directoryWatches where directory.sources.contains(index) && !directories.contains(directory.path) {
            directoryWatches[watch]?.sources.remove(index)
            if directoryWatches[watch]?.sources.isEmpty == true {
                directoryWatches[watch] = nil
                inotify.removeWatch(watch)
            }
        }
        for path in directories {
            if directoryWatches.contains(where: { $0.value.path == path && $0.value.sources.contains(index) }) { continue }
            do {
                let watch = try inotify.addWatch(path, mask: Inotify.directoryEvents | UInt32(IN_ONLYDIR))
                directoryWatches[watch, default: DirectoryWatch(path: path, sources: [])].sources.insert(index)
            } catch {
                let kind = error == .noSpace ? "watch_limit" : "watch_error"
                if reportedErrors[index].insert("watch:" + path).inserted {
                    statistics[index].errors[kind, default: 0] += 1
                    logger.warning("cannot watch directory \(path) (\(error)); new files there are found on rescans")
                }
            }
        }
    }

    // MARK: - Reading

    /// Reads up to `budget` bytes of complete lines from `file` and hands them on. True if
    /// there may be more to read now.
    private func read(_ file: FollowedFile, budget: Int) -> Bool {
        if checkTruncation(file) { return true }
        var remaining = budget
        while remaining > 0 {
            let count: Int
            do {
                count = try file.descriptor.read(into: buffer, atOffset: file.readOffset)
            } catch {
                if reportedErrors[file.source].insert("read:" + file.path).inserted {
                    statistics[file.source].errors["read_error", default: 0] += 1
                    logger.error("reading \(file.path) failed: \(error)")
                }
                return false
            }
            if count == 0 { return false }
            file.lastActivity = monotonicSeconds()
            remaining -= count
            let bytes = UnsafeRawBufferPointer(rebasing: buffer[0..<count])
            if file.skipping != nil {
                guard let newline = bytes.firstIndex(of: 0x0A) else {
                    statistics[file.source].bytesRead += UInt64(count)
                    file.skipping?.length += count
                    file.skipping?.endsWithCR = bytes[count - 1] == 0x0D
                    file.readOffset += count
                    continue
                }
                statistics[file.source].bytesRead += UInt64(newline + 1)
                finishSkipping(file, newlineIndex: newline, bytes: bytes)
                continue
            }
            guard let lastNewline = bytes.lastIndex(of: 0x0A) else {
                if count > options.maxLineLength + 1 {
                    // No newline within the cap: skip the line without holding it.
                    statistics[file.source].bytesRead += UInt64(count)
                    file.skipping = (count, false, bytes[count - 1] == 0x0D)
                    file.readOffset += count
                    continue
                }
                // A partial line: wait for its newline (it is read again then).
                return false
            }
            // Counted once, when consumed: a partial last line is read again with its rest.
            statistics[file.source].bytesRead += UInt64(lastNewline + 1)
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

    /// Copytruncate: the file is shorter than what was read, or its first bytes changed.
    /// Restarts it at 0 and returns true.
    private func checkTruncation(_ file: FollowedFile) -> Bool {
        guard let status = try? file.descriptor.status() else { return false }
        var truncated = status.size < file.readOffset
        if !truncated && file.fingerprint.length < FileFingerprint.maximumLength && status.size > file.fingerprint.length {
            // Young file: extend its fingerprint (and check the part already hashed).
            if let longer = try? FileFingerprint.read(file.descriptor) {
                if let prefix = try? FileFingerprint.read(file.descriptor, length: file.fingerprint.length), prefix != file.fingerprint {
                    truncated = true
                }
                if !truncated { file.fingerprint = longer }
            }
        } else if !truncated && file.fingerprint.length > 0 && status.size > file.readOffset {
            if let current = try? FileFingerprint.read(file.descriptor, length: file.fingerprint.length), current != file.fingerprint {
                truncated = true
            }
        }
        guard truncated else { return false }
        logger.info("\(file.path) was truncated (size \(status.size) < position \(file.readOffset), or its start changed); reading from the start")
        file.committedOffset = 0
        file.readOffset = 0
        file.skipping = nil
        file.fingerprint = (try? FileFingerprint.read(file.descriptor)) ?? .empty
        return true
    }

    // MARK: - Closing and checkpoints

    /// Closes rotated or deleted files that were read to their end and have stopped growing.
    private func closeFinishedOrphans() {
        let now = monotonicSeconds()
        for file in streams.values where file.isOrphan && now - file.lastActivity >= options.rotatedFileGrace {
            guard let status = try? file.descriptor.status(), status.size <= file.readOffset else {
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
        files[file.source][file.identity] = nil
        streams[file.stream] = nil
        pendingReads.remove(file.stream)
        statistics[file.source].openStreams -= 1
        sink.streamClosed(file.stream)
    }

    /// Where source `index`'s files stand: the open ones just after the last complete line
    /// handed on, then those without a descriptor, then checkpoints not matched to a file yet
    /// (once the first scan is done; before it, they are what was loaded). One entry per file.
    private func checkpointEntries(_ index: Int) -> [FileCheckpoint] {
        var entries = files[index].values.sorted { $0.stream.value < $1.stream.value }.map {
            FileCheckpoint(path: $0.path, device: $0.identity.device, inode: $0.identity.inode,
                           fingerprint: $0.fingerprint, offset: $0.committedOffset)
        }
        entries += parked[index].values.map(\.checkpoint).sorted { ($0.device, $0.inode) < ($1.device, $1.inode) }
        entries += savedCheckpoints[index]
        var identities = Set<FileIdentity>()
        return entries.filter { identities.insert(FileIdentity(device: $0.device, inode: $0.inode)).inserted }
    }

    /// Saves every source's positions (atomically); a failure is logged and retried next time.
    /// Returns whether every source's positions are saved now.
    @discardableResult
    public func saveCheckpoints() -> Bool {
        guard let store else { return true }
        var allSaved = true
        for (index, source) in sources.enumerated() {
            let checkpoint = SourceCheckpoint(source: source.name, files: checkpointEntries(index))
            if checkpoint == lastSaved[index] { continue }
            do {
                try store.save(checkpoint)
                lastSaved[index] = checkpoint
            } catch {
                allSaved = false
                if reportedErrors[index].insert("checkpoint").inserted {
                    statistics[index].errors["checkpoint_write", default: 0] += 1
                    logger.error("cannot save checkpoint for source \(source.name): \(error)")
                }
                continue
            }
            reportedErrors[index].remove("checkpoint")
        }
        return allSaved
    }
}
