import AccessLogParser
import FlagCounting

/// The diagnosis of flags read from nginx's or HAProxy's logs (docs/formats.md §9): the same
/// flags as Envoy's, but the evidence is nginx's messages or HAProxy's termination states, and
/// the remedies are in nginx.conf or haproxy.cfg rather than in Istio's resources.
enum ProxyDiagnoser {
    /// Which proxy wrote the lines a flag's details came from.
    enum Proxy {
        case nginx, haproxy

        /// Recognised from the most frequent detail: HAProxy's carry flagwatch's sentence
        /// starting `haproxy `; nginx's error-log messages end in their phase (`while connecting
        /// to upstream`), its access-log flags carry `nginx access log: ...`.
        init?(_ tally: FailureTally) {
            guard let top = tally.details.first else { return nil }
            if top.transportFailureReason?.hasPrefix("haproxy ") == true {
                self = .haproxy
                return
            }
            guard let details = top.details else { return nil }
            if details.hasPrefix("nginx access log") || details.hasPrefix("no live upstreams")
                || (details.hasSuffix("upstream") && details.contains(" while "))
            {
                self = .nginx
                return
            }
            return nil
        }
    }

    /// nil when the flag's lines did not come from nginx or HAProxy.
    static func diagnose(_ flag: ResponseFlag, _ tally: FailureTally, cluster: String) -> Diagnosis? {
        guard let proxy = Proxy(tally) else { return nil }
        let steps = ProxySteps(proxy: proxy, cluster: cluster)
        switch flag {
        case .upstreamConnectionFailure: return connectionFailure(tally, steps)
        case .noHealthyUpstream: return noLiveServers(tally, steps)
        case .upstreamConnectionTermination:
            return Diagnosis(
                flag: flag, cause: .upstreamClosed,
                likelyCause: "upstream closed the connection before a complete response: \(tally.describe(flag, as: nil)); the backend crashed or restarted, or it closes keep-alive connections sooner than \(proxy == .nginx ? "nginx" : "HAProxy") reuses them",
                nextSteps: steps.closedSteps())
        case .upstreamRequestTimeout:
            let setting = proxy == .nginx ? "proxy_read_timeout" : "timeout server"
            return Diagnosis(
                flag: flag, cause: .timeout,
                likelyCause: "upstream timeout (the backend answers slower than \(setting)): \(tally.describe(flag, as: nil))",
                nextSteps: steps.timeoutSteps())
        case .upstreamOverflow:
            return Diagnosis(
                flag: flag, cause: .queueFull,
                likelyCause: "servers at maxconn and the queue timed out: \(tally.describe(flag, as: nil)); the backend is too slow or too small for the load",
                nextSteps: steps.queueSteps())
        case .upstreamProtocolError:
            return Diagnosis(
                flag: flag, cause: .protocolError,
                likelyCause: "the upstream's response was refused as invalid: \(tally.describe(flag, as: nil))",
                nextSteps: steps.protocolSteps())
        default:
            return nil
        }
    }

    private static func connectionFailure(_ tally: FailureTally, _ steps: ProxySteps) -> Diagnosis {
        let flag = ResponseFlag.upstreamConnectionFailure
        let total = tally.total
        let tls = tally.count(of: .tls)
        let refused = tally.count(of: .connectionRefused)
        let timedOut = tally.count(of: .connectTimeout)
        let unreachable = tally.count(of: .unreachable)
        func example(_ kind: FailureKind) -> String { tally.example(of: kind).map { " (\($0))" } ?? "" }
        if tls > 0 && tls >= max(refused, timedOut, unreachable) {
            return Diagnosis(
                flag: flag, cause: .upstreamTLSFailure,
                likelyCause: "TLS handshake with the upstream failed: \(tls) of \(total) UF were TLS errors\(example(.tls)); the server's certificate is not trusted or expired, its name does not match, or it does not speak TLS on that port",
                nextSteps: steps.tlsSteps())
        }
        if refused > 0 && refused >= max(timedOut, unreachable) {
            return Diagnosis(
                flag: flag, cause: .backendDown,
                likelyCause: "backend down or wrong port: \(refused) of \(total) UF were connection refused\(example(.connectionRefused)); nothing listens on the server's address and port",
                nextSteps: steps.refusedSteps())
        }
        if timedOut > 0 || unreachable > 0 {
            let kind: FailureKind = timedOut >= unreachable ? .connectTimeout : .unreachable
            let words = kind == .connectTimeout ? "connect timeouts" : "no route to the host"
            return Diagnosis(
                flag: flag, cause: .packetsDropped,
                likelyCause: "packets dropped (firewall, NetworkPolicy) rather than refused, or the host is gone: \(tally.count(of: kind)) of \(total) UF were \(words)\(example(kind))",
                nextSteps: steps.droppedSteps())
        }
        return Diagnosis(
            flag: flag, cause: .backendDown,
            likelyCause: "backend down, wrong port or blocked: \(tally.describe(flag, as: nil))",
            nextSteps: steps.refusedSteps())
    }

