import AccessLogParser
import FlagCounting

/// The diagnosis of flags read from nginx's or HAProxy's logs (docs/formats.md §9): the same
/// flags as Envoy's, but the evidence is nginx's messages or HAProxy's termination states, and
/// the remedies are in nginx.conf or haproxy.cfg rather than in Istio's resources.
enum ProxyDiagnoser {
    /// Which proxy wrote the lines a flag's details came from.
    enum Proxy {
        case nginx, haproxy
    }

    /// What one detail (a breakdown row) says, in the proxy's terms.
    struct Evidence {
        var proxy: Proxy
        var kind: FailureKind
        /// How the sentence names it: the errno or TLS text, or the state with its meaning.
        var words: String
        var count: Int

        /// nil for a detail no nginx or HAProxy line writes (an Envoy one).
        init?(_ detail: FailureDetail, flag: ResponseFlag) {
            guard let details = detail.details else { return nil }
            count = detail.count
            if let state = HAProxyState(details, flag: flag) {
                proxy = .haproxy
                (kind, words) = (state.kind, "\(details) (\(state.meaning))")
            } else if let access = NginxAccessEvidence(details) {
                proxy = .nginx
                (kind, words) = (.other, access.meaning)
            } else if details.hasPrefix("no live upstreams")
                || (details.hasSuffix("upstream") && details.contains(" while "))
            {
                // nginx's error-log message: the errno or TLS text in its parentheses says most.
                proxy = .nginx
                (kind, words) = (FailureKind(detail), detail.transportFailureReason ?? details)
            } else {
                return nil
            }
        }
    }

    /// nil when the flag's lines did not come from nginx or HAProxy (its most frequent detail
    /// is no nginx message, HAProxy state or nginx access-log evidence).
    static func diagnose(_ flag: ResponseFlag, _ tally: FailureTally, cluster: String) -> Diagnosis? {
        guard let top = tally.details.first, let first = Evidence(top, flag: flag) else { return nil }
        let evidence = tally.details.compactMap { Evidence($0, flag: flag) }
        let proxy = first.proxy
        let steps = ProxySteps(proxy: proxy, cluster: cluster)
        let total = tally.total
        /// "10 of 12 UC were <words of the most frequent>".
        func described(_ kinds: Set<FailureKind>? = nil) -> String {
            let matching = evidence.filter { kinds?.contains($0.kind) ?? true }
            guard let example = matching.first else { return "\(total) \(flag.shortName)" }
            let count = kinds == nil ? example.count : matching.reduce(0) { $0 + $1.count }
            return "\(count) of \(total) \(flag.shortName) were \(example.words)"
        }
        switch flag {
        case .upstreamConnectionFailure:
            return connectionFailure(evidence, total: total, steps, described)
        case .noHealthyUpstream:
            let sentence =
                proxy == .nginx
                ? "every server of the upstream group '\(cluster)' is marked failed (max_fails within fail_timeout) or the group is empty: "
                : "no server of backend '\(cluster)' is available (all down by health checks, in maintenance, or none configured): "
            return Diagnosis(
                flag: flag, cause: .noLiveServers, likelyCause: sentence + described(),
                nextSteps: steps.noLiveServersSteps())
        case .upstreamConnectionTermination:
            return Diagnosis(
                flag: flag, cause: .upstreamClosed,
                likelyCause:
                    "upstream closed the connection before a complete response: \(described()); the backend crashed or restarted, or it closes keep-alive connections sooner than \(proxy == .nginx ? "nginx" : "HAProxy") reuses them",
                nextSteps: steps.closedSteps())
        case .upstreamRequestTimeout:
            let setting = proxy == .nginx ? "proxy_read_timeout" : "timeout server"
            return Diagnosis(
                flag: flag, cause: .timeout,
                likelyCause: "upstream timeout (the backend answers slower than \(setting)): \(described())",
                nextSteps: steps.timeoutSteps())
        case .upstreamOverflow:
            return Diagnosis(
                flag: flag, cause: .queueFull,
                likelyCause:
                    "servers at maxconn and the queue timed out: \(described()); the backend is too slow or too small for the load",
                nextSteps: steps.queueSteps())
        case .upstreamProtocolError:
            return Diagnosis(
                flag: flag, cause: .protocolError,
                likelyCause: "the upstream's response was refused as invalid: \(described())",
                nextSteps: steps.protocolSteps())
        default:
            return nil
        }
    }

