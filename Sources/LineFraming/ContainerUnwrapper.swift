/// How container runtimes wrap the lines a container writes.
public enum ContainerFormat: String, CaseIterable, Sendable {
    /// Lines as the program wrote them.
    case none
    /// containerd / CRI-O: `<RFC3339Nano> stdout|stderr P|F <content>`.
    case cri
    /// Docker's json-file driver: `{"log":"...\n","stream":"stdout","time":"..."}`.
    case docker
    /// Recognised per line: CRI, docker, a `kubectl logs --timestamps` prefix, or none.
    case auto
}

/// What unwrapping one framed line gives.
public enum UnwrappedLine {
    /// The program's logical line. Points into the input line or the unwrapper's own buffer
    /// (joined partial lines, unescaped docker content): valid until the next call.
    case line(UnsafeRawBufferPointer)
    /// A partial chunk (CRI `P`, a docker chunk without `\n`) was held for joining.
    case partial
    /// The line was not in the configured wrapper's shape.
    case malformed(ContainerDefect)
}

public enum ContainerDefect: String, Sendable, CaseIterable {
    /// Not a CRI line where `cri` was configured.
    case badCRILine = "bad_cri_line"
    /// Not a docker json-file line where `docker` was configured.
    case badDockerLine = "bad_docker_line"
    /// Joined partial chunks grew past the line-length cap.
    case tooLong = "too_long"
}

/// Strips container-runtime wrappers and joins partial lines. One per stream (per file).
public final class ContainerUnwrapper {
    public let format: ContainerFormat
    public let maxLineLength: Int
    /// Partial chunks per output stream, since stdout and stderr interleave independently.
    private let pendingStdout = PendingLine()
    private let pendingStderr = PendingLine()
    /// Scratch for unescaping docker content.
    private let scratch = ReusableBuffer()

    private final class PendingLine {
        let bytes = ReusableBuffer()
        var overflowed = false
        var isActive = false
    }

    public init(format: ContainerFormat, maxLineLength: Int = 64 * 1024) {
        self.format = format
        self.maxLineLength = maxLineLength
    }

    public func unwrap(_ line: UnsafeRawBufferPointer) -> UnwrappedLine {
        switch format {
        case .none:
            return .line(line)
        case .cri:
            return unwrapCRI(line) ?? .malformed(.badCRILine)
        case .docker:
            return unwrapDocker(line) ?? .malformed(.badDockerLine)
        case .auto:
            // Most lines are raw access-log lines: reject both wrappers on the first byte.
            guard let first = line.first,
                first == UInt8(ascii: "{") || (first >= UInt8(ascii: "0") && first <= UInt8(ascii: "9"))
            else {
                return .line(line)
            }
            if first == UInt8(ascii: "{") && line.starts(with: Self.dockerPrefix) {
                return unwrapDocker(line) ?? .line(line)
            }
            guard let timestampEnd = Self.timestampLength(line), timestampEnd < line.count,
                line[timestampEnd] == UInt8(ascii: " ")
            else {
                return .line(line)
            }
            if let cri = unwrapCRI(line) { return cri }
            // `kubectl logs --timestamps`: a timestamp and a space before the content.
            return .line(UnsafeRawBufferPointer(rebasing: line[(timestampEnd + 1)...]))
        }
    }

    // MARK: CRI

    /// `<timestamp> <stream> <tag>[:<more tags>] <content>`; nil when the line is not CRI.
    private func unwrapCRI(_ line: UnsafeRawBufferPointer) -> UnwrappedLine? {
        guard let record = Self.criRecord(line) else { return nil }
        return join(record.content, isComplete: record.isComplete, isStdout: record.isStdout)
    }

    /// Splits a CRI line into its stream, its `P`/`F` tag and its content; nil when not CRI.
    private static func criRecord(_ line: UnsafeRawBufferPointer) -> (
        isStdout: Bool, isComplete: Bool, content: UnsafeRawBufferPointer
    )? {
        guard let timestampEnd = timestampLength(line), timestampEnd < line.count,
            line[timestampEnd] == UInt8(ascii: " ")
        else { return nil }
        var index = timestampEnd + 1
        let isStdout: Bool
        if matches(line, at: index, "stdout ") {
            isStdout = true
        } else if matches(line, at: index, "stderr ") {
            isStdout = false
        } else {
            return nil
        }
        index += 7
        guard index < line.count else { return nil }
        let tag = line[index]
        guard tag == UInt8(ascii: "P") || tag == UInt8(ascii: "F") else { return nil }
        index += 1
        // Only the first tag counts; the rest (`F:x`) is for forward compatibility.
        if index < line.count, line[index] == UInt8(ascii: ":") {
            while index < line.count, line[index] != UInt8(ascii: " ") { index += 1 }
        }
        let content: UnsafeRawBufferPointer
        if index == line.count {
            // `<ts> stdout F` with no space: an empty line, as `<ts> stdout F ` is.
            content = UnsafeRawBufferPointer(rebasing: line[index...])
        } else {
            guard line[index] == UInt8(ascii: " ") else { return nil }
            content = UnsafeRawBufferPointer(rebasing: line[(index + 1)...])
        }
        return (isStdout, tag == UInt8(ascii: "F"), content)
    }

    /// Whether `line` is in a wrapper whose records can be partial (CRI or docker json-file),
    /// so that a logical line may continue on the next one.
    public static func isCRIOrDockerRecord(_ line: UnsafeRawBufferPointer) -> Bool {
        line.starts(with: dockerPrefix) || criRecord(line) != nil
    }

