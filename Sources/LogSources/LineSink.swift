/// Identifies one open input stream (a followed file, a journal) for as long as it is open.
public struct StreamID: Hashable, Sendable, CustomStringConvertible {
    public let value: Int
    public init(_ value: Int) { self.value = value }
    public var description: String { "#\(value)" }
}

/// What a source knows about a stream when it opens it.
public struct StreamInfo: Sendable, Equatable {
    /// The configured source's name.
    public var source: String
    /// The file's path when it was opened, or `journal`.
    public var path: String
    /// Namespace, pod and container, when the path is a Kubernetes container log.
    public var pod: PodLogPath?

    public init(source: String, path: String, pod: PodLogPath? = nil) {
        self.source = source
        self.path = path
        self.pod = pod
    }
}

/// Where sources hand their lines. Called on the loop's thread; the bytes are valid only during
/// the call (they point into the source's read buffer). A source advances its checkpoint only
/// after the call returns, so whatever the sink did with the lines is what the checkpoint covers.
public protocol LineSink: AnyObject {
    func streamOpened(_ stream: StreamID, info: StreamInfo)
    /// One or more complete lines, each ending in `\n`.
    func receive(lines: UnsafeRawBufferPointer, from stream: StreamID)
    /// One line without framing (a journal entry's message).
    func receive(line: UnsafeRawBufferPointer, from stream: StreamID)
    /// A line longer than the source's cap was skipped without being buffered.
    func skippedLongLine(length: Int, from stream: StreamID)
    func streamClosed(_ stream: StreamID)
}

/// Where a file first seen at startup (with no checkpoint) starts being read.
public enum StartPosition: String, Sendable, CaseIterable {
    case end, beginning
}

/// Counters a source keeps about itself (for self-metrics).
public struct SourceStatistics: Sendable, Equatable {
    public var bytesRead: UInt64 = 0
    public var openStreams = 0
    /// Errors by kind; a kind's ``SourceErrorKind/rawValue`` is its metric label.
    public var errors: [SourceErrorKind: UInt64] = [:]
    public init() {}

    /// Counts one error of `kind`.
    mutating func count(_ kind: SourceErrorKind) { errors[kind, default: 0] += 1 }
}
