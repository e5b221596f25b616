/// HAProxy's `option httplog` and `option tcplog` lines (`format: haproxy`, docs/formats.md §9.3),
/// with or without a syslog header:
///
///     10.0.1.2:33317 [06/Feb/2009:12:14:14.655] http-in static/srv1 10/0/30/69/109 200 2750 - - ---- 1/1/1/1/0 0/0 "GET /index.html HTTP/1.1"
///     Feb  6 12:12:56 localhost haproxy[14387]: 10.0.1.2:33313 [06/Feb/2009:12:12:51.443] fnt bck/srv1 0/0/5007 212 -- 0/0/0/0/3 0/0
///
/// The cluster is the backend (`%b`), the upstream host the server (`%s`). The first two
/// characters of the termination state name the failure and so the Envoy flag; the state as
/// written (`SC--`) becomes the response-code details, which the diagnosis reads.
/// httplog lines count under their status (`-1`, no response, is 0), tcplog lines under 0.
enum HAProxyLineParser {
    static func parse(_ line: UnsafeRawBufferPointer, into record: inout AccessRecord) -> MalformedReason? {
        guard let line = EdgeLine(line) else { return .emptyLine }
        // `%ci:%cp [%tr] `: found by the accept date, after whatever syslog header there is.
        guard let dateOpen = acceptDate(line), let dateClose = line.find("] ", from: dateOpen + 1) else {
            return .notAccessLog
        }
        let frontendStart = dateClose + 2
        guard let frontendEnd = line.find(byte: UInt8(ascii: " "), from: frontendStart), frontendEnd > frontendStart,
            let pairEnd = line.find(byte: UInt8(ascii: " "), from: frontendEnd + 1),
            let slash = line.find(byte: UInt8(ascii: "/"), from: frontendEnd + 1, to: pairEnd), slash > frontendEnd + 1,
            let timersEnd = line.find(byte: UInt8(ascii: " "), from: pairEnd + 1)
        else { return .formatMismatch }
        // `%TR/%Tw/%Tc/%Tr/%Ta` (httplog) or `%Tw/%Tc/%Tt` (tcplog).
        guard let timers = timers(line, pairEnd + 1, timersEnd) else { return .formatMismatch }
        var position = timersEnd + 1
        var code = 0
        if timers.isHTTP {
            guard let statusEnd = line.find(byte: UInt8(ascii: " "), from: position),
                line.isSignedNumberOrDash(position, statusEnd), statusEnd - position <= 3
            else { return .badResponseCode }
            if line[position] != UInt8(ascii: "-") {
                guard let status = RecordAssignment.parseUnsigned(line.view(position, statusEnd)) else {
                    return .badResponseCode
                }
                code = status
            }
            position = statusEnd + 1
        }
        // Bytes read, then (httplog) the captured request and response cookies.
        for _ in 0..<(timers.isHTTP ? 3 : 1) {
            guard let end = line.find(byte: UInt8(ascii: " "), from: position) else { return .formatMismatch }
            position = end + 1
        }
        let stateLength = timers.isHTTP ? 4 : 2
        // The state, a space and the first connection count's digit.
        guard position + stateLength + 1 < line.count, line[position + stateLength] == UInt8(ascii: " "),
            isFirstStateByte(line[position]), isSecondStateByte(line[position + 1]),
            isDigit(line[position + stateLength + 1])
        else { return .formatMismatch }
        let server = line.view(slash + 1, pairEnd)
        let noServer = line.has("<NOSRV>", at: slash + 1) && pairEnd - slash - 1 == 7
        record.startTime = FieldView(line.view(dateOpen + 1, dateClose))
        record.responseCode = code
        record.upstreamCluster = FieldView(line.view(frontendEnd + 1, slash))
        if !noServer { record.upstreamHost = FieldView(server) }
        record.durationMilliseconds = timers.total
        if let flag = flag(first: line[position], second: line[position + 1], noServer: noServer) {
            // The state is both where the flag comes from and the evidence the diagnosis reads.
            let state = FieldView(line.view(position, position + stateLength))
            record.responseFlags = ResponseFlagSet(flag)
            record.responseFlagsText = state
            record.responseCodeDetails = state
        }
        return nil
    }

