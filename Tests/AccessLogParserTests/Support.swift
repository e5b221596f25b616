import AccessLogParser
import Testing

/// A parsed record copied out into plain values, so it can outlive the parsed buffer and be
/// compared with `==` (absent fields are nil).
struct Parsed: Equatable, CustomStringConvertible {
    var code: Int
    var flags: [ResponseFlag]
    var unknownFlagCount: Int
    var unknownFlags: [String]
    var flagsText: String?
    var cluster: String?
    var clusterHasEscapes: Bool
    var details: String?
    var transportFailure: String?
    var host: String?
    var authority: String?
    var duration: Int?
    var attempts: Int?
    var route: String?
    var method: String?
    var start: String?

    init(_ record: AccessRecord) {
        func text(_ view: FieldView) -> String? { view.isAbsent ? nil : view.rawString }
        code = record.responseCode
        flags = record.responseFlags.flags
        unknownFlagCount = record.unknownFlagCount
        var unknown: [String] = []
        record.forEachUnknownFlag { unknown.append(String(decoding: $0, as: UTF8.self)) }
        unknownFlags = unknown
        flagsText = text(record.responseFlagsText)
        cluster = text(record.upstreamCluster)
        clusterHasEscapes = record.upstreamCluster.hasJSONEscapes
        details = text(record.responseCodeDetails)
        transportFailure = text(record.upstreamTransportFailureReason)
        host = text(record.upstreamHost)
        authority = text(record.authority)
        duration = record.durationMilliseconds
        attempts = record.upstreamRequestAttempts
        route = text(record.routeName)
        method = text(record.requestMethod)
        start = text(record.startTime)
    }

    var shortFlags: [String] { flags.map(\.shortName) }

    var description: String {
        "code=\(code) flags=\(shortFlags) unknown=\(unknownFlags) cluster=\(cluster ?? "nil") details=\(details ?? "nil") "
            + "tfr=\(transportFailure ?? "nil") host=\(host ?? "nil") authority=\(authority ?? "nil") "
            + "duration=\(duration.map(String.init) ?? "nil") attempts=\(attempts.map(String.init) ?? "nil") route=\(route ?? "nil") method=\(method ?? "nil") start=\(start ?? "nil")"
    }
}

enum Outcome: Equatable, CustomStringConvertible {
    case record(Parsed)
    case malformed(MalformedReason)

    var record: Parsed? {
        if case .record(let parsed) = self { return parsed }
        return nil
    }

    var reason: MalformedReason? {
        if case .malformed(let reason) = self { return reason }
        return nil
    }

    var description: String {
        switch self {
        case .record(let parsed): "record(\(parsed))"
        case .malformed(let reason): "malformed(\(reason.rawValue))"
        }
    }
}

func parse(bytes: [UInt8], with parser: inout AccessLogParser) -> Outcome {
    bytes.withUnsafeBytes { buffer in
        var record = AccessRecord()
        if let reason = parser.parse(buffer, into: &record) { return .malformed(reason) }
        return .record(Parsed(record))
    }
}

func parse(_ line: String, with parser: inout AccessLogParser) -> Outcome {
    parse(bytes: Array(line.utf8), with: &parser)
}

/// Parses one line with a fresh parser.
func parse(_ line: String, format: LogFormat) throws -> Outcome {
    var parser = try AccessLogParser(format: format)
    return parse(line, with: &parser)
}

/// Parses one line with a fresh parser and returns the record, failing the test otherwise.
func record(_ line: String, format: LogFormat, sourceLocation: SourceLocation = #_sourceLocation) throws -> Parsed {
    let outcome = try parse(line, format: format)
    return try #require(outcome.record, "expected a record, got \(outcome) for \(line)", sourceLocation: sourceLocation)
}

/// Parses with a fresh parser and returns the recognised format name too.
func parseRecognizing(_ line: String, format: LogFormat = .auto) throws -> (Outcome, String) {
    var parser = try AccessLogParser(format: format)
    let outcome = parse(line, with: &parser)
    return (outcome, parser.recognizedFormat)
}

// MARK: - Building lines in each preset's layout

enum Layout: String, CaseIterable, Sendable {
    case istio1_9 = "istio (1.9+)"
    case istio1_8 = "istio (1.8)"
    case istio1_3 = "istio (1.3-1.7)"
    case istio1_2 = "istio (<=1.2)"
    case envoy = "envoy"
}

