import LineFraming
import Testing

/// What unwrapping gave, copied out.
enum Unwrapped: Equatable, CustomStringConvertible {
    case line(String)
    case lineBytes([UInt8])
    case partial
    case malformed(ContainerDefect)

    var description: String {
        switch self {
        case .line(let text): "line(\(text.debugDescription))"
        case .lineBytes(let bytes): "lineBytes(\(bytes))"
        case .partial: "partial"
        case .malformed(let defect): "malformed(\(defect.rawValue))"
        }
    }
}

extension ContainerUnwrapper {
    func unwrap(bytes: [UInt8]) -> Unwrapped {
        bytes.withUnsafeBytes { buffer in
            switch unwrap(buffer) {
            case .line(let content):
                let copy = Array(content)
                if let text = String(validating: copy, as: UTF8.self) { return .line(text) }
                return .lineBytes(copy)
            case .partial: return .partial
            case .malformed(let defect): return .malformed(defect)
            }
        }
    }

    func unwrap(_ text: String) -> Unwrapped { unwrap(bytes: Array(text.utf8)) }
}

let accessLine =
    #"[2026-11-22T02:34:27.561Z] "GET /api/pay HTTP/1.1" 503 UF upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused} - "delayed_connect_error:_Connection_refused" 0 98 0 - "-" "flag-harness/uf" "daad7b68-4bb4-4f21-9762-5f4f56c34fee" "payments.default.svc.cluster.local:9001" "127.0.0.1:18019" outbound|9001||payments.default.svc.cluster.local - 127.0.0.1:18000 127.0.0.1:56936 - payments-default"#

@Suite("Container wrappers")
struct ContainerUnwrapperTests {
    // MARK: CRI

    @Test("CRI (containerd): the content after `<ts> <stream> <tag> `", arguments: [ContainerFormat.cri, .auto])
    func criContainerd(format: ContainerFormat) {
        let unwrapper = ContainerUnwrapper(format: format)
        #expect(unwrapper.unwrap("2016-10-06T00:17:09.669794202Z stdout F \(accessLine)") == .line(accessLine))
        #expect(unwrapper.unwrap("2016-10-06T00:17:09.669794202Z stderr F hello world") == .line("hello world"))
        #expect(unwrapper.unwrap("2016-10-06T00:17:09Z stdout F no fraction") == .line("no fraction"))
        #expect(unwrapper.unwrap("2016-10-06T00:17:09.6Z stdout F  leading space kept") == .line(" leading space kept"))
        #expect(unwrapper.unwrap("2016-10-06T00:17:09.669794202Z stdout F a  b\tc") == .line("a  b\tc"))
    }

    @Test("CRI-O: numeric offset timestamps", arguments: [ContainerFormat.cri, .auto])
    func criO(format: ContainerFormat) {
        let unwrapper = ContainerUnwrapper(format: format)
        #expect(unwrapper.unwrap("2020-01-26T03:17:29.346494690+00:00 stdout F \(accessLine)") == .line(accessLine))
        #expect(unwrapper.unwrap("2020-01-26T03:17:29.346494690-07:00 stderr F x") == .line("x"))
        #expect(unwrapper.unwrap("2020-01-26T03:17:29+05:30 stdout F y") == .line("y"))
    }

    @Test(
        "CRI: an empty container line, with and without the space after the tag",
        arguments: [ContainerFormat.cri, .auto])
    func criEmpty(format: ContainerFormat) {
        let unwrapper = ContainerUnwrapper(format: format)
        #expect(unwrapper.unwrap("2016-10-06T00:17:09.669794202Z stdout F ") == .line(""))
        #expect(unwrapper.unwrap("2016-10-06T00:17:09.669794202Z stdout F") == .line(""))
    }

    @Test("CRI: only the first of `:`-separated tags counts", arguments: [ContainerFormat.cri, .auto])
    func criTags(format: ContainerFormat) {
        let unwrapper = ContainerUnwrapper(format: format)
        #expect(unwrapper.unwrap("2016-10-06T00:17:09.669794202Z stdout F:x content") == .line("content"))
        #expect(unwrapper.unwrap("2016-10-06T00:17:09.669794202Z stdout P:x:y par") == .partial)
        #expect(unwrapper.unwrap("2016-10-06T00:17:09.669794202Z stdout F:z tial") == .line("partial"))
    }

