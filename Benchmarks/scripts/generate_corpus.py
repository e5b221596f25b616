#!/usr/bin/env python3
"""Generate a large, realistic Envoy/Istio access-log corpus for benchmarking flagwatch.

Writes N access-log lines in the current Istio TEXT format (default) or as Istio JSON
lines (--format json), and optionally the ground truth in exactly the shape of
`flagwatch scan --output json`:

  {"lines": N, "malformed": {}, "clusters": {"<cluster>": {"requests": N,
     "codes": {"2xx": N, ...}, "flags": {"UF": N, ...}}}}

Ground-truth rules (they match the flagwatch parser rules in docs/formats.md):
  * zero counts are omitted;
  * flags are split on ',' and each one counted once per line ('UF,URX' counts UF and URX);
    '-' means "no flag" and is not counted;
  * code classes are "0" (response code 0), "1xx" ... "5xx";
  * the cluster '-' (JSON null) is the key "-";
  * Istio 1.23-style clusters with one trailing ';' are counted under the name without it.

How it stays fast (5M lines, ~1.8 GB, well under a minute): a pool of a few hundred
thousand distinct records is rendered once, then lines are drawn uniformly at random from
the pool and written in big chunks. Each emitted line still gets its own START_TIME
(seconds increase through the file, milliseconds are random, as in real Envoy logs where
lines are written at completion) and, for HTTP lines, a request id drawn from a separate
pool of UUIDs, so the file does not consist of 25 verbatim copies of each pool line.

Python 3 standard library only. Deterministic for a given --seed, --lines, --pool, --format.

Examples:
  generate_corpus.py --lines 5000000 --out bench-data/istio-5m.log --truth bench-data/istio-5m.truth.json
  generate_corpus.py --lines 100000 --format json --out /tmp/c.json.log --truth /tmp/c.truth.json
"""

import argparse
import bisect
import json
import os
import random
import sys
import time
from operator import getitem

# --------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------

SERVICES = [
    "productpage", "reviews", "ratings", "details", "payments", "ledger", "fraud", "inventory",
    "shipping", "catalog", "search", "checkout", "cart", "auth", "legacy", "vault", "profile",
    "recommendations", "feeds", "notifications", "billing", "orders", "quotes", "admin",
    "pricing", "telemetry", "batch", "uploads", "postgres", "redis", "kafka", "users",
    "accounts", "invoices", "emails", "frontend", "gateway-api", "currency", "ads", "media",
    "thumbnails", "session", "identity", "audit", "geo", "tax", "loyalty", "coupons",
    "warehouse", "tracking", "chat", "presence", "metrics-collector", "config-server",
]
NAMESPACES = ["default", "prod", "shop", "payments", "platform", "data", "edge", "staging",
              "team-a", "ml-serving"]
PORTS_HTTP = [80, 8080, 8080, 8080, 9080, 9080, 8000, 3000, 5000, 443, 8443, 9090, 50051, 7070]
PORTS_TCP = {"postgres": 5432, "redis": 6379, "kafka": 9092}
SUBSETS = ["", "", "", "", "", "v1", "v2", "v3", "canary", "stable"]

