import AccessLogParser
import FlagCounting
import LineFraming
import Testing

@testable import Exposition

/// Names from log lines in every output: escaped on bytes or scalars, never on Characters.
@Suite("Untrusted text in every output")
struct UntrustedTextTests {
    /// Each case is a single grapheme cluster (or holds one) that a switch over Characters misses.
    static let hostile = [
        "q\"\u{301}}x", "a\r\nb", "back\\\u{301}slash", "nul\u{0}byte", "esc\u{1B}[31m", "del\u{7F}",
        "<\u{301}script>", "\"\u{301}",
    ]

    @Test("label values: backslash, quote and LF escaped on bytes; other controls become U+FFFD")
    func labelValues() {
        #expect(UntrustedText.labelValue("q\"\u{301}}x") == "q\\\"\u{301}}x")
        #expect(UntrustedText.labelValue("a\r\nb") == "a\u{FFFD}\\nb")
        #expect(UntrustedText.labelValue("back\\\u{301}slash") == "back\\\\\u{301}slash")
        #expect(UntrustedText.labelValue("nul\u{0}byte") == "nul\u{FFFD}byte")
        #expect(UntrustedText.labelValue("del\u{7F}") == "del\u{FFFD}")
        #expect(
            UntrustedText.labelValue("outbound|8080||a.b.svc.cluster.local") == "outbound|8080||a.b.svc.cluster.local")
        #expect(MetricsWriter.escapeLabelValue("\"\u{301}") == "\\\"\u{301}")
    }

    @Test("every escaped label value is a valid quoted string of the exposition format", arguments: hostile)
    func labelValuesParse(_ name: String) {
        let escaped = Array(UntrustedText.labelValue(name).utf8)
        var index = 0
        while index < escaped.count {
            let byte = escaped[index]
            #expect(byte >= 0x20 && byte != 0x7F, "raw control byte \(byte) in \(name.debugDescription)")
            #expect(byte != 0x22, "unescaped quote in \(name.debugDescription)")
            if byte == 0x5C {
                #expect(index + 1 < escaped.count && [0x5C, 0x22, 0x6E].contains(escaped[index + 1]))
                index += 2
            } else {
                index += 1
            }
        }
    }

    @Test(
        "the daemon's page holds every hostile name on one sample line each",
        arguments: [ExpositionFormat.prometheus, .openMetrics])
    func daemonPage(_ format: ExpositionFormat) throws {
        var writer = MetricsWriter(format: format)
        for name in Self.hostile {
            writer.sample(
                .responseFlags, escapedLabels: MetricsWriter.labelBlock([("upstream_cluster", name)]),
                extraValues: ["U\"\u{301}F"], 1)
        }
        writer.finish()
        let page = String(decoding: writer.bytes, as: UTF8.self)
        let samples = page.split(separator: "\n").filter { $0.hasPrefix("flagwatch_") }
        #expect(samples.count == Self.hostile.count)
        for sample in samples { #expect(sample.hasSuffix("} 1")) }
        #expect(!writer.bytes.contains(0x0D) && !writer.bytes.contains(0) && !writer.bytes.contains(0x1B))
    }

    @Test("JSON: RFC 8259 escapes on scalars")
    func json() {
        #expect(UntrustedText.jsonLiteral("q\"\u{301}}x") == "\"q\\\"\u{301}}x\"")
        #expect(UntrustedText.jsonLiteral("a\r\nb\u{0}\u{1B}") == "\"a\\r\\nb\\u0000\\u001b\"")
    }

    @Test("HTML: entities on scalars, controls replaced")
    func html() {
        #expect(UntrustedText.html("<\u{301}script>") == "&lt;\u{301}script&gt;")
        #expect(UntrustedText.html("\"\u{301}&") == "&quot;\u{301}&amp;")
        #expect(UntrustedText.html("a\u{0}b\u{1B}c\td") == "a\u{FFFD}b\u{FFFD}c\td")
        #expect(StatusPage.escape("<\u{301}") == "&lt;\u{301}")
    }

    @Test("tables: no control character reaches the terminal")
    func table() {
        #expect(UntrustedText.printable("esc\u{1B}[31m\u{9B}2J\r\n") == "esc\u{FFFD}[31m\u{FFFD}2J\u{FFFD}\u{FFFD}")
        #expect(UntrustedText.printable("plain") == "plain")
    }

    /// JSON access-log lines whose upstream_cluster is each hostile name (JSON-escaped).
    static var hostileLines: [String] {
        hostile.map {
            #"{"response_code":503,"response_flags":"UF","upstream_cluster":"# + UntrustedText.jsonLiteral($0) + "}"
        }
    }

    @Test("scan's outputs from JSON lines with hostile names: Prometheus text, JSON and the table")
    func scanOutputs() throws {
        let counts = try counts(of: Self.hostileLines, format: .auto)
        #expect(counts.allClusters.count == Self.hostile.count)
        let text = ScanReport(counts: counts).prometheus(source: "scan")
        for byte: UInt8 in [0x0D, 0x00, 0x1B, 0x7F] { #expect(!text.utf8.contains(byte)) }
        #expect(
            text.split(separator: "\n").filter { $0.hasPrefix("flagwatch_response_flags_total{") }.count
                == Self.hostile.count)
        let table = ScanReport(counts: counts).table()
        for byte: UInt8 in [0x0D, 0x00, 0x1B, 0x7F] { #expect(!table.utf8.contains(byte)) }
        let json = ScanReport(counts: counts).json()
        for byte in json.utf8 { #expect(byte >= 0x20) }
    }
}
