import AccessLogParser
import Exposition
import FlagCounting
import LineFraming
import Testing

/// Real lines from the Envoy 1.40 harness run (sample-istio-text.log / sample.json.log).
enum Lines {
    static let istioOK =
        #"[2026-11-22T02:34:27.532Z] "GET /reviews/1 HTTP/1.1" 200 - via_upstream - "-" 0 14 11 10 "-" "flag-harness/ok" "0d8e5a88-130d-4223-9294-7eee8276b7f5" "reviews.default.svc.cluster.local:8080" "127.0.0.1:18010" outbound|8080||reviews.default.svc.cluster.local 127.0.0.1:55718 127.0.0.1:18000 127.0.0.1:56922 - reviews-default"#
    static let istioUF =
        #"[2026-11-22T02:34:27.561Z] "GET /api/pay HTTP/1.1" 503 UF upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused} - "delayed_connect_error:_Connection_refused" 0 98 0 - "-" "flag-harness/uf" "daad7b68-4bb4-4f21-9762-5f4f56c34fee" "payments.default.svc.cluster.local:9001" "127.0.0.1:18019" outbound|9001||payments.default.svc.cluster.local - 127.0.0.1:18000 127.0.0.1:56936 - payments-default"#
    static let istioURXUF =
        #"[2026-11-22T02:34:27.575Z] "GET /entries HTTP/1.1" 503 URX,UF upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused} - "delayed_connect_error:_Connection_refused" 0 121 20 - "-" "flag-harness/urx" "655c152b-a540-4740-a28e-b685780f0d66" "ledger.default.svc.cluster.local:9002" "127.0.0.1:18019" outbound|9002||ledger.default.svc.cluster.local - 127.0.0.1:18000 127.0.0.1:56958 - ledger-retry"#
    static let istioNR =
        #"[2026-11-22T02:34:27.647Z] "GET /no-such-route HTTP/1.1" 404 NR route_not_found - "-" 0 0 0 - "-" "flag-harness/nr" "ea9e596a-2cb9-44c1-9a65-4d781f777ce0" "reviews.default.svc.cluster.local:8080" "-" - - 127.0.0.1:18000 127.0.0.1:57088 - -"#
    static let istioDC =
        #"[2026-11-22T02:34:28.892Z] "GET /recs HTTP/1.1" 0 DC downstream_remote_disconnect - "-" 0 0 150 - "-" "flag-harness/dc" "8b03dcf2-3edb-47e9-bd0c-0c49cb98a6d1" "recommendations.default.svc.cluster.local:8080" "127.0.0.1:18011" outbound|8080||recommendations.default.svc.cluster.local 127.0.0.1:40794 127.0.0.1:18000 127.0.0.1:57376 - recommendations-default"#
    /// A UF line for payments with a custom (unknown) flag next to it, and a hostile user agent.
    static let istioUFCustom =
        #"[2026-11-22T02:34:27.561Z] "GET /api/pay HTTP/1.1" 503 UF,XCUSTOM upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused} - "delayed_connect_error:_Connection_refused" 0 98 0 - "-" "evil" 200 NR - "x" "y" "daad7b68-4bb4-4f21-9762-5f4f56c34fee" "payments.default.svc.cluster.local:9001" "127.0.0.1:18019" outbound|9001||payments.default.svc.cluster.local - 127.0.0.1:18000 127.0.0.1:56936 - payments-default"#

    static let jsonURXUF =
        #"{"authority":"ledger.default.svc.cluster.local:9002","bytes_received":0,"bytes_sent":121,"connection_termination_details":null,"downstream_local_address":"127.0.0.1:18000","downstream_remote_address":"127.0.0.1:56958","duration":20,"method":"GET","path":"/entries","protocol":"HTTP/1.1","request_id":"655c152b-a540-4740-a28e-b685780f0d66","requested_server_name":null,"response_code":503,"response_code_details":"upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}","response_flags":"URX,UF","route_name":"ledger-retry","start_time":"2026-11-22T02:34:27.575Z","upstream_cluster":"outbound|9002||ledger.default.svc.cluster.local","upstream_host":"127.0.0.1:18019","upstream_local_address":null,"upstream_service_time":null,"upstream_transport_failure_reason":"delayed_connect_error:_Connection_refused","user_agent":"flag-harness/urx","x_forwarded_for":null}"#
    static let jsonNR =
        #"{"authority":"reviews.default.svc.cluster.local:8080","bytes_received":0,"bytes_sent":0,"connection_termination_details":null,"downstream_local_address":"127.0.0.1:18000","downstream_remote_address":"127.0.0.1:57088","duration":0,"method":"GET","path":"/no-such-route","protocol":"HTTP/1.1","request_id":"ea9e596a-2cb9-44c1-9a65-4d781f777ce0","requested_server_name":null,"response_code":404,"response_code_details":"route_not_found","response_flags":"NR","route_name":null,"start_time":"2026-11-22T02:34:27.647Z","upstream_cluster":null,"upstream_host":null,"upstream_local_address":null,"upstream_service_time":null,"upstream_transport_failure_reason":null,"user_agent":"flag-harness/nr","x_forwarded_for":null}"#

