/// nginx's access log (`format: nginx`, docs/formats.md §9.2): the `combined` format, and
/// ingress-nginx's `upstreaminfo`, which appends
/// `$request_length $request_time [$proxy_upstream_name] [$proxy_alternative_upstream_name]
/// $upstream_addr $upstream_response_length $upstream_response_time $upstream_status $req_id`
/// (older controllers lack the alternative name):
///
///     10.0.0.1 - - [06/Dec/2026:20:15:01 +0000] "GET / HTTP/1.1" 503 190 "-" "curl/8.5.0" 73 0.000 [default-echo-80] [] - - - - 5a3f9e2b1c7d4e6f8a9b0c1d2e3f4a5b
///
/// The cluster is `$proxy_upstream_name` (`-` for combined lines). An access line says what
/// the client got, rarely why: it gets a flag only where it proves one (503 with no upstream
/// address, or 502/503 with the group's name where the address would be: no server was
/// live, UH; 504 that no upstream answered otherwise: UT).
enum NginxAccessLineParser {
    static func parse(_ line: UnsafeRawBufferPointer, into record: inout AccessRecord) -> MalformedReason? {
        guard let line = EdgeLine(line) else { return .emptyLine }
        // `$remote_addr - $remote_user [$time_local] "$request" `: nginx escapes `"` in
        // variables (`\x22`), so the quotes delimit reliably.
        guard let dateOpen = line.bracketedDate(from: 0), dateOpen > 1,
            let dateClose = line.find("] \"", from: dateOpen)
        else {
            return .notAccessLog
        }
        guard let requestEnd = line.find("\" ", from: dateClose + 3) else { return .formatMismatch }
        let statusStart = requestEnd + 2
        let statusEnd = line.digitsEnd(from: statusStart)
        guard statusEnd - statusStart == 3, line.has(" ", at: statusEnd) else { return .badResponseCode }
        let bytesEnd = line.digitsEnd(from: statusEnd + 1)
        guard bytesEnd > statusEnd + 1, line.has(" \"", at: bytesEnd),
            let refererEnd = line.find(byte: UInt8(ascii: "\""), from: bytesEnd + 2),
            line.has(" \"", at: refererEnd + 1),
            let agentEnd = line.find(byte: UInt8(ascii: "\""), from: refererEnd + 3)
        else { return .formatMismatch }
        let code = RecordAssignment.parseUnsigned(line.view(statusStart, statusEnd)) ?? 0
        record.startTime = FieldView(line.view(dateOpen + 1, dateClose))
        record.responseCode = code
        let method = line.find(byte: UInt8(ascii: " "), from: dateClose + 3, to: requestEnd) ?? requestEnd
        record.requestMethod = RecordAssignment.view(line.view(dateClose + 3, method), false)
        guard agentEnd + 1 < line.count else { return nil }  // combined: no upstream information
        return readUpstreamInfo(line, from: agentEnd + 1, code: code, status: (statusStart, statusEnd), into: &record)
    }

    /// ` $request_length $request_time [name] [alternative] $upstream_addr ... $upstream_status $req_id`.
    private static func readUpstreamInfo(
        _ line: EdgeLine, from position: Int, code: Int, status: (start: Int, end: Int), into record: inout AccessRecord
    ) -> MalformedReason? {
        guard let nameOpen = line.find(" [", from: position), let nameClose = line.find("] ", from: nameOpen + 2) else {
            return .formatMismatch
        }
        record.upstreamCluster = RecordAssignment.view(line.view(nameOpen + 2, nameClose), false)
        var addressStart = nameClose + 2
        if line.has("[", at: addressStart), let alternativeClose = line.find("] ", from: addressStart) {
            addressStart = alternativeClose + 2
        }
        // The upstream lists may hold `, ` and ` : `, but the last two tokens are the last
        // upstream status and the request id.
        guard let idSpace = line.findLast(" ", from: addressStart, to: line.count), idSpace > addressStart else {
            return .formatMismatch
        }
        let statusStart = (line.findLast(" ", from: addressStart, to: idSpace) ?? addressStart - 1) + 1
        let lastUpstreamStatus = line.view(statusStart, idSpace)
        let noUpstream = line.has("- ", at: addressStart)
        let addressEnd = line.find(byte: UInt8(ascii: " "), from: addressStart) ?? addressStart
        // `10.0.0.1:80, 10.0.0.2:80`: the first server tried, without the list's comma.
        let firstAddress = line.view(
            addressStart,
            addressEnd > addressStart && line[addressEnd - 1] == UInt8(ascii: ",") ? addressEnd - 1 : addressEnd)
        // nginx writes the group's name instead of an address when no server of it was live.
        let groupName = !noUpstream && !firstAddress.isEmpty && !firstAddress.contains(UInt8(ascii: ":"))
        if !noUpstream && !groupName { record.upstreamHost = FieldView(firstAddress) }
        let upstreamStatusDash = lastUpstreamStatus.count == 1 && lastUpstreamStatus[0] == UInt8(ascii: "-")
        let flag: ResponseFlag?
        if code == 503 && noUpstream {
            flag = .noHealthyUpstream
        } else if groupName && (code == 502 || code == 503) && addressEnd - addressStart == firstAddress.count {
            flag = .noHealthyUpstream
        } else if code == 504 && (upstreamStatusDash || isStatus504(lastUpstreamStatus)) {
            flag = .upstreamRequestTimeout
        } else {
            flag = nil
        }
        if let flag {
            // The fields that prove the flag are its source and the evidence the diagnosis
            // reads: the upstream fields for UH (`- - - -`, `alldown 0 0.000 502`: the same on
            // every such line), the status for UT (`504`: the upstream fields hold timings).
            let evidence =
                flag == .noHealthyUpstream
                ? FieldView(line.view(addressStart, idSpace)) : FieldView(line.view(status.start, status.end))
            record.responseFlags = ResponseFlagSet(flag)
            record.responseFlagsText = evidence
            record.responseCodeDetails = evidence
        }
        return nil
    }

    private static func isStatus504(_ value: UnsafeRawBufferPointer) -> Bool {
        value.count == 3 && value[0] == UInt8(ascii: "5") && value[1] == UInt8(ascii: "0")
            && value[2] == UInt8(ascii: "4")
    }
}
