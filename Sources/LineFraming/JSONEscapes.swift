/// Decodes the backslash escapes of a JSON string body (the bytes between the quotes).
public enum JSONEscapes {
    /// Writes the decoded form of `body` into `output` and returns its length. `output` needs
    /// `body.count` bytes: decoding never lengthens (`\uXXXX` is 6 bytes for at most 3 of UTF-8,
    /// a surrogate pair 12 for 4). Invalid escapes are kept as written and lone surrogates
    /// become U+FFFD: decoding never fails, so nothing is lost.
    public static func decode(_ body: UnsafeRawBufferPointer, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        precondition(buffer.count >= body.count, "JSONEscapes.decode needs room for the whole body")
        var output = OutputCursor(buffer: buffer)
        var index = 0
        let count = body.count
        while index < count {
            let byte = body[index]
            guard byte == UInt8(ascii: "\\"), index + 1 < count else {
                output.append(byte)
                index += 1
                continue
            }
            let escaped = body[index + 1]
            index += 2
            switch escaped {
            case UInt8(ascii: "n"): output.append(0x0A)
            case UInt8(ascii: "t"): output.append(0x09)
            case UInt8(ascii: "r"): output.append(0x0D)
            case UInt8(ascii: "b"): output.append(0x08)
            case UInt8(ascii: "f"): output.append(0x0C)
            case UInt8(ascii: "u"):
                guard let unit = hex4(body, at: index) else {
                    output.append(UInt8(ascii: "\\"))
                    output.append(escaped)
                    continue
                }
                index += 4
                var scalar = UInt32(unit)
                if (0xD800..<0xDC00).contains(unit) {
                    // A high surrogate wants a `\uDC00`-`\uDFFF` partner.
                    if index + 6 <= count, body[index] == UInt8(ascii: "\\"), body[index + 1] == UInt8(ascii: "u"),
                        let low = hex4(body, at: index + 2), (0xDC00..<0xE000).contains(low)
                    {
                        scalar = 0x10000 + ((UInt32(unit) - 0xD800) << 10) + (UInt32(low) - 0xDC00)
                        index += 6
                    } else {
                        scalar = 0xFFFD
                    }
                } else if (0xDC00..<0xE000).contains(unit) {
                    scalar = 0xFFFD
                }
                appendUTF8(scalar, to: &output)
            default:
                // `\"`, `\\`, `\/` and anything unexpected: the character itself.
                output.append(escaped)
            }
        }
        return output.count
    }

    /// The decoded bytes of `body` (allocates; for output paths).
    public static func decode(_ body: UnsafeRawBufferPointer) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: body.count) { buffer, initialized in
            initialized = decode(body, into: UnsafeMutableRawBufferPointer(buffer))
        }
    }

    private struct OutputCursor {
        let buffer: UnsafeMutableRawBufferPointer
        var count = 0
        mutating func append(_ byte: UInt8) {
            buffer[count] = byte
            count += 1
        }
    }

    private static func hex4(_ body: UnsafeRawBufferPointer, at index: Int) -> UInt16? {
        guard index + 4 <= body.count else { return nil }
        var value: UInt16 = 0
        for offset in 0..<4 {
            let byte = body[index + offset]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: return nil
            }
            value = value << 4 | UInt16(digit)
        }
        return value
    }

    private static func appendUTF8(_ scalar: UInt32, to output: inout OutputCursor) {
        switch scalar {
        case 0..<0x80:
            output.append(UInt8(scalar))
        case 0x80..<0x800:
            output.append(UInt8(0xC0 | (scalar >> 6)))
            output.append(UInt8(0x80 | (scalar & 0x3F)))
        case 0x800..<0x10000:
            output.append(UInt8(0xE0 | (scalar >> 12)))
            output.append(UInt8(0x80 | ((scalar >> 6) & 0x3F)))
            output.append(UInt8(0x80 | (scalar & 0x3F)))
        default:
            output.append(UInt8(0xF0 | (scalar >> 18)))
            output.append(UInt8(0x80 | ((scalar >> 12) & 0x3F)))
            output.append(UInt8(0x80 | ((scalar >> 6) & 0x3F)))
            output.append(UInt8(0x80 | (scalar & 0x3F)))
        }
    }
}
