import AccessLogParser
import AccessLogReceiver
import LineFraming
import LogSources

/// How one source's lines are parsed: its access-log format and its container wrapper.
public struct SourceParsing: Sendable, Equatable {
    public var format: LogFormat
    public var containerFormat: ContainerFormat

    public init(format: LogFormat, containerFormat: ContainerFormat) {
        self.format = format
        self.containerFormat = containerFormat
    }
}

/// Everything an ``Engine`` follows: the sources, how each one's lines are parsed, and how files
/// are followed. Plain values, so the engine knows nothing of the config file or the command
/// line they came from; the executable maps its configuration onto them.
public struct FollowedSources: Sendable, Equatable {
    /// File sources, in the configured order (the order of ``Engine/sourceActivity()``).
    public var files: [FileSourceSpec]
    /// Journald sources, in the configured order.
    public var journals: [JournalSourceSpec]
    /// Receiving sources (`grpc_access_log:`), in the configured order. Not changed by a
    /// reload: their listeners and open streams stay as started.
    public var receivers: [ReceiverSourceSpec]
    /// Per source name. A stream of a source without an entry is followed but not counted.
    public var parsing: [String: SourceParsing]
    /// How files are followed; its state directory also keeps the journals' checkpoints.
    public var options: FollowOptions

    public init(
        files: [FileSourceSpec] = [], journals: [JournalSourceSpec] = [], receivers: [ReceiverSourceSpec] = [],
        parsing: [String: SourceParsing] = [:], options: FollowOptions = FollowOptions()
    ) {
        self.files = files
        self.journals = journals
        self.receivers = receivers
        self.parsing = parsing
        self.options = options
    }

    /// Whether a source was added, removed or changed (specs or parsing) from `other`: then
    /// both followers are replaced on reload, as each source may have moved between them.
    func sourcesDiffer(from other: FollowedSources) -> Bool {
        files != other.files || journals != other.journals || parsing != other.parsing
    }
}
