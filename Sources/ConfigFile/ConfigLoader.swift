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
                // "-----BEGIN PRIVATE KEY-----", "-----BEGIN EC PRIVATE KEY-----", ...: the label ends the line.
                let text = String(decoding: bytes, as: UTF8.self)
                let hasBlock = text.split(separator: "\n").contains { line in
                    line.hasPrefix("-----BEGIN ")
                        && line.trimmingSuffix(while: \.isWhitespace).hasSuffix("\(label)-----")
                }
                guard hasBlock else {
                    throw ConfigError(
                        file: file, line: nil, key: keyPath,
                        reason: "\(path) holds no PEM \(label.lowercased()) (a '-----BEGIN ...\(label)-----' line)")
                }
            }
        }
    }
}

extension Substring {
    fileprivate func trimmingSuffix(while predicate: (Character) -> Bool) -> Substring {
        var end = endIndex
        while end > startIndex, predicate(self[index(before: end)]) { end = index(before: end) }
        return self[startIndex..<end]
    }
}
