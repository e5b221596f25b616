import SystemCalls
import Yams

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// A configuration error, worded for the person editing the file: where, which key, why.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public var file: String
    public var line: Int?
    /// The key's path, as `sources[1].format`.
    public var key: String?
    public var reason: String

    public var description: String {
        var text = file
        if let line { text += ":\(line)" }
        text += ": "
        if let key, !key.isEmpty { text += "\(key): " }
        return text + reason
    }
}

public enum ConfigLoader {
    /// Config files above this are refused before parsing (a YAML bomb or the wrong file).
    public static let maximumSize = 1 << 20

    /// Reads and validates a config file.
    public static func load(path: String) throws(ConfigError) -> FlagwatchConfig {
        let bytes: [UInt8]
        do {
            bytes = try FileSystem.contents(of: path, maxBytes: maximumSize)
        } catch Errno.fileTooLarge {
            throw ConfigError(
                file: path, line: nil, key: nil,
                reason: "larger than \(maximumSize >> 20) MiB: a flagwatch config is a few KiB")
        } catch {
            throw ConfigError(file: path, line: nil, key: nil, reason: "cannot read: \(error)")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ConfigError(file: path, line: nil, key: nil, reason: "not UTF-8 text")
        }
        return try parse(text, file: path)
    }

    /// Validates config text; `file` names it in errors.
    public static func parse(_ text: String, file: String = "config") throws(ConfigError) -> FlagwatchConfig {
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else {
                throw ConfigError(file: file, line: nil, key: nil, reason: "the file is empty")
            }
            root = node
        } catch let error as ConfigError {
            throw error
        } catch let error as YamlError {
            throw ConfigError(file: file, line: yamlErrorLine(error), key: nil, reason: "not valid YAML: \(error)")
        } catch {
            throw ConfigError(file: file, line: nil, key: nil, reason: "not valid YAML: \(error)")
        }
        do {
            return try YAMLDecoder().decode(FlagwatchConfig.self, from: root)
        } catch let error as DecodingError {
            throw describe(error, root: root, file: file)
        } catch {
            throw ConfigError(file: file, line: nil, key: nil, reason: "\(error)")
        }
    }

    private static func yamlErrorLine(_ error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _):
            return mark.line
        default:
            return nil
        }
    }

    private static func describe(_ error: DecodingError, root: Node, file: String) -> ConfigError {
        let path: [any CodingKey]
        let reason: String
        switch error {
        case .typeMismatch(let type, let context):
            path = context.codingPath
            reason = "expected \(typeName(type))"
        case .valueNotFound(let type, let context):
            path = context.codingPath
            reason = "expected \(typeName(type)), found nothing"
        case .keyNotFound(let key, let context):
            path = context.codingPath
            reason =
                context.debugDescription.isEmpty || context.debugDescription.hasPrefix("No value associated")
                ? "missing key '\(key.stringValue)'" : context.debugDescription
        case .dataCorrupted(let context):
            path = context.codingPath
            reason = context.debugDescription
        @unknown default:
            path = []
            reason = "\(error)"
        }
        return ConfigError(file: file, line: line(of: path, in: root), key: keyPath(path), reason: reason)
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Int.Type: "a whole number"
        case is Double.Type, is ConfigDuration.Type: "a number or a duration like 30s"
        case is Bool.Type: "true or false"
        default:
            String(describing: type).hasPrefix("Array")
                ? "a list" : String(describing: type).hasPrefix("Dictionary") ? "a mapping" : "a mapping"
        }
    }

    /// `sources[1].format`.
    static func keyPath(_ path: [any CodingKey]) -> String {
        var text = ""
        for key in path {
            if let index = key.intValue {
                text += "[\(index)]"
            } else {
                text += text.isEmpty ? key.stringValue : "." + key.stringValue
            }
        }
        return text
    }

    /// The line of the deepest node along `path` (the key itself for a mapping entry).
    static func line(of path: [any CodingKey], in root: Node) -> Int? {
        var node = root
        var line = root.mark?.line
        for key in path {
            if let index = key.intValue, let sequence = node.sequence, index < sequence.count {
                node = sequence[index]
                line = node.mark?.line ?? line
            } else if let mapping = node.mapping,
                let entry = mapping.first(where: { $0.key.string == key.stringValue })
            {
                line = entry.key.mark?.line ?? line
                node = entry.value
            } else {
                break
            }
        }
        return line
    }
}

extension ConfigLoader {
    /// PEM files are small; anything larger is the wrong file.
    static let maximumPEMSize = 1 << 20

