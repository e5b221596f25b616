import LineFraming
import Testing

/// What a framer handed out, copied (the views are only valid inside the callback).
enum Framed: Equatable, CustomStringConvertible {
    case line([UInt8])
    case tooLong(Int)

    static func text(_ string: String) -> Framed { .line(Array(string.utf8)) }

    var description: String {
        switch self {
        case .line(let bytes): "line(\(String(decoding: bytes, as: UTF8.self).debugDescription))"
        case .tooLong(let length): "tooLong(\(length))"
        }
    }
}

func collect(_ framer: LineFramer, _ chunk: [UInt8], into out: inout [Framed]) {
    var local: [Framed] = []
    chunk.withUnsafeBytes { buffer in
        framer.feed(buffer) { framed in
            switch framed {
            case .line(let line): local.append(.line(Array(line)))
            case .tooLong(let length): local.append(.tooLong(length))
            }
        }
    }
    out += local
}

/// Frames in place (`LineFramer.frame`): lines are views into the chunk itself.
func collectInPlace(_ framer: LineFramer, _ chunk: [UInt8], into out: inout [Framed]) {
    var local: [Framed] = []
    chunk.withUnsafeBytes { buffer in
        framer.frame(buffer) { framed in
            switch framed {
            case .line(let line): local.append(.line(Array(line)))
            case .tooLong(let length): local.append(.tooLong(length))
            }
        }
    }
    out += local
}

enum FramingMode: CaseIterable, CustomStringConvertible {
    case copying, inPlace
    var description: String { self == .copying ? "feed" : "frame in place" }
}

func frame(_ chunks: [[UInt8]], maxLineLength: Int, bufferSize: Int, mode: FramingMode = .copying) -> [Framed] {
    let framer = LineFramer(maxLineLength: maxLineLength, bufferSize: bufferSize)
    var out: [Framed] = []
    for chunk in chunks {
        switch mode {
        case .copying: collect(framer, chunk, into: &out)
        case .inPlace: collectInPlace(framer, chunk, into: &out)
        }
    }
    return out
}

/// Every way of cutting `input` in two, and one byte at a time, copying and in place: all must
/// frame identically. Reports the first failing split only (per mode), to keep failures readable.
func expectSameFramingForEverySplit(
    _ input: [UInt8], maxLineLength: Int, bufferSize: Int, expected: [Framed],
    sourceLocation: SourceLocation = #_sourceLocation
) {
    for mode in FramingMode.allCases {
        let whole = frame([input], maxLineLength: maxLineLength, bufferSize: bufferSize, mode: mode)
        #expect(whole == expected, "\(mode): whole", sourceLocation: sourceLocation)
        for split in 0...input.count {
            let result = frame(
                [Array(input[..<split]), Array(input[split...])], maxLineLength: maxLineLength,
                bufferSize: bufferSize, mode: mode)
            #expect(result == expected, "\(mode): split at \(split)", sourceLocation: sourceLocation)
            if result != expected { break }
        }
        let bytewise = frame(input.map { [$0] }, maxLineLength: maxLineLength, bufferSize: bufferSize, mode: mode)
        #expect(bytewise == expected, "\(mode): one byte at a time", sourceLocation: sourceLocation)
    }
}

@Suite("LineFramer")
struct LineFramerTests {
    @Test("lines are handed out without their newline; the last one waits for its newline")
    func basic() {
        let framer = LineFramer()
        var out: [Framed] = []
        collect(framer, Array("a\nbb\n\nccc".utf8), into: &out)
        #expect(out == [.text("a"), .text("bb"), .text("")])
        #expect(framer.pendingByteCount == 3)
        collect(framer, Array("c".utf8), into: &out)
        #expect(out.count == 3)
        #expect(framer.pendingByteCount == 4)
        collect(framer, Array("\n".utf8), into: &out)
        #expect(out == [.text("a"), .text("bb"), .text(""), .text("cccc")])
        #expect(framer.pendingByteCount == 0)
        collect(framer, [], into: &out)
        #expect(out.count == 4)
    }

    @Test("CRLF: the \\r before \\n is removed, other \\r bytes are kept")
    func crlf() {
        let out = frame([Array("a\r\nb\r\n\r\nc\rd\n\r\r\n".utf8)], maxLineLength: 100, bufferSize: 1024)
        #expect(out == [.text("a"), .text("b"), .text(""), .text("c\rd"), .text("\r")])
    }

    @Test(
        "splitting at every byte offset gives the same lines (compaction with small buffers)",
        arguments: [(64, 16), (64, 65), (64, 200), (200, 4096)])
    func everySplit(maxLineLength: Int, bufferSize: Int) {
        let lines = [
            "[2026-11-22T02:34:27.561Z] \"GET /api/pay HTTP/1.1\" 503 UF",
            "",
            "second line",
            "x",
            "{\"response_flags\":\"URX,UF\"}",
            "with crlf",
            "last",
        ]
        var input = ""
        for (index, line) in lines.enumerated() { input += line + (index == 5 ? "\r\n" : "\n") }
        input += "no newline yet"
        expectSameFramingForEverySplit(
            Array(input.utf8), maxLineLength: maxLineLength, bufferSize: bufferSize,
            expected: lines.map(Framed.text))
    }

