import AccessLogParser
import FlagCounting
import Testing

@testable import Diagnosis

/// nginx error-log and HAProxy lines as the formats in docs/formats.md §9 give them (the
/// messages are nginx's own; the HAProxy layout is configuration.txt section 8's).
enum ProxyWritten {
    static func nginx(_ message: String, upstream: String) -> String {
        #"2026/12/06 20:15:01 [error] 4242#4242: *17 \#(message), client: 127.0.0.1, server: shop.local, request: "GET /cart HTTP/1.1", upstream: "\#(upstream)", host: "shop.local""#
    }

    static func haproxy(_ backend: String, _ server: String, _ status: String, _ state: String) -> String {
        #"<134>Dec  6 20:15:01 haproxy[977]: 127.0.0.1:51000 [06/Dec/2026:20:15:01.007] fe_http \#(backend)/\#(server) 0/0/-1/-1/3 \#(status) 217 - - \#(state) 4/4/0/0/3 0/0 "GET /cart HTTP/1.1""#
    }

    static let nginxOK = #"127.0.0.1 - - [06/Dec/2026:20:15:01 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8.5.0""#
}

let proxyCases: [DiagnosisCase] = [
    DiagnosisCase(
        name: "nginx: connect() refused → backend down or wrong port",
        lines: repeated(
            ProxyWritten.nginx(
                "connect() failed (111: Connection refused) while connecting to upstream",
                upstream: "http://10.0.0.5:8080/cart"), 12),
        format: .nginxError, cluster: "10.0.0.5:8080", among: ruleFlagsUF, flag: .upstreamConnectionFailure,
        cause: .backendDown,
        sentence: ["backend down or wrong port (connection refused): 12 of 12 UF were 111: Connection refused"],
        steps: ["curl -sv -o /dev/null http://10.0.0.5:8080/", "nginx -T", "ss -ltn"]),
    DiagnosisCase(
        name: "nginx: connect timeout → packets dropped rather than refused",
        lines: repeated(
            ProxyWritten.nginx(
                "upstream timed out (110: Connection timed out) while connecting to upstream",
                upstream: "http://10.0.0.6:8080/cart"), 10),
        format: .nginxError, cluster: "10.0.0.6:8080", among: ruleFlagsUF, flag: .upstreamConnectionFailure,
        cause: .packetsDropped,
        sentence: [
            "packets dropped (firewall, NetworkPolicy) rather than refused",
            "(connect timeouts): 10 of 10 UF were 110: Connection timed out",
        ],
        steps: ["proxy_connect_timeout", "networkpolicy"]),
    DiagnosisCase(
        name: "nginx: no route to host → packets dropped or the host gone",
        lines: repeated(
            ProxyWritten.nginx(
                "connect() failed (113: No route to host) while connecting to upstream",
                upstream: "http://10.0.0.7:8080/cart"), 10),
        format: .nginxError, cluster: "10.0.0.7:8080", among: ruleFlagsUF, flag: .upstreamConnectionFailure,
        cause: .packetsDropped,
        sentence: ["(no route to the host): 10 of 10 UF were 113: No route to host"], steps: ["iptables -S"]),
    DiagnosisCase(
        name: "nginx: SSL handshake failed → upstream TLS failure",
        lines: repeated(
            ProxyWritten.nginx(
                "SSL_do_handshake() failed (SSL: error:0A000086:SSL routines::certificate verify failed) while SSL handshaking to upstream",
                upstream: "https://10.0.0.8:8443/cart"), 10),
        format: .nginxError, cluster: "10.0.0.8:8443", among: ruleFlagsUF, flag: .upstreamConnectionFailure,
        cause: .upstreamTLSFailure,
        sentence: [
            "TLS handshake with the upstream failed: 10 of 10 UF were SSL: error:0A000086:SSL routines::certificate verify failed"
        ],
        steps: ["openssl s_client -connect 10.0.0.8:8443", "proxy_ssl_"]),
    DiagnosisCase(
        name: "nginx: no live upstreams → every server of the group marked failed",
        lines: repeated(
            ProxyWritten.nginx("no live upstreams while connecting to upstream", upstream: "http://cart_backend/cart"),
            10),
        format: .nginxError, cluster: "cart_backend", among: [.noHealthyUpstream], flag: .noHealthyUpstream,
        cause: .noLiveServers,
        sentence: [
            "every server of the upstream group 'cart_backend' is marked failed (max_fails within fail_timeout) or the group is empty",
            "10 of 10 UH were no live upstreams",
        ],
        steps: ["nginx -T 2>/dev/null | grep -n -B2 -A8 'cart_backend'", "max_fails", "curl -sv"]),
    DiagnosisCase(
        name: "nginx: upstream prematurely closed → upstream closed the connection",
        lines: repeated(
            ProxyWritten.nginx(
                "upstream prematurely closed connection while reading response header from upstream",
                upstream: "http://10.0.0.9:3000/cart"), 10),
        format: .nginxError, cluster: "10.0.0.9:3000", among: ruleFlagsUF, flag: .upstreamConnectionTermination,
        cause: .upstreamClosed,
        sentence: [
            "10 of 10 UC were upstream prematurely closed connection while reading response header from upstream"
        ],
        steps: ["keepalive_timeout"]),
    DiagnosisCase(
        name: "nginx: read timeout → proxy_read_timeout",
        lines: repeated(
            ProxyWritten.nginx(
                "upstream timed out (110: Connection timed out) while reading response header from upstream",
                upstream: "http://10.0.0.10:3000/cart"), 10),
        format: .nginxError, cluster: "10.0.0.10:3000", among: [.upstreamRequestTimeout], flag: .upstreamRequestTimeout,
        cause: .timeout,
        sentence: ["slower than proxy_read_timeout"], steps: ["grep -n proxy_read_timeout"]),
    DiagnosisCase(
        name: "nginx access log (ingress-nginx): 503 without an upstream → no live upstream servers",
        lines: repeated(
            #"10.244.0.1 - - [06/Dec/2026:20:15:03 +0000] "GET /api HTTP/1.1" 503 190 "-" "curl/8.5.0" 78 0.000 [default-echo-80] [] - - - - 5a3f9e2b1c7d4e6f8a9b0c1d2e3f4a5b"#,
            10)
            + repeated(ProxyWritten.nginxOK, 3),
        format: .nginx, cluster: "default-echo-80", among: [.noHealthyUpstream], flag: .noHealthyUpstream,
        cause: .noLiveServers,
        sentence: ["10 of 10 UH were 503s without an upstream address"], steps: ["nginx -T"]),
    DiagnosisCase(
        name: "HAProxy: SC → backend down or wrong port",
        lines: repeated(ProxyWritten.haproxy("be_cart", "cart1", "503", "SC--"), 10), format: .haproxy,
        cluster: "be_cart", among: ruleFlagsUF, flag: .upstreamConnectionFailure, cause: .backendDown,
        sentence: ["10 of 10 UF were SC-- (connection refused: the server or the network"],
        steps: ["echo 'show servers state be_cart' | socat stdio /run/haproxy/admin.sock"]),
    DiagnosisCase(
        name: "HAProxy: sC → packets dropped",
        lines: repeated(ProxyWritten.haproxy("be_cart", "cart2", "503", "sC--"), 10), format: .haproxy,
        cluster: "be_cart", among: ruleFlagsUF, flag: .upstreamConnectionFailure, cause: .packetsDropped,
        sentence: ["rather than refused", "10 of 10 UF were sC-- (connect timeout: timeout connect struck"],
        steps: ["timeout connect"]),
    DiagnosisCase(
        name: "HAProxy: SC with <NOSRV> → no server of the backend available",
        lines: repeated(ProxyWritten.haproxy("be_alldown", "<NOSRV>", "503", "SC--"), 10), format: .auto,
        cluster: "be_alldown", among: [.noHealthyUpstream], flag: .noHealthyUpstream, cause: .noLiveServers,
        sentence: [
            "no server of backend 'be_alldown' is available",
            "10 of 10 UH were SC-- (no server was available: <NOSRV>)",
        ],
        steps: ["show servers state be_alldown", "show stat"]),
    DiagnosisCase(
        name: "HAProxy: sQ → server queue full",
        lines: repeated(ProxyWritten.haproxy("be_busy", "busy1", "503", "sQ--"), 10), format: .haproxy,
        cluster: "be_busy", among: [.upstreamOverflow], flag: .upstreamOverflow, cause: .queueFull,
        sentence: ["servers at maxconn and the queue timed out: 10 of 10 UO were sQ-- (timeout queue struck"],
        steps: ["maxconn|timeout queue"]),
    DiagnosisCase(
        name: "HAProxy: SH → upstream closed the connection",
        lines: repeated(ProxyWritten.haproxy("be_cart", "cart1", "502", "SH--"), 10), format: .haproxy,
        cluster: "be_cart", among: ruleFlagsUF, flag: .upstreamConnectionTermination, cause: .upstreamClosed,
        sentence: ["10 of 10 UC were SH-- (the server aborted before sending complete response headers)"],
        steps: ["srv_abrt"]),
    DiagnosisCase(
        name: "HAProxy: sH → timeout server",
        lines: repeated(ProxyWritten.haproxy("be_cart", "cart1", "504", "sH--"), 10), format: .haproxy,
        cluster: "be_cart", among: [.upstreamRequestTimeout], flag: .upstreamRequestTimeout, cause: .timeout,
        sentence: ["slower than timeout server"], steps: ["grep -n 'timeout server'"]),
]

@Suite("Diagnosis from nginx and HAProxy lines")
struct ProxyDiagnosisTests {
    // The table above runs with Envoy's, in DiagnosisTests' "each cause".

    @Test("the new cause labels")
    func labels() {
        #expect(LikelyCause.upstreamTLSFailure.rawValue == "upstream TLS failure")
        #expect(LikelyCause.packetsDropped.rawValue == "packets dropped")
        #expect(LikelyCause.noLiveServers.rawValue == "no live upstream servers")
        #expect(LikelyCause.queueFull.rawValue == "server queue full")
    }
}
