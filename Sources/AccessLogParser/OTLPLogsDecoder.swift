/// One unit of an `ExportLogsServiceRequest` as its structure is walked: a log record's bytes,
/// or the place where a `ResourceLogs` or `ScopeLogs` stopped being valid protobuf (its records
/// after that point are lost; the break counts once, as a malformed record).
public enum OTLPLogUnit {
    case record(UnsafeRawBufferPointer)
    case broken
}

/// What the network side learns of a request before handing it on: how many log records it
/// holds and how many of those units are not valid protobuf. The decode on the poll loop
/// counts exactly `rejected` of them as `bad_protobuf` (both walk the same structure and read
/// the same fields), so the answer's `partial_success.rejected_log_records` agrees with
/// flagwatch's own counts.
public struct OTLPLogsInspection: Equatable, Sendable {
    /// Log records found (well-formed or not), plus one per broken `ResourceLogs`/`ScopeLogs`
    /// and one for a request whose own framing is broken: the units that count as lines.
    public var units = 0
    /// The units that are malformed protobuf.
    public var rejected = 0

    public init(units: Int = 0, rejected: Int = 0) {
        self.units = units
        self.rejected = rejected
    }
}

/// Decodes OpenTelemetry's `ExportLogsServiceRequest` (`opentelemetry.proto.collector.logs.v1`,
/// what Envoy's `envoy.access_loggers.open_telemetry` sends) into ``AccessRecord``s, in place:
/// every text field of a record is a view into the request's bytes.
///
/// A log record's fields come from its **attributes** when they name the response flags
/// (Envoy's OTel logger `attributes:` set by the user, e.g. `response_flags: "%RESPONSE_FLAGS%"`),
/// under the same key names a JSON access log uses (``JSONKeyMap``: Istio's, or the source's
/// `json_keys` with `format: json`); else from a `kvlist_value` **body** that names them; else
/// the **body** string is one access-log line, parsed with the source's format (Istio's OTel
/// provider sends its text format there). Field numbers: protos/opentelemetry/logs_minimal.proto
/// and docs/formats.md §10.5; fields not read are skipped by wire type.
///
/// One decoder per source: the body parser remembers which format variant matched (`auto`,
/// `istio`), as a file stream's parser does.
public struct OTLPLogsDecoder {
    public let fields: RecordFieldSet
    private let keys: RecordKeyTable
    private var bodyParser: AccessLogParser

    /// - Parameters:
    ///   - bodyFormat: how a string body is parsed; a `.json` format's keys also name the
    ///     attributes.
    ///   - fields: the record fields decoded; the others stay absent.
    public init(bodyFormat: LogFormat, fields: RecordFieldSet = .countingWithFailureDetails) throws(FormatStringError) {
        self.fields = fields
        keys = Self.keyTable(for: bodyFormat, fields: fields)
        bodyParser = try AccessLogParser(format: bodyFormat, fields: fields)
    }

    /// Decodes one request, calling `entry` with each log record in order (and once per broken
    /// unit, as `.malformed(.badProtobuf)`). When the request's own framing is broken, the
    /// records before the break have been reported and the defect is thrown.
    /// Returns the number of units reported.
    @discardableResult
    public mutating func decodeExportRequest(
        _ message: UnsafeRawBufferPointer, entry: (ParseResult) -> Void
    ) throws(ProtobufWireDefect) -> Int {
        var units = 0
        try Self.forEachUnit(in: message) { unit in
            units += 1
            switch unit {
            case .broken:
                entry(.malformed(.badProtobuf))
            case .record(let bytes):
                entry(decodeRecord(bytes))
            }
        }
        return units
    }

    /// Decodes one `LogRecord`.
    public mutating func decodeRecord(_ bytes: UnsafeRawBufferPointer) -> ParseResult {
        var record = AccessRecord()
        switch Self.readRecord(bytes, keys: keys, into: &record) {
        case .malformed(let reason):
            return .malformed(reason)
        case .fromKeys:
            break
        case .body(let line):
            if let reason = bodyParser.parse(Self.withoutLineEnd(line), into: &record) { return .malformed(reason) }
        case .noFields:
            return .malformed(.noFlagsField)
        }
        // The text parsers take 0...999 (three digits); a larger code is no HTTP status.
        guard record.responseCode >= 0 && record.responseCode <= 999 else { return .malformed(.badResponseCode) }
        record.keepOnly(fields)
        return .record(record)
    }