    private static func connectionFailure(
        _ evidence: [Evidence], total: Int, _ steps: ProxySteps, _ described: (Set<FailureKind>?) -> String
    ) -> Diagnosis {
        let flag = ResponseFlag.upstreamConnectionFailure
        func count(_ kind: FailureKind) -> Int { evidence.filter { $0.kind == kind }.reduce(0) { $0 + $1.count } }
        let tls = count(.tls)
        let dominant = FailureTally.dominantConnectFailure(
            refused: count(.connectionRefused), timedOut: count(.connectTimeout), unreachable: count(.unreachable))
        if tls > 0 && tls >= (dominant.map { count($0.kind) } ?? 0) {
            return Diagnosis(
                flag: flag, cause: .upstreamTLSFailure,
                likelyCause:
                    "TLS handshake with the upstream failed: \(described([.tls])); the server's certificate is not trusted or expired, its name does not match, or it does not speak TLS on that port",
                nextSteps: steps.tlsSteps())
        }
        switch dominant {
        case (.connectionRefused, let words)?:
            return Diagnosis(
                flag: flag, cause: .backendDown,
                likelyCause:
                    "backend down or wrong port (\(words)): \(described([.connectionRefused])); nothing listens on the server's address and port",
                nextSteps: steps.refusedSteps())
        case (let kind, let words)?:
            return Diagnosis(
                flag: flag, cause: .packetsDropped,
                likelyCause:
                    "packets dropped (firewall, NetworkPolicy) rather than refused, or the host is gone (\(words)): \(described([kind]))",
                nextSteps: steps.droppedSteps())
        case nil:
            return Diagnosis(
                flag: flag, cause: .backendDown, likelyCause: "backend down, wrong port or blocked: \(described(nil))",
                nextSteps: steps.refusedSteps())
        }
    }
}

/// HAProxy's termination state (`SC--`, tcplog's `SC`): who ended the session in which phase
/// (docs/formats.md §9.3), and what that means for the diagnosis.
struct HAProxyState {
    let kind: FailureKind
    let meaning: String

    /// `flag`: the flag the state was counted under (`SC` is UH with `<NOSRV>`, else UF).
    init?(_ text: String, flag: ResponseFlag) {
        let bytes = Array(text.utf8)
        guard bytes.count == 2 || bytes.count == 4 else { return nil }
        let first = Character(UnicodeScalar(bytes[0]))
        let second = Character(UnicodeScalar(bytes[1]))
        guard "CSPLRIDUKHcs-".contains(first), "RQCHDLT-".contains(second),
            bytes.dropFirst(2).allSatisfy({
                ($0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z")) || $0 == UInt8(ascii: "-")
            })
        else { return nil }
        switch (first, second) {
        case ("S", "C") where flag == .noHealthyUpstream:
            (kind, meaning) = (.other, "no server was available: <NOSRV>")
        case ("S", "C"):
            (kind, meaning) = (
                .connectionRefused,
                "connection refused: the server or the network answered the connect with a reset or an ICMP error"
            )
        case ("s", "C"):
            (kind, meaning) = (.connectTimeout, "connect timeout: timeout connect struck before the server accepted")
        case ("S", "H"): (kind, meaning) = (.other, "the server aborted before sending complete response headers")
        case ("S", "D"): (kind, meaning) = (.other, "the server aborted during the data transfer")
        case ("s", "H"):
            (kind, meaning) = (.other, "timeout server struck before the server sent complete response headers")
        case ("s", "D"): (kind, meaning) = (.other, "timeout server struck during the data transfer")
        case ("s", "Q"):
            (kind, meaning) = (.other, "timeout queue struck while the request waited for a free server slot")
        case ("S", "Q"): (kind, meaning) = (.other, "the request was refused while it waited for a free server slot")
        case ("P", "H"):
            (kind, meaning) = (.other, "the proxy refused the server's response headers (invalid, or blocked)")
        case ("P", "D"):
            (kind, meaning) = (.other, "the proxy refused the server's response data (invalid chunking or length)")
        case ("C", _): (kind, meaning) = (.other, "the client aborted")
        case ("c", _): (kind, meaning) = (.other, "the client timed out")
        default: (kind, meaning) = (.other, "termination state \(text)")
        }
    }
}

/// What an nginx access line's flag was proven by (docs/formats.md §9.2).
struct NginxAccessEvidence {
    let meaning: String

    init?(_ text: String) {
        let tokens = text.split(separator: " ")
        if text == "- - - -" {
            meaning = "503s without an upstream address (no server was tried: ingress-nginx finds no endpoint)"
        } else if text == "504" {
            meaning = "504s from nginx's access log (the upstream did not answer within proxy_read_timeout)"
        } else if tokens.count == 4, !tokens[0].contains(":"), tokens[3] == "502" || tokens[3] == "503" {
            meaning = "no live upstreams (the group's name '\(tokens[0])' where the address goes)"
        } else {
            return nil
        }
    }
}

/// The next steps for a cluster of nginx (a server's `host:port`, or an upstream group's
/// name) or of HAProxy (a backend's name).
struct ProxySteps {
    let proxy: ProxyDiagnoser.Proxy
    let cluster: String

