"""End-to-end: a real Envoy 1.40 writes Istio's TEXT access log, `flagwatch run` follows it, and a
real Prometheus (the Debian package's /usr/bin/prometheus) scrapes the daemon every second.

The module fixture `stack` (about 20 s):
  1. starts backends.py and Envoy (envoy_harness.start_envoy; kernel-chosen 127.0.0.1 ports);
  2. starts `flagwatch run` on a tmp config: one source `envoy` following Envoy's TEXT log,
     format istio, start_at beginning, windows 1m/5m/15m; `--listen 127.0.0.1:0`, the port is
     read from /proc;
  3. starts a small recording proxy (a thread of this process) that forwards GET /metrics to the
     daemon with the scraper's own Accept header and notes the Accept header and the daemon's
     Content-Type: the witness that Prometheus really negotiated OpenMetrics;
  4. starts Prometheus (tmp config and TSDB, --web.listen-address 127.0.0.1:0) with two jobs,
     `flagwatch` (the daemon itself) and `flagwatch-recorded` (through the proxy), 1 s interval;
  5. sends every scenario of envoy_harness.SCENARIOS (UF, URX, UO, UH, NR, NC, UC, UT, UPE, UR,
     DC, SI, UMSDR, DI, FI, LH, DPE, DT, TCP UF,URX, ...) over two rounds, waits (bounded) until
     the log is stable, and reads Envoy's admin counters: the ground truth.

Checked: Prometheus' /api/v1/query for flagwatch_response_flags_total and
flagwatch_responses_total equals Envoy's counters per cluster and flag / code class (exactly as
test_envoy_scan.py compares `flagwatch scan`), the daemon's own page agrees (lines, windows,
cluster info), both targets are up without scrape errors, Prometheus asked for OpenMetrics and
got it, both formats are served on request, the text body passes `promtool check metrics`, the
OpenMetrics body ends with `# EOF`, and SIGTERM stops the daemon with status 0.

test_diagnosis_info_in_prometheus has a stack of its own (a daemon with a 10 s first window on a
log of real Envoy UF lines, a Prometheus loading deploy/prometheus/flagwatch-rules.yml, about
20 s): flagwatch_diagnosis_info reaches Prometheus with cause "backend down", the rules' pending
alert carries it as likely_cause, and the series goes stale once the first window is empty.
"""
import subprocess
import time
from pathlib import Path

import pytest

from harness.envoy import (
    LOOPBACK, SCENARIOS, Procs, complete_lines, envoy_version, expected_counts, fetch_counters, find_envoy,
    send_rounds, start_envoy, wait_for_stable_logs,
)

pytestmark = pytest.mark.e2e

REQUESTS = 8              # requests per scenario
ROUNDS = 2                # scenarios interleaved over this many rounds
TRAFFIC_BUDGET_S = 60.0
CONVERGE_TIMEOUT_S = 60.0  # Prometheus' answer reaches the expected counts
JOB, RECORDED_JOB = "flagwatch", "flagwatch-recorded"
ACCEPT_PROMETHEUS = "text/plain;version=0.0.4;q=1.0"
ACCEPT_OPENMETRICS = "application/openmetrics-text;version=1.0.0"
# What Prometheus 2.x sends by default.
ACCEPT_PROMETHEUS_DEFAULT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                             "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")


class Stack:
    pass


@pytest.fixture(scope="module")
def stack(tmp_path_factory, fwd):
    t0 = time.monotonic()
    envoy_bin = find_envoy()
    work = tmp_path_factory.mktemp("prometheus-e2e")
    text_log, json_log = work / "access-istio.log", work / "access.json.log"
    procs = Procs()
    proxy = None
    try:
        envoy = start_envoy(procs, work, envoy_bin, text_log, json_log)
        config = fwd.daemon_config(
            [{"name": "envoy", "files": [str(text_log)], "format": "istio", "start_at": "beginning"}],
            work / "state", follow={"rescan_interval": "2s"})
        daemon = fwd.Daemon(procs, work / "daemon", config)
        proxy = fwd.RecordingProxy(daemon.port)
        prom = fwd.Prometheus(procs, work / "prometheus", {
            JOB: ["%s:%d" % (LOOPBACK, daemon.port)],
            RECORDED_JOB: ["%s:%d" % (LOOPBACK, proxy.port)],
        })

        sent, _ = send_rounds(REQUESTS, ROUNDS, TRAFFIC_BUDGET_S, envoy.ports, envoy.admin)
        wait_for_stable_logs([text_log, json_log], sum(sent.values()))
        counters = fetch_counters(envoy.admin)

        s = Stack()
        s.work, s.text_log, s.procs, s.daemon, s.prom, s.proxy = work, text_log, procs, daemon, prom, proxy
        s.sent, s.counters = dict(sent), counters
        s.fwd = fwd
        s.expected = expected_counts(SCENARIOS, sent, counters)
        s.lines = complete_lines(text_log)
        s.envoy_version = envoy_version(envoy_bin)
        s.setup_seconds = time.monotonic() - t0
        yield s
    finally:
        if proxy is not None:
            proxy.stop()
        procs.stop_all()