    /// The name of the format the last body matched, e.g. `istio (1.9+)` (for `auto`).
    public var recognizedBodyFormat: String { bodyParser.recognizedFormat }

    // MARK: - Without a body parser (any thread)

    /// Walks `message` as the decode does, without parsing bodies, to count its units and the
    /// malformed ones: what the gRPC handler answers with, before the poll loop counts.
    /// `keys` must be made from the decoder's format and fields.
    public static func inspect(_ message: UnsafeRawBufferPointer, keys: OTLPAttributeKeys) -> OTLPLogsInspection {
        var inspection = OTLPLogsInspection()
        var record = AccessRecord()
        do throws(ProtobufWireDefect) {
            try forEachUnit(in: message) { unit in
                inspection.units += 1
                switch unit {
                case .broken:
                    inspection.rejected += 1
                case .record(let bytes):
                    // `record` is scratch here: only the outcome matters, so it is not reset.
                    if case .malformed(.badProtobuf) = readRecord(bytes, keys: keys.table, into: &record) {
                        inspection.rejected += 1
                    }
                }
            }
        } catch {
            inspection.units += 1
            inspection.rejected += 1
        }
        return inspection
    }

    /// How many units `message` holds, without reading the records: what a receiver counts as
    /// dropped entries when it has no room for the message.
    public static func unitCount(in message: UnsafeRawBufferPointer) -> Int {
        var units = 0
        do throws(ProtobufWireDefect) {
            try forEachUnit(in: message) { _ in units += 1 }
        } catch {
            units += 1
        }
        return units
    }

    static func keyTable(for format: LogFormat, fields: RecordFieldSet) -> RecordKeyTable {
        if case .json(let keys) = format { return RecordKeyTable(keys: keys, fields: fields) }
        return RecordKeyTable(keys: JSONKeyMap(), fields: fields)
    }

    // MARK: - The structure

    /// `ExportLogsServiceRequest.resource_logs` (1) → `ResourceLogs.scope_logs` (2) →
    /// `ScopeLogs.log_records` (2). A `ResourceLogs` or `ScopeLogs` whose inner framing breaks
    /// gives `.broken` and the walk goes on with the next one (its own length was intact);
    /// a break in the request's own framing is thrown.
    static func forEachUnit(
        in message: UnsafeRawBufferPointer, _ body: (OTLPLogUnit) -> Void
    ) throws(ProtobufWireDefect) {
        var reader = ProtobufWireReader(message)
        while let field = try reader.nextField() {
            guard field.number == OTLPField.ExportLogsServiceRequest.resourceLogs,
                let resourceLogs = try reader.lengthDelimited(ifWireType: field.wireType)
            else {
                if field.number != OTLPField.ExportLogsServiceRequest.resourceLogs { try reader.skip(field.wireType) }
                continue
            }
            do throws(ProtobufWireDefect) {
                try forEachScopeLogs(in: resourceLogs, body)
            } catch {
                body(.broken)
            }
        }
    }

    private static func forEachScopeLogs(
        in resourceLogs: UnsafeRawBufferPointer, _ body: (OTLPLogUnit) -> Void
    ) throws(ProtobufWireDefect) {
        var reader = ProtobufWireReader(resourceLogs)
        while let field = try reader.nextField() {
            guard field.number == OTLPField.ResourceLogs.scopeLogs,
                let scopeLogs = try reader.lengthDelimited(ifWireType: field.wireType)
            else {
                if field.number != OTLPField.ResourceLogs.scopeLogs { try reader.skip(field.wireType) }
                continue
            }
            do throws(ProtobufWireDefect) {
                var scopeReader = ProtobufWireReader(scopeLogs)
                while let scopeField = try scopeReader.nextField() {
                    guard scopeField.number == OTLPField.ScopeLogs.logRecords,
                        let record = try scopeReader.lengthDelimited(ifWireType: scopeField.wireType)
                    else {
                        if scopeField.number != OTLPField.ScopeLogs.logRecords {
                            try scopeReader.skip(scopeField.wireType)
                        }
                        continue
                    }
                    body(.record(record))
                }
            } catch {
                body(.broken)
            }
        }
    }

