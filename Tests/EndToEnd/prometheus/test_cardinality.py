"""End-to-end: the daemon's series stay bounded whatever the log holds.

test_million_clusters
    1,000,000 distinct Istio cluster names (one line each, flags UF / URX,UF / none / UH in
    turn), then two more lines (flag UO) for each of the first MAX_CLUSTERS clusters, appended in
    50,000-line writes to a file `flagwatch run` follows, with limits.max_clusters MAX_CLUSTERS.
    Checked on /metrics once every line is counted: exactly the first MAX_CLUSTERS clusters
    have series of their own, with exact counts; everything else is under
    upstream_cluster="__overflow__", with exact counts; the requests of all series add up to the
    lines written; flagwatch_clusters_dropped_total is > 0, at most the true number of dropped
    names and within 15 % of it (it is a 1 MiB hash bitmap); the daemon's VmRSS stays under
    RSS_LIMIT_MIB, and grows by less than RSS_GROWTH_LIMIT_MIB between the first 100,000 distinct
    names and the last (memory must not follow the number of names). Figures are printed.

test_idle_series_expiry
    idle_series_expiry 2s, max_clusters 3: clusters that stop getting lines disappear from
    every family of /metrics (counters, windows, info, diagnosis), a cluster that keeps getting lines stays,
    the capacity they held is given to new clusters, and flagwatch_clusters_dropped_total never
    goes down.

Every process is stopped by PID; every wait is bounded.
"""
import os
import threading
import time

import pytest


pytestmark = pytest.mark.e2e

DISTINCT = 1_000_000
MAX_CLUSTERS = 5000
CHUNK = 50_000
FIRST_BATCH = 100_000         # distinct names written before the first RSS reading
PATTERN = [(503, "UF"), (503, "URX,UF"), (200, "-"), (503, "UH")]
EXTRA = (503, "UO")           # two more lines for each kept cluster, after the overflow began
# The bound the design gives for this input: each (cluster, flag) window series keeps 900
# one-second buckets (3.6 KB with a 15m window); 5,000 clusters × up to 4 series is about
# 70 MiB, plus a ~27 MiB baseline (Swift runtime, Foundation) and the scrape buffer. What this
# test guards is that memory does not follow the number of distinct names (RSS_GROWTH_LIMIT_MIB);
# docs/performance.md gives the measured figure (about 111 MiB) and the worst case.
RSS_LIMIT_MIB = 160
RSS_GROWTH_LIMIT_MIB = 10
CATCH_UP_TIMEOUT_S = 300.0
OVERFLOW = "__overflow__"
CLUSTER_FAMILIES = ("flagwatch_responses_total", "flagwatch_response_flags_total", "flagwatch_response_flags_window",
                    "flagwatch_responses_window", "flagwatch_upstream_cluster_info", "flagwatch_diagnosis_info")


