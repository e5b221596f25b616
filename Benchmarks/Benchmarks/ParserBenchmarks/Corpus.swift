// An in-memory corpus of varied, realistic Istio access-log lines, generated once per process
// (deterministically) before any benchmark is measured. The same records are rendered as Istio
// 1.9+ TEXT lines, as Istio JSON lines, as CRI-wrapped TEXT lines and as docker json-file
// wrapped JSON lines, so the benchmarks parse the same traffic in each encoding.
//
// The vocabulary and the mix of scenarios follow Benchmarks/scripts/generate_corpus.py (the
// corpus `make bench` uses): ~90% plain answers, the rest spread over Envoy's response flags
// with their codes and details; Zipf-like cluster popularity; user agents that embed quotes and
// fake fields (Envoy's text format escapes nothing); Istio 1.23-style clusters with a `;`.

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Lines in one buffer allocated once, each ending in `\n`; views into it are handed out.
final class Corpus: @unchecked Sendable {
    // @unchecked: written only in init, read-only afterwards; the memory lives for the process.
    let name: String
    let bytes: UnsafeMutableRawBufferPointer
    /// `starts[i]` is where line `i` begins; `starts[lineCount]` is the end of the buffer.
    let starts: UnsafeMutableBufferPointer<Int>
    let lineCount: Int

    init(name: String, lines: [[UInt8]]) {
        self.name = name
        lineCount = lines.count
        starts = .allocate(capacity: lines.count + 1)
        var total = 0
        for (index, line) in lines.enumerated() {
            starts[index] = total
            total += line.count + 1
        }
        starts[lines.count] = total
        bytes = .allocate(byteCount: max(total, 1), alignment: 64)
        for (index, line) in lines.enumerated() {
            let start = starts[index]
            line.withUnsafeBytes { source in
                UnsafeMutableRawBufferPointer(rebasing: bytes[start..<(start + line.count)]).copyMemory(from: source)
            }
            bytes[start + line.count] = 0x0A
        }
    }

    var byteCount: Int { starts[lineCount] }

    /// Line `index` without its newline.
    @inline(__always)
    func line(_ index: Int) -> UnsafeRawBufferPointer {
        let start = starts[index]
        return UnsafeRawBufferPointer(
            start: bytes.baseAddress.unsafelyUnwrapped + start, count: starts[index + 1] - start - 1)
    }

    /// Lines `from..<to` with their newlines.
    @inline(__always)
    func lines(from: Int, to: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(
            start: bytes.baseAddress.unsafelyUnwrapped + starts[from], count: starts[to] - starts[from])
    }
}

/// What a generated line must parse to.
struct ExpectedRecord {
    var code: Int
    /// The flags field as printed: `-` or codes joined by commas.
    var flags: String
    /// The counting key: `-` for no cluster, without Istio 1.23's trailing `;`.
    var clusterKey: String
}

/// The corpora, built on first use.
final class Corpora: @unchecked Sendable {
    let text: Corpus
    let json: Corpus
    let criText: Corpus
    let dockerJSON: Corpus
    let expected: [ExpectedRecord]

    /// Lines per corpus (default 100,000; `FLAGWATCH_BENCH_LINES` overrides it).
    static let lineCount: Int = {
        if let value = getenv("FLAGWATCH_BENCH_LINES"), let count = Int(String(cString: value)), count > 0 {
            return count
        }
        return 100_000
    }()

    static let shared = Corpora(lines: lineCount)