    private static func noLiveServers(_ tally: FailureTally, _ steps: ProxySteps) -> Diagnosis {
        let flag = ResponseFlag.noHealthyUpstream
        let sentence: String
        switch steps.proxy {
        case .nginx:
            sentence = "every server of the upstream group '\(steps.cluster)' is marked failed (max_fails within fail_timeout) or the group is empty: " + tally.describe(flag, as: "no live upstreams")
        case .haproxy:
            sentence = "no server of backend '\(steps.cluster)' is available (all down by health checks, in maintenance, or none configured): " + tally.describe(flag, as: nil)
        }
        return Diagnosis(flag: flag, cause: .noLiveServers, likelyCause: sentence, nextSteps: steps.noLiveServersSteps())
    }
}

/// The next steps for a cluster of nginx (a server's `host:port`, or an upstream group's
/// name) or of HAProxy (a backend's name).
struct ProxySteps {
    let proxy: ProxyDiagnoser.Proxy
    let cluster: String

    /// The cluster quoted for a shell.
    private var quoted: String { "'" + cluster.replacing("'", with: "'\\''") + "'" }
    private var stats: String { "socat stdio /run/haproxy/admin.sock" }
    private var serversState: String {
        "echo 'show servers state \(cluster)' | \(stats)  # each server's address, port, state and check result"
    }
    private var backendConfig: String { "haproxy -c -f /etc/haproxy/haproxy.cfg && grep -A15 \(quoted) /etc/haproxy/haproxy.cfg" }
    private var nginxConfig: String { "nginx -T 2>/dev/null | grep -n -B2 -A8 \(quoted)  # the upstream block, its server lines" }
    /// nginx's cluster is a server's address except for `no live upstreams` and ingress-nginx.
    private var curlServer: String { "curl -sv -o /dev/null http://\(cluster)/" }

    func refusedSteps() -> [String] {
        switch proxy {
        case .nginx:
            return [curlServer + "  # from this host: refused means nothing listens there", nginxConfig,
                    "ss -ltn  # on the backend host: is the port open"]
        case .haproxy:
            return [serversState, backendConfig, "curl -sv -o /dev/null http://<server address>/  # from this host"]
        }
    }

    func droppedSteps() -> [String] {
        switch proxy {
        case .nginx:
            return ["curl -sv --connect-timeout 5 -o /dev/null http://\(cluster)/  # hangs: packets are dropped",
                    "nginx -T 2>/dev/null | grep -n proxy_connect_timeout", nginxConfig,
                    "iptables -S; kubectl get networkpolicy -A  # rules dropping traffic to the server"]
        case .haproxy:
            return [serversState, "grep -n 'timeout connect' /etc/haproxy/haproxy.cfg",
                    "curl -sv --connect-timeout 5 -o /dev/null http://<server address>/",
                    "iptables -S; kubectl get networkpolicy -A  # rules dropping traffic to the servers"]
        }
    }

    func tlsSteps() -> [String] {
        switch proxy {
        case .nginx:
            return ["openssl s_client -connect \(cluster) -servername <name> </dev/null  # the certificate and the protocol",
                    "nginx -T 2>/dev/null | grep -n -E 'proxy_ssl_(verify|trusted_certificate|name|server_name|protocols)'"]
        case .haproxy:
            return [serversState, "grep -n -E 'ssl|verify|ca-file|sni' /etc/haproxy/haproxy.cfg",
                    "openssl s_client -connect <server address> </dev/null"]
        }
    }

    func noLiveServersSteps() -> [String] {
        switch proxy {
        case .nginx:
            return [nginxConfig + "; max_fails and fail_timeout",
                    "grep -E 'connect\\(\\) failed|upstream timed out' /var/log/nginx/error.log | tail -20  # why its servers were marked failed",
                    "curl -sv -o /dev/null http://<server>/  # for each server of the group"]
        case .haproxy:
            return [serversState, "echo 'show stat' | \(stats) | grep \(quoted)  # status, check_status, lastchg", backendConfig]
        }
    }

    func closedSteps() -> [String] {
        switch proxy {
        case .nginx:
            return ["journalctl -u <backend service> --since -15min  # crashes and restarts", nginxConfig + "; keepalive, keepalive_timeout",
                    curlServer]
        case .haproxy:
            return [serversState, "echo 'show stat' | \(stats) | grep \(quoted)  # eresp, cli_abrt, srv_abrt",
                    "grep -n -E 'http-reuse|timeout (server|http-keep-alive)' /etc/haproxy/haproxy.cfg"]
        }
    }

    func timeoutSteps() -> [String] {
        switch proxy {
        case .nginx:
            return ["nginx -T 2>/dev/null | grep -n proxy_read_timeout",
                    "curl -s -o /dev/null -w '%{time_starttransfer}\\n' http://\(cluster)/  # how long the backend takes"]
        case .haproxy:
            return ["grep -n 'timeout server' /etc/haproxy/haproxy.cfg", serversState,
                    "curl -s -o /dev/null -w '%{time_starttransfer}\\n' http://<server address>/"]
        }
    }

    func queueSteps() -> [String] {
        [serversState, "echo 'show stat' | \(stats) | grep \(quoted)  # qcur, qmax, scur, slim",
         "grep -n -E 'maxconn|timeout queue' /etc/haproxy/haproxy.cfg"]
    }

    func protocolSteps() -> [String] {
        switch proxy {
        case .nginx:
            return [curlServer.replacing("-o /dev/null ", with: "") + "  # the raw response",
                    "nginx -T 2>/dev/null | grep -n -E 'proxy_buffer_size|proxy_http_version'"]
        case .haproxy:
            return ["echo 'show errors' | \(stats)  # the refused response, byte by byte", serversState]
        }
    }
}
