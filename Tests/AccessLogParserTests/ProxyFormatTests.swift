import AccessLogParser
import Testing

/// nginx and HAProxy lines, written from the formats in docs/formats.md §9: the nginx error
/// log as nginx's docs and public reports show it, HAProxy's examples from its
/// configuration.txt section 8 (with and without their syslog header).
enum ProxyLines {
    static let nginxRefused =
        #"2019/02/21 10:24:32 [error] 21545#21545: *1 connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: localhost, request: "GET / HTTP/1.1", upstream: "http://127.0.0.1:8080/", host: "localhost""#
    static let nginxNoRoute =
        #"2023/04/11 08:15:02 [error] 29#29: *1402 connect() failed (113: No route to host) while connecting to upstream, client: 10.244.1.1, server: shop.example.com, request: "GET /cart HTTP/1.1", upstream: "http://10.244.2.17:8080/cart", host: "shop.example.com""#
    static let nginxUnixSocket =
        #"2024/03/18 09:41:07 [crit] 1187#1187: *3 connect() to unix:/run/php/php8.2-fpm.sock failed (2: No such file or directory) while connecting to upstream, client: 10.0.0.4, server: blog.local, request: "GET /index.php HTTP/1.1", upstream: "fastcgi://unix:/run/php/php8.2-fpm.sock:", host: "blog.local""#
    static let nginxNoLive =
        #"2021/03/05 09:12:44 [error] 31#31: *48 no live upstreams while connecting to upstream, client: 10.244.0.1, server: _, request: "GET /api/orders HTTP/1.1", upstream: "http://orders_backend/api/orders", host: "shop.example.com""#
    static let nginxConnectTimeout =
        #"2022/09/14 17:03:55 [error] 7#7: *220 upstream timed out (110: Connection timed out) while connecting to upstream, client: 192.168.1.10, server: example.com, request: "GET /health HTTP/1.1", upstream: "http://10.0.0.5:9000/health", host: "example.com""#
    static let nginxReadTimeout =
        #"2020/06/10 14:40:15 [error] 1234#1234: *5 upstream timed out (110: Connection timed out) while reading response header from upstream, client: 192.168.1.10, server: example.com, request: "POST /upload HTTP/1.1", upstream: "http://10.0.0.5:9000/upload", host: "example.com""#
    static let nginxPrematureClose =
        #"2018/11/30 23:01:09 [error] 3106#3106: *91 upstream prematurely closed connection while reading response header from upstream, client: 172.17.0.1, server: app.local, request: "GET /report HTTP/1.1", upstream: "http://127.0.0.1:3000/report", host: "app.local""#
    static let nginxReset =
        #"2021/12/02 11:45:30 [error] 8#8: *3312 recv() failed (104: Connection reset by peer) while reading response header from upstream, client: 10.0.0.9, server: api.local, request: "GET /v1/items HTTP/1.1", upstream: "http://10.0.1.4:8000/v1/items", host: "api.local""#
    static let nginxTLS =
        #"2023/02/07 13:20:48 [error] 41#41: *77 SSL_do_handshake() failed (SSL: error:0A00010B:SSL routines::wrong version number) while SSL handshaking to upstream, client: 10.0.0.3, server: gw.local, request: "GET / HTTP/1.1", upstream: "https://10.0.4.2:8443/", host: "gw.local""#
    static let nginxBuffered =
        #"2024/01/15 10:00:01 [warn] 12#12: *901 an upstream response is buffered to a temporary file /var/cache/nginx/proxy_temp/1/00/0000000001 while reading upstream, client: 10.0.0.2, server: files.local, request: "GET /big.iso HTTP/1.1", upstream: "http://10.0.0.6:80/big.iso", host: "files.local""#
    static let nginxNotice = "2024/01/15 10:00:00 [notice] 1#1: signal process started"
    static let nginxOpenFailed =
        #"2024/01/15 10:00:02 [error] 12#12: *902 open() "/usr/share/nginx/html/favicon.ico" failed (2: No such file or directory), client: 10.0.0.2, server: localhost, request: "GET /favicon.ico HTTP/1.1", host: "localhost""#