RULES_FILE = Path(__file__).resolve().parents[3] / "deploy" / "prometheus" / "flagwatch-rules.yml"
# Real Envoy 1.40 lines (the harness's Istio TEXT log): payments refused the connection (UF), and
# one good response from reviews.
PAYMENTS = "outbound|9001||payments.default.svc.cluster.local"
UF_LINE = ('[2026-11-22T02:34:27.561Z] "GET /api/pay HTTP/1.1" 503 UF upstream_reset_before_response_started'
           '{remote_connection_failure|delayed_connect_error:_Connection_refused} - '
           '"delayed_connect_error:_Connection_refused" 0 98 0 - "-" "flag-harness/uf" '
           '"daad7b68-4bb4-4f21-9762-5f4f56c34fee" "payments.default.svc.cluster.local:9001" "127.0.0.1:18019" '
           'outbound|9001||payments.default.svc.cluster.local - 127.0.0.1:18000 127.0.0.1:56936 - payments-default')
OK_LINE = ('[2026-11-22T02:34:27.532Z] "GET /reviews/1 HTTP/1.1" 200 - via_upstream - "-" 0 14 11 10 "-" '
           '"flag-harness/ok" "0d8e5a88-130d-4223-9294-7eee8276b7f5" "reviews.default.svc.cluster.local:8080" '
           '"127.0.0.1:18010" outbound|8080||reviews.default.svc.cluster.local 127.0.0.1:55718 127.0.0.1:18000 '
           '127.0.0.1:56922 - reviews-default')


# --------------------------------------------------------------------------- expectations

def expected_flags(expected):
    return {(cluster, flag): n for cluster, c in expected["clusters"].items() for flag, n in c["flags"].items() if n}


def expected_codes(expected):
    return {(cluster, cls): n for cluster, c in expected["clusters"].items() for cls, n in c["codes"].items() if n}


def expected_requests(expected):
    return {(cluster,): c["requests"] for cluster, c in expected["clusters"].items()}


def prom_vector(prom, expr, *keys):
    out = {}
    for labels, value in prom.query(expr):
        key = tuple(labels.get(k, "") for k in keys)
        out[key] = out.get(key, 0) + value
    return out


def diff(expected, actual, what):
    lines = []
    for key in sorted(set(expected) | set(actual)):
        e, a = expected.get(key, 0), actual.get(key, 0)
        if e != a:
            lines.append("%s %s: got %s, expected %s" % (what, "/".join(key), a, e))
    return lines


def prom_poll(predicate, timeout, interval):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def wait_converged(prom, job, expected_f, expected_c):
    """Polls Prometheus until both vectors equal the expectation (then re-checks them after three
    more scrapes), or CONVERGE_TIMEOUT_S passes; returns the last (flags, codes) seen."""
    seen = {}

    def check():
        seen["flags"] = prom_vector(prom, 'flagwatch_response_flags_total{job="%s"}' % job,
                                    "upstream_cluster", "response_flag")
        seen["codes"] = prom_vector(prom, 'flagwatch_responses_total{job="%s"}' % job,
                                    "upstream_cluster", "code_class")
        return seen["flags"] == expected_f and seen["codes"] == expected_c

    if prom_poll(check, CONVERGE_TIMEOUT_S, 0.5):
        time.sleep(3.5)
        check()
    return seen["flags"], seen["codes"]


# --------------------------------------------------------------------------- tests