    // MARK: - One record

    enum RecordSource {
        /// The record was filled from attributes (or a key/value body) that name the flags.
        case fromKeys
        /// No key named the flags; this string body is the access-log line.
        case body(UnsafeRawBufferPointer)
        /// Neither: no flags anywhere.
        case noFields
        case malformed(MalformedReason)
    }

    /// Reads a `LogRecord`'s attributes (6) and body (5) into `record`, which the caller gives
    /// fresh (resetting it here would cost a second ~300-byte store per record). With `.body`,
    /// `record` is left for the body parser, which resets it.
    static func readRecord(
        _ bytes: UnsafeRawBufferPointer, keys: RecordKeyTable, into record: inout AccessRecord
    ) -> RecordSource {
        var sawFlags = false
        var keyReason: MalformedReason? = nil
        var bodyString: UnsafeRawBufferPointer? = nil
        var bodyList: UnsafeRawBufferPointer? = nil
        do throws(ProtobufWireDefect) {
            var reader = ProtobufWireReader(bytes)
            while let field = try reader.nextField() {
                switch field.number {
                case OTLPField.LogRecord.attributes:
                    guard let keyValue = try reader.lengthDelimited(ifWireType: field.wireType) else { continue }
                    try readKeyValue(keyValue, keys: keys, into: &record, sawFlags: &sawFlags, reason: &keyReason)
                case OTLPField.LogRecord.body:
                    guard let value = try reader.lengthDelimited(ifWireType: field.wireType) else { continue }
                    var valueReader = ProtobufWireReader(value)
                    while let valueField = try valueReader.nextField() {
                        switch valueField.number {
                        case OTLPField.AnyValue.stringValue:
                            bodyString = try valueReader.lengthDelimited(ifWireType: valueField.wireType)
                        case OTLPField.AnyValue.kvlistValue:
                            bodyList = try valueReader.lengthDelimited(ifWireType: valueField.wireType)
                        default:
                            try valueReader.skip(valueField.wireType)
                        }
                    }
                default:
                    try reader.skip(field.wireType)
                }
            }
            if sawFlags { return keyReason.map { .malformed($0) } ?? .fromKeys }
            // Attributes without the flags are not the record; a key/value body may be.
            if let bodyList {
                record = AccessRecord()
                keyReason = nil
                var listReader = ProtobufWireReader(bodyList)
                while let field = try listReader.nextField() {
                    // KeyValueList: repeated KeyValue values = 1.
                    guard field.number == 1, let keyValue = try listReader.lengthDelimited(ifWireType: field.wireType)
                    else {
                        if field.number != 1 { try listReader.skip(field.wireType) }
                        continue
                    }
                    try readKeyValue(keyValue, keys: keys, into: &record, sawFlags: &sawFlags, reason: &keyReason)
                }
                if sawFlags { return keyReason.map { .malformed($0) } ?? .fromKeys }
            }
        } catch {
            return .malformed(.badProtobuf)
        }
        if let bodyString { return .body(bodyString) }
        return .noFields
    }

    /// A `KeyValue` (key = 1, value = 2, in either order): assigns the value when the key
    /// names a field. The first malformed value's reason is kept in `reason`.
    private static func readKeyValue(
        _ bytes: UnsafeRawBufferPointer, keys: RecordKeyTable, into record: inout AccessRecord,
        sawFlags: inout Bool, reason: inout MalformedReason?
    ) throws(ProtobufWireDefect) {
        var reader = ProtobufWireReader(bytes)
        var key: UnsafeRawBufferPointer? = nil
        var value: UnsafeRawBufferPointer? = nil
        while let field = try reader.nextField() {
            switch field.number {
            case OTLPField.KeyValue.key: key = try reader.lengthDelimited(ifWireType: field.wireType)
            case OTLPField.KeyValue.value: value = try reader.lengthDelimited(ifWireType: field.wireType)
            default: try reader.skip(field.wireType)
            }
        }
        guard let key, let recordField = keys.field(forKey: key) else { return }
        if recordField == .responseFlags { sawFlags = true }
        // An absent value is an unset AnyValue: the field stays absent, as JSON's null.
        guard let value else { return }
        let valueReason = try assign(recordField, anyValue: value, into: &record)
        if reason == nil { reason = valueReason }
    }

