"""End-to-end test: `flagwatch scan --follow` counts a real Envoy 1.40's access log exactly while
the log is rotated several times under traffic, the way logrotate does it.

Each test case (about 10 s):
  1. starts backends.py and Envoy on 127.0.0.1 (kernel-chosen ports; envoy_harness.start_envoy).
     Envoy writes every request to <tmp>/access.log (Istio's TEXT format) and, as an extra
     witness that is never rotated, to <tmp>/istio-json.log (Istio's JSON keys);
  2. starts `flagwatch scan --follow --file '<tmp>/access*.log' --format istio --output json
     --interval 0.25 --start-at beginning` and waits for its first JSON line (sources open);
  3. a thread sends traffic without pause: every scenario of envoy_harness.SCENARIOS (200s, UF,
     URX, UO, UH, NR, NC, UC, UT, UPE, UR, DC, SI, UMSDR, DI, FI, LH, DPE, DT, TCP UF,URX, ...),
     CHUNK requests each, round after round;
  4. meanwhile the log is rotated ROTATIONS times: rename, then, RENAME_TO_SIGNAL_S later (as
     logrotate's postrotate script), SIGUSR1 to Envoy (Envoy reopens its access logs on
     SIGUSR1). Envoy goes on appending to the renamed file until it has reopened, so lines land
     in both files around each rotation (the harness checks that this happened). Two namings:
       logrotate  access.log.1 -> access.log.2, ..., then access.log -> access.log.1 (logrotate's
                  default): rotated files leave the pattern, and already rotated files are
                  renamed again while flagwatch may still be reading them;
       dateext    access.log -> access-20261122-N.log (logrotate `dateext` + `extension .log`):
                  rotated files still match the pattern, so they must be recognised as files
                  already being read, not read again;
  5. stops the traffic, waits (bounded) until the logs stop growing and flagwatch's reports
     stop changing, reads Envoy's admin counters (the ground truth, independent of any log
     parsing), sends flagwatch SIGTERM and reads its final JSON object.

Checked, exactly: the live report once stable and the final report both equal the counts
Envoy's counters predict (per cluster: requests, code classes, flags), and their `lines` equals
the number of lines in all the rotated files plus the current one: no line lost or counted twice
across rotations. Before that, the harness checks itself (counters agree with what was sent,
every rotated file got lines, no line lost by Envoy, an independent parse of all the files
agrees); a failure there is not a flagwatch problem and says so.

Every process is stopped by PID in teardown; every wait is bounded.
"""
import collections
import os
import signal
import threading
import time
import traceback

import pytest

from harness.flagwatch import FlagwatchFollow
from harness.envoy import (
    SCENARIOS, complete_lines, count_log, counter_value, differences, envoy_version, expected_counts,
    fetch_counters, find_envoy, flagwatch_path, normalize, parse_json, parse_text, send_chunk, start_envoy,
)

pytestmark = pytest.mark.e2e

ROTATIONS = 4           # log rotations per test case
ROTATE_EVERY_S = 1.0    # at least this long between rotations (and after the last one)
RENAME_TO_SIGNAL_S = 0.3  # rename, then SIGUSR1 this much later (logrotate's postrotate comes after
                          # the rename): Envoy flushes every 100 ms, so it appends to the renamed file
CHUNK = 4               # requests per scenario per round (the UO burst needs at least 3)
MIN_ROUNDS = 2          # traffic goes on until at least this many full rounds were sent
TRAFFIC_BUDGET_S = 60.0
INTERVAL = "0.25"       # flagwatch --interval
READY_TIMEOUT = 15.0    # flagwatch's first JSON line
REOPEN_TIMEOUT = 10.0   # Envoy writes to the new access.log after SIGUSR1
LOGS_TIMEOUT = 15.0     # the logs stop growing after the traffic stopped
SETTLE_TIMEOUT = 25.0   # flagwatch's live reports reach the file total (> its 10 s rescan, 5 s grace)
STABLE_REPORTS = 4      # ... and stay identical this many reports in a row
STOP_TIMEOUT = 15.0     # exit after SIGTERM


# --------------------------------------------------------------------------- pieces

