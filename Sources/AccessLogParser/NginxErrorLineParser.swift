/// nginx's error log (`format: nginx-error`, docs/formats.md §9.1):
///
///     2026/12/06 20:15:01 [error] 4242#4242: *7 connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: localhost, request: "GET / HTTP/1.1", upstream: "http://127.0.0.1:8081/", host: "localhost"
///
/// Each line about a failed upstream becomes a record with the Envoy flag that names the same
/// failure, so rules, metrics and the diagnosis need nothing of their own. The message as nginx
/// wrote it is the record's response-code details and the errno or TLS text in its parentheses
/// the transport failure reason, which is what the diagnosis reads. The cluster is the
/// authority of `upstream:` (the group's name for `no live upstreams`, else the server's
/// address). A line is an event, not a response: it counts under code 0.
enum NginxErrorLineParser {
    static func parse(_ line: UnsafeRawBufferPointer, into record: inout AccessRecord) -> MalformedReason? {
        guard let line = EdgeLine(line) else { return .emptyLine }
        guard let messageStart = messageStart(line) else { return .notAccessLog }
        // The message ends where nginx's context begins; a message without it runs to the end.
        let contextStart = line.find(", client: ", from: messageStart) ?? line.count
        let upstream = upstreamAuthority(line, from: contextStart)
        record.startTime = FieldView(line.view(0, 19))
        if let upstream {
            record.upstreamCluster = FieldView(line.view(upstream.start, upstream.end))
            record.upstreamHost = record.upstreamCluster
        }
        guard let failure = classify(line, messageStart, contextStart) else {
            // About an upstream but no failure ("an upstream response is buffered to a temporary
            // file", "upstream server temporarily disabled"): a record without flags, so the
            // cluster's lines are counted. Anything else is nginx's own business.
            return upstream == nil ? .notAccessLog : nil
        }
        record.responseFlags = ResponseFlagSet(failure.flag)
        // The message is both where the flag comes from and the evidence the diagnosis reads.
        record.responseCodeDetails = FieldView(line.view(messageStart, contextStart))
        record.responseFlagsText = record.responseCodeDetails
        if let reason = failure.reason {
            record.upstreamTransportFailureReason = FieldView(line.view(reason.start, reason.end))
        }
        // For `no live upstreams` the authority is the group, not a server.
        if failure.flag == .noHealthyUpstream { record.upstreamHost = .absent }
        return nil
    }

    /// `YYYY/MM/DD HH:MM:SS [level] PID#TID: ` and an optional `*CID `: where the message starts;
    /// nil for anything else.
    private static func messageStart(_ line: EdgeLine) -> Int? {
        guard line.count > 24 else { return nil }
        // The fixed-width timestamp: digits everywhere but the separators.
        for index in 0..<19 {
            let byte = line[index]
            switch index {
            case 4, 7: guard byte == UInt8(ascii: "/") else { return nil }
            case 10: guard byte == UInt8(ascii: " ") else { return nil }
            case 13, 16: guard byte == UInt8(ascii: ":") else { return nil }
            default: guard isDigit(byte) else { return nil }
            }
        }
        guard line.has(" [", at: 19), let levelEnd = line.find("] ", from: 21, to: min(line.count, 21 + 8)) else {
            return nil
        }
        var position = levelEnd + 2
        let pidEnd = line.digitsEnd(from: position)
        guard pidEnd > position, pidEnd < line.count, line[pidEnd] == UInt8(ascii: "#") else { return nil }
        let tidEnd = line.digitsEnd(from: pidEnd + 1)
        guard tidEnd > pidEnd + 1, line.has(": ", at: tidEnd) else { return nil }
        position = tidEnd + 2
        if position < line.count, line[position] == UInt8(ascii: "*") {
            let connectionEnd = line.digitsEnd(from: position + 1)
            guard connectionEnd > position + 1, connectionEnd < line.count, line[connectionEnd] == UInt8(ascii: " ")
            else { return nil }
            position = connectionEnd + 1
        }
        return position < line.count ? position : nil
    }

    struct Failure {
        var flag: ResponseFlag
        /// The text inside the message's parentheses: `111: Connection refused`.
        var reason: (start: Int, end: Int)?
    }