    @Test("a line over the cap is skipped whole, reported once with its length, and the next line is kept")
    func tooLong() {
        let input = Array("short\n0123456789abcdef\nnext\n\(String(repeating: "z", count: 40))\nok\n".utf8)
        let expected: [Framed] = [.text("short"), .tooLong(16), .text("next"), .tooLong(40), .text("ok")]
        expectSameFramingForEverySplit(input, maxLineLength: 8, bufferSize: 4, expected: expected)
        expectSameFramingForEverySplit(input, maxLineLength: 8, bufferSize: 1 << 16, expected: expected)
    }

    @Test("a line exactly at the cap is kept")
    func exactlyAtCap() {
        let input = Array("01234567\n012345678\nab\n".utf8)
        expectSameFramingForEverySplit(
            input, maxLineLength: 8, bufferSize: 9,
            expected: [.text("01234567"), .tooLong(9), .text("ab")])
    }

    @Test("a line exactly at the cap followed by CRLF is kept, however it arrives")
    func exactlyAtCapCRLF() {
        // The cap applies to the line without its line ending (the complete-line path already
        // strips the \r before comparing): the result must not depend on where the reads split.
        let input = Array("01234567\r\nab\r\n".utf8)
        expectSameFramingForEverySplit(
            input, maxLineLength: 8, bufferSize: 9,
            expected: [.text("01234567"), .text("ab")])
        expectSameFramingForEverySplit(
            input, maxLineLength: 8, bufferSize: 4096,
            expected: [.text("01234567"), .text("ab")])
    }

    @Test("a very long line arriving in many reads is dropped without growing the buffer")
    func longLineManyReads() {
        let framer = LineFramer(maxLineLength: 10, bufferSize: 16)
        var out: [Framed] = []
        for _ in 0..<1000 { collect(framer, Array("abcdefghij".utf8), into: &out) }
        #expect(out == [])
        #expect(framer.pendingByteCount <= 16)
        collect(framer, Array("\nfine\n".utf8), into: &out)
        #expect(out == [.tooLong(10_000), .text("fine")])
    }

    @Test("frame(_:_:) hands out complete lines as views into the caller's bytes")
    func inPlaceViews() {
        let framer = LineFramer(maxLineLength: 64, bufferSize: 128)
        let chunk = Array("one\ntwo\r\nthr".utf8)
        var inside: [Bool] = []
        var out: [Framed] = []
        chunk.withUnsafeBytes { buffer in
            let range =
                UInt(bitPattern: buffer.baseAddress)..<(UInt(bitPattern: buffer.baseAddress) + UInt(buffer.count))
            framer.frame(buffer) { framed in
                if case .line(let line) = framed {
                    inside.append(range.contains(UInt(bitPattern: line.baseAddress)))
                    out.append(.line(Array(line)))
                }
            }
        }
        #expect(out == [.text("one"), .text("two")])
        #expect(inside == [true, true])
        #expect(framer.pendingByteCount == 3)
        collectInPlace(framer, Array("ee\nfour\n".utf8), into: &out)
        #expect(out == [.text("one"), .text("two"), .text("three"), .text("four")])
        // Copying and in-place calls can follow each other on one framer.
        collect(framer, Array("fi".utf8), into: &out)
        collectInPlace(framer, Array("ve\nsix\n".utf8), into: &out)
        collect(framer, Array("seven\n".utf8), into: &out)
        #expect(out.suffix(3) == [.text("five"), .text("six"), .text("seven")])
        collectInPlace(framer, [], into: &out)
        #expect(out.count == 7)
    }

    @Test("fill(_:) reads straight into the buffer; drain(_:) hands out the lines")
    func fillAndDrain() {
        let framer = LineFramer(maxLineLength: 32, bufferSize: 8)
        let source = Array("alpha\nbeta\r\ngamma delta\n\nomega".utf8)
        var offset = 0
        var out: [Framed] = []
        var reads = 0
        while true {
            let count = framer.fill { (buffer: UnsafeMutableRawBufferPointer) -> Int in
                let n = min(buffer.count, source.count - offset, 5)
                for index in 0..<n { buffer[index] = source[offset + index] }
                offset += n
                return n
            }
            reads += 1
            framer.drain { framed in
                switch framed {
                case .line(let line): out.append(.line(Array(line)))
                case .tooLong(let length): out.append(.tooLong(length))
                }
            }
            if count == 0 { break }
        }
        #expect(out == [.text("alpha"), .text("beta"), .text("gamma delta"), .text("")])
        #expect(framer.pendingByteCount == 5)
        #expect(reads > source.count / 5)
        #expect(framer.maxLineLength == 32)
    }

    @Test("a throwing read passes its error through")
    func fillThrows() {
        struct ReadFailed: Error {}
        let framer = LineFramer(maxLineLength: 16, bufferSize: 32)
        #expect(throws: ReadFailed.self) {
            _ = try framer.fill { (_: UnsafeMutableRawBufferPointer) throws(ReadFailed) -> Int in throw ReadFailed() }
        }
    }
}