METHODS = ["GET"] * 14 + ["POST"] * 5 + ["PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
PATH_TEMPLATES = [
    "/", "/", "/healthz", "/readyz", "/api/v1/{svc}", "/api/v1/{svc}", "/{svc}", "/login", "/cart", "/api/v1/{svc}/{id}", "/api/v2/{svc}/{id}/items",
    "/api/v1/{svc}/{id}/history?limit=50&offset={n}", "/{svc}/{id}", "/v1/{svc}:batchGet",
    "/graphql", "/static/js/main.{hex}.chunk.js", "/static/css/app.{hex}.css",
    "/images/products/{id}/thumbnail_{n}x{n}.webp", "/api/v1/search?q=blue+shoes&page={n}&sort=price_asc",
    "/checkout/session/{uuid}/confirm", "/oauth2/token", "/.well-known/openid-configuration",
    "/metrics", "/grpc.health.v1.Health/Check", "/{pkg}.{Svc}Service/Get{Svc}",
    "/{pkg}.{Svc}Service/List{Svc}s", "/api/v1/users/{id}/preferences?fields=locale,currency,timezone",
    "/ws/events?channel={svc}&token={hex}", "/api/v3/{svc}/{id}/attachments/{hex}/download",
]
USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
    "curl/8.5.0", "curl/7.88.1", "Go-http-client/1.1", "Go-http-client/2.0", "grpc-go/1.63.2",
    "grpc-java-netty/1.62.2", "grpc-python/1.62.1 grpc-c/39.0.0 (linux; chttp2)",
    "python-requests/2.31.0", "python-httpx/0.27.0", "aiohttp/3.9.5", "okhttp/4.12.0",
    "Apache-HttpClient/4.5.14 (Java/17.0.10)", "Java/17.0.10", "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
    "axios/1.6.8", "kube-probe/1.29", "Envoy/HC", "Prometheus/2.51.2", "istio-probe",
    "Wget/1.21.3", "PostmanRuntime/7.37.3", "k6/0.50.0 (https://k6.io/)",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    # Envoy's text format does not escape '"': these embed quotes (and spaces) in the UA field.
    'Mozilla/5.0 (compatible; "QuoteBot" 2.0)',
    'curl/8.5.0 "--insecure"',
    'evil" 503 UF,URX - "x',
    '" outbound|9999||fake.default.svc.cluster.local - - - - -',
    'Mozilla/5.0 (X11; Linux x86_64) "Chrome" "like Gecko"',
    '"',
    '""',
]
UA_WEIGHTS = [12, 5, 3, 5, 5, 8, 4, 8, 4, 12, 6, 4, 6, 3, 2, 6, 4, 2, 2, 3, 8, 4, 3, 1, 1, 1, 1, 1,
              1, 1, 1, 1, 1, 1, 1]
assert len(UA_WEIGHTS) == len(USER_AGENTS)

TLS_VERIFY = ("TLS_error:|268435581:SSL_routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:"
              "TLS_error_end")
TLS_VERIFY_LONG = ("TLS_error:|268435581:SSL_routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:"
                   "verify_cert_failed:_X509_verify_cert:_certificate_verification_error_at_depth_0:"
                   "_unable_to_get_local_issuer_certificate:TLS_error_end")
TLS_WRONG_VERSION = ("TLS_error:|268435703:SSL_routines:OPENSSL_internal:WRONG_VERSION_NUMBER:"
                     "TLS_error_end")
CONN_REFUSED = "delayed_connect_error:_Connection_refused"
RESET_BEFORE = "upstream_reset_before_response_started{%s}"

# Scenarios: (weight, name). Each name maps to a renderer below. Weights are per 1,000,000.
SCENARIOS = [
    (905000, "ok"),            # '-' and a 1xx..5xx answered by the upstream itself
    (16000, "uf"),
    (3000, "uf_tls"),
    (1500, "uf_timeout"),
    (8000, "urx_uf"),          # URX,UF (HTTP retry)
    (2500, "uf_urx"),          # UF,URX (TCP proxy / older Envoy)
    (2000, "uo_uf"),           # UO,UF and UF,UO
    (7000, "uh"),
    (9000, "nr"),
    (1500, "nc"),
    (9000, "uc"),
    (900, "uc_urx"),           # URX,UC / UC,URX
    (8000, "ut"),
    (4000, "uo"),
    (9000, "dc"),
    (2000, "dr"),
    (1200, "upe"),
    (2500, "ur"),
    (4000, "rl"),
    (800, "uaex"),
    (300, "rlse"),
    (1200, "si"),
    (400, "umsdr"),
    (700, "di"),
    (700, "fi"),
    (150, "di_fi"),
    (600, "do"),
    (100, "udo"),
    (300, "lh"),
    (200, "ih"),
    (300, "dpe"),
    (200, "lr"),
    (60, "om"),
    (40, "df"),
    (2500, "tcp_ok"),
    (600, "tcp_dt"),
    (500, "tcp_rbac"),
    (700, "blackhole"),
    (3000, "passthrough"),
]

FLAG_ORDERS = {  # multi-flag scenarios: both orders appear
    "urx_uf": [(0.8, "URX,UF"), (0.2, "UF,URX")],
    "uf_urx": [(1.0, "UF,URX")],
    "uo_uf": [(0.85, "UO,UF"), (0.15, "UF,UO")],
    "uc_urx": [(0.7, "URX,UC"), (0.3, "UC,URX")],
    "di_fi": [(0.6, "DI,FI"), (0.4, "FI,DI")],
}


