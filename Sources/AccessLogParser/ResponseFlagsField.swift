/// Decodes the `%RESPONSE_FLAGS%` / `%RESPONSE_FLAGS_LONG%` field: `-` for none, else codes
/// joined by bare commas in no fixed order (`UF,URX` and `URX,UF` both occur). Short and long
/// names may be mixed; codes not in Envoy's table are counted as unknown, not rejected.
enum ResponseFlagsField {
    struct Decoded {
        var flags: ResponseFlagSet
        var unknownCount: Int
    }

    /// nil when the field is not a flags list (a byte outside `[A-Za-z0-9_]`, an empty code).
    @inline(__always)
    static func decode(_ field: UnsafeRawBufferPointer) -> Decoded? {
        guard let base = field.baseAddress, field.count > 0 else { return nil }
        // The common case by far: no flag.
        if field.count == 1 && field[0] == UInt8(ascii: "-") {
            return Decoded(flags: [], unknownCount: 0)
        }
        var decoded = Decoded(flags: [], unknownCount: 0)
        var codeStart = 0
        var index = 0
        while index <= field.count {
            if index == field.count || field[index] == UInt8(ascii: ",") {
                guard index > codeStart else { return nil }
                let code = UnsafeRawBufferPointer(start: base + codeStart, count: index - codeStart)
                if let flag = ResponseFlag.lookUp(code) {
                    decoded.flags.insert(ResponseFlagSet(flag))
                } else {
                    decoded.unknownCount += 1
                }
                codeStart = index + 1
            } else if !isCodeByte(field[index]) {
                return nil
            }
            index += 1
        }
        return decoded
    }

    @inline(__always)
    static func isCodeByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"):
            return true
        default:
            return false
        }
    }

    /// Calls `body` with each comma-separated code of a field that `decode` accepted.
    static func forEachCode(in field: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> Void) {
        guard let base = field.baseAddress, !(field.count == 1 && field[0] == UInt8(ascii: "-")) else {
            return
        }
        var codeStart = 0
        for index in 0...field.count where index == field.count || field[index] == UInt8(ascii: ",") {
            if index > codeStart {
                body(UnsafeRawBufferPointer(start: base + codeStart, count: index - codeStart))
            }
            codeStart = index + 1
        }
    }
}
