/// A parsed request: what the handler sees. The listener accepts no bodies.
public struct HTTPRequest: Sendable, Equatable {
    public var method: String
    /// The path, without the query.
    public var path: String
    public var query: String?
    /// `HTTP/1.1` or `HTTP/1.0`.
    public var version: String
    /// Header names lowercased, in arrival order.
    public var headers: [(name: String, value: String)]

    public init(
        method: String, path: String, query: String? = nil, version: String = "HTTP/1.1",
        headers: [(name: String, value: String)] = []
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.version = version
        self.headers = headers
    }

    /// The first header of that name (case-insensitive).
    public func header(_ name: String) -> String? {
        let lowered = name.lowercased()
        return headers.first { $0.name == lowered }?.value
    }

    public static func == (lhs: HTTPRequest, rhs: HTTPRequest) -> Bool {
        lhs.method == rhs.method && lhs.path == rhs.path && lhs.query == rhs.query && lhs.version == rhs.version
            && lhs.headers.map(\.name) == rhs.headers.map(\.name)
            && lhs.headers.map(\.value) == rhs.headers.map(\.value)
    }
}

/// A response; the listener adds `Content-Length`, `Connection` and `Date`.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public init(status: Int, contentType: String, body: String) {
        self.init(status: status, headers: [("Content-Type", contentType)], body: Array(body.utf8))
    }

    /// A short plain-text response, as the listener sends for its own errors.
    public static func text(_ status: Int, _ message: String) -> HTTPResponse {
        HTTPResponse(status: status, contentType: "text/plain; charset=utf-8", body: message + "\n")
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 204: "No Content"
        case 301: "Moved Permanently"
        case 302: "Found"
        case 304: "Not Modified"
        case 400: "Bad Request"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 411: "Length Required"
        case 413: "Content Too Large"
        case 414: "URI Too Long"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 503: "Service Unavailable"
        case 505: "HTTP Version Not Supported"
        default: "Status \(status)"
        }
    }
}

/// What the request parser makes of the bytes received so far.
enum RequestParse: Equatable {
    /// Not a whole head yet.
    case incomplete
    /// A request whose head took `consumed` bytes.
    case request(HTTPRequest, consumed: Int)
    /// A response to send, then close the connection.
    case reject(status: Int, reason: String)
}

/// Parses a request head (request line and headers) from `bytes`, enforcing the limits.
func parseRequestHead(_ bytes: UnsafeRawBufferPointer, maxRequestLine: Int, maxHeaderBytes: Int) -> RequestParse {
    // RFC 9112 2.2: empty lines before a request line are ignored (some clients send a CRLF
    // after a request, and the next request then starts with it).
    switch leadingEmptyLines(bytes, maxRequestLine: maxRequestLine) {
    case .failure(let rejection):
        return rejection.parse
    case .success(nil):
        return .incomplete
    case .success(let skipped?) where skipped > 0:
        switch parseRequestHead(
            UnsafeRawBufferPointer(rebasing: bytes[skipped...]), maxRequestLine: maxRequestLine,
            maxHeaderBytes: maxHeaderBytes)
        {
        case .request(let request, let consumed): return .request(request, consumed: skipped + consumed)
        case let other: return other
        }
    case .success:
        break
    }
    // The request line first: too long → 414 even before the head is complete.
    guard let lineEnd = bytes.firstIndex(of: 0x0A) else {
        return bytes.count > maxRequestLine ? .reject(status: 414, reason: "request line too long") : .incomplete
    }
    if lineEnd > maxRequestLine { return .reject(status: 414, reason: "request line too long") }
    guard let headEnd = endOfHead(bytes, after: lineEnd) else {
        return bytes.count > maxHeaderBytes ? .reject(status: 431, reason: "request headers too large") : .incomplete
    }
    if headEnd > maxHeaderBytes { return .reject(status: 431, reason: "request headers too large") }
    do throws(HeadRejection) {
        let request = try parseCompleteHead(UnsafeRawBufferPointer(rebasing: bytes[0..<headEnd]))
        return .request(request, consumed: headEnd)
    } catch {
        return error.parse
    }
}

/// A request answered with `status` and closed.
struct HeadRejection: Error {
    var status: Int
    var reason: String
    var parse: RequestParse { .reject(status: status, reason: reason) }
}

/// How many bytes of empty lines come before the request line; nil when all there is so far
/// is empty lines (or half of a CRLF).
private func leadingEmptyLines(_ bytes: UnsafeRawBufferPointer, maxRequestLine: Int) -> Result<Int?, HeadRejection> {
    var skipped = 0
    while skipped < bytes.count {
        if bytes[skipped] == 0x0A {
            skipped += 1
        } else if bytes[skipped] == 0x0D && skipped + 1 < bytes.count && bytes[skipped + 1] == 0x0A {
            skipped += 2
        } else if bytes[skipped] == 0x0D && skipped + 1 == bytes.count {
            return .success(nil)
        } else {
            break
        }
        if skipped > maxRequestLine {
            return .failure(HeadRejection(status: 400, reason: "empty lines instead of a request"))
        }
    }
    return .success(skipped > 0 && skipped == bytes.count ? nil : skipped)
}

/// The end of the head (just past its empty line: CRLF CRLF, or bare LF LF, which clients
/// rarely send), searched from the end of the request line; nil if it has not arrived.
private func endOfHead(_ bytes: UnsafeRawBufferPointer, after lineEnd: Int) -> Int? {
    var index = lineEnd
    while index < bytes.count {
        guard let next = UnsafeRawBufferPointer(rebasing: bytes[(index + 1)...]).firstIndex(of: 0x0A) else {
            return nil
        }
        let absolute = index + 1 + next
        let lineLength = absolute - index - 1
        if lineLength == 0 || (lineLength == 1 && bytes[index + 1] == 0x0D) { return absolute + 1 }
        index = absolute
    }
    return nil
}