def test_prometheus_sees_envoys_counts(stack):
    """Prometheus' view of flagwatch_response_flags_total / flagwatch_responses_total equals what
    Envoy's admin counters predict, per cluster and flag / code class."""
    exp_f, exp_c = expected_flags(stack.expected), expected_codes(stack.expected)
    t0 = time.monotonic()
    flags, codes = wait_converged(stack.prom, JOB, exp_f, exp_c)
    waited = time.monotonic() - t0
    print("\nEnvoy %s: %d requests, %d log lines, %d clusters, %d (cluster, flag) series; setup %.1f s, "
          "Prometheus converged in %.1f s" % (stack.envoy_version, sum(stack.sent.values()), stack.lines,
                                               len(stack.expected["clusters"]), len(exp_f), stack.setup_seconds,
                                               waited))
    for (cluster, flag), n in sorted(exp_f.items()):
        print("  %-62s %-6s expected %3d  prometheus %3s" % (cluster, flag, n, flags.get((cluster, flag))))
    problems = diff(exp_f, flags, "flagwatch_response_flags_total") + diff(exp_c, codes, "flagwatch_responses_total")
    assert stack.lines == sum(stack.sent.values()), "harness: the log has %d lines for %d requests" % (
        stack.lines, sum(stack.sent.values()))
    if problems:
        pytest.fail("Prometheus' counts differ from Envoy's counters:\n  " + "\n  ".join(problems)
                    + "\ndaemon stderr:\n" + stack.daemon.stderr(), pytrace=False)


def test_recorded_job_agrees(stack):
    """The job scraped through the recording proxy has the same series and values."""
    exp_f, exp_c = expected_flags(stack.expected), expected_codes(stack.expected)
    flags, codes = wait_converged(stack.prom, RECORDED_JOB, exp_f, exp_c)
    problems = diff(exp_f, flags, "flagwatch_response_flags_total") + diff(exp_c, codes, "flagwatch_responses_total")
    assert not problems, "\n".join(problems)


def test_daemon_page_agrees(stack):
    """The daemon's own page: lines, requests per cluster, windows, cluster info, self-metrics."""
    fwd = stack.fwd

    def caught_up():
        samples = stack.daemon.samples()
        return samples if fwd.by(samples, "flagwatch_lines_total", "source").get(("envoy",)) == stack.lines else None

    samples = fwd.poll(caught_up, 30.0, 0.2) or stack.daemon.samples()
    problems = []
    lines = fwd.by(samples, "flagwatch_lines_total", "source")
    if lines != {("envoy",): stack.lines}:
        problems.append("flagwatch_lines_total %s, expected envoy=%d" % (lines, stack.lines))
    malformed = {k: v for k, v in fwd.by(samples, "flagwatch_lines_malformed_total", "source", "reason").items() if v}
    if malformed:
        problems.append("malformed lines: %s" % malformed)
    size = stack.text_log.stat().st_size
    read = fwd.by(samples, "flagwatch_bytes_read_total", "source").get(("envoy",))
    if read != size:
        problems.append("flagwatch_bytes_read_total{source=envoy} = %s, the log has %d bytes" % (read, size))
    files = fwd.by(samples, "flagwatch_source_files", "source").get(("envoy",))
    if files != 1:
        problems.append("flagwatch_source_files{source=envoy} = %s, expected 1" % files)
    errors = {k: v for k, v in fwd.by(samples, "flagwatch_source_errors_total", "source", "kind").items() if v}
    if errors:
        problems.append("source errors: %s" % errors)

    exp_req = expected_requests(stack.expected)
    req = fwd.by(samples, "flagwatch_responses_total", "upstream_cluster")
    problems += diff(exp_req, req, "requests (sum of flagwatch_responses_total)")
    problems += diff(expected_flags(stack.expected), fwd.by(samples, "flagwatch_response_flags_total",
                                                        "upstream_cluster", "response_flag"), "page flags")
    # Every line arrived within the last 5 minutes: the 5m and 15m windows hold all of them.
    for window in ("5m", "15m"):
        problems += diff(exp_req, fwd.by(samples, "flagwatch_responses_window", "upstream_cluster", window=window),
                         "flagwatch_responses_window{window=%s}" % window)
        problems += diff(expected_flags(stack.expected),
                         fwd.by(samples, "flagwatch_response_flags_window", "upstream_cluster", "response_flag",
                            window=window), "flagwatch_response_flags_window{window=%s}" % window)
    windows = {labels["window"] for labels, _ in fwd.select(samples, "flagwatch_responses_window")}
    if windows != {"1m", "5m", "15m"}:
        problems.append("window labels %s" % sorted(windows))

    clusters = set(stack.expected["clusters"])
    info = {labels["upstream_cluster"]: labels for labels, v in fwd.select(samples, "flagwatch_upstream_cluster_info")}
    if set(info) != clusters:
        problems.append("flagwatch_upstream_cluster_info clusters %s, expected %s" % (sorted(info), sorted(clusters)))
    ratings = info.get("outbound|9080||ratings.default.svc.cluster.local", {})
    want = {"upstream_cluster": "outbound|9080||ratings.default.svc.cluster.local", "direction": "outbound",
            "port": "9080", "subset": "", "service": "ratings", "namespace": "default"}
    if ratings != want:
        problems.append("cluster info for ratings: %s, expected %s" % (ratings, want))
    if fwd.by(samples, "flagwatch_clusters") != {(): len(clusters)}:
        problems.append("flagwatch_clusters %s, expected %d" % (fwd.by(samples, "flagwatch_clusters"), len(clusters)))
    if fwd.by(samples, "flagwatch_clusters_dropped_total") != {(): 0}:
        problems.append("flagwatch_clusters_dropped_total %s" % fwd.by(samples, "flagwatch_clusters_dropped_total"))
    if not fwd.select(samples, "flagwatch_build_info"):
        problems.append("no flagwatch_build_info")
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory_bytes",
                 "process_open_fds", "process_max_fds", "process_start_time_seconds"):
        if len(fwd.select(samples, name)) != 1:
            problems.append("%s: %d samples" % (name, len(fwd.select(samples, name))))
    assert not problems, "\n".join(problems)