    // MARK: docker json-file

    private static let dockerPrefix: [UInt8] = Array(#"{"log":""#.utf8)

    /// `{"log":"<escaped>","stream":"stdout|stderr","time":"..."}`; nil when not that shape.
    private func unwrapDocker(_ line: UnsafeRawBufferPointer) -> UnwrappedLine? {
        guard line.starts(with: Self.dockerPrefix) else { return nil }
        let bodyStart = Self.dockerPrefix.count
        var index = bodyStart
        var hasEscapes = false
        while index < line.count, line[index] != UInt8(ascii: "\"") {
            if line[index] == UInt8(ascii: "\\") {
                hasEscapes = true
                index += 1
            }
            index += 1
        }
        guard index < line.count else { return nil }
        let body = UnsafeRawBufferPointer(rebasing: line[bodyStart..<index])
        let rest = UnsafeRawBufferPointer(rebasing: line[index...])
        let isStdout = !Self.contains(rest, #""stream":"stderr""#)
        guard line[line.count - 1] == UInt8(ascii: "}") else { return nil }

        // Docker ends a complete line's content with an escaped newline; a chunk of a split
        // long line has none.
        let isComplete =
            body.count >= 2 && body[body.count - 2] == UInt8(ascii: "\\") && body[body.count - 1] == UInt8(ascii: "n")
            && !Self.endsWithEscapedBackslash(body, before: body.count - 2)
        let content = isComplete ? UnsafeRawBufferPointer(rebasing: body[..<(body.count - 2)]) : body
        guard hasEscapes else { return join(content, isComplete: isComplete, isStdout: isStdout) }
        scratch.removeAll()
        scratch.appendUnescaped(content)
        return join(scratch.bytes, isComplete: isComplete, isStdout: isStdout)
    }

    /// True when the byte before `index` is a backslash that is itself escaped data, i.e.
    /// `\\n` is a backslash followed by `n`, not a newline. Counts the run of backslashes.
    private static func endsWithEscapedBackslash(_ body: UnsafeRawBufferPointer, before index: Int) -> Bool {
        var run = 0
        var cursor = index - 1
        while cursor >= 0, body[cursor] == UInt8(ascii: "\\") {
            run += 1
            cursor -= 1
        }
        return run % 2 == 1
    }

    // MARK: joining partial lines

    /// Hands `content` on when it completes a line, else holds it with the stream's earlier chunks.
    private func join(_ content: UnsafeRawBufferPointer, isComplete: Bool, isStdout: Bool) -> UnwrappedLine {
        let pending = isStdout ? pendingStdout : pendingStderr
        if !pending.isActive {
            if isComplete {
                return content.count > maxLineLength ? .malformed(.tooLong) : .line(content)
            }
            pending.isActive = true
            pending.overflowed = false
            pending.bytes.removeAll()
        }
        if !pending.overflowed {
            if pending.bytes.count + content.count > maxLineLength {
                pending.overflowed = true
                pending.bytes.removeAll()
            } else {
                pending.bytes.append(content)
            }
        }
        guard isComplete else { return .partial }
        pending.isActive = false
        return pending.overflowed ? .malformed(.tooLong) : .line(pending.bytes.bytes)
    }

    // MARK: byte helpers

    /// The length of an RFC 3339 timestamp at the start of `line`
    /// (`2016-10-06T00:17:09.669794202Z`, `2020-01-26T03:17:29.346494690+00:00`), else nil.
    public static func timestampLength(_ line: UnsafeRawBufferPointer) -> Int? {
        // YYYY-MM-DDTHH:MM:SS
        let shape = "dddd-dd-ddTdd:dd:dd".utf8
        guard line.count >= shape.count else { return nil }
        for (index, expected) in shape.enumerated() {
            let byte = line[index]
            if expected == UInt8(ascii: "d") {
                guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return nil }
            } else if byte != expected {
                return nil
            }
        }
        var index = shape.count
        if index < line.count, line[index] == UInt8(ascii: ".") {
            index += 1
            let digitsStart = index
            while index < line.count, line[index] >= UInt8(ascii: "0"), line[index] <= UInt8(ascii: "9") { index += 1 }
            guard index > digitsStart else { return nil }
        }
        guard index < line.count else { return nil }
        if line[index] == UInt8(ascii: "Z") { return index + 1 }
        guard line[index] == UInt8(ascii: "+") || line[index] == UInt8(ascii: "-"), index + 6 <= line.count,
            line[index + 3] == UInt8(ascii: ":")
        else { return nil }
        return index + 6
    }

    private static func matches(_ line: UnsafeRawBufferPointer, at index: Int, _ text: StaticString) -> Bool {
        let count = text.utf8CodeUnitCount
        guard index + count <= line.count else { return false }
        let expected = UnsafeRawBufferPointer(start: text.utf8Start, count: count)
        return UnsafeRawBufferPointer(rebasing: line[index..<(index + count)]).elementsEqual(expected)
    }

    private static func contains(_ haystack: UnsafeRawBufferPointer, _ needle: StaticString) -> Bool {
        let count = needle.utf8CodeUnitCount
        guard haystack.count >= count else { return false }
        for index in 0...(haystack.count - count) where matches(haystack, at: index, needle) { return true }
        return false
    }
}