class TrafficThread(threading.Thread):
    """Sends every scenario, CHUNK requests each, round after round, until stopped."""

    def __init__(self, ports, admin):
        super().__init__(daemon=True, name="traffic")
        self.ports, self.admin = ports, admin
        self.sent = collections.Counter()
        self.client = {s.name: collections.Counter() for s in SCENARIOS}
        self.rounds = 0
        self.error = None
        self.stopping = threading.Event()

    def run(self):
        deadline = time.monotonic() + TRAFFIC_BUDGET_S
        try:
            while not self.stopping.is_set():
                if time.monotonic() > deadline:
                    raise RuntimeError("traffic still running after %.0f s" % TRAFFIC_BUDGET_S)
                for scn in SCENARIOS:
                    if self.stopping.is_set():
                        break
                    seen = send_chunk(scn, CHUNK, self.sent[scn.name], self.ports, self.admin)
                    self.client[scn.name].update(seen)
                    self.sent[scn.name] += CHUNK
                else:
                    self.rounds += 1
        except BaseException:  # reported by the test
            self.error = traceback.format_exc()


def lines_in(paths):
    return sum(complete_lines(p) for p in paths)


def wait_for_stable_total(paths_fn, want, timeout=LOGS_TIMEOUT):
    """Envoy flushes every 100 ms: until the files hold >= want lines in all, unchanged for
    5 polls in a row (bounded). Returns the last total; the test judges it."""
    deadline = time.monotonic() + timeout
    last, stable = None, 0
    while time.monotonic() < deadline:
        total = lines_in(paths_fn())
        stable = stable + 1 if total == last and total >= want else 0
        if stable >= 5:
            break
        last = total
        time.sleep(0.1)
    return last


class Rotator:
    """Renames the current access.log away and asks Envoy to reopen it, like logrotate's
    `postrotate kill -USR1`."""

    def __init__(self, work, naming, envoy):
        self.work, self.naming, self.envoy = work, naming, envoy
        self.current = work / "access.log"
        self.events = []   # [rotation number, name of the rotated file (at the end, once finish()ed),
                           #  its lines at the rename, at SIGUSR1, at the end (filled in by finish())]

    def rotated_paths(self):
        """Where the rotated files are now."""
        if self.naming == "logrotate":
            return [self.work / ("access.log.%d" % k) for k in range(1, len(self.events) + 1)]
        return [self.work / ("access-20261122-%d.log" % k) for k in range(1, len(self.events) + 1)]

    def all_paths(self):
        return self.rotated_paths() + [self.current]

    def final_path(self, n):
        """Where the file of rotation n is at the end (logrotate naming shifts it each time)."""
        if self.naming == "logrotate":
            return self.work / ("access.log.%d" % (len(self.events) - n + 1))
        return self.work / ("access-20261122-%d.log" % n)

    def finish(self):
        """Notes each rotated file's final name and line count (after the logs stopped growing)."""
        for event in self.events:
            path = self.final_path(event[0])
            event[1] = path.name
            event[4] = complete_lines(path)

    def grew_after_rename(self):
        """Rotations whose file got lines after it was renamed away (Envoy had not reopened yet)."""
        return [e[0] for e in self.events if e[4] is not None and e[4] > e[2]]

    def rotate(self):
        n = len(self.events) + 1
        if self.naming == "logrotate":
            for k in range(n - 1, 0, -1):  # the oldest first: .3 -> .4, .2 -> .3, .1 -> .2
                os.rename(self.work / ("access.log.%d" % k), self.work / ("access.log.%d" % (k + 1)))
            target = self.work / "access.log.1"
        else:
            target = self.work / ("access-20261122-%d.log" % n)
        os.rename(self.current, target)
        at_rename = complete_lines(target)  # just after: later growth was written after the rename
        time.sleep(RENAME_TO_SIGNAL_S)
        at_signal = complete_lines(target)
        os.kill(self.envoy.pid, signal.SIGUSR1)
        self.events.append([n, target.name, at_rename, at_signal, None])
        # Envoy reopens on its flush thread: wait (bounded) until it writes to the new file.
        deadline = time.monotonic() + REOPEN_TIMEOUT
        while time.monotonic() < deadline and complete_lines(self.current) < 1:
            time.sleep(0.05)
        return complete_lines(self.current) >= 1