def test_targets_up_without_scrape_errors(stack):
    """/api/v1/targets: both targets up, no lastError; Prometheus' own scrape-error counters 0."""
    fwd = stack.fwd
    def all_up():
        targets = stack.prom.targets()
        healthy = [t for t in targets if t["health"] == "up" and not t["lastError"]
                   and t["labels"]["job"] in (JOB, RECORDED_JOB)]
        return targets if len(healthy) == 2 else None

    targets = fwd.poll(all_up, 15.0, 0.5) or stack.prom.targets()
    summary = [(t["labels"]["job"], t["scrapeUrl"], t["health"], t["lastError"], t.get("lastScrapeDuration"))
               for t in targets]
    print("\ntargets: %s" % summary)
    assert len(targets) == 2, summary
    for t in targets:
        assert t["health"] == "up" and t["lastError"] == "", summary
    up = {labels["job"]: v for labels, v in stack.prom.query("up")}
    assert up == {JOB: 1.0, RECORDED_JOB: 1.0}, up
    scraped = {labels["job"]: v for labels, v in stack.prom.query("scrape_samples_scraped")}
    added = {labels["job"]: v for labels, v in stack.prom.query("scrape_series_added")}
    print("scrape_samples_scraped %s, scrape_series_added (last scrape) %s" % (scraped, added))
    assert scraped.get(JOB, 0) > 100 and scraped.get(JOB) == scraped.get(RECORDED_JOB), scraped

    own = stack.prom.own_metrics()
    bad = {}
    for name, value in ((n, v) for n, _, v in own):
        if name in ("prometheus_target_scrapes_sample_out_of_order_total",
                    "prometheus_target_scrapes_sample_duplicate_timestamp_total",
                    "prometheus_target_scrapes_sample_out_of_bounds_total",
                    "prometheus_target_scrapes_exceeded_sample_limit_total",
                    "prometheus_target_scrapes_exceeded_body_size_limit_total",
                    "prometheus_target_scrape_pool_exceeded_label_limits_total",
                    "prometheus_target_scrapes_cache_flush_forced_total") and value:
            bad[name] = value
    assert not bad, "Prometheus counted scrape problems: %s" % bad
    syncs = {labels.get("scrape_job"): v for labels, v in fwd.select(own, "prometheus_target_scrape_pool_targets")}
    print("prometheus_target_scrape_pool_targets %s" % syncs)


