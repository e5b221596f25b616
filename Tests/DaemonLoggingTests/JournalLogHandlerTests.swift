import Foundation
import Logging
import SystemCalls
import Testing

@testable import DaemonLogging

/// journald's own rule for a field name a client may set (journal_field_valid): 1-64 of
/// A-Z0-9_, not starting with a digit or `_`.
private func isValidJournalFieldName(_ name: String) -> Bool {
    guard (1...64).contains(name.utf8.count), let first = name.utf8.first else { return false }
    if first == UInt8(ascii: "_") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) { return false }
    return name.utf8.allSatisfy { byte in
        (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
            || byte == UInt8(ascii: "_")
    }
}

@Suite struct JournalFieldMappingTests {
    @Test func levelsMapToSyslogPriorities() {
        let expected: [(Logger.Level, Int)] = [
            (.trace, 7), (.debug, 7), (.info, 6), (.notice, 5), (.warning, 4), (.error, 3), (.critical, 2),
        ]
        for (level, priority) in expected {
            #expect(JournalLogHandler.priority(for: level) == priority, "\(level)")
        }
        #expect(Logger.Level.allCases.count == expected.count)
    }

    @Test(arguments: [
        ("upstream_cluster", "UPSTREAM_CLUSTER"),
        ("alertname", "ALERTNAME"),
        ("Response_Flag", "RESPONSE_FLAG"),
        ("x-request.id", "X_REQUEST_ID"),
        ("a b:c/d", "A_B_C_D"),
        ("source2", "SOURCE2"),
        // Journald would refuse these, or they are its own fields: prefixed.
        ("", "FLAGWATCH_"),
        ("_pid", "FLAGWATCH__PID"),
        ("__cursor", "FLAGWATCH___CURSOR"),
        ("1st", "FLAGWATCH_1ST"),
        ("message", "FLAGWATCH_MESSAGE"),
        ("priority", "FLAGWATCH_PRIORITY"),
        ("syslog_identifier", "FLAGWATCH_SYSLOG_IDENTIFIER"),
        ("code_line", "FLAGWATCH_CODE_LINE"),
        ("logger", "FLAGWATCH_LOGGER"),
        ("errno", "FLAGWATCH_ERRNO"),
        ("object_pid", "FLAGWATCH_OBJECT_PID"),
        ("coredump_exe", "FLAGWATCH_COREDUMP_EXE"),
        ("message_id", "FLAGWATCH_MESSAGE_ID"),
        // Non-ASCII: every UTF-8 byte becomes "_".
        ("état", "FLAGWATCH___TAT"),
    ])
    func metadataKeysBecomeFieldNames(key: String, field: String) {
        let name = JournalLogHandler.fieldName(forMetadataKey: key)
        #expect(name == field)
        #expect(isValidJournalFieldName(name), "\(name)")
    }

    @Test func longKeysAreCutTo64() {
        let plain = JournalLogHandler.fieldName(forMetadataKey: String(repeating: "k", count: 200))
        #expect(plain == String(repeating: "K", count: 64))
        let prefixed = JournalLogHandler.fieldName(forMetadataKey: "_" + String(repeating: "k", count: 200))
        #expect(prefixed.utf8.count == 64)
        #expect(prefixed.hasPrefix("FLAGWATCH__K"))
        #expect(isValidJournalFieldName(prefixed))
    }

    @Test func everyKeyGivesAValidName() {
        // A spread of awkward keys: every result is a field journald accepts.
        let keys = ["-", "--", "0", "9x", "ä", "日本", "\n", "a\u{0}b", "MESSAGE", "Message_Id", "x=y", " "]
        for key in keys {
            let name = JournalLogHandler.fieldName(forMetadataKey: key)
            #expect(isValidJournalFieldName(name), "\(key.debugDescription) -> \(name)")
            #expect(!JournalLogHandler.reservedFieldNames.contains(name), "\(name)")
        }
    }

    @Test func messageIDs() {
        #expect(JournalLogHandler.isMessageID("ea6d49aba83b4245b4c676ebfce32cb6"))
        #expect(!JournalLogHandler.isMessageID("EA6D49ABA83B4245B4C676EBFCE32CB6"))  // upper case
        #expect(!JournalLogHandler.isMessageID("ea6d49ab-a83b-4245-b4c6-76ebfce32cb6"))  // UUID form
        #expect(!JournalLogHandler.isMessageID("ea6d49aba83b4245b4c676ebfce32cb"))  // 31
        #expect(!JournalLogHandler.isMessageID("ea6d49aba83b4245b4c676ebfce32cb6a"))  // 33
        #expect(!JournalLogHandler.isMessageID("ga6d49aba83b4245b4c676ebfce32cb6"))
        #expect(!JournalLogHandler.isMessageID(""))
    }