/// One request's fields, as Envoy prints them. Defaults are the fields of a real line of the
/// harness run (``Fixtures/istioUF``).
struct Fields {
    var start = "2026-11-22T02:34:27.561Z"
    var method = "GET"
    var path = "/api/pay"
    var proto = "HTTP/1.1"
    var code = "503"
    var flags = "UF"
    var details =
        "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}"
    var connectionTermination = "-"
    var transportFailure = "delayed_connect_error:_Connection_refused"
    var mixerStatus = "-"
    var bytesReceived = "0"
    var bytesSent = "98"
    var duration = "0"
    var upstreamServiceTime = "-"
    var xff = "-"
    var userAgent = "flag-harness/uf"
    var requestID = "daad7b68-4bb4-4f21-9762-5f4f56c34fee"
    var authority = "payments.default.svc.cluster.local:9001"
    var host = "127.0.0.1:18019"
    var cluster = "outbound|9001||payments.default.svc.cluster.local"
    var upstreamLocal = "-"
    var downstreamLocal = "127.0.0.1:18000"
    var downstreamRemote = "127.0.0.1:56936"
    var sni = "-"
    var route = "payments-default"

    func line(_ layout: Layout) -> String {
        let head = "[\(start)] \"\(method) \(path) \(proto)\" \(code) \(flags) "
        let middle =
            "\(bytesReceived) \(bytesSent) \(duration) \(upstreamServiceTime) \"\(xff)\" \"\(userAgent)\" \"\(requestID)\" \"\(authority)\" \"\(host)\""
        let tail = " \(cluster) \(upstreamLocal) \(downstreamLocal) \(downstreamRemote) \(sni)"
        switch layout {
        case .istio1_9:
            return head + "\(details) \(connectionTermination) \"\(transportFailure)\" " + middle + tail + " \(route)"
        case .istio1_8:
            return head + "\"\(transportFailure)\" " + middle + tail + " \(route)"
        case .istio1_3:
            return head + "\"\(mixerStatus)\" \"\(transportFailure)\" " + middle + tail + " \(route)"
        case .istio1_2:
            return head + "\"\(mixerStatus)\" \"\(transportFailure)\" " + middle + tail
        case .envoy:
            return head + middle
        }
    }
}

/// `-` in a text field means absent.
func absentIfDash(_ value: String) -> String? { value == "-" ? nil : value }

// MARK: - Real lines (copied from the Envoy 1.40 harness run: sample-istio-text.log, sample.json.log)

enum Fixtures {
    static let istioOK =
        #"[2026-11-22T02:34:27.532Z] "GET /reviews/1 HTTP/1.1" 200 - via_upstream - "-" 0 14 11 10 "-" "flag-harness/ok" "0d8e5a88-130d-4223-9294-7eee8276b7f5" "reviews.default.svc.cluster.local:8080" "127.0.0.1:18010" outbound|8080||reviews.default.svc.cluster.local 127.0.0.1:55718 127.0.0.1:18000 127.0.0.1:56922 - reviews-default"#
    static let istioUF =
        #"[2026-11-22T02:34:27.561Z] "GET /api/pay HTTP/1.1" 503 UF upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused} - "delayed_connect_error:_Connection_refused" 0 98 0 - "-" "flag-harness/uf" "daad7b68-4bb4-4f21-9762-5f4f56c34fee" "payments.default.svc.cluster.local:9001" "127.0.0.1:18019" outbound|9001||payments.default.svc.cluster.local - 127.0.0.1:18000 127.0.0.1:56936 - payments-default"#
    static let istioURXUF =
        #"[2026-11-22T02:34:27.575Z] "GET /entries HTTP/1.1" 503 URX,UF upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused} - "delayed_connect_error:_Connection_refused" 0 121 20 - "-" "flag-harness/urx" "655c152b-a540-4740-a28e-b685780f0d66" "ledger.default.svc.cluster.local:9002" "127.0.0.1:18019" outbound|9002||ledger.default.svc.cluster.local - 127.0.0.1:18000 127.0.0.1:56958 - ledger-retry"#
    static let istioUOUF =
        #"[2026-11-22T02:34:27.610Z] "GET /score HTTP/1.1" 503 UO,UF upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused} - "delayed_connect_error:_Connection_refused" 0 98 0 - "-" "flag-harness/uo_retry" "7c747324-9413-4b17-a199-898aa63fa3a4" "fraud.default.svc.cluster.local:9003" "127.0.0.1:18019" outbound|9003||fraud.default.svc.cluster.local - 127.0.0.1:18000 127.0.0.1:56996 - fraud-retry"#
    static let istioNR =
        #"[2026-11-22T02:34:27.647Z] "GET /no-such-route HTTP/1.1" 404 NR route_not_found - "-" 0 0 0 - "-" "flag-harness/nr" "ea9e596a-2cb9-44c1-9a65-4d781f777ce0" "reviews.default.svc.cluster.local:8080" "-" - - 127.0.0.1:18000 127.0.0.1:57088 - -"#
    static let istioDPE =
        #"[2026-11-22T02:34:29.971Z] "- - HTTP/1.1" 400 DPE http1.codec_error - "-" 0 11 0 - "-" "-" "-" "-" "-" - - 127.0.0.1:18000 127.0.0.1:57680 - -"#
    static let istioUT =
        #"[2026-11-22T02:34:27.658Z] "GET /q HTTP/1.1" 504 UT response_timeout - "-" 0 24 253 - "-" "flag-harness/ut" "d6456361-6e85-45e9-8723-476f972c9248" "search.default.svc.cluster.local:8080" "127.0.0.1:18011" outbound|8080||search.default.svc.cluster.local 127.0.0.1:40766 127.0.0.1:18000 127.0.0.1:57178 - search-timeout"#
    static let istioDC =
        #"[2026-11-22T02:34:28.892Z] "GET /recs HTTP/1.1" 0 DC downstream_remote_disconnect - "-" 0 0 150 - "-" "flag-harness/dc" "8b03dcf2-3edb-47e9-bd0c-0c49cb98a6d1" "recommendations.default.svc.cluster.local:8080" "127.0.0.1:18011" outbound|8080||recommendations.default.svc.cluster.local 127.0.0.1:40794 127.0.0.1:18000 127.0.0.1:57376 - recommendations-default"#