def test_prometheus_negotiated_openmetrics(stack):
    """Prometheus asked for OpenMetrics, and the daemon answered with OpenMetrics ending in # EOF."""
    fwd = stack.fwd
    def recorded():
        with stack.proxy.lock:
            return list(stack.proxy.records) if len(stack.proxy.records) >= 3 else None

    records = fwd.poll(recorded, 10.0, 0.5)
    assert records, "the recording proxy saw fewer than 3 scrapes"
    accept, content_type, end = records[-1]
    print("\nPrometheus' Accept: %s\ndaemon's Content-Type: %s" % (accept, content_type))
    assert accept.startswith("application/openmetrics-text"), accept
    for accept, content_type, end in records:
        assert content_type.startswith("application/openmetrics-text; version=1.0.0"), content_type
        assert end.endswith(b"# EOF\n"), end


@pytest.mark.parametrize("accept,kind", [
    (ACCEPT_PROMETHEUS, "prometheus"), ("", "prometheus"), ("*/*", "prometheus"),
    (ACCEPT_OPENMETRICS, "openmetrics"), (ACCEPT_PROMETHEUS_DEFAULT, "openmetrics"),
    # q=0 means "not acceptable" (RFC 9110 12.4.2): the scraper refuses OpenMetrics.
    ("application/openmetrics-text;version=1.0.0;q=0,text/plain;version=0.0.4", "prometheus"),
], ids=["text-0.0.4", "no-accept", "any", "openmetrics", "prometheus-default-accept", "openmetrics-refused-q0"])
def test_format_negotiation(stack, accept, kind):
    fwd = stack.fwd
    headers = {"Accept": accept} if accept else {}
    status, resp_headers, body = fwd.http_get(stack.daemon.port, "/metrics", headers)
    assert status == 200
    content_type = resp_headers.get("content-type", "")
    samples = fwd.parse_exposition(body)
    if kind == "prometheus":
        assert content_type == "text/plain; version=0.0.4; charset=utf-8", content_type
        assert b"# EOF" not in body
        assert b"# TYPE flagwatch_response_flags_total counter\n" in body
    else:
        assert content_type == "application/openmetrics-text; version=1.0.0; charset=utf-8", content_type
        assert body.endswith(b"\n# EOF\n"), body[-100:]
        assert body.count(b"# EOF") == 1
        # OpenMetrics names a counter family without _total; its samples keep it.
        assert b"# TYPE flagwatch_response_flags counter\n" in body
        assert b"# TYPE flagwatch_response_flags_total" not in body
    assert fwd.select(samples, "flagwatch_response_flags_total"), "no flagwatch_response_flags_total samples"
    # HEAD: same headers, no body.
    status, head_headers, head_body = fwd.http_get(stack.daemon.port, "/metrics", headers, method="HEAD")
    assert status == 200 and head_body == b"" and head_headers.get("content-type") == content_type


def test_both_formats_hold_the_same_samples(stack):
    fwd = stack.fwd
    _, text = stack.daemon.scrape(ACCEPT_PROMETHEUS)
    _, om = stack.daemon.scrape(ACCEPT_OPENMETRICS)
    volatile = ("process_", "flagwatch_responses_window", "flagwatch_response_flags_window", "flagwatch_diagnosis_info")
    a = sorted((n, sorted(l.items()), v) for n, l, v in fwd.parse_exposition(text) if not n.startswith(volatile))
    b = sorted((n, sorted(l.items()), v) for n, l, v in fwd.parse_exposition(om) if not n.startswith(volatile))
    assert a == b


def test_promtool_check_metrics(stack):
    """`promtool check metrics` accepts the Prometheus-text body (exit 0; lint hints are printed)."""
    fwd = stack.fwd
    _, body = stack.daemon.scrape(ACCEPT_PROMETHEUS)
    check = subprocess.run([fwd.PROMTOOL_BIN, "check", "metrics"], input=body, capture_output=True, timeout=60)
    output = (check.stdout + check.stderr).decode(errors="replace")
    print("\npromtool check metrics: exit %d, %d bytes checked%s" % (check.returncode, len(body),
                                                                     (": " + output.strip()) if output.strip() else ""))
    assert check.returncode == 0, output