    @Test func entryHasTheFixedFieldsThenSortedMetadata() {
        let entry = JournalLogHandler.entry(
            level: .warning, message: "alert X on c: pending -> firing",
            metadata: [
                "upstream_cluster": "outbound|8080||reviews.default.svc.cluster.local",
                "alertname": "UpstreamConnectFailures",
                "message_id": "ea6d49aba83b4245b4c676ebfce32cb6",
                "count": .stringConvertible(42),
                "flags": .array(["UF", "URX"]),
            ],
            label: "flagwatch", file: "flagwatch/AlertSupervisor.swift", function: "evaluate(_:now:)", line: 97)
        let names = entry.fields.map(\.name)
        #expect(
            names == [
                "MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "MESSAGE_ID", "CODE_FILE", "CODE_LINE", "CODE_FUNC",
                "LOGGER",
                "ALERTNAME", "COUNT", "FLAGS", "UPSTREAM_CLUSTER",
            ])
        #expect(entry.values("MESSAGE") == ["alert X on c: pending -> firing"])
        #expect(entry.values("PRIORITY") == ["4"])
        #expect(entry.values("SYSLOG_IDENTIFIER") == ["flagwatch"])
        #expect(entry.values("MESSAGE_ID") == ["ea6d49aba83b4245b4c676ebfce32cb6"])
        #expect(entry.values("CODE_FILE") == ["flagwatch/AlertSupervisor.swift"])
        #expect(entry.values("CODE_LINE") == ["97"])
        #expect(entry.values("CODE_FUNC") == ["evaluate(_:now:)"])
        #expect(entry.values("LOGGER") == ["flagwatch"])
        #expect(entry.values("UPSTREAM_CLUSTER") == ["outbound|8080||reviews.default.svc.cluster.local"])
        #expect(entry.values("COUNT") == ["42"])
        // Arrays and dictionaries as swift-log's `description` writes them.
        #expect(entry.values("FLAGS") == [#"["UF", "URX"]"#])
    }

    @Test func badMessageIDStaysAPlainField() {
        let entry = JournalLogHandler.entry(
            level: .info, message: "m", metadata: ["message_id": "not-an-id"], label: "l",
            file: "f", function: "g", line: 1)
        #expect(entry.values("MESSAGE_ID").isEmpty)
        #expect(entry.values("FLAGWATCH_MESSAGE_ID") == ["not-an-id"])
    }

    /// Equals signs stay; newlines and NUL (which may come from log lines: cluster names,
    /// details) are written as escapes, so no field shows a forged line in journalctl's output.
    @Test func valuesKeepEqualsSignsAndEscapeNewlines() {
        let value = "line one\nline two = three\n\u{0}end"
        let entry = JournalLogHandler.entry(
            level: .error, message: "multi\nline", metadata: ["detail": .string(value)], label: "l",
            file: "f", function: "g", line: 1)
        #expect(entry.values("DETAIL") == ["line one\\nline two = three\\n\\0end"])
        #expect(entry.values("MESSAGE") == ["multi\\nline"])
        #expect(entry.values("PRIORITY") == ["3"])
        // Items are back to back: NAME=value, one per field, nothing else in between.
        let rebuilt = entry.fields.flatMap { Array("\($0.name)=\($0.value)".utf8) }
        #expect(rebuilt == entry.bytes)
        #expect(entry.ends.count == entry.fields.count)
    }

    @Test func handlerMetadataIsAValue() {
        var handler = JournalLogHandler(label: "flagwatch")
        handler[metadataKey: "source"] = "envoy"
        var copy = handler
        copy[metadataKey: "source"] = "other"
        #expect(handler[metadataKey: "source"] == "envoy")
        #expect(copy[metadataKey: "source"] == "other")
        #expect(handler.identifier == "flagwatch")
    }
}

@Suite struct JournalStreamRuleTests {
    /// A regular file in the temporary directory, open; its device and inode.
    private func openTemporaryFile() throws -> (FileDescriptor, FileStatus, String) {
        let path = NSTemporaryDirectory() + "journal-stream-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        let descriptor = try FileDescriptor.create(path)
        return (descriptor, try descriptor.status(), path)
    }

    @Test func parse() throws {
        let parsed = try #require(JournalStream.parse("8:12345"))
        #expect(parsed.device == 8 && parsed.inode == 12345)
        #expect(JournalStream.parse("") == nil)
        #expect(JournalStream.parse("8") == nil)
        #expect(JournalStream.parse("8:") == nil)
        #expect(JournalStream.parse(":1") == nil)
        #expect(JournalStream.parse("8:1:2") == nil)
        #expect(JournalStream.parse("x:1") == nil)
        #expect(JournalStream.parse("-1:1") == nil)
    }

