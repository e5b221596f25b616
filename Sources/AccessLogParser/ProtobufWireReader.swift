/// Why protobuf bytes could not be read. Each is a reason the bytes are not a valid encoding of
/// any message, whatever its schema.
public enum ProtobufWireDefect: Error, Equatable, Sendable {
    /// The bytes end inside a tag, a varint, a fixed-width value or a length-delimited value.
    case truncated
    /// A varint longer than 10 bytes.
    case overlongVarint
    /// Field number 0, or above 2^29 - 1.
    case invalidFieldNumber
    /// Wire types 3 and 4 (groups, deprecated since proto2 and never sent by Envoy or OTLP
    /// senders) and the unassigned 6 and 7.
    case unsupportedWireType
}

/// The protobuf wire types flagwatch reads.
public enum ProtobufWireType: UInt8, Sendable {
    case varint = 0
    case fixed64 = 1
    case lengthDelimited = 2
    case fixed32 = 5
}

/// Reads protobuf's wire format in place: each length-delimited value is a view into the
/// buffer, never a copy. For the few messages flagwatch receives (Envoy's access-log service,
/// OTLP logs) this is all decoding needs, and it is what keeps a received entry as cheap as a
/// file line: no message objects, no strings, no allocation per entry.
///
/// The buffer must outlive the reader and every view it hands out.
public struct ProtobufWireReader {
    @usableFromInline let bytes: UnsafeRawBufferPointer
    @usableFromInline var offset: Int

    @inlinable
    public init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
        self.offset = 0
    }

    @inlinable public var isAtEnd: Bool { offset >= bytes.count }

    /// The next field's number and wire type; nil at the end of the buffer.
    @inlinable
    public mutating func nextField() throws(ProtobufWireDefect) -> (number: Int, wireType: ProtobufWireType)? {
        guard !isAtEnd else { return nil }
        let tag = try readVarint()
        let number = tag >> 3
        guard number >= 1 && number <= (1 << 29) - 1 else { throw .invalidFieldNumber }
        guard let wireType = ProtobufWireType(rawValue: UInt8(tag & 7)) else { throw .unsupportedWireType }
        return (Int(number), wireType)
    }

    @inlinable
    public mutating func readVarint() throws(ProtobufWireDefect) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        // At most 10 bytes: the loop's bound, so a hostile run of continuation bytes ends here.
        for _ in 0..<10 {
            guard offset < bytes.count else { throw .truncated }
            let byte = bytes[offset]
            offset += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return value }
            shift += 7
        }
        throw .overlongVarint
    }

    /// A length-delimited value (string, bytes, embedded message), as a view into the buffer.
    @inlinable
    public mutating func readLengthDelimited() throws(ProtobufWireDefect) -> UnsafeRawBufferPointer {
        let length = try readVarint()
        guard length <= UInt64(bytes.count - offset) else { throw .truncated }
        let start = offset
        offset += Int(length)
        return UnsafeRawBufferPointer(rebasing: bytes[start..<offset])
    }

    /// Skips a value of a field that is not read.
    @inlinable
    public mutating func skip(_ wireType: ProtobufWireType) throws(ProtobufWireDefect) {
        switch wireType {
        case .varint: _ = try readVarint()
        case .fixed64: try skipBytes(8)
        case .fixed32: try skipBytes(4)
        case .lengthDelimited: _ = try readLengthDelimited()
        }
    }

    @inlinable
    mutating func skipBytes(_ count: Int) throws(ProtobufWireDefect) {
        guard count <= bytes.count - offset else { throw .truncated }
        offset += count
    }

    /// Reads a varint field's value, or skips a field of another wire type and gives nil: a
    /// sender with a different schema for the number cannot make the reader lose its place.
    @inlinable
    public mutating func varint(ifWireType wireType: ProtobufWireType) throws(ProtobufWireDefect) -> UInt64? {
        guard wireType == .varint else {
            try skip(wireType)
            return nil
        }
        return try readVarint()
    }

    /// Reads a length-delimited field's value, or skips a field of another wire type and gives nil.
    @inlinable
    public mutating func lengthDelimited(ifWireType wireType: ProtobufWireType) throws(ProtobufWireDefect)
        -> UnsafeRawBufferPointer?
    {
        guard wireType == .lengthDelimited else {
            try skip(wireType)
            return nil
        }
        return try readLengthDelimited()
    }
}