    /// The files the daemon will open for the config (each receiver's TLS certificate, key and
    /// client CA) are readable and hold what their key says. `check-config` and `run` (at start
    /// and on reload) call it, so a wrong path is reported with its key before anything starts;
    /// without it `run` fails later in grpc-swift's words (`failedToLoadCertificate`), which name
    /// neither the file nor the key. Not part of ``load(path:)``: `scan` never opens these files.
    public static func checkFiles(of config: FlagwatchConfig, file: String) throws(ConfigError) {
        for (index, source) in config.sources.enumerated() {
            guard case .grpcAccessLog(let settings) = source.input, let tls = settings.tls else { continue }
            var files = [
                ("certificate", tls.certificateChainPath, "CERTIFICATE"), ("key", tls.privateKeyPath, "PRIVATE KEY"),
            ]
            if let clientCA = tls.clientCAPath { files.append(("client_ca", clientCA, "CERTIFICATE")) }
            for (key, path, label) in files {
                let keyPath = "sources[\(index)].grpc_access_log.tls.\(key)"
                let bytes: [UInt8]
                do {
                    bytes = try FileSystem.contents(of: path, maxBytes: maximumPEMSize)
                } catch {
                    throw ConfigError(file: file, line: nil, key: keyPath, reason: "cannot read \(path): \(error)")
                }
                let text = String(decoding: bytes, as: UTF8.self)
                switch pemBlock(labelled: label, in: text) {
                case .none:
                    throw ConfigError(
                        file: file, line: nil, key: keyPath,
                        reason: "\(path) holds no PEM \(label.lowercased()) (a '-----BEGIN ...\(label)-----' line)")
                case .damaged(let line):
                    throw ConfigError(
                        file: file, line: nil, key: keyPath,
                        reason: "\(path) line \(line): the PEM \(label.lowercased()) is damaged (not base64 of DER "
                            + "up to its '-----END' line)")
                case .whole:
                    break
                }
            }
        }
    }
}

extension ConfigLoader {
    enum PEMBlock: Equatable {
        /// No `-----BEGIN ...LABEL-----` line.
        case none
        /// The first such block is not base64 of DER up to an `-----END` line; `line` (from 1)
        /// is where it goes wrong.
        case damaged(line: Int)
        case whole
    }

    /// Finds the first block whose BEGIN line ends with `LABEL-----` ("-----BEGIN PRIVATE
    /// KEY-----", "-----BEGIN EC PRIVATE KEY-----", ...) and checks that its body is base64 of
    /// one whole DER SEQUENCE, closed by an END line. TLS libraries reject a
    /// damaged block only when the listener starts, in words that name neither file nor line.
    static func pemBlock(labelled label: String, in text: String) -> PEMBlock {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map {
            $0.trimmingSuffix(while: \.isWhitespace)
        }
        guard
            let begin = lines.firstIndex(where: { $0.hasPrefix("-----BEGIN ") && $0.hasSuffix("\(label)-----") })
        else { return .none }
        var body = ""
        var index = begin + 1
        while index < lines.count, !lines[index].hasPrefix("-----END ") {
            let line = lines[index]
            // Legacy encrypted keys carry "Proc-Type:" / "DEK-Info:" headers, then a blank line.
            if !line.contains(":") { body += line }
            index += 1
        }
        guard index < lines.count else { return .damaged(line: lines.count) }
        guard let der = Data(base64Encoded: body), isOneDERSequence([UInt8](der)) else {
            return .damaged(line: begin + 2)
        }
        return .whole
    }

    /// Whether `der` is exactly one DER SEQUENCE: the tag 0x30, then a length (short form, or
    /// long form in 1 to 4 bytes) that covers the rest. A block cut short, or with bytes
    /// pasted after it, fails here.
    static func isOneDERSequence(_ der: [UInt8]) -> Bool {
        guard der.count >= 2, der[0] == 0x30 else { return false }
        let first = Int(der[1])
        guard first >= 0x80 else { return 2 + first == der.count }
        let lengthBytes = first & 0x7F
        guard (1...4).contains(lengthBytes), der.count >= 2 + lengthBytes else { return false }
        let length = der[2..<(2 + lengthBytes)].reduce(0) { $0 << 8 | Int($1) }
        return 2 + lengthBytes + length == der.count
    }
}

extension Substring {
    fileprivate func trimmingSuffix(while predicate: (Character) -> Bool) -> Substring {
        var end = endIndex
        while end > startIndex, predicate(self[index(before: end)]) { end = index(before: end) }
        return self[startIndex..<end]
    }
}