    /// The cluster quoted for a shell.
    private var quoted: String { ShellWord.quoted(cluster) }
    private var stats: String { "socat stdio /run/haproxy/admin.sock" }
    private var serversState: String {
        "echo \(ShellWord.quoted("show servers state " + cluster)) | \(stats)  # each server's address, port, state and check result"
    }
    private var backendConfig: String {
        "haproxy -c -f /etc/haproxy/haproxy.cfg && grep -A15 \(quoted) /etc/haproxy/haproxy.cfg"
    }
    private var nginxConfig: String {
        "nginx -T 2>/dev/null | grep -n -B2 -A8 \(quoted)  # the upstream block, its server lines"
    }
    /// nginx's cluster is a server's address except for `no live upstreams` and ingress-nginx.
    private var curlServer: String { "curl -sv -o /dev/null \(url)" }
    /// `http://<cluster>/`, one shell word.
    private var url: String { ShellWord.word("http://" + cluster + "/") }

    /// The steps for the proxy the lines came from.
    private func either(nginx: [String], haproxy: [String]) -> [String] { proxy == .nginx ? nginx : haproxy }

    func refusedSteps() -> [String] {
        either(
            nginx: [
                curlServer + "  # from this host: refused means nothing listens there", nginxConfig,
                "ss -ltn  # on the backend host: is the port open",
            ],
            haproxy: [serversState, backendConfig, "curl -sv -o /dev/null http://<server address>/  # from this host"])
    }

    func droppedSteps() -> [String] {
        either(
            nginx: [
                "curl -sv --connect-timeout 5 -o /dev/null \(url)  # hangs: packets are dropped",
                "nginx -T 2>/dev/null | grep -n proxy_connect_timeout", nginxConfig, firewallSteps,
            ],
            haproxy: [
                serversState, "grep -n 'timeout connect' /etc/haproxy/haproxy.cfg",
                "curl -sv --connect-timeout 5 -o /dev/null http://<server address>/", firewallSteps,
            ])
    }

    private var firewallSteps: String {
        "iptables -S; kubectl get networkpolicy -A  # rules dropping traffic to the servers"
    }

    func tlsSteps() -> [String] {
        either(
            nginx: [
                "openssl s_client -connect \(ShellWord.word(cluster)) -servername <name> </dev/null  # the certificate and the protocol",
                "nginx -T 2>/dev/null | grep -n -E 'proxy_ssl_(verify|trusted_certificate|name|server_name|protocols)'",
            ],
            haproxy: [
                serversState, "grep -n -E 'ssl|verify|ca-file|sni' /etc/haproxy/haproxy.cfg",
                "openssl s_client -connect <server address> </dev/null",
            ])
    }

    func noLiveServersSteps() -> [String] {
        either(
            nginx: [
                nginxConfig + "; max_fails and fail_timeout",
                "grep -E 'connect\\(\\) failed|upstream timed out' /var/log/nginx/error.log | tail -20  # why its servers were marked failed",
                "curl -sv -o /dev/null http://<server>/  # for each server of the group",
            ],
            haproxy: [serversState, showStat("status, check_status, lastchg"), backendConfig])
    }

    func closedSteps() -> [String] {
        either(
            nginx: [
                "journalctl -u <backend service> --since -15min  # crashes and restarts",
                nginxConfig + "; keepalive, keepalive_timeout", curlServer,
            ],
            haproxy: [
                serversState, showStat("eresp, cli_abrt, srv_abrt"),
                "grep -n -E 'http-reuse|timeout (server|http-keep-alive)' /etc/haproxy/haproxy.cfg",
            ])
    }

    func timeoutSteps() -> [String] {
        either(
            nginx: [
                "nginx -T 2>/dev/null | grep -n proxy_read_timeout",
                "curl -s -o /dev/null -w '%{time_starttransfer}\\n' \(url)  # how long the backend takes",
            ],
            haproxy: [
                "grep -n 'timeout server' /etc/haproxy/haproxy.cfg", serversState,
                "curl -s -o /dev/null -w '%{time_starttransfer}\\n' http://<server address>/",
            ])
    }

    func queueSteps() -> [String] {
        [
            serversState, showStat("qcur, qmax, scur, slim"),
            "grep -n -E 'maxconn|timeout queue' /etc/haproxy/haproxy.cfg",
        ]
    }

    func protocolSteps() -> [String] {
        either(
            nginx: [
                curlServer.replacing("-o /dev/null ", with: "") + "  # the raw response",
                "nginx -T 2>/dev/null | grep -n -E 'proxy_buffer_size|proxy_http_version'",
            ],
            haproxy: ["echo 'show errors' | \(stats)  # the refused response, byte by byte", serversState])
    }

    /// HAProxy's `show stat` row of the backend, with the columns that matter.
    private func showStat(_ columns: String) -> String { "echo 'show stat' | \(stats) | grep \(quoted)  # \(columns)" }
}
