/// Names from log lines (clusters, hosts, namespaces) put into the next steps' shell commands:
/// an SRE copies them, so a hostile name must stay one word and run nothing.
enum ShellWord {
    /// Letters, digits and `-._:/`: what DNS names, addresses, ports and Istio's parts hold;
    /// such a word needs no quotes.
    static func isPlain(_ text: String) -> Bool {
        text.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: ":"), UInt8(ascii: "/"):
                true
            default: false
            }
        }
    }

    /// `text` in single quotes, a `'` inside written as `'\''`.
    static func quoted(_ text: String) -> String {
        let escaped = text.utf8.contains(UInt8(ascii: "'")) ? text.replacing("'", with: "'\\''") : text
        return "'" + escaped + "'"
    }

    /// `text` as it is when plain (or empty), else quoted.
    static func word(_ text: String) -> String {
        isPlain(text) ? text : quoted(text)
    }
}
