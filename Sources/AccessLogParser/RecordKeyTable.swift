/// Which record field a key names, for records that arrive as key/value pairs: JSON lines and
/// the attributes of OTLP log records share it, so one ``JSONKeyMap`` (Istio's key names, or
/// the source's `json_keys`) means the same in both.
struct RecordKeyTable: Sendable {
    /// Wanted keys by length: `byLength[length]` lists (key bytes, field), so a key is compared
    /// only with the few of its own length.
    private let byLength: [[(bytes: [UInt8], field: RecordField)]]
    private let maxKeyLength: Int

    /// - Parameter fields: only these keys are looked up; the flags key always is.
    init(keys: JSONKeyMap, fields: RecordFieldSet) {
        let entries = keys.entries.filter { fields.union(.responseFlags).contains(RecordFieldSet($0.field)) }
        var maxLength = 0
        for entry in entries { maxLength = max(maxLength, entry.key.utf8.count) }
        var table = [[(bytes: [UInt8], field: RecordField)]](repeating: [], count: maxLength + 1)
        for entry in entries { table[entry.key.utf8.count].append((Array(entry.key.utf8), entry.field)) }
        byLength = table
        maxKeyLength = maxLength
    }

    /// The field `key` names, or nil for a key that is not looked up.
    @inline(__always)
    func field(forKey key: UnsafeRawBufferPointer) -> RecordField? {
        guard key.count <= maxKeyLength, let keyBase = key.baseAddress else { return nil }
        for candidate in byLength[key.count] {
            // A byte loop: `elementsEqual` on raw buffers goes through the generic Sequence path.
            let equal = candidate.bytes.withUnsafeBytes { bytes in
                bytes.baseAddress.map { memoryEqual($0, keyBase, key.count) } ?? false
            }
            if equal { return candidate.field }
        }
        return nil
    }
}