    /// Assigns an `AnyValue` to a record field: a string as a text value (as a JSON string
    /// is), an integer to the code and the duration; any other type (bool, double, bytes,
    /// array, list) is a malformed record for the code and the flags and ignored for the rest,
    /// as a JSON `true` or object is.
    private static func assign(
        _ field: RecordField, anyValue: UnsafeRawBufferPointer, into record: inout AccessRecord
    ) throws(ProtobufWireDefect) -> MalformedReason? {
        var reader = ProtobufWireReader(anyValue)
        var outcome: MalformedReason? = nil
        while let valueField = try reader.nextField() {
            switch (valueField.number, valueField.wireType) {
            case (OTLPField.AnyValue.stringValue, .lengthDelimited):
                let text = try reader.readLengthDelimited()
                outcome = RecordAssignment.assign(field, textValue: text, into: &record)
            case (OTLPField.AnyValue.intValue, .varint):
                let integer = Int64(bitPattern: try reader.readVarint())
                outcome = assign(field, integer: integer, into: &record)
            default:
                try reader.skip(valueField.wireType)
                outcome = wrongType(field)
            }
        }
        return outcome
    }

    private static func assign(_ field: RecordField, integer: Int64, into record: inout AccessRecord)
        -> MalformedReason?
    {
        switch field {
        case .responseCode:
            guard integer >= 0 && integer <= 999 else { return .badResponseCode }
            record.responseCode = Int(integer)
        case .duration:
            record.durationMilliseconds = integer >= 0 ? Int(integer) : nil
        case .responseFlags:
            return .badFlags
        default:
            break  // a number where text is expected (a cluster name): ignored, as in JSON
        }
        return nil
    }

    private static func wrongType(_ field: RecordField) -> MalformedReason? {
        switch field {
        case .responseFlags: .badFlags
        case .responseCode: .badResponseCode
        default: nil
        }
    }

    /// A body line may end with the format's newline (Istio's text format ends with one; a
    /// file line never holds its own).
    static func withoutLineEnd(_ line: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        var end = line.count
        if end > 0 && line[end - 1] == UInt8(ascii: "\n") { end -= 1 }
        if end > 0 && line[end - 1] == UInt8(ascii: "\r") { end -= 1 }
        return end == line.count ? line : UnsafeRawBufferPointer(rebasing: line[0..<end])
    }
}

/// The attribute key table of a source, built once and shared with the gRPC handler threads
/// (immutable), so ``OTLPLogsDecoder/inspect(_:keys:)`` reads attributes exactly as the decoder
/// on the poll loop does.
public struct OTLPAttributeKeys: Sendable {
    let table: RecordKeyTable

    public init(bodyFormat: LogFormat, fields: RecordFieldSet = .countingWithFailureDetails) {
        table = OTLPLogsDecoder.keyTable(for: bodyFormat, fields: fields)
    }
}

/// The OTLP field numbers read (opentelemetry-proto v1: collector/logs/v1/logs_service.proto,
/// logs/v1/logs.proto, common/v1/common.proto).
enum OTLPField {
    enum ExportLogsServiceRequest { static let resourceLogs = 1 }
    enum ResourceLogs { static let scopeLogs = 2 }
    enum ScopeLogs { static let logRecords = 2 }
    enum LogRecord {
        static let body = 5
        static let attributes = 6
    }
    enum KeyValue {
        static let key = 1
        static let value = 2
    }
    enum AnyValue {
        static let stringValue = 1
        static let intValue = 3
        static let kvlistValue = 6
    }
}
