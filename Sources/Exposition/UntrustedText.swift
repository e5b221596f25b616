/// Text that came from log lines (cluster names, hosts, response-code details, failure reasons)
/// made safe for each output. Anyone who can write a log line, `logger -t envoy` on a node
/// included, chooses these bytes, so each output escapes them on bytes or Unicode scalars,
/// never on `Character`s: a quote followed by a combining mark, or CR LF, is one grapheme
/// cluster that a `switch` over characters matches to nothing.
///
/// Strings here are always valid UTF-8: names are decoded from log bytes with invalid sequences
/// replaced by U+FFFD when they are interned. What each output does with control characters:
/// - Prometheus and OpenMetrics label values: `\` → `\\`, `"` → `\"`, LF → `\n` (the only
///   escapes both formats define); every other C0 control and DEL → U+FFFD.
/// - JSON: the escapes RFC 8259 requires (`\"`, `\\`, `\n`, `\r`, `\t`, `\u00XX`).
/// - HTML: `<`, `>`, `&`, `"` as entities; C0 controls (but TAB and LF) and DEL → U+FFFD.
/// - Tables for terminals: C0 and C1 controls and DEL → U+FFFD, so no escape sequence reaches
///   the terminal and no column is broken.
public enum UntrustedText {
    /// U+FFFD REPLACEMENT CHARACTER in UTF-8.
    static let replacement: [UInt8] = [0xEF, 0xBF, 0xBD]

    @inline(__always)
    static func isControl(_ byte: UInt8) -> Bool { byte < 0x20 || byte == 0x7F }

    /// A label value's text between the double quotes, in both exposition formats.
    public static func labelValue(_ value: String) -> String {
        guard value.utf8.contains(where: { $0 == 0x5C || $0 == 0x22 || isControl($0) }) else { return value }
        var escaped: [UInt8] = []
        escaped.reserveCapacity(value.utf8.count + 8)
        for byte in value.utf8 {
            switch byte {
            case 0x5C: escaped += [0x5C, 0x5C]
            case 0x22: escaped += [0x5C, 0x22]
            case 0x0A: escaped += [0x5C, 0x6E]
            case _ where isControl(byte): escaped += replacement
            default: escaped.append(byte)
            }
        }
        return String(decoding: escaped, as: UTF8.self)
    }

    /// A JSON string literal, quotes included.
    public static func jsonLiteral(_ value: String) -> String {
        // Most values (cluster names, flags, details) need no escape: copied whole, not scalar
        // by scalar (scan --follow renders every cluster's names four times a second).
        if !value.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            return "\"" + value + "\""
        }
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case let control where control.value < 0x20:
                let hex = String(control.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// HTML text or attribute content.
    public static func html(_ value: String) -> String {
        var escaped = ""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "&": escaped += "&amp;"
            case "\"": escaped += "&quot;"
            case "\t", "\n": escaped.unicodeScalars.append(scalar)
            case let control where control.value < 0x20 || control.value == 0x7F: escaped += "\u{FFFD}"
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }

    /// A table cell for a terminal: no control character (C0, DEL, C1) goes through.
    public static func printable(_ value: String) -> String {
        guard value.unicodeScalars.contains(where: isTerminalControl) else { return value }
        var cleaned = ""
        for scalar in value.unicodeScalars {
            if isTerminalControl(scalar) {
                cleaned += "\u{FFFD}"
            } else {
                cleaned.unicodeScalars.append(scalar)
            }
        }
        return cleaned
    }

    static func isTerminalControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)
    }
}