    init(lines count: Int) {
        var generator = CorpusGenerator(seed: 42, lineCount: count)
        var text: [[UInt8]] = []
        var json: [[UInt8]] = []
        var cri: [[UInt8]] = []
        var docker: [[UInt8]] = []
        var expected: [ExpectedRecord] = []
        text.reserveCapacity(count)
        json.reserveCapacity(count)
        cri.reserveCapacity(count)
        docker.reserveCapacity(count)
        expected.reserveCapacity(count)
        for index in 0..<count {
            let record = generator.makeRecord(index: index)
            let textLine = Array(record.renderText().utf8)
            text.append(textLine)
            let jsonLine = record.renderJSON()
            json.append(Array(jsonLine.utf8))
            // containerd / CRI-O: `<RFC3339Nano> stdout F <line>`.
            cri.append(Array("\(record.startTime.dropLast())123456Z stdout F ".utf8) + textLine)
            // Docker's json-file driver: the line escaped as a JSON string, with its newline.
            let escaped = jsonLine.replacingAll("\\", with: "\\\\").replacingAll("\"", with: "\\\"")
            docker.append(
                Array(
                    #"{"log":"\#(escaped)\n","stream":"stdout","time":"\#(record.startTime.dropLast())123456Z"}"#.utf8))
            expected.append(ExpectedRecord(code: record.code, flags: record.flags, clusterKey: record.clusterKey))
        }
        self.text = Corpus(name: "istio text", lines: text)
        self.json = Corpus(name: "istio json", lines: json)
        self.criText = Corpus(name: "CRI-wrapped istio text", lines: cri)
        self.dockerJSON = Corpus(name: "docker-wrapped istio json", lines: docker)
        self.expected = expected
    }
}

// MARK: - generation

/// SplitMix64: small, fast, deterministic across platforms.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

struct GeneratedRecord {
    var startTime = ""
    var method: String?
    var path: String?
    var proto: String?
    var code = 200
    var flags = "-"
    var details: String? = "via_upstream"
    var termination: String?
    var transportFailure: String?
    var received = 0
    var sent = 0
    var duration = 0
    var upstreamServiceTime: String?
    var forwardedFor: String?
    var userAgent: String?
    var requestID: String?
    var authority: String?
    var upstreamHost: String?
    /// As printed (maybe with a trailing `;`); nil prints `-` / null.
    var cluster: String?
    var clusterKey = "-"
    var upstreamLocal: String?
    var downstreamLocal: String?
    var downstreamRemote: String?
    var serverName: String?
    var route: String?

    /// Istio 1.9+'s default TEXT format.
    func renderText() -> String {
        func d(_ value: String?) -> String { value.map { $0.isEmpty ? "-" : $0 } ?? "-" }
        return
            "[\(startTime)] \"\(d(method)) \(d(path)) \(d(proto))\" \(code) \(flags) \(d(details)) \(d(termination)) "
            + "\"\(d(transportFailure))\" \(received) \(sent) \(duration) \(d(upstreamServiceTime)) "
            + "\"\(d(forwardedFor))\" \"\(d(userAgent))\" \"\(d(requestID))\" \"\(d(authority))\" \"\(d(upstreamHost))\" "
            + "\(d(cluster)) \(d(upstreamLocal)) \(d(downstreamLocal)) \(d(downstreamRemote)) \(d(serverName)) \(d(route))"
    }

    /// Istio's JSON encoding, keys in the generator's order, compact.
    func renderJSON() -> String {
        func s(_ value: String?) -> String {
            guard let value else { return "null" }
            if !value.utf8.contains(where: { $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") || $0 < 0x20 }) {
                return "\"" + value + "\""
            }
            var out = "\""
            for scalar in value.unicodeScalars {
                switch scalar {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\t": out += "\\t"
                default:
                    if scalar.value < 0x20 {
                        let hex = String(scalar.value, radix: 16)
                        out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                    } else {
                        out.unicodeScalars.append(scalar)
                    }
                }
            }
            return out + "\""
        }
        let fields: [(String, String)] = [
            ("start_time", s(startTime)), ("route_name", s(route)), ("method", s(method)), ("path", s(path)),
            ("protocol", s(proto)), ("response_code", String(code)), ("response_flags", s(flags)),
            ("response_code_details", s(details)), ("connection_termination_details", s(termination)),
            ("bytes_received", String(received)), ("bytes_sent", String(sent)), ("duration", String(duration)),
            ("upstream_service_time", s(upstreamServiceTime)), ("x_forwarded_for", s(forwardedFor)),
            ("user_agent", s(userAgent)), ("request_id", s(requestID)), ("authority", s(authority)),
            ("upstream_host", s(upstreamHost)), ("upstream_cluster", s(cluster)),
            ("upstream_local_address", s(upstreamLocal)), ("downstream_local_address", s(downstreamLocal)),
            ("downstream_remote_address", s(downstreamRemote)), ("requested_server_name", s(serverName)),
            ("upstream_transport_failure_reason", s(transportFailure)),
        ]
        return "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
    }
}

struct CorpusGenerator {
    var rng: SplitMix64
    let lineCount: Int
    let outbound: [(name: String, service: String, namespace: String, port: Int)]
    let outboundCumulative: [Double]
    let tcpClusters: [(name: String, service: String, namespace: String, port: Int)]
    let podIPs: [String]
    let serviceIPs: [String]
    let clientIPs: [String]

    static let services = [
        "productpage", "reviews", "ratings", "details", "payments", "ledger", "fraud", "inventory",
        "shipping", "catalog", "search", "checkout", "cart", "auth", "legacy", "vault", "profile",
        "recommendations", "feeds", "notifications", "billing", "orders", "quotes", "admin",
        "pricing", "telemetry", "batch", "uploads", "postgres", "redis", "kafka", "users",
        "accounts", "invoices", "emails", "frontend", "gateway-api", "currency", "ads", "media",
        "thumbnails", "session", "identity", "audit", "geo", "tax", "loyalty", "coupons",
        "warehouse", "tracking", "chat", "presence", "metrics-collector", "config-server",
    ]
    static let namespaces = [
        "default", "prod", "shop", "payments", "platform", "data", "edge", "staging", "team-a", "ml-serving",
    ]
    static let httpPorts = [80, 8080, 8080, 8080, 9080, 9080, 8000, 3000, 5000, 443, 8443, 9090, 50051, 7070]
    static let tcpPorts = ["postgres": 5432, "redis": 6379, "kafka": 9092]
    static let subsets = ["", "", "", "", "", "v1", "v2", "v3", "canary", "stable"]
    static let inboundPorts = [8080, 9080, 80, 8443, 3000, 5000, 50051, 15021]
    static let methods =
        Array(repeating: "GET", count: 14) + Array(repeating: "POST", count: 5) + [
            "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS",
        ]
    static let pathTemplates = [
        "/", "/", "/healthz", "/readyz", "/api/v1/{svc}", "/api/v1/{svc}", "/{svc}", "/login", "/cart",
        "/api/v1/{svc}/{id}", "/api/v2/{svc}/{id}/items", "/api/v1/{svc}/{id}/history?limit=50&offset={n}",
        "/{svc}/{id}", "/v1/{svc}:batchGet", "/graphql", "/static/js/main.{hex}.chunk.js",
        "/images/products/{id}/thumbnail_{n}x{n}.webp", "/api/v1/search?q=blue+shoes&page={n}&sort=price_asc",
        "/checkout/session/{hex}/confirm", "/oauth2/token", "/.well-known/openid-configuration", "/metrics",
        "/grpc.health.v1.Health/Check", "/api/v1/users/{id}/preferences?fields=locale,currency,timezone",
        "/ws/events?channel={svc}&token={hex}", "/api/v3/{svc}/{id}/attachments/{hex}/download",
    ]
    /// (weight, user agent). The last ones embed quotes and fake fields, as real clients do.
    static let userAgents: [(Int, String)] = [
        (
            12,
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
        ),
        (
            5,
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"
        ),
        (3, "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"),
        (
            5,
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"
        ),
        (8, "curl/8.5.0"), (8, "Go-http-client/1.1"), (12, "grpc-go/1.63.2"), (6, "grpc-java-netty/1.62.2"),
        (4, "grpc-python/1.62.1 grpc-c/39.0.0 (linux; chttp2)"), (6, "python-requests/2.31.0"), (6, "okhttp/4.12.0"),
        (4, "Apache-HttpClient/4.5.14 (Java/17.0.10)"), (8, "kube-probe/1.29"), (4, "Envoy/HC"),
        (3, "Prometheus/2.51.2"),
        (1, "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
        (1, #"Mozilla/5.0 (compatible; "QuoteBot" 2.0)"#), (1, #"curl/8.5.0 "--insecure""#),
        (1, #"evil" 503 UF,URX - "x"#), (1, #"" outbound|9999||fake.default.svc.cluster.local - - - - -"#),
        (1, #"Mozilla/5.0 (X11; Linux x86_64) "Chrome" "like Gecko""#), (1, #"""#), (1, #""""#),
    ]
    static let userAgentTotal = userAgents.reduce(0) { $0 + $1.0 }

    static let connectionRefused = "delayed_connect_error:_Connection_refused"
    static let tlsVerify = "TLS_error:|268435581:SSL_routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:TLS_error_end"
    static func resetBefore(_ reason: String) -> String { "upstream_reset_before_response_started{\(reason)}" }

    /// A failure scenario: the flags Envoy prints and what goes with them.
    struct Scenario {
        var weight: Int
        var name: String
        var codes: [Int]
        var flags: [String]
        var details: String?
        var transportFailure: String? = nil
        var hasUpstream = true
        var noCluster = false
        var tcp = false
    }

    /// Per 1,000,000 lines, as in generate_corpus.py.
    static let scenarios: [Scenario] = [
        Scenario(weight: 905_000, name: "ok", codes: [], flags: ["-"], details: "via_upstream"),
        Scenario(
            weight: 16_000, name: "uf", codes: [503], flags: ["UF"],
            details: resetBefore("remote_connection_failure|" + connectionRefused), transportFailure: connectionRefused),
        Scenario(
            weight: 3_000, name: "uf_tls", codes: [503], flags: ["UF"],
            details: resetBefore("remote_connection_failure|" + tlsVerify), transportFailure: tlsVerify),
        Scenario(
            weight: 1_500, name: "uf_timeout", codes: [503], flags: ["UF"], details: resetBefore("connection_timeout")),
        Scenario(
            weight: 8_000, name: "urx_uf", codes: [503], flags: ["URX,UF", "URX,UF", "URX,UF", "URX,UF", "UF,URX"],
            details: resetBefore("remote_connection_failure|" + connectionRefused), transportFailure: connectionRefused),
        Scenario(weight: 2_500, name: "uf_urx", codes: [0], flags: ["UF,URX"], details: nil, tcp: true),
        Scenario(
            weight: 2_000, name: "uo_uf", codes: [503], flags: ["UO,UF", "UO,UF", "UO,UF", "UF,UO"],
            details: resetBefore("overflow")),
        Scenario(
            weight: 7_000, name: "uh", codes: [503], flags: ["UH"], details: "no_healthy_upstream", hasUpstream: false),
        Scenario(
            weight: 9_000, name: "nr", codes: [404], flags: ["NR"], details: "route_not_found", hasUpstream: false,
            noCluster: true),
        Scenario(
            weight: 1_500, name: "nc", codes: [503], flags: ["NC"], details: "cluster_not_found", hasUpstream: false,
            noCluster: true),
        Scenario(
            weight: 9_000, name: "uc", codes: [503], flags: ["UC"], details: resetBefore("connection_termination")),
        Scenario(
            weight: 900, name: "uc_urx", codes: [503], flags: ["URX,UC", "UC,URX"],
            details: resetBefore("connection_termination")),
        Scenario(weight: 8_000, name: "ut", codes: [504], flags: ["UT"], details: "response_timeout"),
        Scenario(
            weight: 4_000, name: "uo", codes: [503], flags: ["UO"], details: resetBefore("overflow"), hasUpstream: false
        ),
        Scenario(
            weight: 9_000, name: "dc", codes: [0, 0, 0, 0, 200], flags: ["DC"], details: "downstream_remote_disconnect"),
        Scenario(weight: 2_000, name: "dr", codes: [0], flags: ["DR"], details: "http2.remote_reset"),
        Scenario(weight: 1_200, name: "upe", codes: [502], flags: ["UPE"], details: resetBefore("protocol_error")),
        Scenario(
            weight: 2_500, name: "ur", codes: [503, 503, 503, 503, 503, 200], flags: ["UR"],
            details: resetBefore("remote_reset")),
        Scenario(
            weight: 4_000, name: "rl", codes: [429], flags: ["RL"], details: "local_rate_limited", hasUpstream: false),
        Scenario(
            weight: 800, name: "uaex", codes: [403], flags: ["UAEX"], details: "ext_authz_denied", hasUpstream: false),
        Scenario(
            weight: 300, name: "rlse", codes: [500], flags: ["RLSE"], details: "rate_limiter_error", hasUpstream: false),
        Scenario(weight: 1_200, name: "si", codes: [504, 504, 408], flags: ["SI"], details: "stream_idle_timeout"),
        Scenario(
            weight: 400, name: "umsdr", codes: [504], flags: ["UMSDR"], details: "upstream_max_stream_duration_reached"),
        Scenario(weight: 700, name: "di", codes: [200], flags: ["DI"], details: "via_upstream"),
        Scenario(
            weight: 700, name: "fi", codes: [503, 503, 500, 429], flags: ["FI"], details: "fault_filter_abort",
            hasUpstream: false),
        Scenario(
            weight: 150, name: "di_fi", codes: [503], flags: ["DI,FI", "FI,DI"], details: "fault_filter_abort",
            hasUpstream: false),
        Scenario(weight: 600, name: "do", codes: [503], flags: ["DO"], details: "drop_overload", hasUpstream: false),
        Scenario(
            weight: 100, name: "udo", codes: [503], flags: ["UDO"], details: "unconditional_drop_overload",
            hasUpstream: false),
        Scenario(
            weight: 300, name: "lh", codes: [503], flags: ["LH"], details: "health_check_failed", hasUpstream: false,
            noCluster: true),
        Scenario(
            weight: 200, name: "ih", codes: [400], flags: ["IH"],
            details: "request_headers_failed_strict_check{x-envoy-max-retries}", hasUpstream: false),
        Scenario(
            weight: 300, name: "dpe", codes: [400], flags: ["DPE"], details: "http1.codec_error", hasUpstream: false,
            noCluster: true),
        Scenario(weight: 200, name: "lr", codes: [503], flags: ["LR"], details: resetBefore("local_reset")),
        Scenario(weight: 60, name: "om", codes: [503], flags: ["OM"], details: "overload_manager", hasUpstream: false),
        Scenario(
            weight: 40, name: "df", codes: [503], flags: ["DF"], details: "dns_resolution_failure", hasUpstream: false),
        Scenario(weight: 2_500, name: "tcp_ok", codes: [0], flags: ["-"], details: nil, tcp: true),
        Scenario(weight: 600, name: "tcp_dt", codes: [0], flags: ["DT"], details: nil, tcp: true),
        Scenario(
            weight: 700, name: "blackhole", codes: [502], flags: ["-"], details: "direct_response", hasUpstream: false),
        Scenario(
            weight: 3_000, name: "passthrough", codes: [200, 200, 200, 204, 301, 404], flags: ["-"],
            details: "via_upstream"),
    ]
    static let scenarioTotal = scenarios.reduce(0) { $0 + $1.weight }

    init(seed: UInt64, lineCount: Int) {
        var rng = SplitMix64(state: seed)
        self.lineCount = lineCount
        var seen = Set<String>()
        var outbound: [(name: String, service: String, namespace: String, port: Int)] = []
        while outbound.count < 186 {
            let service = Self.services.randomElement(using: &rng)!
            let namespace = Self.namespaces.randomElement(using: &rng)!
            let port = Self.tcpPorts[service] ?? Self.httpPorts.randomElement(using: &rng)!
            let subset = Self.subsets.randomElement(using: &rng)!
            let name = "outbound|\(port)|\(subset)|\(service).\(namespace).svc.cluster.local"
            guard seen.insert(name).inserted else { continue }
            outbound.append((name, service, namespace, port))
        }
        var cumulative: [Double] = []
        var sum = 0.0
        for index in outbound.indices {
            sum += 1.0 / pow(Double(index + 1), 0.9)
            cumulative.append(sum)
        }
        self.outbound = outbound
        outboundCumulative = cumulative
        let tcp = outbound.filter { [5432, 6379, 9092].contains($0.port) }
        tcpClusters = tcp.isEmpty ? [("outbound|5432||postgres.data.svc.cluster.local", "postgres", "data", 5432)] : tcp
        podIPs = (0..<3000).map { _ in
            "10.\(Int.random(in: 8...250, using: &rng)).\(Int.random(in: 0...255, using: &rng)).\(Int.random(in: 2...254, using: &rng))"
        }
        serviceIPs = (0..<400).map { _ in
            "10.96.\(Int.random(in: 0...255, using: &rng)).\(Int.random(in: 1...254, using: &rng))"
        }
        clientIPs = (0..<2000).map { _ in
            "\([34, 35, 52, 54, 66, 81, 91, 104, 178, 185, 203].randomElement(using: &rng)!).\(Int.random(in: 0...255, using: &rng)).\(Int.random(in: 0...255, using: &rng)).\(Int.random(in: 1...254, using: &rng))"
        }
        self.rng = rng
    }

    mutating func chance(_ probability: Double) -> Bool { Double.random(in: 0..<1, using: &rng) < probability }
    mutating func pick<T>(_ values: [T]) -> T { values.randomElement(using: &rng)! }
    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &rng) }

    static let hexDigits = Array("0123456789abcdef".utf8)

    mutating func hex(_ digits: Int) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(digits)
        for _ in 0..<digits { out.append(Self.hexDigits[int(0...15)]) }
        return String(decoding: out, as: UTF8.self)
    }

    mutating func uuid() -> String {
        "\(hex(8))-\(hex(4))-4\(hex(3))-\(pick(["8", "9", "a", "b"]))\(hex(3))-\(hex(12))"
    }

    mutating func pickOutbound() -> (name: String, service: String, namespace: String, port: Int) {
        let target = Double.random(in: 0..<outboundCumulative[outboundCumulative.count - 1], using: &rng)
        var low = 0
        var high = outboundCumulative.count - 1
        while low < high {
            let mid = (low + high) / 2
            if outboundCumulative[mid] < target { low = mid + 1 } else { high = mid }
        }
        return outbound[low]
    }

    mutating func pickScenario() -> Scenario {
        var target = int(0...(Self.scenarioTotal - 1))
        for scenario in Self.scenarios {
            if target < scenario.weight { return scenario }
            target -= scenario.weight
        }
        return Self.scenarios[0]
    }

    mutating func makeRecord(index: Int) -> GeneratedRecord {
        var record = GeneratedRecord()
        // START_TIME: a day's worth of seconds across the corpus, random milliseconds.
        let second = index * 86_400 / max(lineCount, 1)
        func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let millis = int(0...999)
        let millisText = millis < 10 ? "00\(millis)" : millis < 100 ? "0\(millis)" : "\(millis)"
        record.startTime =
            "2026-11-21T\(two(second / 3600)):\(two(second / 60 % 60)):\(two(second % 60)).\(millisText)Z"

        let scenario = pickScenario()
        var tcp = scenario.tcp
        var inbound = false
        var service: String
        var namespace: String
        var port: Int
        let cluster: String
        if tcp {
            let chosen = pick(tcpClusters)
            (cluster, service, namespace, port) = (chosen.name, chosen.service, chosen.namespace, chosen.port)
        } else if scenario.name == "passthrough" {
            (cluster, service, namespace, port) = ("PassthroughCluster", "www", "default", pick([443, 80, 8443]))
            tcp = chance(0.5)
        } else if scenario.name == "blackhole" {
            (cluster, service, namespace, port) = ("BlackHoleCluster", "www", "default", pick([443, 80]))
        } else if scenario.noCluster {
            (cluster, service, namespace, port) = (
                "-", pick(Self.services), pick(Self.namespaces), pick(Self.httpPorts)
            )
        } else if chance(["uc", "ok", "rl", "uaex"].contains(scenario.name) ? 0.30 : 0.08) {
            port = pick(Self.inboundPorts)
            (cluster, service, namespace) = ("inbound|\(port)||", pick(Self.services), pick(Self.namespaces))
            inbound = true
        } else {
            let chosen = pickOutbound()
            (cluster, service, namespace, port) = (chosen.name, chosen.service, chosen.namespace, chosen.port)
        }

        var code: Int
        var details = scenario.details
        if scenario.name == "ok" {
            let roll = Double.random(in: 0..<1, using: &rng)
            code =
                roll < 0.80
                ? 200
                : roll < 0.84
                    ? pick([201, 202, 204, 206])
                    : roll < 0.89
                        ? pick([301, 302, 304, 307])
                        : roll < 0.965
                            ? pick([400, 401, 403, 404, 404, 404, 409, 422])
                            : roll < 0.995 ? pick([500, 502, 503, 503, 504]) : 101
        } else {
            code = pick(scenario.codes)
        }
        if tcp { code = scenario.name == "passthrough" ? 0 : code }
        record.code = code
        record.flags = pick(scenario.flags)
        record.transportFailure = scenario.transportFailure
        record.duration = max(
            0,
            Int(
                Double(pick([1, 2, 3, 4, 5, 7, 9, 12, 15, 23, 31, 48, 80, 120, 250, 700, 1500]))
                    * (0.5 + Double.random(in: 0..<1, using: &rng))))
        record.sent = pick([0, 14, 19, 81, 233, 512, 1024, 1843, 4096, 16384, 65536, 310455])

        if tcp {
            details = nil
            record.received = int(10...900_000)
            record.duration = int(1...600_000)
        } else {
            record.method = pick(Self.methods)
            record.path = renderPath(service)
            record.proto = pick(["HTTP/1.1", "HTTP/1.1", "HTTP/2", "HTTP/2"])
            if record.method == "POST" && chance(0.5) { record.received = pick([2, 64, 187, 512, 1380, 4096, 23456]) }
            if scenario.name == "ok" || scenario.name == "di" || scenario.name == "passthrough" {
                record.upstreamServiceTime = String(max(0, record.duration - int(0...3)))
            }
            let agent = int(0...(Self.userAgentTotal - 1))
            var remaining = agent
            for (weight, userAgent) in Self.userAgents {
                if remaining < weight {
                    record.userAgent = userAgent
                    break
                }
                remaining -= weight
            }
            record.requestID = uuid()
            let roll = Double.random(in: 0..<1, using: &rng)
            record.forwardedFor =
                roll < 0.45
                ? nil
                : roll < 0.87
                    ? pick(clientIPs)
                    : (0..<int(2...3)).map { _ in pick(clientIPs) }.joined(separator: ", ")
            if cluster == "PassthroughCluster" || cluster == "BlackHoleCluster" {
                record.authority = pick(["api.stripe.com", "www.googleapis.com", "s3.amazonaws.com", "hooks.slack.com"])
            } else {
                record.authority = pick([
                    "\(service).\(namespace).svc.cluster.local:\(port)", "\(service):\(port)",
                    "\(service).\(namespace):\(port)", service,
                ])
            }
        }
        record.details = details

        let hasUpstream = scenario.hasUpstream && cluster != "-"
        if hasUpstream {
            record.upstreamHost = "\(pick(podIPs)):\(port)"
            if !record.flags.contains("UF") && !record.flags.contains("UO") {
                record.upstreamLocal =
                    inbound ? "127.0.0.6:\(int(32768...60999))" : "\(pick(podIPs)):\(int(32768...60999))"
            }
        }
        if inbound {
            record.downstreamLocal = "\(pick(podIPs)):\(port)"
            record.downstreamRemote = "\(pick(podIPs)):\(int(32768...60999))"
            if chance(0.7) { record.serverName = "outbound_.\(port)_._.\(service).\(namespace).svc.cluster.local" }
        } else {
            record.downstreamLocal = "\(pick(serviceIPs)):\(port)"
            record.downstreamRemote = "\(pick(podIPs)):\(int(32768...60999))"
        }
        if !tcp && cluster != "-" {
            record.route =
                inbound
                ? "default"
                : cluster == "PassthroughCluster"
                    ? "allow_any"
                    : cluster == "BlackHoleCluster"
                        ? "block_all"
                        : chance(0.8) ? "default" : "\(service)-\(pick(["primary", "canary", "retry", "timeout"]))"
        } else if scenario.name == "nc" {
            record.route = "\(service)-\(namespace)"
        }

        if cluster == "-" {
            record.cluster = nil
            record.clusterKey = "-"
        } else {
            // Istio 1.23-style %UPSTREAM_CLUSTER%: the stat name with a trailing ';'.
            record.cluster = chance(0.03) ? cluster + ";" : cluster
            record.clusterKey = cluster
        }
        return record
    }

    mutating func renderPath(_ service: String) -> String {
        var path = pick(Self.pathTemplates)
        path = path.replacingAll("{svc}", with: service)
        path = path.replacingAll("{id}", with: String(int(1...9_999_999)))
        path = path.replacingAll("{n}", with: String(int(1...200)))
        path = path.replacingAll("{hex}", with: hex(8))
        return path
    }
}

extension String {
    /// Foundation-free `replacingOccurrences`, over UTF-8 bytes (the corpus is built from these).
    func replacingAll(_ target: String, with replacement: String) -> String {
        let haystack = Array(utf8)
        let needle = Array(target.utf8)
        guard let first = needle.first, haystack.contains(first) else { return self }
        let substitute = Array(replacement.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(haystack.count + 16)
        var index = 0
        while index < haystack.count {
            if haystack[index] == first, index + needle.count <= haystack.count,
                haystack[index..<(index + needle.count)].elementsEqual(needle)
            {
                out += substitute
                index += needle.count
            } else {
                out.append(haystack[index])
                index += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
