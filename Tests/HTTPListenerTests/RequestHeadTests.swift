import Testing

@testable import HTTPListener

@Suite struct RequestHeadTests {
    private func parse(_ text: String, maxRequestLine: Int = 4096, maxHeaderBytes: Int = 8192) -> RequestParse {
        Array(text.utf8).withUnsafeBytes {
            parseRequestHead($0, maxRequestLine: maxRequestLine, maxHeaderBytes: maxHeaderBytes)
        }
    }

    @Test func aScrape() {
        let text =
            "GET /metrics?x=1 HTTP/1.1\r\nHost: 127.0.0.1:9817\r\nAccept: application/openmetrics-text; version=1.0.0\r\n\r\nGET / HTTP/1.1\r\n"
        guard case .request(let request, let consumed) = parse(text) else {
            Issue.record("not parsed")
            return
        }
        #expect(request.method == "GET")
        #expect(request.path == "/metrics")
        #expect(request.query == "x=1")
        #expect(request.header("ACCEPT") == "application/openmetrics-text; version=1.0.0")
        #expect(consumed == text.utf8.count - "GET / HTTP/1.1\r\n".utf8.count)
    }

    @Test func incompleteHeads() {
        #expect(parse("GET /metrics HTTP/1.1\r\nHost: x\r\n") == .incomplete)
        #expect(parse("GET /met") == .incomplete)
    }

    @Test func limits() {
        let longTarget = "GET /" + String(repeating: "a", count: 5000)
        #expect(parse(longTarget) == .reject(status: 414, reason: "request line too long"))
        #expect(parse(longTarget + " HTTP/1.1\r\n\r\n") == .reject(status: 414, reason: "request line too long"))
        let manyHeaders =
            "GET / HTTP/1.1\r\n"
            + String(repeating: "X-Filler: 0123456789012345678901234567890123456789\r\n", count: 200)
        #expect(parse(manyHeaders) == .reject(status: 431, reason: "request headers too large"))
        #expect(parse(manyHeaders + "\r\n") == .reject(status: 431, reason: "request headers too large"))
    }

