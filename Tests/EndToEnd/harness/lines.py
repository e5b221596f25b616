"""Access-log line generators, each with the exact counts flagwatch must report.

  istio_line(cluster, flags, code, index)     one Istio 1.9+ TEXT line (services, alerting, boot)
  istio_text_line(cluster, code, flags, seq)  the same format with a chosen code detail (prometheus/)
  istio_cluster(i)                            a distinct Istio outbound cluster name
  access_log(clusters)                        a whole log, one line per (cluster, flag) (daemon/)
  Traffic(seed)                               realistic lines with a kept expectation: the
                                              `--output json` object flagwatch must print (follow/,
                                              journald/); merge/subtract/describe those objects
  cri_wrap / cri_record                       CRI (containerd / CRI-O) records around lines
"""
import datetime
import json
import random
import threading
import uuid


def istio_line(cluster, flags="-", code=200, index=0):
    """One Istio 1.9+ TEXT access-log line, with its newline."""
    return ('[2026-12-06T02:34:27.532Z] "GET /r/%d HTTP/1.1" %d %s via_upstream - "-" 0 14 11 10 "-" '
            '"curl/8.5.0" "0d8e5a88-130d-4223-9294-7eee8276b7f5" "svc:8080" "10.244.1.7:8080" %s '
            "10.244.0.17:55718 10.244.0.17:15006 10.244.1.9:56922 - default\n" % (index, code, flags, cluster))


# --------------------------------------------------------------------------- Istio text lines

def istio_text_line(cluster, code=200, flags="-", seq=0):
    """One Istio 1.9+ TEXT access-log line (Istio's default format, with its newline)."""
    details = "via_upstream" if code and code < 500 else "upstream_reset_before_response_started{connection_failure}"
    return ('[2026-11-22T06:00:00.000Z] "GET /r/%d HTTP/1.1" %d %s %s - "-" 0 %d 3 - "-" "curl/8.5.0" '
            '"6d7c5c7e-0f4a-4a55-9c1e-%012d" "reviews.default.svc.cluster.local:9080" "10.244.1.7:9080" %s '
            '- 10.244.0.17:15006 10.244.0.9:40312 - default\n'
            % (seq, code, flags, details, 100 + seq % 900, seq % 10**12, cluster))


def istio_cluster(i, namespace="ns"):
    """A distinct Istio outbound cluster name."""
    return "outbound|%d||svc-%07d.%s-%d.svc.cluster.local" % (8000 + i % 1000, i, namespace, i % 97)


# --------------------------------------------------------------------------------------------
# Access-log lines: Istio 1.9+ TEXT, one line per (cluster, flag)
# --------------------------------------------------------------------------------------------

FLAG_CODES = [("-", 200), ("UF", 503), ("URX,UF", 503), ("UH", 503), ("UT", 504), ("UO", 503),
              ("UC", 503), ("NR", 404), ("DC", 0)]


def access_log(clusters, flags_per_cluster=len(FLAG_CODES)):
    """`clusters` upstream clusters, each with `flags_per_cluster` lines: (bytes, line count)."""
    out = []
    for index in range(clusters):
        cluster = "outbound|%d||svc-%05d.ns-%03d.svc.cluster.local" % (8000 + index % 100, index, index % 300)
        for flags, code in FLAG_CODES[:flags_per_cluster]:
            out.append(
                '[2026-11-22T02:34:27.532Z] "GET /reviews/%d HTTP/1.1" %d %s via_upstream - "-" 0 14 11 10 "-" '
                '"curl/8.5.0" "0d8e5a88-130d-4223-9294-7eee8276b7f5" "svc-%05d:8080" "10.244.1.7:8080" %s '
                "10.244.0.17:55718 10.244.0.17:15006 10.244.1.9:56922 - default\n"
                % (index, code, flags, index, cluster)
            )
    return "".join(out).encode(), len(out)


# --------------------------------------------------------------------------------------------
# Istio 1.9+ TEXT access-log lines (the shape of config/demo/istio-access.log)
# --------------------------------------------------------------------------------------------

# (service, port, method, path, route)
SERVICES = [
    ("reviews", 9080, "GET", "/reviews/{n}", "reviews-default"),
    ("payments", 9001, "POST", "/api/pay", "payments-default"),
    ("ledger", 9002, "GET", "/entries", "ledger-retry"),
    ("inventory", 8080, "GET", "/stock/{n}", "inventory-default"),
    ("checkout", 8080, "POST", "/cart", "checkout-default"),
    ("search", 8080, "GET", "/q?term={n}", "search-timeout"),
]