    static let nginxCombined =
        #"93.184.216.34 - - [06/Dec/2026:20:15:01 +0000] "GET /index.html HTTP/1.1" 200 612 "-" "curl/8.5.0""#
    static let ingressOK =
        #"10.244.0.1 - - [06/Dec/2026:20:15:02 +0000] "GET /api HTTP/1.1" 200 17 "-" "curl/8.5.0" 78 0.004 [default-echo-80] [] 10.244.1.7:8080 17 0.004 200 4f9d3a0c1b2e4d5f6a7b8c9d0e1f2a3b"#
    static let ingressNoEndpoints =
        #"10.244.0.1 - - [06/Dec/2026:20:15:03 +0000] "GET /api HTTP/1.1" 503 190 "-" "curl/8.5.0" 78 0.000 [default-echo-80] [] - - - - 5a3f9e2b1c7d4e6f8a9b0c1d2e3f4a5b"#
    static let ingressTimeout =
        #"10.244.0.1 - - [06/Dec/2026:20:15:04 +0000] "GET /slow HTTP/1.1" 504 160 "-" "curl/8.5.0" 79 60.001 [default-slow-80] [] 10.244.1.9:8080, 10.244.1.10:8080 0, 0 30.000, 30.001 504, 504 6b4f0a3c2d8e5f7a9b1c0d2e3f4a5b6c"#
    /// nginx 1.22 (the e2e run): `no live upstreams` puts the group's name where the address goes.
    static let nginxNoLiveAccess =
        #"127.0.0.1 - - [06/Dec/2026:20:25:55 +0000] "GET /alldown HTTP/1.1" 502 157 "-" "Python-urllib/3.11" 126 0.000 [alldown] [] alldown 0 0.000 502 26a733aa3e7930b199095922500c43a0"#
    static let nginxRetriedAccess =
        #"127.0.0.1 - - [06/Dec/2026:20:25:55 +0000] "GET /alldown HTTP/1.1" 502 157 "-" "Python-urllib/3.11" 126 0.000 [alldown] [] 127.0.0.1:53261, 127.0.0.1:58985 0, 0 0.000, 0.000 502, 502 a9f73407eea52438631f363c680f9967"#
    static let ingressBadGateway =
        #"10.244.0.1 - - [06/Dec/2026:20:15:05 +0000] "GET /api HTTP/1.1" 502 150 "-" "curl/8.5.0" 78 0.001 [default-echo-80] [] 10.244.1.7:8080 0 0.001 502 7c5a1b4d3e9f6a8b0c2d1e3f4a5b6c7d"#

    /// configuration.txt 8.2.3, the httplog example.
    static let haproxyHTTP =
        #"Feb  6 12:14:14 localhost haproxy[14389]: 10.0.1.2:33317 [06/Feb/2009:12:14:14.655] http-in static/srv1 10/0/30/69/109 200 2750 - - ---- 1/1/1/1/0 0/0 {1wt.eu} {} "GET /index.html HTTP/1.1""#
    /// configuration.txt 8.2.2, the tcplog example.
    static let haproxyTCP =
        "Feb  6 12:12:56 localhost haproxy[14387]: 10.0.1.2:33313 [06/Feb/2009:12:12:51.443] fnt bck/srv1 0/0/5007 212 -- 0/0/0/0/3 0/0"
    /// configuration.txt 8.8: the connection to the server failed after 4 attempts.
    static let haproxySC =
        #"haproxy[18989]: 10.0.0.1:34552 [15/Oct/2003:15:26:31.462] px-http px-http/srv1 3183/-1/-1/-1/11215 503 0 - - SC-- 205/202/202/115/3 0/0 "HEAD / HTTP/1.0""#
    /// configuration.txt 8.8: the client aborted before completing its request.
    static let haproxyCR =
        #"haproxy[18113]: 127.0.0.1:34548 [15/Oct/2003:15:18:55.798] px-http px-http/<NOSRV> -1/-1/-1/-1/8490 -1 0 - - CR-- 2/2/2/0/0 0/0 """#
    /// configuration.txt 8.8: tcplog, the client timed out.
    static let haproxyTCPcD =
        "haproxy[18989]: 127.0.0.1:34550 [15/Oct/2003:15:24:28.312] px-tcp px-tcp/srv1 0/0/5007 0 cD 0/0/0/0/0 0/0"
    /// configuration.txt 8.8: logasap, `+` on the total time and the bytes.
    static let haproxyLogasap =
        #"haproxy[674]: 127.0.0.1:33320 [15/Oct/2003:08:32:17.654] px-http px-http/srv1 9/0/7/14/+30 200 +243 - - ---- 3/3/3/1/0 0/0 "GET /image.iso HTTP/1.0""#
    /// `log stdout format raw`: no header; every server of the backend down.
    static let haproxyNoServer =
        #"127.0.0.1:51234 [06/Dec/2026:20:15:01.123] fe_http be_alldown/<NOSRV> 0/-1/-1/-1/0 503 217 - - SC-- 1/1/0/0/0 0/0 "GET /x HTTP/1.1""#
    /// RFC 5424 header (`log ... format rfc5424`): a connect timeout.
    static let haproxyConnectTimeout =
        #"<134>1 2026-12-06T20:15:01.123456+00:00 lb1 haproxy 4242 - - 10.0.0.7:40112 [06/Dec/2026:20:15:01.120] fe_http be_api/api2 0/0/-1/-1/5002 503 217 - - sC-- 3/3/1/0/3 0/0 "GET /v1 HTTP/1.1""#
    static let haproxyStates: [(state: String, flag: ResponseFlag?)] = [
        ("SH--", .upstreamConnectionTermination), ("SD--", .upstreamConnectionTermination),
        ("sH--", .upstreamRequestTimeout), ("sD--", .upstreamRequestTimeout), ("sQ--", .upstreamOverflow),
        ("SQ--", .upstreamOverflow), ("PH--", .upstreamProtocolError), ("PD--", .upstreamProtocolError),
        ("CD--", .downstreamConnectionTermination), ("cD--", .downstreamConnectionTermination), ("LR--", nil),
        ("----", nil), ("PR--", nil),
    ]
}