def code_class(code):
    return "%dxx" % (code // 100) if code else "0"


def add(expected, cluster, code, flags):
    c = expected.setdefault(cluster, {"requests": 0, "codes": {}, "flags": {}})
    c["requests"] += 1
    c["codes"][code_class(code)] = c["codes"].get(code_class(code), 0) + 1
    if flags != "-":
        for f in flags.split(","):
            c["flags"][f] = c["flags"].get(f, 0) + 1


def observed(fwd, samples):
    """{cluster: {"requests", "codes", "flags"}} from a page."""
    out = {}
    for labels, value in fwd.select(samples, "flagwatch_responses_total"):
        c = out.setdefault(labels["upstream_cluster"], {"requests": 0, "codes": {}, "flags": {}})
        c["requests"] += int(value)
        c["codes"][labels["code_class"]] = int(value)
    for labels, value in fwd.select(samples, "flagwatch_response_flags_total"):
        c = out.setdefault(labels["upstream_cluster"], {"requests": 0, "codes": {}, "flags": {}})
        c["flags"][labels["response_flag"]] = int(value)
    return out


def wait_lines(fwd, daemon, source, want, timeout):
    """Polls /metrics until flagwatch_lines_total{source} == want; returns the page's samples."""
    last = {}

    def caught_up():
        samples = daemon.samples()
        last["samples"] = samples
        last["lines"] = fwd.by(samples, "flagwatch_lines_total", "source").get((source,))
        return samples if last["lines"] == want else None

    samples = fwd.poll(caught_up, timeout, 0.5)
    if not samples:
        pytest.fail("flagwatch counted %s of %d lines within %.0f s\n%s"
                    % (last.get("lines"), want, timeout, daemon.stderr()), pytrace=False)
    return samples


class RssSampler(threading.Thread):
    """Samples a process' VmRSS every 0.1 s until stopped; keeps the maximum."""

    def __init__(self, fwd, pid):
        super().__init__(daemon=True)
        self.fwd, self.pid, self.max_rss, self.stopping = fwd, pid, 0, threading.Event()

    def run(self):
        while not self.stopping.is_set():
            self.max_rss = max(self.max_rss, self.fwd.vm_status(self.pid).get("VmRSS", 0))
            self.stopping.wait(0.1)

    def stop(self):
        self.stopping.set()
        self.join(timeout=5)


def mib(n):
    return n / (1024 * 1024)


def test_million_clusters(tmp_path, procs, fwd):
    log = tmp_path / "access.log"
    log.touch()
    config = fwd.daemon_config([{"name": "mesh", "files": [str(log)], "format": "istio", "start_at": "beginning"}],
                               tmp_path / "state", limits={"max_clusters": MAX_CLUSTERS})
    daemon = fwd.Daemon(procs, tmp_path / "daemon", config)
    rss_start = daemon.memory()
    sampler = RssSampler(fwd, daemon.pid)
    sampler.start()

    expected = {}
    written = 0
    t0 = time.monotonic()
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    try:
        def write(lines):
            data = "".join(lines).encode()
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]

        rss_first = None
        for start in range(0, DISTINCT, CHUNK):
            batch = []
            for i in range(start, min(start + CHUNK, DISTINCT)):
                code, flags = PATTERN[i % len(PATTERN)]
                name = fwd.istio_cluster(i)
                add(expected, name if i < MAX_CLUSTERS else OVERFLOW, code, flags)
                batch.append(fwd.istio_line(name, code, flags, i))
            write(batch)
            written += len(batch)
            if written == FIRST_BATCH:
                wait_lines(fwd, daemon, "mesh", written, CATCH_UP_TIMEOUT_S)
                rss_first = daemon.memory()
        wait_lines(fwd, daemon, "mesh", written, CATCH_UP_TIMEOUT_S)
        rss_distinct = daemon.memory()
        batch = []
        for repeat in range(2):
            for i in range(MAX_CLUSTERS):
                name = fwd.istio_cluster(i)
                add(expected, name, *EXTRA)
                batch.append(fwd.istio_line(name, EXTRA[0], EXTRA[1], DISTINCT + repeat * MAX_CLUSTERS + i))
        write(batch)
        written += len(batch)
    finally:
        os.close(fd)
    write_s = time.monotonic() - t0
    samples = wait_lines(fwd, daemon, "mesh", written, CATCH_UP_TIMEOUT_S)
    ingest_s = time.monotonic() - t0
    sampler.stop()
    rss_end = daemon.memory()
    _, body = daemon.scrape()

    got = observed(fwd, samples)
    real = set(got) - {OVERFLOW}
    dropped = fwd.by(samples, "flagwatch_clusters_dropped_total").get((), -1)
    true_dropped = DISTINCT - MAX_CLUSTERS
    total_requests = sum(c["requests"] for c in got.values())
    print("\n%d lines (%d distinct clusters, %.0f MB) written in %.1f s, all counted after %.1f s (%s)\n"
          "series of their own: %d clusters + %s; /metrics %d samples, %.1f MB\n"
          "flagwatch_clusters_dropped_total %d of %d truly dropped (%.2f %% under)\n"
          "VmRSS: at start %.1f MiB, after %d distinct names %.1f MiB, after %d %.1f MiB, at the end (+%d UO lines) "
          "%.1f MiB, max sampled %.1f MiB; VmHWM %.1f MiB"
          % (written, DISTINCT, log.stat().st_size / 1e6, write_s, ingest_s, daemon.binary, len(real), OVERFLOW if OVERFLOW in got else "no overflow",
             len(samples), len(body) / 1e6, dropped, true_dropped, 100.0 * (true_dropped - dropped) / true_dropped,
             mib(rss_start.get("VmRSS", 0)), FIRST_BATCH, mib((rss_first or {}).get("VmRSS", 0)),
             DISTINCT, mib(rss_distinct.get("VmRSS", 0)), 2 * MAX_CLUSTERS, mib(rss_end.get("VmRSS", 0)), mib(sampler.max_rss), mib(rss_end.get("VmHWM", 0))))

    problems = []
    malformed = {k: v for k, v in fwd.by(samples, "flagwatch_lines_malformed_total", "source", "reason").items() if v}
    if malformed:
        problems.append("malformed lines: %s" % malformed)
    if total_requests != written:
        problems.append("the requests of all series add up to %d, %d lines were written" % (total_requests, written))
    if len(real) != MAX_CLUSTERS:
        problems.append("%d clusters have series of their own, max_clusters is %d" % (len(real), MAX_CLUSTERS))
    kept = {fwd.istio_cluster(i) for i in range(MAX_CLUSTERS)}
    if real != kept:
        problems.append("clusters with series are not the first %d seen: %d unexpected (e.g. %s), %d missing"
                        % (MAX_CLUSTERS, len(real - kept), sorted(real - kept)[:3], len(kept - real)))
    wrong = [name for name in expected if got.get(name) != expected[name]]
    if wrong:
        problems.append("%d clusters with wrong counts, e.g. %s: got %s, expected %s"
                        % (len(wrong), wrong[0], got.get(wrong[0]), expected[wrong[0]]))
    # flagwatch_diagnosis_info: at most 1,000 series (docs/metrics.md), each 1, of kept clusters.
    diagnosed = fwd.select(samples, "flagwatch_diagnosis_info")
    if not 0 < len(diagnosed) <= 1000 or any(v != 1 for _, v in diagnosed) \
            or not {labels["upstream_cluster"] for labels, _ in diagnosed} <= kept | {OVERFLOW}:
        problems.append("flagwatch_diagnosis_info: %d series (1 to 1,000 expected), e.g. %s"
                        % (len(diagnosed), diagnosed[:2]))
    clusters_gauge = fwd.by(samples, "flagwatch_clusters").get(())
    if clusters_gauge != MAX_CLUSTERS + 1:
        problems.append("flagwatch_clusters = %s, expected %d (+1 for %s)" % (clusters_gauge, MAX_CLUSTERS + 1, OVERFLOW))
    info = {labels["upstream_cluster"]: labels for labels, _ in fwd.select(samples, "flagwatch_upstream_cluster_info")}
    if len(info) != MAX_CLUSTERS + 1:
        problems.append("flagwatch_upstream_cluster_info has %d clusters" % len(info))
    overflow_window = fwd.by(samples, "flagwatch_responses_window", "upstream_cluster", window="15m").get((OVERFLOW,))
    if overflow_window != expected[OVERFLOW]["requests"]:
        problems.append("flagwatch_responses_window{%s,15m} = %s, expected %d"
                        % (OVERFLOW, overflow_window, expected[OVERFLOW]["requests"]))
    if not 0 < dropped <= true_dropped or dropped < 0.85 * true_dropped:
        problems.append("flagwatch_clusters_dropped_total = %s, expected > 0, <= %d and within 15 %% of it"
                        % (dropped, true_dropped))
    for label, figure in (("VmRSS at the end", rss_end.get("VmRSS", 0)), ("max sampled VmRSS", sampler.max_rss)):
        if mib(figure) >= RSS_LIMIT_MIB:
            problems.append("%s %.1f MiB >= %d MiB" % (label, mib(figure), RSS_LIMIT_MIB))
    if rss_first:
        growth = mib(rss_distinct.get("VmRSS", 0) - rss_first.get("VmRSS", 0))
        if growth >= RSS_GROWTH_LIMIT_MIB:
            problems.append("VmRSS grew by %.1f MiB between %d and %d distinct names"
                            % (growth, FIRST_BATCH, DISTINCT))
    assert not problems, "\n".join(problems) + "\n" + daemon.stderr()