    static let agentLog =
        "2023-10-12T08:08:15.270118Z\tdebug\tenvoy pool external/envoy/source/common/conn_pool/conn_pool_base.cc:215\t[C17] destroying stream: 0 remaining"
    static let envoyAppLog =
        "[2026-11-22 02:34:27.532][12][info][main] [source/server/server.cc:932] starting main dispatch loop"

    /// A mixed stream and its exact expected report.
    static let mixed: [String] = [
        istioOK, istioUF, agentLog, istioURXUF, "", istioNR, istioUF, istioDC, istioUFCustom, envoyAppLog,
    ]
    static let mixedReport =
        #"{"lines":10,"malformed":{"empty_line":1,"not_access_log":2},"clusters":{"#
        + #""-":{"requests":1,"codes":{"4xx":1},"flags":{"NR":1}},"#
        + #""outbound|8080||recommendations.default.svc.cluster.local":{"requests":1,"codes":{"0":1},"flags":{"DC":1}},"#
        + #""outbound|8080||reviews.default.svc.cluster.local":{"requests":1,"codes":{"2xx":1},"flags":{}},"#
        + #""outbound|9001||payments.default.svc.cluster.local":{"requests":3,"codes":{"5xx":3},"flags":{"UF":3,"XCUSTOM":1}},"#
        + #""outbound|9002||ledger.default.svc.cluster.local":{"requests":1,"codes":{"5xx":1},"flags":{"UF":1,"URX":1}}}}"#
}

/// How bytes reach the pipeline: copied in (`feed`) or counted where they lie (`count(inPlace:)`).
enum Delivery: CaseIterable, CustomStringConvertible {
    case feed, inPlace
    var description: String { self == .feed ? "feed" : "count(inPlace:)" }
}

/// Runs `chunks` through a fresh pipeline and returns the counts.
func run(
    _ chunks: [[UInt8]], format: LogFormat = .auto, container: ContainerFormat = .none,
    maxLineLength: Int = 64 * 1024, bufferSize: Int = 4 * 1024 * 1024, delivery: Delivery = .feed
) throws -> FlagCounts {
    let counts = FlagCounts()
    let pipeline = try StreamPipeline(
        format: format, containerFormat: container, maxLineLength: maxLineLength,
        bufferSize: bufferSize, counts: counts)
    for chunk in chunks {
        switch delivery {
        case .feed: chunk.withUnsafeBytes { pipeline.feed($0) }
        case .inPlace: chunk.withUnsafeBytes { pipeline.count(inPlace: $0) }
        }
    }
    return counts
}

/// Splits `input` in two at every offset (and byte by byte), for each delivery, and checks the
/// report each time; stops at the first failing split of a delivery so failures stay readable.
func expectSameReportForEverySplit(
    _ input: [UInt8], expected: String, format: LogFormat = .auto,
    container: ContainerFormat = .none, maxLineLength: Int, bufferSize: Int,
    stride step: Int = 1, sourceLocation: SourceLocation = #_sourceLocation
) throws {
    for delivery in Delivery.allCases {
        let whole = report(
            try run(
                [input], format: format, container: container, maxLineLength: maxLineLength,
                bufferSize: bufferSize, delivery: delivery))
        #expect(whole == expected, "\(delivery): whole", sourceLocation: sourceLocation)
        for split in Swift.stride(from: 0, through: input.count, by: step) {
            let result = report(
                try run(
                    [Array(input[..<split]), Array(input[split...])], format: format, container: container,
                    maxLineLength: maxLineLength, bufferSize: bufferSize, delivery: delivery))
            #expect(result == expected, "\(delivery): split at \(split)", sourceLocation: sourceLocation)
            if result != expected { break }
        }
        let bytewise = report(
            try run(
                input.map { [$0] }, format: format, container: container, maxLineLength: maxLineLength,
                bufferSize: bufferSize, delivery: delivery))
        #expect(bytewise == expected, "\(delivery): one byte at a time", sourceLocation: sourceLocation)
    }
}

func report(_ counts: FlagCounts) -> String { ScanReport(counts: counts).json() }

func bytes(_ lines: [String], separator: String = "\n") -> [UInt8] {
    Array(lines.map { $0 + separator }.joined().utf8)
}