    @Test func matchingStreamSelectsTheJournal() throws {
        let (descriptor, status, path) = try openTemporaryFile()
        defer {
            descriptor.close()
            unlink(path)
        }
        let value = "\(status.device):\(status.inode)"
        #expect(JournalStream.matches(value, descriptor: descriptor))
        #expect(
            JournalStream.resolve(.auto, journalStream: value, standardError: descriptor, socketPath: path) == .journal)
        // No journald socket: standard error whatever the variable says.
        #expect(
            JournalStream.resolve(.auto, journalStream: value, standardError: descriptor, socketPath: path + ".none")
                == .stderr)
    }

    @Test func mismatchOrAbsenceSelectsStandardError() throws {
        let (descriptor, status, path) = try openTemporaryFile()
        defer {
            descriptor.close()
            unlink(path)
        }
        for value in ["\(status.device):\(status.inode + 1)", "\(status.device + 1):\(status.inode)", "garbage", ""] {
            #expect(!JournalStream.matches(value, descriptor: descriptor), "\(value)")
            #expect(
                JournalStream.resolve(.auto, journalStream: value, standardError: descriptor, socketPath: path)
                    == .stderr, "\(value)")
        }
        #expect(JournalStream.resolve(.auto, journalStream: nil, standardError: descriptor) == .stderr)
        // A descriptor that is not open: never the journal.
        #expect(
            JournalStream.resolve(
                .auto, journalStream: "\(status.device):\(status.inode)",
                standardError: FileDescriptor(rawValue: 1_000_000)) == .stderr)
    }

    @Test func explicitTargetsAreKept() throws {
        let (descriptor, status, path) = try openTemporaryFile()
        defer {
            descriptor.close()
            unlink(path)
        }
        #expect(
            JournalStream.resolve(
                .stderr, journalStream: "\(status.device):\(status.inode)", standardError: descriptor,
                socketPath: path) == .stderr)
        #expect(
            JournalStream.resolve(.journal, journalStream: nil, standardError: descriptor, socketPath: path) == .journal
        )
        // journal without journald's socket: sd_journal_sendv would drop every entry silently.
        #expect(
            JournalStream.resolve(.journal, journalStream: nil, standardError: descriptor, socketPath: path + ".none")
                == .stderr)
    }

    @Test func standardErrorOfThisProcess() throws {
        // The rule on the real fd 2, with the value passed in (the environment is left alone:
        // tests run in parallel).
        let status = try FileDescriptor(rawValue: 2).status()
        let existing = FileManager.default.currentDirectoryPath
        #expect(
            JournalStream.resolve(.auto, journalStream: "\(status.device):\(status.inode)", socketPath: existing)
                == .journal)
        #expect(
            JournalStream.resolve(.auto, journalStream: "\(status.device):\(status.inode &+ 1)", socketPath: existing)
                == .stderr)
        #expect(JournalStream.resolve(.auto, journalStream: nil, socketPath: existing) == .stderr)
    }
}

@Suite("Log lines with text from log lines")
struct LogTextTests {
    @Test("CR, LF, NUL, TAB and other controls are written as escapes; other text stays as it is")
    func escapes() {
        #expect(LogText.escapingControls("a\r\nb\u{0}c\td\u{1B}[31m\u{7F}") == "a\\r\\nb\\0c\\td\\x1b[31m\\x7f")
        let combining = "q\"\u{301}}x"  // (in a variable: #expect's expansion mangles this literal)
        #expect(LogText.escapingControls(combining) == combining)
        #expect(LogText.escapingControls("plain") == "plain")
    }

    @Test("journal entries carry no raw CR, LF or NUL in MESSAGE or metadata fields")
    func journalFields() {
        let entry = JournalLogHandler.entry(
            level: .warning, message: "alert firing: a\r\nFAKE=1\u{0}",
            metadata: [
                "upstream_cluster": .string("x\r\ny"), "nested": .array([.string("z\n")]),
            ], label: "flagwatch", file: "f.swift", function: "f", line: 1)
        for name in ["MESSAGE", "UPSTREAM_CLUSTER", "NESTED"] {
            for value in entry.values(name) {
                #expect(
                    !value.utf8.contains(0x0A) && !value.utf8.contains(0x0D) && !value.utf8.contains(0),
                    "\(name)=\(value)")
            }
        }
        #expect(entry.values("MESSAGE") == ["alert firing: a\\r\\nFAKE=1\\0"])
        #expect(entry.values("UPSTREAM_CLUSTER") == ["x\\r\\ny"])
    }

    @Test("standard error gets the escaped message and metadata, the handler's own metadata included")
    func standardError() {
        let event = LogEvent(
            level: .info, message: "cluster a\r\nb", metadata: ["cluster": .string("c\u{0}d")],
            source: "t", file: "f", function: "g", line: 1)
        let escaped = StandardErrorLogHandler.escaped(event, handlerMetadata: ["own": .string("e\nf")], provided: nil)
        #expect(escaped.message.description == "cluster a\\r\\nb")
        #expect(escaped.metadata?["cluster"] == Logger.MetadataValue.string("c\\0d"))
        #expect(escaped.metadata?["own"] == Logger.MetadataValue.string("e\\nf"))
    }
}