    @Test("CRI: P chunks are joined with the following F of the same stream", arguments: [ContainerFormat.cri, .auto])
    func criPartials(format: ContainerFormat) {
        let unwrapper = ContainerUnwrapper(format: format)
        let ts = "2016-10-06T00:17:09.669794202Z"
        let a = String(accessLine.prefix(100))
        let b = String(accessLine.dropFirst(100).prefix(150))
        let c = String(accessLine.dropFirst(250))
        #expect(unwrapper.unwrap("\(ts) stdout P \(a)") == .partial)
        #expect(unwrapper.unwrap("\(ts) stdout P \(b)") == .partial)
        #expect(unwrapper.unwrap("\(ts) stdout F \(c)") == .line(accessLine))
        // The state is reset after the F.
        #expect(unwrapper.unwrap("\(ts) stdout F next") == .line("next"))
        // An F right after P with empty content ends the line.
        #expect(unwrapper.unwrap("\(ts) stdout P abc") == .partial)
        #expect(unwrapper.unwrap("\(ts) stdout F ") == .line("abc"))
    }

    @Test("CRI: stdout and stderr partials interleave independently", arguments: [ContainerFormat.cri, .auto])
    func criInterleaved(format: ContainerFormat) {
        let unwrapper = ContainerUnwrapper(format: format)
        let ts = "2020-01-26T03:17:29.346494690+00:00"
        #expect(unwrapper.unwrap("\(ts) stdout P out-1 ") == .partial)
        #expect(unwrapper.unwrap("\(ts) stderr P err-1 ") == .partial)
        #expect(unwrapper.unwrap("\(ts) stderr P err-2 ") == .partial)
        #expect(unwrapper.unwrap("\(ts) stdout P out-2 ") == .partial)
        #expect(unwrapper.unwrap("\(ts) stderr F err-3") == .line("err-1 err-2 err-3"))
        #expect(unwrapper.unwrap("\(ts) stderr F lone") == .line("lone"))
        #expect(unwrapper.unwrap("\(ts) stdout F out-3") == .line("out-1 out-2 out-3"))
    }

    @Test(
        "CRI: lines that are not CRI are bad_cri_line when CRI is configured",
        arguments: [
            "hello world",
            "",
            accessLine,
            "2016-10-06T00:17:09.669794202Z stdin F x",
            "2016-10-06T00:17:09.669794202Z stdout X x",
            "2016-10-06T00:17:09.669794202Z stdout Fx",
            "2016-10-06T00:17:09.669794202Z stdout  F x",
            "2016-10-06T00:17:09.669794202Z stdout",
            "2016-10-06T00:17:09.669794202Z stdout ",
            "2016-10-06T00:17:09.669794202Z",
            "2016-10-06 00:17:09.669794202Z stdout F x",
            "2016-10-06T00:17:09.Z stdout F x",
            "2016-10-06T00:17:09.669794202 stdout F x",
            "2016-10-06T00:17:09.669794202+00 stdout F x",
            "2016-10-06T00:17:09.669794202ZZ stdout F x",
            "16-10-06T00:17:09.669794202Z stdout F x",
            #"{"log":"x\n","stream":"stdout","time":"2019-05-29T15:32:47.807717111Z"}"#,
        ])
    func badCRI(line: String) {
        #expect(ContainerUnwrapper(format: .cri).unwrap(line) == .malformed(.badCRILine))
    }