    /// Where `[` of `[06/Feb/2009:12:14:14.655]` is, right after the client's `address:port`.
    private static func acceptDate(_ line: EdgeLine) -> Int? {
        var from = 0
        while let open = line.bracketedDate(from: from) {
            if open > 1, isDigit(line[open - 2]) { return open }
            from = open
        }
        return nil
    }

    /// The timers: five (httplog) or three (tcplog) numbers joined by `/`.
    private static func timers(_ line: EdgeLine, _ start: Int, _ end: Int) -> (isHTTP: Bool, total: Int?)? {
        var parts = 0
        var partStart = start
        var index = start
        while index <= end {
            if index == end || line[index] == UInt8(ascii: "/") {
                guard line.isSignedNumberOrDash(partStart, index) else { return nil }
                parts += 1
                if index < end { partStart = index + 1 }
            }
            index += 1
        }
        guard parts == 5 || parts == 3 else { return nil }
        // The last timer is the total (`%Ta`, `%Tt`); `+` marks it as partial under logasap.
        let totalStart = line[partStart] == UInt8(ascii: "+") ? partStart + 1 : partStart
        return (parts == 5, RecordAssignment.parseUnsigned(line.view(totalStart, end)))
    }

    /// Who or what ended the session: HAProxy's first termination-state character.
    @inline(__always)
    private static func isFirstStateByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "C"), UInt8(ascii: "S"), UInt8(ascii: "P"), UInt8(ascii: "L"), UInt8(ascii: "R"),
            UInt8(ascii: "I"), UInt8(ascii: "D"), UInt8(ascii: "U"), UInt8(ascii: "K"), UInt8(ascii: "H"),
            UInt8(ascii: "c"), UInt8(ascii: "s"), UInt8(ascii: "-"):
            return true
        default:
            return false
        }
    }

    /// In which phase: HAProxy's second termination-state character.
    @inline(__always)
    private static func isSecondStateByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "R"), UInt8(ascii: "Q"), UInt8(ascii: "C"), UInt8(ascii: "H"), UInt8(ascii: "D"),
            UInt8(ascii: "L"), UInt8(ascii: "T"), UInt8(ascii: "-"):
            return true
        default:
            return false
        }
    }

    /// The termination state's flag (docs/formats.md §9.3); nil for states that are no failure
    /// (`--`, handled locally `L?`, and everything else).
    static func flag(first: UInt8, second: UInt8, noServer: Bool) -> ResponseFlag? {
        switch (first, second) {
        case (UInt8(ascii: "S"), UInt8(ascii: "C")): return noServer ? .noHealthyUpstream : .upstreamConnectionFailure
        case (UInt8(ascii: "s"), UInt8(ascii: "C")): return .upstreamConnectionFailure
        case (UInt8(ascii: "S"), UInt8(ascii: "H")), (UInt8(ascii: "S"), UInt8(ascii: "D")):
            return .upstreamConnectionTermination
        case (UInt8(ascii: "s"), UInt8(ascii: "H")), (UInt8(ascii: "s"), UInt8(ascii: "D")):
            return .upstreamRequestTimeout
        case (UInt8(ascii: "s"), UInt8(ascii: "Q")), (UInt8(ascii: "S"), UInt8(ascii: "Q")): return .upstreamOverflow
        case (UInt8(ascii: "P"), UInt8(ascii: "H")), (UInt8(ascii: "P"), UInt8(ascii: "D")):
            return .upstreamProtocolError
        case (UInt8(ascii: "C"), _), (UInt8(ascii: "c"), _): return .downstreamConnectionTermination
        default: return nil
        }
    }
}