def view_clusters(expected, actual):
    """Per cluster: expected vs actual requests / codes / flags, mismatches marked."""
    exp, act = normalize(expected)["clusters"], normalize(actual or {})["clusters"]
    rows = []
    for name in sorted(set(exp) | set(act)):
        e, a = exp.get(name), act.get(name)
        fmt = lambda c: "-" if c is None else "req=%d %s %s" % (  # noqa: E731
            c["requests"], ",".join("%s=%d" % kv for kv in sorted(c["codes"].items())),
            ",".join("%s=%d" % kv for kv in sorted(c["flags"].items())) or "noflags")
        rows.append(("%-58s expected %s\n%-58s got      %s%s"
                     % (name, fmt(e), "", fmt(a), "" if e == a else "   <-- MISMATCH")))
    return "\n".join(rows)


# --------------------------------------------------------------------------- the test

@pytest.mark.parametrize("naming", ["logrotate", "dateext"])
def test_follow_survives_envoy_log_rotation(tmp_path, procs, naming):
    t0 = time.monotonic()
    envoy_bin = find_envoy()
    version = envoy_version(envoy_bin)
    binary = flagwatch_path()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.fail("flagwatch binary not found at %s: run `swift build`, or set FLAGWATCH_BIN" % binary,
                    pytrace=False)

    work = tmp_path
    json_log = work / "istio-json.log"   # outside the pattern; never rotated (only reopened)
    stack = start_envoy(procs, work, envoy_bin, work / "access.log", json_log)

    argv = [str(binary), "scan", "--follow", "--file", str(work / "access*.log"), "--format", "istio",
            "--output", "json", "--interval", INTERVAL, "--start-at", "beginning"]
    fw = FlagwatchFollow(argv, work / "flagwatch.stderr.log", procs, drop_diagnosis=False)
    fw.wait_ready(READY_TIMEOUT)

    traffic = TrafficThread(stack.ports, stack.admin)
    rotator = Rotator(work, naming, stack.envoy)
    harness = []      # problems of the harness itself (not flagwatch's)
    problems = []     # flagwatch's
    traffic.start()
    try:
        deadline = time.monotonic() + REOPEN_TIMEOUT
        while time.monotonic() < deadline and complete_lines(rotator.current) < 1 and traffic.is_alive():
            time.sleep(0.05)
        for _ in range(ROTATIONS):
            if not traffic.is_alive():
                break
            time.sleep(ROTATE_EVERY_S)
            if not rotator.rotate():
                harness.append("rotation %d: Envoy wrote nothing to a new access.log within %.0f s of SIGUSR1"
                               % (len(rotator.events), REOPEN_TIMEOUT))
                break
        time.sleep(ROTATE_EVERY_S)
        deadline = time.monotonic() + TRAFFIC_BUDGET_S
        while traffic.rounds < MIN_ROUNDS and traffic.is_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        traffic.stopping.set()
        traffic.join(timeout=30)
    if traffic.is_alive():
        pytest.fail("the traffic thread did not stop within 30 s", pytrace=False)
    if traffic.error:
        pytest.fail("the traffic thread failed (harness, not flagwatch):\n%s" % traffic.error, pytrace=False)

    sent = dict(traffic.sent)
    total_sent = sum(sent.values())
    wait_for_stable_total(rotator.all_paths, total_sent)
    wait_for_stable_total(lambda: [json_log], total_sent)
    counters = fetch_counters(stack.admin)
    expected = expected_counts(SCENARIOS, traffic.sent, counters)
    files = {p.name: complete_lines(p) for p in rotator.all_paths()}
    rotator.finish()
    file_total = sum(files.values())

    live = fw.wait_stable(file_total, STABLE_REPORTS, SETTLE_TIMEOUT)
    code, final = fw.terminate()

    # ---- the harness checks itself: Envoy's counters, the client, the files
    for scn in SCENARIOS:
        n = counter_value(counters, scn.stats[0], scn)
        for expr in scn.stats[1:]:
            if counter_value(counters, expr, scn) != n:
                harness.append("%s: counter %s = %s, but %s = %s"
                               % (scn.name, expr, counter_value(counters, expr, scn), scn.stats[0], n))
        seen = traffic.client[scn.name]
        if scn.kind == "uo":
            ok = n is not None and 1 <= n < sent[scn.name] and seen.get("200", 0) == sent[scn.name] - n
        else:
            ok = n == sent[scn.name]
        if not ok or seen.get(scn.client, 0) != n:
            harness.append("%s: sent %d, Envoy counter %s = %s, client saw %s"
                           % (scn.name, sent[scn.name], scn.stats[0], n, dict(seen)))
    if len(rotator.events) != ROTATIONS:
        harness.append("only %d of %d rotations happened" % (len(rotator.events), ROTATIONS))
    for name, n in files.items():
        if n < 1:
            harness.append("%s holds no line: the rotation did not happen under traffic" % name)
    if rotator.events and not rotator.grew_after_rename():
        harness.append("no rotated file got lines after its rename: the case of a renamed file that is "
                       "still being written was not exercised")
    if file_total != total_sent:
        harness.append("the access logs hold %d lines in all, %d requests were sent (Envoy lost or "
                       "duplicated lines at a reopen?)" % (file_total, total_sent))
    own = {"lines": 0, "malformed": collections.Counter(), "clusters": {}}
    for p in rotator.all_paths():   # an independent parse of every file, summed
        part = count_log(p, parse_text)
        own["lines"] += part["lines"]
        own["malformed"].update(part["malformed"])
        for name, c in part["clusters"].items():
            mine = own["clusters"].setdefault(name, {"requests": 0, "codes": collections.Counter(),
                                                     "flags": collections.Counter()})
            mine["requests"] += c["requests"]
            mine["codes"].update(c["codes"])
            mine["flags"].update(c["flags"])
    harness += differences(expected, own, "all text logs (own parser)")
    harness += differences(expected, count_log(json_log, parse_json), "unrotated json log (own parser)")

    # ---- flagwatch
    if code is None:
        problems.append("flagwatch did not exit within %.0f s of SIGTERM" % STOP_TIMEOUT)
    elif code != 0:
        problems.append("flagwatch exited with %d after SIGTERM, expected 0" % code)
    if code is not None and final is None:
        problems.append("flagwatch printed no final JSON object after SIGTERM")
    if fw.garbage:
        problems.append("flagwatch printed lines that are not one JSON object: %r" % fw.garbage[:3])
    problems += differences(expected, live or {}, "live report (stable, before SIGTERM)")
    if final is not None:
        problems += differences(expected, final, "final report (after SIGTERM)")
    for label, report in (("live", live), ("final", final)):
        if report is not None and report.get("lines") != file_total:
            problems.append("%s report counts %s lines; the rotated files and access.log hold %d"
                            % (label, report.get("lines"), file_total))

    summary = ("Envoy %s, naming %s, %d requests in %d rounds, %d rotations, %.1f s\n"
               "rotations [number, renamed to, its lines at the rename, at SIGUSR1, at the end]: %s\n"
               "rotated files that grew after their rename: %s\n"
               "lines per file at the end: %s (total %d)\n"
               "flagwatch: live lines %s, final lines %s, exit %s, %d reports"
               % (version, naming, total_sent, traffic.rounds, len(rotator.events), time.monotonic() - t0,
                  rotator.events, rotator.grew_after_rename(), files, file_total, (live or {}).get("lines"),
                  (final or {}).get("lines"), code, fw.count()))
    print("\n" + summary)
    print(view_clusters(expected, final or live))
    if harness:
        pytest.fail("the Envoy harness itself is inconsistent (not a flagwatch problem):\n  "
                    + "\n  ".join(harness) + "\n" + summary, pytrace=False)
    if problems:
        pytest.fail("flagwatch --follow across Envoy log rotations disagrees with Envoy:\n  "
                    + "\n  ".join(problems) + "\n" + summary + "\n"
                    + view_clusters(expected, final or live)
                    + "\nflagwatch stderr (last lines):\n" + fw.stderr(), pytrace=False)