    @Test("CRI: joined chunks over the cap are too_long, and the next line is fine")
    func criTooLong() {
        let unwrapper = ContainerUnwrapper(format: .cri, maxLineLength: 10)
        let ts = "2016-10-06T00:17:09.669794202Z"
        #expect(unwrapper.maxLineLength == 10)
        #expect(unwrapper.unwrap("\(ts) stdout P 123456") == .partial)
        #expect(unwrapper.unwrap("\(ts) stdout P 78901") == .partial)
        #expect(unwrapper.unwrap("\(ts) stdout P 2345") == .partial)
        #expect(unwrapper.unwrap("\(ts) stdout F 6") == .malformed(.tooLong))
        #expect(unwrapper.unwrap("\(ts) stdout F ok") == .line("ok"))
        // Exactly at the cap, joined or not.
        #expect(unwrapper.unwrap("\(ts) stdout P 12345") == .partial)
        #expect(unwrapper.unwrap("\(ts) stdout F 67890") == .line("1234567890"))
        #expect(unwrapper.unwrap("\(ts) stdout F 1234567890") == .line("1234567890"))
        // One complete chunk over the cap.
        #expect(unwrapper.unwrap("\(ts) stdout F 12345678901") == .malformed(.tooLong))
        // An overflowing stderr line does not disturb a stdout line being joined.
        #expect(unwrapper.unwrap("\(ts) stdout P ab") == .partial)
        #expect(unwrapper.unwrap("\(ts) stderr P 1234567890") == .partial)
        #expect(unwrapper.unwrap("\(ts) stderr F X") == .malformed(.tooLong))
        #expect(unwrapper.unwrap("\(ts) stdout F cd") == .line("abcd"))
    }

    // MARK: docker json-file

    @Test("docker json-file: the log value, unescaped, without its \\n", arguments: [ContainerFormat.docker, .auto])
    func docker(format: ContainerFormat) {
        let unwrapper = ContainerUnwrapper(format: format)
        let escaped = accessLine.replacing("\"", with: "\\\"")
        #expect(
            unwrapper.unwrap(#"{"log":"\#(escaped)\n","stream":"stdout","time":"2019-05-29T15:32:47.807717111Z"}"#)
                == .line(accessLine))
        #expect(
            unwrapper.unwrap(#"{"log":"plain\n","stream":"stderr","time":"2019-05-29T15:32:47.807717111Z"}"#)
                == .line("plain"))
        #expect(
            unwrapper.unwrap(
                #"{"log":"tab\there \\ slash\/ \u00e9\u20ac \ud83d\ude00\n","stream":"stdout","time":"t"}"#)
                == .line("tab\there \\ slash/ \u{e9}\u{20ac} \u{1F600}"))
        #expect(unwrapper.unwrap(#"{"log":"\n","stream":"stdout","time":"t"}"#) == .line(""))
        // Content ending in a backslash: `\\\n` is a backslash then the newline.
        #expect(unwrapper.unwrap(#"{"log":"ends with \\\n","stream":"stdout","time":"t"}"#) == .line("ends with \\"))
    }

