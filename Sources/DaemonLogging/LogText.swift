import Logging

/// Log messages and metadata carry text from log lines (cluster names, failure details): a
/// CR, LF or NUL in them must not start a forged line on standard error or cut a journal field.
/// Control characters are written as C-style escapes (`\r`, `\n`, `\0`, `\t`, `\x1b`), so the
/// text stays readable and on one line.
public enum LogText {
    public static func escapingControls(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else { return text }
        var escaped = ""
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x0A: escaped += "\\n"
            case 0x0D: escaped += "\\r"
            case 0x09: escaped += "\\t"
            case 0x00: escaped += "\\0"
            case 0x01..<0x20, 0x7F:
                let hex = String(scalar.value, radix: 16)
                escaped += "\\x" + (hex.count == 1 ? "0" : "") + hex
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }

    /// Metadata with every string escaped, nested values included.
    public static func escapingControls(_ metadata: Logger.Metadata) -> Logger.Metadata {
        metadata.mapValues(escapingControls)
    }

    static func escapingControls(_ value: Logger.MetadataValue) -> Logger.MetadataValue {
        switch value {
        case .string(let text): return .string(escapingControls(text))
        case .stringConvertible(let convertible): return .string(escapingControls(convertible.description))
        case .array(let values): return .array(values.map(escapingControls))
        case .dictionary(let values): return .dictionary(values.mapValues(escapingControls))
        }
    }
}

/// Standard error as swift-log's `StreamLogHandler` writes it (the fallback of
/// ``JournalLogHandler`` too), with ``LogText`` escaping applied to the message and metadata.
public struct StandardErrorLogHandler: LogHandler {
    private var stream: StreamLogHandler

    public init(label: String, metadataProvider: Logger.MetadataProvider? = LoggingSystem.metadataProvider) {
        stream = StreamLogHandler.standardError(label: label, metadataProvider: metadataProvider)
    }

    public var logLevel: Logger.Level {
        get { stream.logLevel }
        set { stream.logLevel = newValue }
    }

    public var metadata: Logger.Metadata {
        get { stream.metadata }
        set { stream.metadata = newValue }
    }

    public var metadataProvider: Logger.MetadataProvider? {
        get { stream.metadataProvider }
        set { stream.metadataProvider = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { stream[metadataKey: key] }
        set { stream[metadataKey: key] = newValue }
    }

    public func log(event: LogEvent) {
        stream.log(
            event: Self.escaped(
                event, handlerMetadata: stream.metadata,
                provided: stream.metadataProvider?.get()))
    }

    /// The event with its message and every metadata value escaped. The handler's own and the
    /// provider's metadata are merged in here (and escaped) the way StreamLogHandler merges them.
    static func escaped(_ event: LogEvent, handlerMetadata: Logger.Metadata, provided: Logger.Metadata?) -> LogEvent {
        var merged = handlerMetadata
        if let provided { merged.merge(provided) { _, new in new } }
        if let explicit = event.metadata { merged.merge(explicit) { _, new in new } }
        return LogEvent(
            level: event.level,
            message: Logger.Message(stringLiteral: LogText.escapingControls(event.message.description)),
            metadata: LogText.escapingControls(merged), source: event.source,
            file: event.file, function: event.function, line: event.line)
    }
}
