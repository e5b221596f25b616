import Logging

/// One journal entry being built: its `FIELD=value` items back to back in one byte buffer (no
/// per-field allocation; values are copied once, as UTF-8, and may hold newlines or any byte).
public struct JournalEntry: Sendable {
    /// The items, back to back.
    public private(set) var bytes: [UInt8] = []
    /// Where each item ends in `bytes` (the next one starts there).
    public private(set) var ends: [Int] = []

    public init() {}

    /// Appends `NAME=value`. `name` must already be a valid journal field name.
    public mutating func append(_ name: String, _ value: String) {
        bytes.append(contentsOf: name.utf8)
        bytes.append(UInt8(ascii: "="))
        bytes.append(contentsOf: value.utf8)
        ends.append(bytes.count)
    }

    /// The items as (name, value) pairs, in order (for tests and the stderr fallback).
    public var fields: [(name: String, value: String)] {
        var result: [(name: String, value: String)] = []
        var start = 0
        for end in ends {
            let item = bytes[start..<end]
            if let equals = item.firstIndex(of: UInt8(ascii: "=")) {
                result.append(
                    (
                        String(decoding: item[start..<equals], as: UTF8.self),
                        String(decoding: item[(equals + 1)..<end], as: UTF8.self)
                    ))
            }
            start = end
        }
        return result
    }

    /// Every value of field `name` (a field may repeat).
    public func values(_ name: String) -> [String] {
        fields.filter { $0.name == name }.map(\.value)
    }
}

/// A swift-log handler that writes each record to the journal as structured fields
/// (`sd_journal_sendv`): what `journalctl -o verbose` shows and `journalctl FIELD=value` matches.
///
/// Fields of every entry:
///   MESSAGE            the message
///   PRIORITY           syslog priority from the level (see `priority(for:)`)
///   SYSLOG_IDENTIFIER  `flagwatch`
///   CODE_FILE, CODE_LINE, CODE_FUNC   the log call
///   LOGGER             the logger's label
///   MESSAGE_ID         metadata `message_id`, when it is 32 lowercase hex digits (a 128-bit id)
///   one field per metadata key: its name from `fieldName(forMetadataKey:)`, the value as text
///
/// When journald cannot be reached the record goes to standard error instead (the
/// `StreamLogHandler` format), so nothing is lost.
public struct JournalLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    public let label: String
    /// SYSLOG_IDENTIFIER.
    public let identifier: String

    public init(
        label: String, identifier: String = "flagwatch",
        metadataProvider: Logger.MetadataProvider? = LoggingSystem.metadataProvider
    ) {
        self.label = label
        self.identifier = identifier
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let explicit = event.metadata { merged.merge(explicit) { _, new in new } }
        if let error = event.error, merged["error"] == nil { merged["error"] = "\(error)" }
        let entry = Self.entry(
            level: event.level, message: event.message.description, metadata: merged, label: label,
            identifier: identifier, file: event.file, function: event.function, line: event.line)
        if JournalSend.send(entry) < 0 {
            var fallback = StandardErrorLogHandler(label: label, metadataProvider: nil)
            fallback.logLevel = logLevel
            fallback.log(
                event: LogEvent(
                    level: event.level, message: event.message, metadata: merged, source: event.source,
                    file: event.file, function: event.function, line: event.line))
        }
    }

    // MARK: - The mapping (pure, unit-tested)

    /// syslog priority of a swift-log level: trace and debug 7 (debug), info 6, notice 5,
    /// warning 4, error 3, critical 2 (crit).
    public static func priority(for level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    /// The prefix a metadata field name gets when its plain upper-cased name would not be a
    /// valid journal field of its own (see `fieldName(forMetadataKey:)`).
    public static let fieldPrefix = "FLAGWATCH_"

    /// Fields the handler writes itself or that journald and journalctl give a meaning to: a
    /// metadata key never sets them (`message` becomes `FLAGWATCH_MESSAGE`).
    public static let reservedFieldNames: Set<String> = [
        "MESSAGE", "MESSAGE_ID", "PRIORITY", "CODE_FILE", "CODE_LINE", "CODE_FUNC", "LOGGER", "ERRNO",
        "SYSLOG_FACILITY", "SYSLOG_IDENTIFIER", "SYSLOG_PID", "SYSLOG_TIMESTAMP", "SYSLOG_RAW",
        "INVOCATION_ID", "USER_INVOCATION_ID", "DOCUMENTATION", "TID", "UNIT", "USER_UNIT",
    ]

    /// Longest field name journald accepts.
    static let maxFieldNameLength = 64

    /// The journal field of metadata key `key`: upper-cased, every character outside `A-Z0-9_`
    /// replaced by `_` (`upstream_cluster` → `UPSTREAM_CLUSTER`, `x-request.id` →
    /// `X_REQUEST_ID`). Names that journald would refuse or that would clash with a field of
    /// its own get `FLAGWATCH_` in front: empty, starting with `_` (journald's trusted fields)
    /// or a digit, in `reservedFieldNames`, or starting with `OBJECT_` or `COREDUMP_`. At most
    /// 64 characters (longer names are cut).
    public static func fieldName(forMetadataKey key: String) -> String {
        var name = ""
        name.reserveCapacity(min(key.utf8.count, maxFieldNameLength))
        for byte in key.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"):
                name.unicodeScalars.append(Unicode.Scalar(byte))
            case UInt8(ascii: "a")...UInt8(ascii: "z"):
                name.unicodeScalars.append(Unicode.Scalar(byte - 32))
            default:
                // Each byte of a multi-byte character too: distinct keys stay distinct longer.
                name.unicodeScalars.append("_")
            }
            if name.utf8.count >= maxFieldNameLength { break }
        }
        let needsPrefix =
            name.isEmpty || name.hasPrefix("_") || name.first?.isNumber == true
            || reservedFieldNames.contains(name) || name.hasPrefix("OBJECT_") || name.hasPrefix("COREDUMP_")
        if needsPrefix { name = String((fieldPrefix + name).prefix(maxFieldNameLength)) }
        return name
    }

    /// Whether `value` is a journal MESSAGE_ID: 128 bits as 32 lowercase hex digits.
    public static func isMessageID(_ value: String) -> Bool {
        value.utf8.count == 32
            && value.utf8.allSatisfy { byte in
                (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                    || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
            }
    }

    /// The entry for one record: fixed fields first, then the metadata sorted by key.
    public static func entry(
        level: Logger.Level, message: String, metadata: Logger.Metadata, label: String,
        identifier: String = "flagwatch", file: String, function: String, line: UInt
    ) -> JournalEntry {
        // Fields are sent length-delimited, but a CR, LF or NUL from a log line in them would
        // still show as a forged line in `journalctl` and in whatever reads its output.
        var entry = JournalEntry()
        entry.append("MESSAGE", LogText.escapingControls(message))
        entry.append("PRIORITY", String(priority(for: level)))
        entry.append("SYSLOG_IDENTIFIER", identifier)
        if case .string(let id)? = metadata["message_id"], isMessageID(id) {
            entry.append("MESSAGE_ID", id)
        }
        entry.append("CODE_FILE", file)
        entry.append("CODE_LINE", String(line))
        entry.append("CODE_FUNC", function)
        entry.append("LOGGER", label)
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            if key == "message_id", case .string(let id) = value, isMessageID(id) { continue }
            let text: String
            if case .string(let string) = value { text = string } else { text = value.description }
            entry.append(fieldName(forMetadataKey: key), LogText.escapingControls(text))
        }
        return entry
    }
}