/// A whole head, from the request line to its empty line.
private func parseCompleteHead(_ head: UnsafeRawBufferPointer) throws(HeadRejection) -> HTTPRequest {
    var lines = head.split(separator: 0x0A, omittingEmptySubsequences: false).map {
        line -> Slice<UnsafeRawBufferPointer> in
        line.last == 0x0D ? line.dropLast() : line
    }
    while let last = lines.last, last.isEmpty { lines.removeLast() }
    guard let requestLine = lines.first else { throw HeadRejection(status: 400, reason: "empty request") }
    let (method, requestTarget, version) = try parseRequestLine(requestLine)
    let headers = try parseHeaderFields(lines.dropFirst())
    // RFC 9112 §3.2: 400 for any request with more than one Host, and (below, once the target
    // is known to be well-formed) for an HTTP/1.1 request without one.
    var host: String?
    for header in headers where header.name == "host" {
        guard host == nil else { throw HeadRejection(status: 400, reason: "more than one Host") }
        host = header.value
    }
    let (path, query) = try resolveTarget(requestTarget, host: host)
    guard path.hasPrefix("/") || (method == "OPTIONS" && path == "*") else {
        throw HeadRejection(status: 400, reason: "the target must be a path")
    }
    if version == "HTTP/1.1" && host == nil {
        throw HeadRejection(status: 400, reason: "HTTP/1.1 request without Host")
    }
    return HTTPRequest(method: method, path: path, query: query, version: version, headers: headers)
}

/// `METHOD target HTTP/1.x`, single spaces, an upper-case method and a visible-ASCII target.
private func parseRequestLine(_ line: Slice<UnsafeRawBufferPointer>) throws(HeadRejection) -> (
    method: String, target: String, version: String
) {
    let parts = line.split(separator: 0x20, omittingEmptySubsequences: false)
    guard parts.count == 3, parts.allSatisfy({ !$0.isEmpty }),
        parts[0].allSatisfy({ $0 >= 0x41 && $0 <= 0x5A }),
        parts[1].allSatisfy({ $0 > 0x20 && $0 < 0x7F })
    else {
        throw HeadRejection(status: 400, reason: "malformed request line")
    }
    let version = String(decoding: parts[2], as: UTF8.self)
    guard version.hasPrefix("HTTP/") else { throw HeadRejection(status: 400, reason: "malformed request line") }
    guard version == "HTTP/1.1" || version == "HTTP/1.0" else {
        throw HeadRejection(status: 505, reason: "only HTTP/1.0 and HTTP/1.1 are served")
    }
    return (String(decoding: parts[0], as: UTF8.self), String(decoding: parts[1], as: UTF8.self), version)
}

/// Header fields as (lower-cased name, value without surrounding whitespace).
private func parseHeaderFields(_ lines: ArraySlice<Slice<UnsafeRawBufferPointer>>) throws(HeadRejection) -> [(
    name: String, value: String
)] {
    var headers: [(name: String, value: String)] = []
    for line in lines {
        guard let colon = line.firstIndex(of: 0x3A) else {
            throw HeadRejection(status: 400, reason: "malformed header")
        }
        let name = line[line.startIndex..<colon]
        // No whitespace in or around a field name (RFC 9112 §5.1); obsolete line folding refused.
        guard !name.isEmpty, name.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != 0x3A }) else {
            throw HeadRejection(status: 400, reason: "malformed header")
        }
        var value = line[(colon + 1)...]
        while let first = value.first, first == 0x20 || first == 0x09 { value = value.dropFirst() }
        while let last = value.last, last == 0x20 || last == 0x09 { value = value.dropLast() }
        // A field value is visible ASCII, obs-text, SP and HTAB (RFC 9110 §5.5); a NUL or a bare
        // CR was passed on to the handler, and a proxy in front may have split on it differently.
        guard !value.contains(where: { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F }) else {
            throw HeadRejection(status: 400, reason: "control character in a header value")
        }
        headers.append((String(decoding: name, as: UTF8.self).lowercased(), String(decoding: value, as: UTF8.self)))
    }
    return headers
}

/// The path and query of the request target, in origin form or absolute form.
private func resolveTarget(_ requestTarget: String, host: String?) throws(HeadRejection) -> (
    path: String, query: String?
) {
    var target = requestTarget
    if !target.hasPrefix("/"), let schemeEnd = target.firstRange(of: "://") {
        // The absolute form (`GET http://host:port/metrics`), which servers must accept (RFC 9112
        // §3.2.2). This server is only itself, not a proxy: served when http:// and naming the
        // request's own Host (as clients send it, RFC 9112 §3.2), else 400.
        guard target[..<schemeEnd.lowerBound].lowercased() == "http" else {
            throw HeadRejection(status: 400, reason: "absolute-form target must be http://")
        }
        let rest = target[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        guard let host, !authority.isEmpty, authority.lowercased() == host.lowercased() else {
            throw HeadRejection(status: 400, reason: "absolute-form target not for this host")
        }
        let pathAndQuery = rest[authorityEnd...]
        target = pathAndQuery.hasPrefix("/") ? String(pathAndQuery) : "/" + pathAndQuery
    }
    guard let mark = target.firstIndex(of: "?") else { return (target, nil) }
    return (String(target[..<mark]), String(target[target.index(after: mark)...]))
}
