import AccessLogParser
import Dispatch
import FlagCounting
import LineFraming
import SystemCalls

#if canImport(Glibc)
    import Glibc
#endif

/// Scans one large regular file on several cores: the file is cut into chunks that start at
/// line boundaries, each chunk runs its own pipeline into its own counts, and the counts are
/// merged. Only used where no logical line can span a cut (see ``canSplit``).
struct ParallelFileScan {
    let path: String
    let size: Int
    let format: LogFormat
    let containerFormat: ContainerFormat
    let maxLineLength: Int
    /// `--since/--until`; nil: every line.
    var window: TimeWindow? = nil

    /// Chunks smaller than this are not worth a thread.
    static let minimumChunkSize = 64 * 1024 * 1024

    static func workerCount(forSize size: Int) -> Int {
        let cores = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        return max(1, min(cores, size / minimumChunkSize))
    }

    /// CRI `P` and docker partial chunks join with the next line, so a cut could split a
    /// logical line: only unwrapped files (or `auto` files whose first line is not CRI or
    /// docker) are cut.
    static func canSplit(_ descriptor: FileDescriptor, containerFormat: ContainerFormat) throws -> Bool {
        switch containerFormat {
        case .none: return true
        case .cri, .docker: return false
        case .auto:
            var head = [UInt8](repeating: 0, count: 4096)
            let count = try head.withUnsafeMutableBytes { (buffer) throws(Errno) in
                try descriptor.read(into: buffer, atOffset: 0)
            }
            let firstLine = head[0..<count].prefix { $0 != 0x0A }
            return !firstLine.withUnsafeBytes(ContainerUnwrapper.isCRIOrDockerRecord)
        }
    }

    /// Offsets where chunks start: just after a newline, or 0.
    func chunkStarts(_ descriptor: FileDescriptor, workers: Int) throws -> [Int] {
        var starts = [0]
        var probe = [UInt8](repeating: 0, count: 64 * 1024)
        for worker in 1..<workers {
            var offset = size / workers * worker
            search: while offset < size {
                let count = try probe.withUnsafeMutableBytes { (buffer) throws(Errno) in
                    try descriptor.read(into: buffer, atOffset: offset)
                }
                if count == 0 { break }
                if let newline = probe[0..<count].firstIndex(of: 0x0A) {
                    offset += newline + 1
                    break search
                }
                offset += count
            }
            if offset < size, offset > starts[starts.count - 1] { starts.append(offset) }
        }
        return starts
    }

    /// Runs the chunks in parallel and merges their counts into `counts`; returns the formats
    /// recognised. The chunks' lines left out of ``window`` are added to `leftOut`.
    func run(
        _ descriptor: FileDescriptor, workers: Int, into counts: FlagCounts, leftOut: inout WindowLeftOut
    ) throws -> [String] {
        let starts = try chunkStarts(descriptor, workers: workers)
        let results = ChunkResults(count: starts.count)
        DispatchQueue.concurrentPerform(iterations: starts.count) { chunk in
            let start = starts[chunk]
            let end = chunk + 1 < starts.count ? starts[chunk + 1] : size
            results.store(chunk, scanChunk(descriptor, from: start, to: end))
        }
        var recognized: [String] = []
        for chunk in 0..<starts.count {
            switch results.take(chunk) {
            case .success(let chunkCounts, let format, let chunkLeftOut):
                counts.merge(chunkCounts)
                leftOut.add(chunkLeftOut)
                if let format, !recognized.contains(format) { recognized.append(format) }
            case .failure(let message):
                throw CommandFailure(message: message)
            }
        }
        return recognized
    }

    private func scanChunk(_ descriptor: FileDescriptor, from start: Int, to end: Int) -> ChunkResult {
        let chunkCounts = FlagCounts()
        do {
            let pipeline = try StreamPipeline(
                format: format, containerFormat: containerFormat, maxLineLength: maxLineLength, counts: chunkCounts,
                window: window)
            // Mapped in pieces, so memory stays bounded however large the chunk.
            let piece = 16 * 1024 * 1024
            var offset = start
            while offset < end {
                let length = min(piece, end - offset)
                let mapping = try MappedFile(descriptor, offset: offset, length: length)
                pipeline.count(inPlace: mapping.bytes)
                offset += length
            }
            let parsed = chunkCounts.lines > chunkCounts.malformedTotal
            return .success(chunkCounts, parsed ? pipeline.recognizedFormat : nil, WindowLeftOut(pipeline))
        } catch {
            return .failure("cannot read \(path): \(error)")
        }
    }
}

enum ChunkResult {
    case success(FlagCounts, String?, WindowLeftOut)
    case failure(String)
}

/// The parsed lines `scan --since/--until` left out, over all inputs.
struct WindowLeftOut {
    var outside = 0
    var withoutTime = 0

    init() {}

    init(_ pipeline: StreamPipeline) {
        outside = pipeline.linesOutsideWindow
        withoutTime = pipeline.linesWithoutTime
    }

    mutating func add(_ other: WindowLeftOut) {
        outside += other.outside
        withoutTime += other.withoutTime
    }
}

/// One slot per chunk, each written by exactly one worker and read after all have finished
/// (`concurrentPerform` returns only then), so no two threads touch a slot at once.
final class ChunkResults: @unchecked Sendable {
    private var slots: [ChunkResult?]
    private let lock = PThreadMutex()

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func store(_ index: Int, _ result: ChunkResult) {
        lock.withLock { slots[index] = result }
    }

    func take(_ index: Int) -> ChunkResult {
        lock.withLock { slots[index] ?? .failure("internal error: chunk \(index) produced no result") }
    }
}

/// A plain pthread mutex, so the executable needs no Foundation.
final class PThreadMutex: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    init() { pthread_mutex_init(mutex, nil) }
    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }
    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}