    @Test func garbage() {
        #expect(parse("\u{01}\u{02}\u{03}\n\n") == .reject(status: 400, reason: "malformed request line"))
        #expect(parse("GET /\r\n\r\n") == .reject(status: 400, reason: "malformed request line"))
        #expect(
            parse("GET / HTTP/2.0\r\n\r\n") == .reject(status: 505, reason: "only HTTP/1.0 and HTTP/1.1 are served"))
        #expect(parse("GET / HTTP/1.1\r\nBad Header: x\r\n\r\n") == .reject(status: 400, reason: "malformed header"))
        #expect(parse("GET / HTTP/1.1\r\nNoColon\r\n\r\n") == .reject(status: 400, reason: "malformed header"))
        #expect(parse("GET x/y HTTP/1.1\r\n\r\n") == .reject(status: 400, reason: "the target must be a path"))
    }

    @Test func controlBytesInAHeaderValueAre400ButTabsAndObsTextAreNot() {
        let rejection = RequestParse.reject(status: 400, reason: "control character in a header value")
        for control in ["\u{00}", "\u{01}", "\u{08}", "\u{0B}", "\u{0C}", "\r", "\u{1F}", "\u{7F}"] {
            #expect(
                parse("GET / HTTP/1.1\r\nHost: x\r\nX-Trace: a\(control)b\r\n\r\n") == rejection,
                "byte \(Array(control.utf8))")
        }
        #expect(parse("GET / HTTP/1.1\r\nHost: x\u{00}\r\n\r\n") == rejection)
        guard case .request(let request, _) = parse("GET / HTTP/1.1\r\nHost: x\r\nX-Trace: a\tb \u{E9}\r\n\r\n") else {
            Issue.record("a tab or a non-ASCII byte in a value was refused")
            return
        }
        #expect(request.header("x-trace") == "a\tb \u{E9}")
    }

    @Test func anHTTP11RequestWithoutHostIs400AndAnHTTP10OneIsServed() {
        #expect(
            parse("GET /metrics HTTP/1.1\r\nAccept: */*\r\n\r\n")
                == .reject(status: 400, reason: "HTTP/1.1 request without Host"))
        #expect(
            parse("GET /metrics HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
                == .reject(status: 400, reason: "more than one Host"))
        guard case .request(let old, _) = parse("GET /metrics HTTP/1.0\r\n\r\n") else {
            Issue.record("HTTP/1.0 without Host refused")
            return
        }
        #expect(old.path == "/metrics")
        guard case .request(let emptyHost, _) = parse("GET /metrics HTTP/1.1\r\nHost:\r\n\r\n") else {
            Issue.record("an empty Host (allowed by RFC 9112 3.2) refused")
            return
        }
        #expect(emptyHost.header("host") == "")
    }

    @Test func anAbsoluteFormTargetIsServedOnlyWhenHTTPAndForTheRequestsOwnHost() {
        for (text, path, query) in [
            ("GET http://127.0.0.1:9817/metrics HTTP/1.1\r\nHost: 127.0.0.1:9817\r\n\r\n", "/metrics", nil),
            (
                "GET HTTP://Metrics.Example:9817/metrics?a=1 HTTP/1.1\r\nHost: metrics.example:9817\r\n\r\n",
                "/metrics", "a=1"
            ),
            ("GET http://127.0.0.1:9817 HTTP/1.1\r\nHost: 127.0.0.1:9817\r\n\r\n", "/", nil),
            ("GET http://127.0.0.1:9817?x HTTP/1.1\r\nHost: 127.0.0.1:9817\r\n\r\n", "/", "x"),
            ("GET http://[::1]:9817/-/ready HTTP/1.0\r\nHost: [::1]:9817\r\n\r\n", "/-/ready", nil),
        ] as [(String, String, String?)] {
            guard case .request(let request, _) = parse(text) else {
                Issue.record("refused: \(text)")
                continue
            }
            #expect(request.path == path, "\(text)")
            #expect(request.query == query, "\(text)")
        }
        let foreign = RequestParse.reject(status: 400, reason: "absolute-form target not for this host")
        #expect(parse("GET http://evil.example/metrics HTTP/1.1\r\nHost: 127.0.0.1:9817\r\n\r\n") == foreign)
        #expect(parse("GET http://127.0.0.1/metrics HTTP/1.1\r\nHost: 127.0.0.1:9817\r\n\r\n") == foreign)
        #expect(parse("GET http://user@127.0.0.1:9817/metrics HTTP/1.1\r\nHost: 127.0.0.1:9817\r\n\r\n") == foreign)
        #expect(parse("GET http:///metrics HTTP/1.1\r\nHost:\r\n\r\n") == foreign)
        #expect(parse("GET http://127.0.0.1:9817/metrics HTTP/1.0\r\n\r\n") == foreign)
        #expect(
            parse("GET https://127.0.0.1:9817/metrics HTTP/1.1\r\nHost: 127.0.0.1:9817\r\n\r\n")
                == .reject(status: 400, reason: "absolute-form target must be http://"))
        #expect(
            parse("GET ftp://127.0.0.1/metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                == .reject(status: 400, reason: "absolute-form target must be http://"))
    }

    @Test func emptyLinesBeforeARequestAreIgnored() {
        let text = "\r\n\nGET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
        guard case .request(let request, let consumed) = parse(text) else {
            Issue.record("not parsed")
            return
        }
        #expect(request.path == "/metrics")
        #expect(consumed == text.utf8.count)
        #expect(parse("\r\n") == .incomplete)
        #expect(parse("\r\n\r") == .incomplete)
        #expect(parse("\r\nGET /met") == .incomplete)
        #expect(
            parse(String(repeating: "\r\n", count: 40), maxRequestLine: 64)
                == .reject(status: 400, reason: "empty lines instead of a request"))
        #expect(parse("\r\n\r\nGET x HTTP/1.1\r\n\r\n") == .reject(status: 400, reason: "the target must be a path"))
    }
}