# (weight, code, flags, response_code_details, upstream_transport_failure_reason, kind)
# kind: "ok" upstream answered; "connfail" no upstream connection; "nohost" no upstream host;
#       "noroute" no cluster at all.
REFUSED = "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}"
OUTCOMES = [
    (40, 200, "-", "via_upstream", "-", "ok"),
    (4, 500, "-", "via_upstream", "-", "ok"),
    (8, 503, "UF", REFUSED, "delayed_connect_error:_Connection_refused", "connfail"),
    (6, 503, "URX,UF", REFUSED, "delayed_connect_error:_Connection_refused", "connfail"),
    (3, 503, "UF,URX", "-", "-", "connfail"),
    (5, 503, "UH", "no_healthy_upstream", "-", "nohost"),
    (4, 504, "UT", "response_timeout", "-", "ok"),
    (3, 503, "UO", "upstream_reset_before_response_started{overflow}", "-", "nohost"),
    (3, 503, "UC", "upstream_reset_before_response_started{connection_termination}", "-", "ok"),
    (3, 0, "DC", "downstream_remote_disconnect", "-", "ok"),
    (3, 404, "NR", "route_not_found", "-", "noroute"),
]
USER_AGENTS = [
    "curl/8.5.0",
    "Go-http-client/1.1",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    'Mozilla/5.0 "quoted" (X11; Linux x86_64) flagwatch-e2e',
    "envoy/1.30 grpc-go/1.60.1",
]


def cluster_name(service, port):
    return "outbound|%d||%s.default.svc.cluster.local" % (port, service)