    /// The flag of a message about an upstream failure (the table in docs/formats.md §9.1);
    /// nil for messages that are not one.
    private static func classify(_ line: EdgeLine, _ start: Int, _ end: Int) -> Failure? {
        // Every upstream failure message ends in its phase: "while connecting to upstream",
        // "while reading response header from upstream", "while SSL handshaking to upstream".
        guard end - start > 8, line.has("upstream", endingAt: end) else { return nil }
        let reason = parenthesized(line, start, end)
        if line.has("no live upstreams", at: start) {
            return Failure(flag: .noHealthyUpstream, reason: nil)
        }
        if line.has("while SSL handshaking to upstream", endingAt: end) {
            return Failure(flag: .upstreamConnectionFailure, reason: reason)
        }
        let connecting = line.has("while connecting to upstream", endingAt: end)
        // `connect() failed (111: ...)`, and `[crit]`'s `connect() to unix:/run/php-fpm.sock
        // failed (2: No such file or directory)` or `connect() to 10.0.0.1:80 failed (99: ...)`.
        if line.has("connect() ", at: start) {
            return Failure(flag: .upstreamConnectionFailure, reason: reason)
        }
        if line.has("upstream timed out", at: start) {
            return Failure(flag: connecting ? .upstreamConnectionFailure : .upstreamRequestTimeout, reason: reason)
        }
        if line.has("upstream prematurely closed connection", at: start) {
            return Failure(flag: .upstreamConnectionTermination, reason: reason)
        }
        if line.has("recv() failed", at: start) || line.has("readv() failed", at: start)
            || line.has("send() failed", at: start) || line.has("writev() failed", at: start)
        {
            // A non-blocking connect's refusal can surface at the first read or write:
            // `recv() failed (111: Connection refused)` is a connection failure, not a reset.
            let connectErrno =
                reason.map {
                    line.has("111:", at: $0.start) || line.has("113:", at: $0.start) || line.has("101:", at: $0.start)
                } ?? false
            return Failure(
                flag: connectErrno || connecting ? .upstreamConnectionFailure : .upstreamConnectionTermination,
                reason: reason)
        }
        if line.has("upstream sent ", at: start) {
            // "upstream sent invalid header", "... too big header", "... invalid chunked response".
            return Failure(flag: .upstreamProtocolError, reason: reason)
        }
        return nil
    }

    /// `connect() failed (111: Connection refused) while ...` → `111: Connection refused`: from
    /// the first ` (` to the last `)` before ` while `.
    private static func parenthesized(_ line: EdgeLine, _ start: Int, _ end: Int) -> (start: Int, end: Int)? {
        guard let open = line.find(" (", from: start, to: end) else { return nil }
        let phase = line.find(" while ", from: open, to: end) ?? end
        guard let close = line.findLast(")", from: open + 2, to: phase), close > open + 2 else { return nil }
        return (open + 2, close)
    }

    /// The authority of `upstream: "scheme://AUTHORITY/..."`: `127.0.0.1:8081`, a group's
    /// name, or `unix:/run/app.sock`. nginx writes `upstream:` after `request:`, whose
    /// request line modern nginx refuses to carry spaces in, and before `host:` and `referrer:`,
    /// which the client chooses freely: so the first one after the message is nginx's own.
    private static func upstreamAuthority(_ line: EdgeLine, from position: Int) -> (start: Int, end: Int)? {
        guard let field = line.find(", upstream: \"", from: position) else { return nil }
        let valueStart = field + 13
        let valueEnd = line.find(byte: UInt8(ascii: "\""), from: valueStart) ?? line.count
        var start = valueStart
        if let scheme = line.find("://", from: valueStart, to: valueEnd) { start = scheme + 3 }
        var end = line.find(byte: UInt8(ascii: "/"), from: start, to: valueEnd) ?? valueEnd
        if line.has("unix:", at: start) {
            // `http://unix:/run/app.sock:/uri`, `fastcgi://unix:/run/php-fpm.sock:`: the socket
            // path runs to the next `:`.
            end = line.find(byte: UInt8(ascii: ":"), from: start + 5, to: valueEnd) ?? valueEnd
        }
        guard end > start else { return nil }
        return (start, end)
    }
}
