@testable import HTTPListener
import Testing

@Suite struct RequestHeadTests {
    private func parse(_ text: String, maxRequestLine: Int = 4096, maxHeaderBytes: Int = 8192) -> RequestParse {
        Array(text.utf8).withUnsafeBytes { parseRequestHead($0, maxRequestLine: maxRequestLine, maxHeaderBytes: maxHeaderBytes) }
    }

    @Test func aScrape() {
        let text = "GET /metrics?x=1 HTTP/1.1\r\nHost: 127.0.0.1:9817\r\nAccept: application/openmetrics-text; version=1.0.0\r\n\r\nGET / HTTP/1.1\r\n"
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
        let manyHeaders = "GET / HTTP/1.1\r\n" + String(repeating: "X-Filler: 0123456789012345678901234567890123456789\r\n", count: 200)
        #expect(parse(manyHeaders) == .reject(status: 431, reason: "request headers too large"))
        #expect(parse(manyHeaders + "\r\n") == .reject(status: 431, reason: "request headers too large"))
    }

    @Test func garbage() {
        #expect(parse("\u{01}\u{02}\u{03}\n\n") == .reject(status: 400, reason: "malformed request line"))
        #expect(parse("GET /\r\n\r\n") == .reject(status: 400, reason: "malformed request line"))
        #expect(parse("GET / HTTP/2.0\r\n\r\n") == .reject(status: 505, reason: "only HTTP/1.0 and HTTP/1.1 are served"))
        #expect(parse("GET / HTTP/1.1\r\nBad Header: x\r\n\r\n") == .reject(status: 400, reason: "malformed header"))
        #expect(parse("GET / HTTP/1.1\r\nNoColon\r\n\r\n") == .reject(status: 400, reason: "malformed header"))
        #expect(parse("GET x/y HTTP/1.1\r\n\r\n") == .reject(status: 400, reason: "the target must be a path"))
        guard case .request(let absolute, _) = parse("GET http://127.0.0.1:9817/metrics HTTP/1.1\r\n\r\n") else {
            Issue.record("absolute form refused")
            return
        }
        #expect(absolute.path == "/metrics")
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
        #expect(parse(String(repeating: "\r\n", count: 40), maxRequestLine: 64) == .reject(status: 400, reason: "empty lines instead of a request"))
        #expect(parse("\r\n\r\nGET x HTTP/1.1\r\n\r\n") == .reject(status: 400, reason: "the target must be a path"))
    }
}