def code_class(code):
    return "0" if code == 0 else "%dxx" % (code // 100)


class Line(bytes):
    """One access-log line (with its newline) and what flagwatch must count for it."""

    cluster: str
    code: int
    flags: tuple


class Traffic:
    """Makes lines and keeps the expected counts of the lines declared written (`record`)."""

    def __init__(self, seed):
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._seq = 0
        self.lines_recorded = 0
        self._clusters = {}

    def make(self, n=1, *, service=None, outcome=None):
        """n fresh lines, not yet recorded. service: a SERVICES name; outcome: a flags string
        such as "UF,URX" or "-" (the first OUTCOMES entry with those flags)."""
        out = []
        with self._lock:
            for _ in range(n):
                self._seq += 1
                out.append(self._line(self._seq, service, outcome))
        return out

    def record(self, lines):
        """Declares these lines written: flagwatch must count them."""
        with self._lock:
            for line in lines:
                self.lines_recorded += 1
                entry = self._clusters.setdefault(line.cluster, {"requests": 0, "codes": {}, "flags": {}})
                entry["requests"] += 1
                cls = code_class(line.code)
                entry["codes"][cls] = entry["codes"].get(cls, 0) + 1
                for flag in line.flags:
                    entry["flags"][flag] = entry["flags"].get(flag, 0) + 1

    def lines(self, n=1, **kw):
        """n fresh lines, recorded, joined: the bytes to write."""
        made = self.make(n, **kw)
        self.record(made)
        return b"".join(made)

    def uncounted(self, n=1, **kw):
        """n fresh lines that flagwatch must NOT count (before start, unwatched files...)."""
        return b"".join(self.make(n, **kw))

    def reset(self):
        """Forgets the recorded counts (a new flagwatch run counts from zero); lines stay unique."""
        with self._lock:
            self.lines_recorded = 0
            self._clusters = {}

    def expected(self):
        """The exact `--output json` object for everything recorded so far."""
        with self._lock:
            return {
                "lines": self.lines_recorded,
                "malformed": {},
                "clusters": json.loads(json.dumps(self._clusters)),
            }

    def _line(self, seq, service, outcome):
        rng = self._rng
        if service is None:
            svc = rng.choice(SERVICES)
        else:
            svc = next(s for s in SERVICES if s[0] == service)
        name, port, method, path, route = svc
        if outcome is None:
            weight, code, flags, details, utfr, kind = rng.choices(OUTCOMES, weights=[o[0] for o in OUTCOMES])[0]
        else:
            weight, code, flags, details, utfr, kind = next(o for o in OUTCOMES if o[2] == outcome)
        now = datetime.datetime.now(datetime.timezone.utc)
        start = now.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (now.microsecond // 1000)
        authority = "%s.default.svc.cluster.local:%d" % (name, port)
        pod_ip = "10.244.%d.%d" % (rng.randrange(1, 4), rng.randrange(2, 250))
        upstream_host = '"%s:%d"' % (pod_ip, port)
        upstream_local = "10.244.0.17:%d" % rng.randrange(32768, 60999)
        cluster = cluster_name(name, port)
        route_name = route
        duration = rng.randrange(0, 300)
        service_time = str(max(duration - 1, 0))
        bytes_sent = rng.randrange(0, 5000)
        if kind == "connfail":
            upstream_local, service_time = "-", "-"
        elif kind == "nohost":
            upstream_host, upstream_local, service_time = '"-"', "-", "-"
        elif kind == "noroute":
            upstream_host, upstream_local, service_time, cluster, route_name = '"-"', "-", "-", "-", "-"
        if code == 0 or code >= 500:
            service_time = "-"
        text = (
            '[%s] "%s %s HTTP/1.1" %d %s %s - "%s" %d %d %d %s "-" "%s" "%s" "%s" %s %s %s '
            "10.244.0.17:15006 10.244.%d.%d:%d outbound_.%d_._.%s.default.svc.cluster.local %s\n"
            % (
                start, method, path.format(n=seq), code, flags, details, utfr,
                rng.randrange(0, 2000), bytes_sent, duration, service_time,
                rng.choice(USER_AGENTS), uuid.UUID(int=rng.getrandbits(128), version=4),
                authority, upstream_host, cluster, upstream_local,
                rng.randrange(1, 4), rng.randrange(2, 250), rng.randrange(32768, 60999),
                port, name, route_name,
            )
        )
        line = Line(text.encode())
        line.cluster = cluster
        line.code = code
        line.flags = () if flags == "-" else tuple(flags.split(","))
        return line


def merge_reports(*reports):
    """Adds `--output json` objects: the counts of two runs over disjoint lines."""
    total = {"lines": 0, "malformed": {}, "clusters": {}}
    for report in reports:
        total["lines"] += report["lines"]
        for reason, n in report["malformed"].items():
            total["malformed"][reason] = total["malformed"].get(reason, 0) + n
        for name, c in report["clusters"].items():
            t = total["clusters"].setdefault(name, {"requests": 0, "codes": {}, "flags": {}})
            t["requests"] += c["requests"]
            for key in ("codes", "flags"):
                for k, v in c.get(key, {}).items():
                    t[key][k] = t[key].get(k, 0) + v
    return total


def subtract_reports(total, part):
    """total - part, zero counts left out as flagwatch leaves them out (negative ones kept, so a
    run that counted too much shows up in the diff)."""
    out = {"lines": total["lines"] - part["lines"], "malformed": {}, "clusters": {}}
    for reason in set(total["malformed"]) | set(part["malformed"]):
        n = total["malformed"].get(reason, 0) - part["malformed"].get(reason, 0)
        if n:
            out["malformed"][reason] = n
    empty = {"requests": 0, "codes": {}, "flags": {}}
    for name in set(total["clusters"]) | set(part["clusters"]):
        t, p = total["clusters"].get(name, empty), part["clusters"].get(name, empty)
        requests = t["requests"] - p["requests"]
        entry = {"requests": requests, "codes": {}, "flags": {}}
        for key in ("codes", "flags"):
            for k in set(t[key]) | set(p[key]):
                n = t[key].get(k, 0) - p[key].get(k, 0)
                if n:
                    entry[key][k] = n
        if requests or entry["codes"] or entry["flags"]:
            out["clusters"][name] = entry
    return out


def describe_difference(expected, observed):
    """A short human-readable diff of two `--output json` objects."""
    if observed is None:
        return "no JSON object at all"
    parts = ["lines: expected %s, observed %s" % (expected["lines"], observed.get("lines"))]
    if observed.get("malformed") != expected["malformed"]:
        parts.append("malformed: expected %s, observed %s" % (expected["malformed"], observed.get("malformed")))
    exp_c, obs_c = expected["clusters"], observed.get("clusters", {})
    for name in sorted(set(exp_c) | set(obs_c)):
        if exp_c.get(name) != obs_c.get(name):
            parts.append("  %s: expected %s, observed %s" % (name, exp_c.get(name), obs_c.get(name)))
    return "\n".join(parts)


def cri_wrap(lines, split_every=None, stream="stdout"):
    """CRI records (`<RFC3339Nano> stdout P|F <content>`) for whole lines. With split_every, each
    line's content is cut into chunks of that many bytes: P records, then the last as F."""
    if isinstance(lines, (bytes, bytearray)):
        lines = bytes(lines).splitlines(keepends=True)
    out = []
    for line in lines:
        content = line.rstrip(b"\n")
        chunks = [content]
        if split_every:
            chunks = [content[i : i + split_every] for i in range(0, len(content), split_every)]
        for index, chunk in enumerate(chunks):
            tag = b"F" if index == len(chunks) - 1 else b"P"
            out.append(cri_record(chunk, tag, stream))
    return b"".join(out)


def cri_record(content, tag=b"F", stream="stdout"):
    now = datetime.datetime.now(datetime.timezone.utc)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + "%06d123Z" % now.microsecond
    return b"%s %s %s %s\n" % (stamp.encode(), stream.encode(), tag, content)