def test_daemon_stops_cleanly_on_sigterm(stack):
    """Last: SIGTERM -> exit 0 within a few seconds, checkpoints saved (logged)."""
    t0 = time.monotonic()
    code = stack.daemon.terminate(timeout=15.0)
    took = time.monotonic() - t0
    print("\nflagwatch run exited %s %.2f s after SIGTERM" % (code, took))
    assert code == 0, "exit status %s after SIGTERM\n%s" % (code, stack.daemon.stderr())
    assert "checkpoints saved" in stack.daemon.stderr()
    assert list((stack.work / "state").iterdir()), "no checkpoint file in state_dir"


def test_diagnosis_info_in_prometheus(tmp_path, procs, fwd):
    """A real Prometheus scrapes flagwatch_diagnosis_info{cause="backend down"} 1 for the cluster
    whose connections were refused, the rules' alert carries it as likely_cause, and the series
    vanishes (goes stale) once the daemon's first window holds no UF."""
    log = tmp_path / "access-istio.log"
    log.write_text("")
    config = fwd.daemon_config([{"name": "envoy", "files": [str(log)], "format": "istio", "start_at": "beginning"}],
                               tmp_path / "state", windows=("10s", "1m"))
    daemon = fwd.Daemon(procs, tmp_path / "daemon", config)
    prom = fwd.Prometheus(procs, tmp_path / "prometheus", {JOB: ["%s:%d" % (LOOPBACK, daemon.port)]},
                          rule_files=[RULES_FILE])
    selector = 'flagwatch_diagnosis_info{job="%s"}' % JOB
    assert fwd.poll(lambda: prom.query('up{job="%s"} == 1' % JOB), 15.0, 0.25), prom.targets()
    assert not prom.query(selector), "a diagnosis before any line"
    # The lines arrive now: the 10 s window holds them from here (the daemon counts arrival time).
    with log.open("a") as out:
        out.write((UF_LINE + "\n") * 12 + OK_LINE + "\n")

    def diagnosed():
        series = prom.query(selector)
        return series if series else None

    series = fwd.poll(diagnosed, 8.0, 0.25)
    assert series, "no %s in Prometheus within 8 s of the lines; the daemon's page:\n%s\n%s" % (
        selector, [s for s in daemon.samples() if s[0] == "flagwatch_diagnosis_info"], daemon.stderr())
    [(labels, value)] = series
    print("\n%s %s" % (labels, value))
    assert value == 1
    assert {k: labels[k] for k in ("upstream_cluster", "response_flag", "cause")} == {
        "upstream_cluster": PAYMENTS, "response_flag": "UF", "cause": "backend down"}, labels
    assert labels["scope"] in ("one host", "all hosts", "unknown"), labels

    # The rules join it: the recorded cause, and the pending alert's likely_cause annotation.
    def recorded():
        return prom.query('flagwatch:rule_diagnosis:window1m{rule="UpstreamConnectFailures"}') or None

    [(record, lines)] = fwd.poll(recorded, 8.0, 0.25) or [({}, 0)]
    assert (record.get("upstream_cluster"), record.get("cause"), lines) == (PAYMENTS, "backend down", 12), record

    def alerted():
        return [a for a in prom.api("alerts")["alerts"] if a["labels"].get("alertname") == "UpstreamConnectFailures"] or None

    alerts = fwd.poll(alerted, 8.0, 0.25) or []
    assert len(alerts) == 1, prom.api("alerts")
    assert alerts[0]["labels"]["upstream_cluster"] == PAYMENTS
    assert alerts[0]["annotations"]["likely_cause"] == "backend down (scope: %s)" % labels["scope"], alerts[0]

    # The first window (10 s) empties: the daemon drops the series, Prometheus marks it stale,
    # while the 1m window still holds the lines.
    def vanished():
        page = daemon.samples()
        return not fwd.select(page, "flagwatch_diagnosis_info") and not prom.query(selector) and page

    page = fwd.poll(vanished, 20.0, 0.5)
    assert page, "still diagnosed 20 s later: %s" % prom.query(selector)
    assert fwd.by(page, "flagwatch_response_flags_window", "upstream_cluster", "response_flag", window="1m") == {
        (PAYMENTS, "UF"): 12}
    assert daemon.terminate() == 0