    static let jsonOK =
        #"{"authority":"reviews.default.svc.cluster.local:8080","bytes_received":0,"bytes_sent":14,"connection_termination_details":null,"downstream_local_address":"127.0.0.1:18000","downstream_remote_address":"127.0.0.1:56922","duration":11,"method":"GET","path":"/reviews/1","protocol":"HTTP/1.1","request_id":"0d8e5a88-130d-4223-9294-7eee8276b7f5","requested_server_name":null,"response_code":200,"response_code_details":"via_upstream","response_flags":"-","route_name":"reviews-default","start_time":"2026-11-22T02:34:27.532Z","upstream_cluster":"outbound|8080||reviews.default.svc.cluster.local","upstream_host":"127.0.0.1:18010","upstream_local_address":"127.0.0.1:55718","upstream_service_time":"10","upstream_transport_failure_reason":null,"user_agent":"flag-harness/ok","x_forwarded_for":null}"#
    static let jsonURXUF =
        #"{"authority":"ledger.default.svc.cluster.local:9002","bytes_received":0,"bytes_sent":121,"connection_termination_details":null,"downstream_local_address":"127.0.0.1:18000","downstream_remote_address":"127.0.0.1:56958","duration":20,"method":"GET","path":"/entries","protocol":"HTTP/1.1","request_id":"655c152b-a540-4740-a28e-b685780f0d66","requested_server_name":null,"response_code":503,"response_code_details":"upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}","response_flags":"URX,UF","route_name":"ledger-retry","start_time":"2026-11-22T02:34:27.575Z","upstream_cluster":"outbound|9002||ledger.default.svc.cluster.local","upstream_host":"127.0.0.1:18019","upstream_local_address":null,"upstream_service_time":null,"upstream_transport_failure_reason":"delayed_connect_error:_Connection_refused","user_agent":"flag-harness/urx","x_forwarded_for":null}"#
    static let jsonNR =
        #"{"authority":"reviews.default.svc.cluster.local:8080","bytes_received":0,"bytes_sent":0,"connection_termination_details":null,"downstream_local_address":"127.0.0.1:18000","downstream_remote_address":"127.0.0.1:57088","duration":0,"method":"GET","path":"/no-such-route","protocol":"HTTP/1.1","request_id":"ea9e596a-2cb9-44c1-9a65-4d781f777ce0","requested_server_name":null,"response_code":404,"response_code_details":"route_not_found","response_flags":"NR","route_name":null,"start_time":"2026-11-22T02:34:27.647Z","upstream_cluster":null,"upstream_host":null,"upstream_local_address":null,"upstream_service_time":null,"upstream_transport_failure_reason":null,"user_agent":"flag-harness/nr","x_forwarded_for":null}"#
    static let jsonDC =
        #"{"authority":"recommendations.default.svc.cluster.local:8080","bytes_received":0,"bytes_sent":0,"connection_termination_details":null,"downstream_local_address":"127.0.0.1:18000","downstream_remote_address":"127.0.0.1:57376","duration":150,"method":"GET","path":"/recs","protocol":"HTTP/1.1","request_id":"8b03dcf2-3edb-47e9-bd0c-0c49cb98a6d1","requested_server_name":null,"response_code":0,"response_code_details":"downstream_remote_disconnect","response_flags":"DC","route_name":"recommendations-default","start_time":"2026-11-22T02:34:28.892Z","upstream_cluster":"outbound|8080||recommendations.default.svc.cluster.local","upstream_host":"127.0.0.1:18011","upstream_local_address":"127.0.0.1:40794","upstream_service_time":null,"upstream_transport_failure_reason":null,"user_agent":"flag-harness/dc","x_forwarded_for":null}"#

    /// Envoy's and pilot-agent's own output, mixed into istio-proxy's stdout.
    static let envoyAppLog =
        "[2026-11-22 02:34:27.532][12][info][main] [source/server/server.cc:932] starting main dispatch loop"
    static let agentLog =
        "2023-10-12T08:08:15.270118Z\tdebug\tenvoy pool external/envoy/source/common/conn_pool/conn_pool_base.cc:215\t[C17] destroying stream: 0 remaining"
}