@Suite("nginx and HAProxy formats")
struct ProxyFormatTests {
    @Test("nginx error log: each upstream failure of the table gets its flag, errno text and cluster")
    func nginxErrorTable() throws {
        let rows: [(line: String, flag: ResponseFlag, cluster: String, host: String?, reason: String?)] = [
            (
                ProxyLines.nginxRefused, .upstreamConnectionFailure, "127.0.0.1:8080", "127.0.0.1:8080",
                "111: Connection refused"
            ),
            (
                ProxyLines.nginxNoRoute, .upstreamConnectionFailure, "10.244.2.17:8080", "10.244.2.17:8080",
                "113: No route to host"
            ),
            (ProxyLines.nginxNoLive, .noHealthyUpstream, "orders_backend", nil, nil),
            (
                ProxyLines.nginxUnixSocket, .upstreamConnectionFailure, "unix:/run/php/php8.2-fpm.sock",
                "unix:/run/php/php8.2-fpm.sock", "2: No such file or directory"
            ),
            (
                ProxyLines.nginxConnectTimeout, .upstreamConnectionFailure, "10.0.0.5:9000", "10.0.0.5:9000",
                "110: Connection timed out"
            ),
            (
                ProxyLines.nginxReadTimeout, .upstreamRequestTimeout, "10.0.0.5:9000", "10.0.0.5:9000",
                "110: Connection timed out"
            ),
            (ProxyLines.nginxPrematureClose, .upstreamConnectionTermination, "127.0.0.1:3000", "127.0.0.1:3000", nil),
            (
                ProxyLines.nginxReset, .upstreamConnectionTermination, "10.0.1.4:8000", "10.0.1.4:8000",
                "104: Connection reset by peer"
            ),
            (
                ProxyLines.nginxTLS, .upstreamConnectionFailure, "10.0.4.2:8443", "10.0.4.2:8443",
                "SSL: error:0A00010B:SSL routines::wrong version number"
            ),
        ]
        for row in rows {
            let parsed = try record(row.line, format: .nginxError)
            #expect(parsed.flags == [row.flag], "\(row.line)")
            #expect(parsed.code == 0)
            #expect(parsed.cluster == row.cluster)
            #expect(parsed.host == row.host)
            #expect(parsed.transportFailure == row.reason)
            #expect(parsed.details.map { row.line.contains($0 + ", client: ") } == true)
            #expect(parsed.flagsText == parsed.details)
        }
        #expect(
            try record(ProxyLines.nginxRefused, format: .nginxError).details
                == "connect() failed (111: Connection refused) while connecting to upstream")
        #expect(try record(ProxyLines.nginxRefused, format: .nginxError).start == "2019/02/21 10:24:32")
    }

    @Test(
        "nginx error log: lines about no upstream are not access-log lines, other upstream lines count without a flag")
    func nginxErrorOtherLines() throws {
        #expect(try parse(ProxyLines.nginxNotice, format: .nginxError) == .malformed(.notAccessLog))
        #expect(try parse(ProxyLines.nginxOpenFailed, format: .nginxError) == .malformed(.notAccessLog))
        #expect(try parse(Fixtures.istioUF, format: .nginxError) == .malformed(.notAccessLog))
        let buffered = try record(ProxyLines.nginxBuffered, format: .nginxError)
        #expect(
            buffered.flags == [] && buffered.cluster == "10.0.0.6:80" && buffered.code == 0 && buffered.details == nil)
        // A failure without an `upstream:` field counts under the cluster `-`.
        let withoutUpstream = ProxyLines.nginxRefused.replacing(#", upstream: "http://127.0.0.1:8080/""#, with: "")
        let parsed = try record(withoutUpstream, format: .nginxError)
        #expect(parsed.flags == [.upstreamConnectionFailure] && parsed.cluster == nil)
        // A unix-socket upstream: the socket path is the authority.
        let unix = ProxyLines.nginxRefused.replacing("http://127.0.0.1:8080/", with: "http://unix:/run/app.sock:/")
        #expect(try record(unix, format: .nginxError).cluster == "unix:/run/app.sock")
    }

    @Test("nginx access log: combined counts the code under -, upstreaminfo flags only what it proves")
    func nginxAccess() throws {
        let combined = try record(ProxyLines.nginxCombined, format: .nginx)
        #expect(combined.code == 200 && combined.flags == [] && combined.cluster == nil && combined.method == "GET")
        #expect(combined.start == "06/Dec/2026:20:15:01 +0000")
        let ok = try record(ProxyLines.ingressOK, format: .nginx)
        #expect(ok.code == 200 && ok.flags == [] && ok.cluster == "default-echo-80" && ok.host == "10.244.1.7:8080")
        let noEndpoints = try record(ProxyLines.ingressNoEndpoints, format: .nginx)
        #expect(
            noEndpoints.code == 503 && noEndpoints.flags == [.noHealthyUpstream]
                && noEndpoints.cluster == "default-echo-80")
        #expect(noEndpoints.host == nil && noEndpoints.details == "- - - -" && noEndpoints.flagsText == "- - - -")
        let timeout = try record(ProxyLines.ingressTimeout, format: .nginx)
        #expect(
            timeout.code == 504 && timeout.flags == [.upstreamRequestTimeout] && timeout.cluster == "default-slow-80")
        #expect(timeout.details == "504")
        let noLive = try record(ProxyLines.nginxNoLiveAccess, format: .nginx)
        #expect(
            noLive.code == 502 && noLive.flags == [.noHealthyUpstream] && noLive.cluster == "alldown"
                && noLive.host == nil)
        #expect(noLive.details == "alldown 0 0.000 502")
        let retried = try record(ProxyLines.nginxRetriedAccess, format: .nginx)
        #expect(retried.code == 502 && retried.flags == [] && retried.host == "127.0.0.1:53261")
        let badGateway = try record(ProxyLines.ingressBadGateway, format: .nginx)
        #expect(badGateway.code == 502 && badGateway.flags == [])
        // Older controllers: no alternative upstream name.
        let old = ProxyLines.ingressNoEndpoints.replacing("[default-echo-80] [] ", with: "[default-echo-80] ")
        #expect(try record(old, format: .nginx).flags == [.noHealthyUpstream])
        #expect(try parse(ProxyLines.nginxNotice, format: .nginx) == .malformed(.notAccessLog))
        #expect(
            try parse(ProxyLines.nginxCombined.replacing("\" 200 ", with: "\" 2x0 "), format: .nginx)
                == .malformed(.badResponseCode))
    }

    @Test("HAProxy: configuration.txt's examples, with and without a syslog header")
    func haproxyExamples() throws {
        let http = try record(ProxyLines.haproxyHTTP, format: .haproxy)
        #expect(
            http.code == 200 && http.flags == [] && http.cluster == "static" && http.host == "srv1"
                && http.duration == 109)
        #expect(http.start == "06/Feb/2009:12:14:14.655")
        let tcp = try record(ProxyLines.haproxyTCP, format: .haproxy)
        #expect(tcp.code == 0 && tcp.flags == [] && tcp.cluster == "bck" && tcp.host == "srv1" && tcp.duration == 5007)
        let refused = try record(ProxyLines.haproxySC, format: .haproxy)
        #expect(refused.code == 503 && refused.flags == [.upstreamConnectionFailure] && refused.cluster == "px-http")
        #expect(refused.details == "SC--" && refused.flagsText == "SC--" && refused.transportFailure == nil)
        let aborted = try record(ProxyLines.haproxyCR, format: .haproxy)
        #expect(aborted.code == 0 && aborted.flags == [.downstreamConnectionTermination] && aborted.host == nil)
        #expect(try record(ProxyLines.haproxyTCPcD, format: .haproxy).flags == [.downstreamConnectionTermination])
        let logasap = try record(ProxyLines.haproxyLogasap, format: .haproxy)
        #expect(logasap.code == 200 && logasap.flags == [] && logasap.duration == 30)
        let noServer = try record(ProxyLines.haproxyNoServer, format: .haproxy)
        #expect(noServer.flags == [.noHealthyUpstream] && noServer.cluster == "be_alldown" && noServer.host == nil)
        let connectTimeout = try record(ProxyLines.haproxyConnectTimeout, format: .haproxy)
        #expect(
            connectTimeout.flags == [.upstreamConnectionFailure] && connectTimeout.cluster == "be_api"
                && connectTimeout.host == "api2")
        #expect(connectTimeout.details == "sC--")
    }

    @Test("HAProxy: the termination state's first two characters give the flag")
    func haproxyStates() throws {
        for row in ProxyLines.haproxyStates {
            let line = ProxyLines.haproxySC.replacing("SC--", with: row.state)
            let parsed = try record(line, format: .haproxy)
            #expect(parsed.flags == (row.flag.map { [$0] } ?? []), "\(row.state)")
            #expect(parsed.details == (row.flag == nil ? nil : row.state))
        }
        let tcpRefused = ProxyLines.haproxyTCPcD.replacing(" cD ", with: " SC ")
        #expect(try record(tcpRefused, format: .haproxy).flags == [.upstreamConnectionFailure])
    }

    @Test("HAProxy: lines that break the layout are malformed, other text is not an access log")
    func haproxyMalformed() throws {
        #expect(try parse("haproxy[1]: Proxy fe_http started.", format: .haproxy) == .malformed(.notAccessLog))
        #expect(
            try parse(ProxyLines.haproxySC.replacing(" 503 ", with: " 5x3 "), format: .haproxy)
                == .malformed(.badResponseCode))
        #expect(
            try parse(ProxyLines.haproxySC.replacing("SC--", with: "XY--"), format: .haproxy)
                == .malformed(.formatMismatch))
        #expect(
            try parse(ProxyLines.haproxySC.replacing("3183/-1/-1/-1/11215", with: "3183/-1"), format: .haproxy)
                == .malformed(.formatMismatch))
        // Cut right after the state and its space: nothing is read past the line's end.
        let stateEnd = try #require(ProxyLines.haproxySC.firstRange(of: "SC-- ")).upperBound
        let cutAfterState = String(ProxyLines.haproxySC[..<stateEnd])
        #expect(try parse(cutAfterState, format: .haproxy) == .malformed(.formatMismatch))
        for cut in stride(from: 0, to: ProxyLines.haproxySC.utf8.count, by: 7) {
            // Any prefix parses to something without crashing.
            _ = try parse(
                String(decoding: Array(ProxyLines.haproxySC.utf8).prefix(cut), as: UTF8.self), format: .haproxy)
            _ = try parse(
                String(decoding: Array(ProxyLines.nginxRefused.utf8).prefix(cut), as: UTF8.self), format: .nginxError)
            _ = try parse(
                String(decoding: Array(ProxyLines.ingressTimeout.utf8).prefix(cut), as: UTF8.self), format: .nginx)
        }
    }

    @Test("auto recognises nginx-error, nginx and haproxy lines and names them")
    func autoRecognises() throws {
        let rows: [(line: String, name: String)] = [
            (ProxyLines.nginxRefused, "nginx-error"), (ProxyLines.ingressNoEndpoints, "nginx"),
            (ProxyLines.nginxCombined, "nginx"), (ProxyLines.haproxySC, "haproxy"), (ProxyLines.haproxyTCP, "haproxy"),
            (Fixtures.istioUF, "istio (1.9+)"),
        ]
        for row in rows {
            let (outcome, name) = try parseRecognizing(row.line)
            #expect(outcome.record != nil, "\(row.line)")
            #expect(name == row.name)
        }
        // A stream that mixes Envoy's lines and HAProxy's keeps reading both.
        var parser = try AccessLogParser(format: .auto, fields: .counting)
        #expect(parse(ProxyLines.haproxySC, with: &parser).record?.flags == [.upstreamConnectionFailure])
        #expect(
            parse(Fixtures.istioUF, with: &parser).record?.cluster
                == "outbound|9001||payments.default.svc.cluster.local")
        #expect(parse(ProxyLines.nginxNotice, with: &parser) == .malformed(.notAccessLog))
    }

    @Test("the format names parse as --format values")
    func formatNames() {
        #expect(LogFormat(argument: "nginx-error") == .nginxError)
        #expect(LogFormat(argument: "nginx") == .nginx)
        #expect(LogFormat(argument: "haproxy") == .haproxy)
    }
}