def code_class(code):
    if code == 0:
        return "0"
    return "%dxx" % (code // 100)


# --------------------------------------------------------------------------------------
# Pool construction
# --------------------------------------------------------------------------------------

class World:
    """Clusters, pods and addresses, chosen once per seed."""

    def __init__(self, rng, n_clusters=200):
        self.rng = rng
        outbound = set()
        names = []
        while len(names) < n_clusters - 14:
            svc = rng.choice(SERVICES)
            ns = rng.choice(NAMESPACES)
            port = PORTS_TCP.get(svc) or rng.choice(PORTS_HTTP)
            subset = rng.choice(SUBSETS)
            key = (port, subset, svc, ns)
            if key in outbound:
                continue
            outbound.add(key)
            names.append(("outbound|%d|%s|%s.%s.svc.cluster.local" % key, svc, ns, port))
        self.outbound = names
        self.inbound = [("inbound|%d||" % p, None, None, p) for p in (8080, 9080, 80, 8443, 3000, 5000, 50051, 15021)]
        # Zipf-like popularity: a few hot clusters, a long tail.
        self.out_cum = _cumulate([1.0 / (i + 1) ** 0.9 for i in range(len(self.outbound))])
        rng.shuffle(self.outbound)
        self.tcp = [c for c in self.outbound if c[3] in (5432, 6379, 9092)]
        if not self.tcp:
            self.tcp = [("outbound|5432||postgres.data.svc.cluster.local", "postgres", "data", 5432)]
        self.pod_ips = ["10.%d.%d.%d" % (rng.randint(8, 250), rng.randint(0, 255), rng.randint(2, 254))
                        for _ in range(3000)]
        self.svc_ips = ["10.96.%d.%d" % (rng.randint(0, 255), rng.randint(1, 254)) for _ in range(400)]
        self.client_ips = ["%d.%d.%d.%d" % (rng.choice([34, 35, 52, 54, 66, 81, 91, 104, 178, 185, 203]),
                                            rng.randint(0, 255), rng.randint(0, 255), rng.randint(1, 254))
                           for _ in range(2000)]

    def pick_outbound(self):
        r = self.rng.random() * self.out_cum[-1]
        return self.outbound[bisect.bisect_left(self.out_cum, r)]


def _cumulate(weights):
    out, s = [], 0.0
    for w in weights:
        s += w
        out.append(s)
    return out


def _hex(rng, n):
    return "%0*x" % (n, rng.getrandbits(4 * n))


def _uuid(rng):
    h = "%032x" % rng.getrandbits(128)
    return "%s-%s-4%s-%s%s-%s" % (h[:8], h[8:12], h[13:16], "89ab"[int(h[16], 16) & 3], h[17:20], h[20:32])


class Record:
    __slots__ = ("fields", "cluster_key", "code", "flags")


def render_path(rng, svc):
    t = rng.choice(PATH_TEMPLATES)
    Svc = svc.title().replace("-", "")
    return (t.replace("{svc}", svc).replace("{Svc}", Svc).replace("{pkg}", svc.replace("-", "_") + ".v1")
             .replace("{id}", str(rng.randint(1, 9999999))).replace("{n}", str(rng.randint(1, 200)))
             .replace("{hex}", _hex(rng, 8)).replace("{uuid}", _uuid(rng)))


def make_record(rng, world, scenario, semicolon_rate):
    """Return a Record whose .fields maps the Istio JSON key names to values (None = unset)."""
    f = dict.fromkeys((
        "start_time", "route_name", "method", "path", "protocol", "response_code", "response_flags",
        "response_code_details", "connection_termination_details", "bytes_received", "bytes_sent",
        "duration", "upstream_service_time", "x_forwarded_for", "user_agent", "request_id",
        "authority", "upstream_host", "upstream_cluster", "upstream_local_address",
        "downstream_local_address", "downstream_remote_address", "requested_server_name",
        "upstream_transport_failure_reason"))
    r = rng.random
    tcp = scenario.startswith("tcp_")
    inbound = False
    if tcp:
        cluster, svc, ns, port = rng.choice(world.tcp)
    elif scenario == "passthrough":
        cluster, svc, ns, port = "PassthroughCluster", None, None, rng.choice([443, 80, 8443])
    elif scenario == "blackhole":
        cluster, svc, ns, port = "BlackHoleCluster", None, None, rng.choice([443, 80])
    elif scenario in ("nr", "nc", "lh", "dpe") or (scenario == "uaex" and r() < 0.3):
        cluster, svc, ns, port = "-", rng.choice(SERVICES), rng.choice(NAMESPACES), rng.choice(PORTS_HTTP)
    elif r() < (0.30 if scenario in ("uc", "ok", "rl", "uaex") else 0.08):
        cluster, svc, ns, port = rng.choice(world.inbound)
        svc, ns = rng.choice(SERVICES), rng.choice(NAMESPACES)
        inbound = True
    else:
        cluster, svc, ns, port = world.pick_outbound()
    if scenario == "passthrough" and r() < 0.5:
        tcp = True  # PassthroughCluster carries plenty of opaque TCP/TLS traffic

    code = 200
    flags = "-"
    details = "via_upstream"
    term = None
    tfr = None
    has_upstream = True
    ust = None
    dur = rng.choice([1, 2, 3, 4, 5, 7, 9, 12, 15, 23, 31, 48, 80, 120, 250, 700, 1500])
    dur = max(0, int(dur * (0.5 + r())))
    sent = rng.choice([0, 14, 19, 81, 233, 512, 1024, 1843, 4096, 16384, 65536, 310455])
    recv = 0

    if scenario == "ok":
        x = r()
        if x < 0.80:
            code = 200
        elif x < 0.84:
            code = rng.choice([201, 202, 204, 206])
        elif x < 0.89:
            code = rng.choice([301, 302, 304, 307])
        elif x < 0.965:
            code = rng.choice([400, 401, 403, 404, 404, 404, 409, 422])
        elif x < 0.995:
            code = rng.choice([500, 502, 503, 503, 504])  # a 5xx from the app itself: no flag
        else:
            code = 101  # websocket upgrade
            details = "via_upstream"
        ust = str(max(0, dur - rng.randint(0, 3)))
        if code in (401, 403) and r() < 0.3:
            details = "rbac_access_denied_matched_policy[none]"
            has_upstream = False
            ust = None
            sent = 19
        elif code == 504 and r() < 0.3:
            details = "max_duration_timeout"
            ust = None
    elif scenario in ("uf", "uf_tls", "uf_timeout", "urx_uf", "uf_urx", "uo_uf"):
        code = 503
        flags = {"uf": "UF", "uf_tls": "UF", "uf_timeout": "UF"}.get(scenario)
        if flags is None:
            flags = _weighted_pick(rng, FLAG_ORDERS[scenario])
        if scenario == "uf_tls":
            tfr = rng.choice([TLS_VERIFY, TLS_VERIFY, TLS_VERIFY_LONG, TLS_WRONG_VERSION])
            details = RESET_BEFORE % ("remote_connection_failure|" + tfr)
        elif scenario == "uf_timeout":
            details = RESET_BEFORE % "connection_timeout"
        else:
            tfr = CONN_REFUSED
            details = RESET_BEFORE % ("remote_connection_failure|" + tfr)
        sent = 91 if scenario == "uf_timeout" else rng.choice([91, 98, 121, 145])
        if scenario == "uf_urx" and r() < 0.7:
            tcp = True
            cluster, svc, ns, port = rng.choice(world.tcp)
            code = 0
            details = None
            sent = 0
    elif scenario == "uh":
        code, flags, details, has_upstream, sent = 503, "UH", "no_healthy_upstream", False, 19
    elif scenario == "nr":
        if r() < 0.15:
            tcp = True
            code, flags, details, sent = 0, "NR", "filter_chain_not_found", 0
        else:
            code, flags, details, sent = 404, "NR", "route_not_found", 0
        has_upstream = False
    elif scenario == "nc":
        code, flags, details, has_upstream, sent = 503, "NC", "cluster_not_found", False, 0
    elif scenario == "uc":
        code, flags, sent = 503, "UC", 95
        details = RESET_BEFORE % rng.choice(["connection_termination", "connection_termination",
                                             "remote_connection_failure|connection_termination"])
    elif scenario == "uc_urx":
        code, flags, sent = 503, _weighted_pick(rng, FLAG_ORDERS[scenario]), 95
        details = RESET_BEFORE % "connection_termination"
    elif scenario == "ut":
        code, flags, details, sent = 504, "UT", "response_timeout", 24
        dur = rng.choice([250, 1000, 3000, 15000, 30000]) + rng.randint(0, 9)
    elif scenario == "uo":
        code, flags, details, has_upstream, sent = 503, "UO", RESET_BEFORE % "overflow", False, 81
    elif scenario == "dc":
        code, flags, details, sent = 0, "DC", "downstream_remote_disconnect", 0
        if r() < 0.2:
            code, details = 200, "upstream_reset_after_response_started{remote_reset}"
    elif scenario == "dr":
        code, flags, details, sent = 0, "DR", rng.choice(["http2.remote_reset", "http2.remote_refuse"]), 0
    elif scenario == "upe":
        code, flags, details, sent = 502, "UPE", RESET_BEFORE % "protocol_error", 87
    elif scenario == "ur":
        code, flags, details, sent = 503, "UR", RESET_BEFORE % "remote_reset", 85
        if r() < 0.15:
            code, details = 200, "upstream_reset_after_response_started{remote_reset}"
    elif scenario == "rl":
        code, flags, details, has_upstream, sent = 429, "RL", "local_rate_limited", False, 18
    elif scenario == "uaex":
        code, flags, details, has_upstream, sent = 403, "UAEX", "ext_authz_denied", False, 25
    elif scenario == "rlse":
        code, flags, details, has_upstream, sent = 500, "RLSE", "rate_limiter_error", False, 0
    elif scenario == "si":
        code, flags, details, sent = rng.choice([504, 504, 408]), "SI", "stream_idle_timeout", 14
    elif scenario == "umsdr":
        code, flags, details, sent = 504, "UMSDR", "upstream_max_stream_duration_reached", 36
    elif scenario == "di":
        code, flags = 200, "DI"
        ust = str(rng.randint(0, 5))
    elif scenario == "fi":
        code, flags, details, has_upstream, sent = rng.choice([503, 503, 500, 429]), "FI", "fault_filter_abort", False, 18
    elif scenario == "di_fi":
        code, flags, details, has_upstream, sent = 503, _weighted_pick(rng, FLAG_ORDERS[scenario]), "fault_filter_abort", False, 18
    elif scenario == "do":
        code, flags, details, has_upstream, sent = 503, "DO", "drop_overload", False, 13
    elif scenario == "udo":
        code, flags, details, has_upstream, sent = 503, "UDO", "unconditional_drop_overload", False, 27
    elif scenario == "lh":
        code, flags, details, has_upstream, sent = 503, "LH", "health_check_failed", False, 0
    elif scenario == "ih":
        code, flags, has_upstream, sent = 400, "IH", False, 62
        details = "request_headers_failed_strict_check{x-envoy-max-retries}"
    elif scenario == "dpe":
        code, flags, details, has_upstream, sent = 400, "DPE", rng.choice(["http1.codec_error", "http1.invalid_method",
                                                                           "http2.violation.of.messaging.rule"]), False, 11
    elif scenario == "lr":
        code, flags, details, sent = 503, "LR", RESET_BEFORE % "local_reset", 82
    elif scenario == "om":
        code, flags, details, has_upstream, sent = 503, "OM", "overload_manager", False, 19
    elif scenario == "df":
        code, flags, details, has_upstream, sent = 503, "DF", "dns_resolution_failure", False, 26
    elif scenario == "tcp_ok":
        code, flags, details = 0, "-", None
        recv = rng.randint(10, 900000)
        dur = rng.randint(1, 600000)
    elif scenario == "tcp_dt":
        code, flags, details = 0, "DT", None
        recv = rng.randint(1, 5000)
    elif scenario == "tcp_rbac":
        code, flags, details, sent, has_upstream = 0, "-", None, 0, False
        term = "rbac_access_denied_matched_policy[none]"
        cluster, svc, ns, port = rng.choice(world.inbound)
        svc, ns = rng.choice(SERVICES), rng.choice(NAMESPACES)
        inbound = True
    elif scenario == "blackhole":
        if r() < 0.5:
            tcp = True
            code, flags, details, sent, has_upstream = 0, "UH", None, 0, False
        else:
            code, flags, details, sent, has_upstream = 502, "-", "direct_response", 0, False
    elif scenario == "passthrough":
        code = 0 if tcp else rng.choice([200, 200, 200, 204, 301, 404])
        details = None if tcp else "via_upstream"
        if tcp:
            recv = rng.randint(500, 200000)
            dur = rng.randint(5, 120000)
    else:
        raise AssertionError(scenario)

    # --- request line, headers, addresses -------------------------------------------------
    if scenario == "tcp_rbac":
        tcp = True
    if tcp:
        method = path = proto = None
        details = details if scenario in ("nr",) else None
        ua = xff = rid = authority = None
        ust = None
    else:
        method = rng.choice(METHODS) if scenario != "dpe" else None
        path = render_path(rng, svc or "www") if scenario != "dpe" else None
        if method == "POST" and r() < 0.5:
            recv = rng.choice([2, 64, 187, 512, 1380, 4096, 23456])
        proto = rng.choice(["HTTP/1.1", "HTTP/1.1", "HTTP/2", "HTTP/2"]) if scenario != "dr" else "HTTP/2"
        if scenario == "dpe":
            ua = rid = authority = None
        else:
            ua = rng.choices(USER_AGENTS, UA_WEIGHTS)[0]
            rid = _uuid(rng)  # replaced per emitted line
            if cluster in ("PassthroughCluster", "BlackHoleCluster"):
                authority = rng.choice(["api.stripe.com", "www.googleapis.com", "s3.amazonaws.com",
                                        "hooks.slack.com", "login.microsoftonline.com"])
            elif inbound:
                authority = rng.choice(["%s.%s.svc.cluster.local:%d" % (svc, ns, port), "%s:%d" % (svc, port),
                                        "shop.example.com", "api.example.com"])
            else:
                authority = rng.choice(["%s.%s.svc.cluster.local:%d" % (svc, ns, port), "%s:%d" % (svc, port),
                                        "%s.%s:%d" % (svc, ns, port), "%s" % svc])
        xr = r()
        if xr < 0.45 or scenario == "dpe":
            xff = None
        elif xr < 0.87:
            xff = rng.choice(world.client_ips)
        else:
            xff = ", ".join(rng.choice(world.client_ips) for _ in range(rng.randint(2, 3)))
    dport = port
    if scenario == "nc":
        route = "%s-%s" % (svc, ns)
    elif tcp or cluster == "-":
        route = None
    elif cluster == "PassthroughCluster":
        route = "allow_any"
    elif cluster == "BlackHoleCluster":
        route = "block_all"
    elif inbound:
        route = "default"
    else:
        route = "default" if r() < 0.8 else "%s-%s" % (svc, rng.choice(["primary", "canary", "retry", "timeout"]))
    f["route_name"] = route
    f["method"], f["path"], f["protocol"] = method, path, proto
    f["response_code"] = code
    f["response_flags"] = flags
    f["response_code_details"] = details
    f["connection_termination_details"] = term
    f["bytes_received"] = recv
    f["bytes_sent"] = sent
    f["duration"] = dur
    f["upstream_service_time"] = ust
    f["x_forwarded_for"] = xff
    f["user_agent"] = ua
    f["request_id"] = rid
    f["authority"] = authority
    uh_ip = rng.choice(world.pod_ips)
    if cluster in ("PassthroughCluster",):
        uh_ip = "%d.%d.%d.%d" % (rng.choice([3, 13, 52, 142, 151]), rng.randint(0, 255), rng.randint(0, 255), rng.randint(1, 254))
    uf_like = "UF" in flags.split(",") or "UO" in flags.split(",")
    f["upstream_host"] = ("%s:%d" % (uh_ip, dport if not inbound else port)) if has_upstream and cluster != "-" else None
    f["upstream_local_address"] = (None if not has_upstream or uf_like or cluster == "-"
                                   else ("127.0.0.6:%d" % rng.randint(32768, 60999)) if inbound
                                   else "%s:%d" % (rng.choice(world.pod_ips), rng.randint(32768, 60999)))
    pod = rng.choice(world.pod_ips)
    if inbound:
        f["downstream_local_address"] = "%s:%d" % (pod, port)
        f["downstream_remote_address"] = "%s:%d" % (rng.choice(world.pod_ips), rng.randint(32768, 60999))
        if r() < 0.7:
            f["requested_server_name"] = "outbound_.%d_._.%s.%s.svc.cluster.local" % (port, svc, ns)
    else:
        f["downstream_local_address"] = "%s:%d" % (rng.choice(world.svc_ips), dport)
        f["downstream_remote_address"] = "%s:%d" % (pod, rng.randint(32768, 60999))
        if cluster == "PassthroughCluster" and tcp and dport == 443:
            f["requested_server_name"] = authority or rng.choice(["api.stripe.com", "www.googleapis.com"])
    f["upstream_transport_failure_reason"] = tfr

    printed_cluster = cluster
    if cluster != "-" and r() < semicolon_rate:
        printed_cluster = cluster + ";"  # Istio 1.23-style %UPSTREAM_CLUSTER% (alt_stat_name)
    f["upstream_cluster"] = None if cluster == "-" else printed_cluster

    rec = Record()
    rec.fields = f
    rec.cluster_key = cluster
    rec.code = code
    rec.flags = flags
    return rec


def _weighted_pick(rng, pairs):
    x = rng.random()
    for w, v in pairs:
        x -= w
        if x < 0:
            return v
    return pairs[-1][1]


# --------------------------------------------------------------------------------------
# Rendering. Each record is rendered with the START_TIME and the request id cut out:
# prefix + <ts> + mid + <request id> + tail.
# --------------------------------------------------------------------------------------

RID_MARK = "@@RID@@"  # no generated field contains "@@"


def _d(v):
    return "-" if v is None or v == "" else str(v)


def render_text(f):
    rid = RID_MARK if f["request_id"] is not None else "-"
    s = ('] "%s %s %s" %s %s %s %s "%s" %s %s %s %s "%s" "%s" "%s" "%s" "%s" %s %s %s %s %s %s\n' % (
        _d(f["method"]), _d(f["path"]), _d(f["protocol"]), f["response_code"], f["response_flags"],
        _d(f["response_code_details"]), _d(f["connection_termination_details"]),
        _d(f["upstream_transport_failure_reason"]), f["bytes_received"], f["bytes_sent"], f["duration"],
        _d(f["upstream_service_time"]), _d(f["x_forwarded_for"]), _d(f["user_agent"]), rid,
        _d(f["authority"]), _d(f["upstream_host"]), _d(f["upstream_cluster"]),
        _d(f["upstream_local_address"]), _d(f["downstream_local_address"]),
        _d(f["downstream_remote_address"]), _d(f["requested_server_name"]), _d(f["route_name"])))
    return s


JSON_KEYS = ["start_time", "route_name", "method", "path", "protocol", "response_code", "response_flags",
             "response_code_details", "connection_termination_details", "bytes_received", "bytes_sent",
             "duration", "upstream_service_time", "x_forwarded_for", "user_agent", "request_id",
             "authority", "upstream_host", "upstream_cluster", "upstream_local_address",
             "downstream_local_address", "downstream_remote_address", "requested_server_name",
             "upstream_transport_failure_reason"]


def render_json(f):
    g = dict(f)
    g["start_time"] = "@@TS@@"
    if g["request_id"] is not None:
        g["request_id"] = RID_MARK
    s = json.dumps({k: g[k] for k in JSON_KEYS}, separators=(",", ":"), ensure_ascii=False)
    pre, post = s.split('"@@TS@@"')
    # pre == '{"start_time":' ; the emitted timestamp piece carries its quotes.
    assert pre == '{"start_time":', pre
    return post + "\n"


def split_record(rendered):
    if RID_MARK in rendered:
        mid, tail = rendered.split(RID_MARK)
        return mid.encode(), tail.encode(), True
    return rendered.encode(), b"", False


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------

def build_pool(rng, world, size, semicolon_rate):
    cum = _cumulate([w for w, _ in SCENARIOS])
    names = [n for _, n in SCENARIOS]
    recs = []
    # Every scenario appears at least a few times in the pool, so rare flags exist in every corpus.
    for n in names:
        for _ in range(3):
            recs.append(make_record(rng, world, n, semicolon_rate))
    while len(recs) < size:
        x = rng.random() * cum[-1]
        recs.append(make_record(rng, world, names[bisect.bisect_right(cum, x)], semicolon_rate))
    rng.shuffle(recs)
    return recs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--lines", type=int, default=5_000_000, help="number of lines (default 5,000,000)")
    ap.add_argument("--out", default="-", help="output file (default stdout)")
    ap.add_argument("--truth", help="write the ground truth JSON here")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--format", choices=["text", "json"], default="text")
    ap.add_argument("--pool", type=int, default=250_000,
                    help="distinct pool records (default 250,000; capped at --lines)")
    ap.add_argument("--semicolon-rate", type=float, default=0.03,
                    help="fraction of lines whose cluster has an Istio 1.23 trailing ';' (default 0.03)")
    ap.add_argument("--span-hours", type=float, default=24.0, help="START_TIME range covered (default 24)")
    ap.add_argument("--start", default="2026-11-21T00:00:00", help="first START_TIME second (UTC)")
    ap.add_argument("--chunk", type=int, default=65536, help="lines per write")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)
    if args.lines < 0:
        ap.error("--lines must be >= 0")

    t0 = time.monotonic()
    rng = random.Random(args.seed)
    world = World(rng)
    pool_size = max(1, min(args.pool, args.lines))
    recs = build_pool(rng, world, pool_size, args.semicolon_rate)
    render = render_text if args.format == "text" else render_json
    mids, tails, ridsel = [], [], []
    uuid_pool = [("%s" % _uuid(rng)).encode() for _ in range(1 << 16)]
    empty_pool = [b""] * len(uuid_pool)
    for rec in recs:
        mid, tail, has_rid = split_record(render(rec.fields))
        mids.append(mid)
        tails.append(tail)
        ridsel.append(uuid_pool if has_rid else empty_pool)
    t_pool = time.monotonic() - t0

    # START_TIME pieces: "[YYYY-MM-DDTHH:MM:SS." per second, "mmmZ" per millisecond.
    start = time.mktime(time.strptime(args.start, "%Y-%m-%dT%H:%M:%S")) - time.timezone
    span = max(1, int(args.span_hours * 3600))
    if args.format == "text":
        sec_fmt, ms_list = "[%s.", [("%03dZ" % i).encode() for i in range(1000)]
    else:
        sec_fmt, ms_list = '{"start_time":"%s.', [('%03dZ"' % i).encode() for i in range(1000)]
    sec_cache = {}

    def sec_piece(s):
        p = sec_cache.get(s)
        if p is None:
            if len(sec_cache) > 4096:
                sec_cache.clear()
            p = (sec_fmt % time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start + s))).encode()
            sec_cache[s] = p
        return p

    out = sys.stdout.buffer if args.out == "-" else open(args.out + ".tmp" if args.out != "-" else args.out, "wb")
    counts = [0] * len(recs)
    n_pool = len(recs)
    written = 0
    nbytes = 0
    N = args.lines
    chunk = max(1, args.chunk)
    rand = rng.random
    base = 0
    try:
        while base < N:
            n = min(chunk, N - base)
            idx = [int(rand() * n_pool) for _ in range(n)]  # noqa: uniform over the pool
            for i in idx:
                counts[i] += 1
            # seconds: line j of N sits at second j*span//N
            secs = []
            j = base
            end = base + n
            while j < end:
                s = j * span // N
                nxt = min(end, ((s + 1) * N + span - 1) // span)
                if nxt <= j:
                    nxt = j + 1
                secs.extend([sec_piece(s)] * (nxt - j))
                j = nxt
            pieces = [None] * (5 * n)
            pieces[0::5] = secs
            pieces[1::5] = rng.choices(ms_list, k=n)
            pieces[2::5] = map(mids.__getitem__, idx)
            pieces[3::5] = map(getitem, map(ridsel.__getitem__, idx), rng.choices(range(len(uuid_pool)), k=n))
            pieces[4::5] = map(tails.__getitem__, idx)
            buf = b"".join(pieces)
            out.write(buf)
            nbytes += len(buf)
            written += n
            base += n
        out.flush()
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    if args.out != "-":
        os.replace(args.out + ".tmp", args.out)
    t_gen = time.monotonic() - t0

    if args.truth:
        clusters = {}
        for rec, c in zip(recs, counts):
            if not c:
                continue
            e = clusters.get(rec.cluster_key)
            if e is None:
                e = clusters[rec.cluster_key] = {"requests": 0, "codes": {}, "flags": {}}
            e["requests"] += c
            cc = code_class(rec.code)
            e["codes"][cc] = e["codes"].get(cc, 0) + c
            if rec.flags != "-":
                for fl in set(rec.flags.split(",")):
                    e["flags"][fl] = e["flags"].get(fl, 0) + c
        truth = {"lines": written, "malformed": {},
                 "clusters": {k: {"requests": v["requests"],
                                  "codes": dict(sorted(v["codes"].items())),
                                  "flags": dict(sorted(v["flags"].items()))}
                              for k, v in sorted(clusters.items())}}
        tmp = args.truth + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(truth, fh, indent=1)
            fh.write("\n")
        os.replace(tmp, args.truth)

    if not args.quiet:
        print("generate_corpus: %d lines, %d bytes (%.1f avg/line), %s format, pool %d, seed %d, "
              "%.1fs (pool %.1fs)" % (written, nbytes, nbytes / max(1, written), args.format, n_pool,
                                      args.seed, t_gen, t_pool), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