    @Test(
        "docker json-file: chunks without \\n are joined with the next chunk of the stream",
        arguments: [ContainerFormat.docker, .auto])
    func dockerPartials(format: ContainerFormat) {
        let unwrapper = ContainerUnwrapper(format: format)
        #expect(unwrapper.unwrap(#"{"log":"first \"half","stream":"stdout","time":"t1"}"#) == .partial)
        #expect(unwrapper.unwrap(#"{"log":"err ","stream":"stderr","time":"t2"}"#) == .partial)
        #expect(
            unwrapper.unwrap(#"{"log":" second\" half\n","stream":"stdout","time":"t3"}"#)
                == .line(#"first "half second" half"#))
        #expect(unwrapper.unwrap(#"{"log":"line\n","stream":"stderr","time":"t4"}"#) == .line("err line"))
        // `\\n` at the end is a backslash and an `n`, not a newline: still partial.
        #expect(unwrapper.unwrap(#"{"log":"a\\n","stream":"stdout","time":"t5"}"#) == .partial)
        #expect(unwrapper.unwrap(#"{"log":"b\n","stream":"stdout","time":"t6"}"#) == .line(#"a\nb"#))
    }

    @Test("docker json-file: joined chunks over the cap are too_long")
    func dockerTooLong() {
        let unwrapper = ContainerUnwrapper(format: .docker, maxLineLength: 8)
        #expect(unwrapper.unwrap(#"{"log":"12345","stream":"stdout","time":"t"}"#) == .partial)
        #expect(unwrapper.unwrap(#"{"log":"6789\n","stream":"stdout","time":"t"}"#) == .malformed(.tooLong))
        #expect(unwrapper.unwrap(#"{"log":"1234\"678\n","stream":"stdout","time":"t"}"#) == .line(#"1234"678"#))
        #expect(unwrapper.unwrap(#"{"log":"123456789\n","stream":"stdout","time":"t"}"#) == .malformed(.tooLong))
        #expect(unwrapper.unwrap(#"{"log":"ok\n","stream":"stdout","time":"t"}"#) == .line("ok"))
    }

    @Test(
        "docker json-file: other lines are bad_docker_line when docker is configured",
        arguments: [
            "hello",
            "",
            accessLine,
            #"{"log":"x"#,
            #"{"log":"x\n""#,
            #"{"log":"x\n","stream":"stdout""#,
            #"{"log":"x\"}"#,
            #"{"stream":"stdout","log":"x\n"}"#,
            #"{"response_flags":"UF"}"#,
            "2016-10-06T00:17:09.669794202Z stdout F x",
        ])
    func badDocker(line: String) {
        #expect(ContainerUnwrapper(format: .docker).unwrap(line) == .malformed(.badDockerLine))
    }

    // MARK: kubectl, auto, none

    @Test("auto: a `kubectl logs --timestamps` prefix is stripped")
    func kubectlTimestamps() {
        let unwrapper = ContainerUnwrapper(format: .auto)
        #expect(unwrapper.unwrap("2026-11-22T02:34:27.561234567Z \(accessLine)") == .line(accessLine))
        #expect(
            unwrapper.unwrap(#"2026-11-22T02:34:27.561234567Z {"response_flags":"UF"}"#)
                == .line(#"{"response_flags":"UF"}"#))
        #expect(unwrapper.unwrap("2026-11-22T02:34:27+00:00 hello") == .line("hello"))
    }

    @Test("auto: decided per line, raw lines and other output pass through unchanged")
    func autoPerLine() {
        let unwrapper = ContainerUnwrapper(format: .auto)
        let ts = "2016-10-06T00:17:09.669794202Z"
        let agent = "2023-10-12T08:08:15.270118Z\tdebug\tenvoy pool ..."
        let envoyLog = "[2026-11-22 02:34:27.532][12][info][main] starting main dispatch loop"
        #expect(unwrapper.unwrap(accessLine) == .line(accessLine))
        #expect(unwrapper.unwrap(#"{"log":"docker line\n","stream":"stdout","time":"t"}"#) == .line("docker line"))
        // Raw lines between a CRI partial and its final chunk do not disturb the join.
        #expect(unwrapper.unwrap("\(ts) stdout P [2026") == .partial)
        #expect(unwrapper.unwrap(agent) == .line(agent))
        #expect(unwrapper.unwrap(envoyLog) == .line(envoyLog))
        #expect(
            unwrapper.unwrap(#"{"response_flags":"UF","upstream_cluster":"c"}"#)
                == .line(#"{"response_flags":"UF","upstream_cluster":"c"}"#))
        #expect(unwrapper.unwrap(#"{"log":"broken"#) == .line(#"{"log":"broken"#))
        #expect(unwrapper.unwrap("\(ts) stdout F -11-22]") == .line("[2026-11-22]"))
        #expect(unwrapper.unwrap("") == .line(""))
        #expect(unwrapper.unwrap("2016") == .line("2016"))
        #expect(unwrapper.unwrap("200 OK") == .line("200 OK"))
    }

    @Test("none: lines pass through unchanged, even when they look wrapped")
    func none() {
        let unwrapper = ContainerUnwrapper(format: .none)
        for line in [
            "2016-10-06T00:17:09.669794202Z stdout F x", #"{"log":"x\n","stream":"stdout","time":"t"}"#,
            "2016-10-06T00:17:09.669794202Z stdout P x", accessLine, "",
        ] {
            #expect(unwrapper.unwrap(line) == .line(line))
        }
    }

    @Test("invalid UTF-8 passes through the unwrappers byte for byte")
    func invalidUTF8() {
        let payload: [UInt8] = [0x61, 0xFF, 0xFE, 0xC3, 0x28, 0x62]
        let cri = Array("2016-10-06T00:17:09.669794202Z stdout F ".utf8) + payload
        #expect(ContainerUnwrapper(format: .cri).unwrap(bytes: cri) == .lineBytes(payload))
        #expect(ContainerUnwrapper(format: .auto).unwrap(bytes: cri) == .lineBytes(payload))
        #expect(ContainerUnwrapper(format: .none).unwrap(bytes: payload) == .lineBytes(payload))
    }

    @Test("ContainerFormat and ContainerDefect raw values")
    func rawValues() {
        #expect(ContainerFormat.allCases.map(\.rawValue) == ["none", "cri", "docker", "auto"])
        #expect(ContainerFormat(rawValue: "cri") == .cri)
        #expect(ContainerDefect.allCases.map(\.rawValue) == ["bad_cri_line", "bad_docker_line", "too_long"])
    }

    @Test("timestampLength")
    func timestampLength() {
        func length(_ text: String) -> Int? {
            Array(text.utf8).withUnsafeBytes { ContainerUnwrapper.timestampLength($0) }
        }
        #expect(length("2016-10-06T00:17:09.669794202Z stdout") == 30)
        #expect(length("2020-01-26T03:17:29.346494690+00:00 x") == 35)
        #expect(length("2020-01-26T03:17:29Z") == 20)
        #expect(length("2020-01-26T03:17:29-07:00") == 25)
        #expect(length("2020-01-26T03:17:29") == nil)
        #expect(length("2020-01-26 03:17:29Z") == nil)
        #expect(length("2020-01-26T03:17:29.Z") == nil)
        #expect(length("") == nil)
    }
}

@Suite("JSONEscapes")
struct JSONEscapesTests {
    func decode(_ body: String) -> [UInt8] { Array(body.utf8).withUnsafeBytes { JSONEscapes.decode($0) } }

    @Test("simple escapes")
    func simple() {
        #expect(decode(#"a\"b\\c\/d\ne\tf\rg\bh\fi"#) == Array("a\"b\\c/d\ne\tf\rg\u{8}h\u{c}i".utf8))
        #expect(decode("no escapes") == Array("no escapes".utf8))
        #expect(decode("") == [])
    }

    @Test("\\u escapes to UTF-8, including surrogate pairs")
    func unicode() {
        #expect(decode(#"\u0041\u00e9\u20AC"#) == Array("A\u{e9}\u{20ac}".utf8))
        #expect(decode(#"\ud83d\ude00!"#) == Array("\u{1F600}!".utf8))
        #expect(decode(#"\u0000"#) == [0])
        #expect(
            decode(#"\u007f\u0080\u07ff\u0800\uffff"#) == [
                0x7F, 0xC2, 0x80, 0xDF, 0xBF, 0xE0, 0xA0, 0x80, 0xEF, 0xBF, 0xBF,
            ])
    }

    @Test("lone surrogates become U+FFFD; invalid escapes are kept as written")
    func invalid() {
        let replacement: [UInt8] = [0xEF, 0xBF, 0xBD]
        #expect(decode(#"\ud83dx"#) == replacement + [0x78])
        #expect(decode(#"\ude00"#) == replacement)
        #expect(decode(#"\ud83d\u0041"#) == replacement + [0x41])
        #expect(decode(#"\u12"#) == Array(#"\u12"#.utf8))
        #expect(decode(#"\u12G4"#) == Array(#"\u12G4"#.utf8))
        #expect(decode(#"abc\"#) == Array(#"abc\"#.utf8))
        #expect(decode(#"\x"#) == Array("x".utf8))
    }

    @Test("decode(_:into:) writes into a caller buffer and returns the length")
    func intoBuffer() {
        let body = Array(#"x\u00e9\"y"#.utf8)
        var output = [UInt8](repeating: 0, count: body.count)
        let count = body.withUnsafeBytes { input in
            output.withUnsafeMutableBytes { JSONEscapes.decode(input, into: $0) }
        }
        #expect(Array(output[..<count]) == Array("x\u{e9}\"y".utf8))
    }
}