def clusters_on_page(fwd, samples):
    """{family: set of upstream_cluster values} over the families that carry a cluster."""
    return {family: {labels["upstream_cluster"] for labels, _ in fwd.select(samples, family)}
            for family in CLUSTER_FAMILIES}


def test_idle_series_expiry(tmp_path, procs, fwd):
    log = tmp_path / "access.log"
    log.touch()
    config = fwd.daemon_config([{"name": "mesh", "files": [str(log)], "format": "istio", "start_at": "beginning"}],
                               tmp_path / "state", windows=("1m",),
                               limits={"max_clusters": 3, "idle_series_expiry": "2s"})
    daemon = fwd.Daemon(procs, tmp_path / "daemon", config)
    seq = [0]
    written = [0]

    def write(*clusters, flags="UF"):
        data = "".join(fwd.istio_line(c, 503, flags, seq[0] + k) for k, c in enumerate(clusters))
        seq[0] += len(clusters)
        with open(log, "a") as f:
            f.write(data)
        written[0] += len(clusters)

    a, b, c, d, e, f_, g, h = ("outbound|80||%s.default.svc.cluster.local" % n
                               for n in ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"))
    write(a, b, c, d, e)
    samples = wait_lines(fwd, daemon, "mesh", written[0], 20.0)
    page = clusters_on_page(fwd, samples)
    assert page["flagwatch_responses_total"] == {a, b, c, OVERFLOW}, page
    assert fwd.by(samples, "flagwatch_clusters_dropped_total") == {(): 2}
    last_a = time.monotonic()

    # charlie keeps getting lines; alpha, bravo and the overflow series must go.
    gone = None
    deadline = time.monotonic() + 15.0
    while time.monotonic() < deadline:
        write(c)
        samples = daemon.samples()
        page = clusters_on_page(fwd, samples)
        if all(clusters == {c} for clusters in page.values()):
            gone = time.monotonic() - last_a
            break
        time.sleep(0.3)
    print("\nalpha, bravo and %s left /metrics %.1f s after their last line (idle_series_expiry 2s)"
          % (OVERFLOW, gone or -1))
    assert gone is not None, "after 15 s the page still has %s" % page
    assert gone >= 1.0, "series expired %.1f s after their last line, before idle_series_expiry (2 s)" % gone
    assert fwd.by(samples, "flagwatch_clusters") == {(): 1}
    assert fwd.by(samples, "flagwatch_clusters_dropped_total") == {(): 2}, "dropped_total went down or up"
    charlie = observed(fwd, samples)[c]
    assert charlie["requests"] >= 2 and charlie["flags"] == {"UF": charlie["requests"]}, charlie

    # The capacity is free again: alpha comes back with fresh counts, foxtrot gets a series,
    # golf and hotel go to the overflow.
    write(a, f_, g, h)
    samples = wait_lines(fwd, daemon, "mesh", written[0], 20.0)
    got = observed(fwd, samples)
    assert set(got) == {c, a, f_, OVERFLOW}, sorted(got)
    assert got[a]["requests"] == 1 and got[f_]["requests"] == 1 and got[OVERFLOW]["requests"] == 2, got
    assert fwd.by(samples, "flagwatch_clusters_dropped_total") == {(): 4}
    assert sum(fwd.by(samples, "flagwatch_lines_total", "source").values()) == written[0]
    assert daemon.terminate() == 0


def test_max_clusters_holds_for_json_escaped_names(tmp_path, procs, fwd):
    """A JSON log whose cluster names carry escapes (`\\u002e` for `.`) is held to max_clusters
    like any other: 10 such names with max_clusters 2 give 2 clusters + __overflow__."""
    log = tmp_path / "access.json.log"
    with open(log, "w") as f:
        for i in range(10):
            f.write('{"response_code":503,"response_flags":"UF","upstream_cluster":"outbound|80||s%d\\u002edefault"}\n' % i)
    config = fwd.daemon_config([{"name": "mesh", "files": [str(log)], "format": "json", "start_at": "beginning"}],
                               tmp_path / "state", windows=("1m",), limits={"max_clusters": 2})
    daemon = fwd.Daemon(procs, tmp_path / "daemon", config)
    samples = wait_lines(fwd, daemon, "mesh", 10, 20.0)
    got = observed(fwd, samples)
    print("\nclusters with series: %s" % sorted(got))
    assert sum(c["requests"] for c in got.values()) == 10
    assert set(got) == {"outbound|80||s0.default", "outbound|80||s1.default", OVERFLOW}, \
        "max_clusters 2, but %d clusters have series of their own" % len(set(got) - {OVERFLOW})
    assert fwd.by(samples, "flagwatch_clusters_dropped_total") == {(): 8}
