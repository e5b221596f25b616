"""The whole stack a new user would run, end to end, on 127.0.0.1:

  real Envoy 1.40 (../alerting/envoy-alerting.yaml.in: Istio's TEXT log) in front of two toggle
  backends, with client traffic (about 20 requests/s per service) for the whole test;
  a private systemd-journald (../journald) receiving a second stream of Istio lines through
  `systemd-cat -t envoy` (plus noise from another identifier);
  ONE `flagwatch run` whose config has both sources (the Envoy access log file, journald with
  `matches: [SYSLOG_IDENTIFIER=envoy]`) and alerting to a real Alertmanager;
  a real Prometheus scraping flagwatch every second.

Story: healthy traffic; the access log is rotated (rename to access.log.1 + POST /reopen_logs,
as logrotate would); the api backend is stopped (connections refused: UF); the log is rotated
again during the UF traffic; journal lines are written before and during the failure; the
alert reaches Alertmanager; the backend comes back and the alert resolves; traffic stops.

Checked:
  1. Alertmanager's /api/v2/alerts has UpstreamConnectFailures for the api cluster, flag UF,
     likely cause "backend down"; it leaves Alertmanager after the backend returns;
  2. flagwatch's /metrics equal Envoy's own admin counters per cluster (2xx = upstream_rq_2xx,
     UF = upstream_rq_pending_failure_eject), and its line count for the file source equals the
     lines in access.log.2 + access.log.1 + access.log and Envoy's downstream_rq_completed:
     nothing lost or counted twice across the two rotations;
  3. the journald source counted exactly the lines written with identifier envoy (per flag and
     code class), none of the noise;
  4. Prometheus' HTTP API (instant queries of flagwatch_response_flags_total and
     flagwatch_responses_total) returns the same numbers once it has scraped.
"""
import os
import signal
import time

import pytest

from harness import alerting, alerting as scenario, journald as jkit
from harness.components import DAEMON_HELPERS as fwd
from harness.envoy import Procs, admin_request, complete_lines, envoy_binary, fetch_counters, tail, wait_for_stable_logs

pytestmark = pytest.mark.e2e

API = scenario.API
INVENTORY = scenario.INVENTORY
JOURNAL_CLUSTER = "outbound|9080||ledger.payments.svc.cluster.local"

# Generous: a CI job may share the CPU.
FIRE_DEADLINE_S = 90
RESOLVE_DEADLINE_S = 90
COUNT_DEADLINE_S = 60
PROMETHEUS_DEADLINE_S = 45
REOPEN_TIMEOUT_S = 15

CONFIG = """\
listen: "127.0.0.1:0"
state_dir: "{state}"
sources:
  - name: envoy
    files: ["{log}"]
    format: istio
    start_at: beginning
  - name: journal
    journald: {{matches: ["SYSLOG_IDENTIFIER=envoy"], directory: "{journal}"}}
    format: istio
    start_at: beginning
windows: [10s, 1m]
alerting:
  evaluate_every: 1s
  resend_every: 5s
  alertmanagers: ["{alertmanager}"]
  rules:
    - name: UpstreamConnectFailures
      flags: [UF, URX, UC]
      window: 10s
      min_count: 5
      ratio: 0.5
      spike_factor: 5
      for: 2s
      resolve_after: 3s
      severity: critical
"""

# The journal stream: (code, flags, how many lines), written in two batches.
JOURNAL_BATCHES = [
    [(200, "-", 40), (503, "UF,URX", 12), (404, "NR", 3)],
    [(200, "-", 25), (503, "UF,URX", 18), (503, "UH", 7)],
]


def journal_expected():
    flags, codes, lines = {}, {}, 0
    for batch in JOURNAL_BATCHES:
        for code, flag_text, n in batch:
            lines += n
            codes["%dxx" % (code // 100)] = codes.get("%dxx" % (code // 100), 0) + n
            if flag_text != "-":
                for flag in flag_text.split(","):
                    flags[flag] = flags.get(flag, 0) + n
    return lines, flags, codes


class Rotation:
    """access.log -> access.log.1 (older ones shifted first), then POST /reopen_logs."""

    def __init__(self, work, admin):
        self.work, self.admin, self.count = work, admin, 0

    def rotate(self):
        for k in range(self.count, 0, -1):
            os.rename(self.work / ("access.log.%d" % k), self.work / ("access.log.%d" % (k + 1)))
        os.rename(self.work / "access.log", self.work / "access.log.1")
        self.count += 1
        time.sleep(0.3)  # Envoy goes on appending to the renamed file until it reopens
        status, body = admin_request(self.admin, "/reopen_logs", method="POST", timeout=10.0)
        assert status == 200, "POST /reopen_logs: %s %s" % (status, body)
        reopened = fwd.poll(lambda: complete_lines(self.work / "access.log") >= 1, REOPEN_TIMEOUT_S, 0.05)
        assert reopened, "Envoy did not write a new access.log within %d s of /reopen_logs" % REOPEN_TIMEOUT_S

    def paths(self):
        return [self.work / ("access.log.%d" % k) for k in range(self.count, 0, -1)] + [self.work / "access.log"]


def write_journal(jd, batch, seq):
    lines = []
    for code, flags, n in batch:
        for _ in range(n):
            lines.append(fwd.istio_line(JOURNAL_CLUSTER, code, flags, seq).encode())
            seq += 1
    jd.cat(lines, "envoy")
    # Noise: same format, another identifier, another cluster; must not be counted.
    jd.cat([fwd.istio_line("outbound|1||noise.default.svc.cluster.local", 503, "UF", seq + i).encode()
            for i in range(5)], "sshd")
    return seq


def prometheus_values(prom, metric, label, cluster):
    return {labels[label]: value for labels, value in prom.query('%s{upstream_cluster="%s"}' % (metric, cluster))}


def test_new_user_stack(tmp_path, full_kit):
    t0 = time.monotonic()
    envoy_bin = envoy_binary()
    work = tmp_path
    procs = Procs()
    jd = None
    traffic = None
    try:
        # -- the stack ---------------------------------------------------------------------
        api, api_port = alerting.start_backend(procs, work, "api")
        _, inventory_port = alerting.start_backend(procs, work, "inventory")
        log = work / "access.log"
        admin, envoy_port = alerting.start_envoy(procs, work, envoy_bin, log, api_port, inventory_port)
        am = alerting.Alertmanager(procs, work / "alertmanager")
        jd = jkit.Journald(work / "journald")
        fw = fwd.Daemon(procs, work / "daemon",
                        CONFIG.format(state=work / "state", log=log, journal=jd.directory, alertmanager=am.url),
                        ready_timeout=60.0)
        prom = fwd.Prometheus(procs, work / "prometheus", {"flagwatch": ["127.0.0.1:%d" % fw.port]},
                              ready_timeout=60.0)
        stack = type("Stack", (), {})()
        stack.alertmanager = am

        traffic = scenario.Traffic(envoy_port)
        traffic.start()
        assert fwd.poll(lambda: traffic.sent["api"] >= 40, 60), "no traffic through Envoy"
        assert scenario.am_alert(stack, "UpstreamConnectFailures", API) is None, "alert before any failure"

        seq = write_journal(jd, JOURNAL_BATCHES[0], 0)
        rotation = Rotation(work, admin)
        rotation.rotate()
        time.sleep(1.0)

        # -- the api backend fails: UF; the log is rotated during the failure ----------------
        os.kill(api.pid, signal.SIGTERM)
        api.wait(timeout=10)
        killed = time.monotonic()
        time.sleep(2.0)
        rotation.rotate()
        seq = write_journal(jd, JOURNAL_BATCHES[1], seq)

        alert = fwd.poll(lambda: scenario.am_alert(stack, "UpstreamConnectFailures", API), FIRE_DEADLINE_S, 0.5)
        assert alert, "no alert in Alertmanager %d s after the backend stopped; daemon:\n%s" % (
            FIRE_DEADLINE_S, fw.stderr())
        fired_after = time.monotonic() - killed
        labels, annotations = alert["labels"], alert["annotations"]
        assert labels["response_flag"] == "UF", labels
        assert labels["service"] == "api" and labels["namespace"] == "default", labels
        assert "backend down" in annotations["likely_cause"], annotations
        assert alert["status"]["state"] == "active", alert
        # The journal's UF lines are another cluster: no alert for it, nor for the noise.
        assert scenario.am_alert(stack, "UpstreamConnectFailures", "outbound|1||noise.default.svc.cluster.local") is None

        # -- the backend returns: the alert resolves -----------------------------------------
        alerting.start_backend(procs, work, "api-again", api_port)
        returned = time.monotonic()
        gone = fwd.poll(lambda: scenario.am_alert(stack, "UpstreamConnectFailures", API) is None,
                        RESOLVE_DEADLINE_S, 0.5)
        assert gone, "the alert is still active in Alertmanager %d s after the backend returned" % RESOLVE_DEADLINE_S
        resolved_after = time.monotonic() - returned

        # -- counts: flagwatch vs Envoy's counters, the files, the journal -------------------
        traffic.stop()
        paths = rotation.paths()
        stable = wait_for_stable_logs(paths, 1, timeout=30)
        file_lines = sum(complete_lines(p) for p in paths)
        assert stable is not None and all(stable), "every access log file got lines: %s" % (stable,)
        counters = fetch_counters(admin)
        want_journal_lines, want_journal_flags, want_journal_codes = journal_expected()

        def counted():
            samples = fw.samples()
            lines = fwd.by(samples, "flagwatch_lines_total", "source")
            if lines.get(("envoy",), 0) == file_lines and lines.get(("journal",), 0) == want_journal_lines:
                return samples
            return None

        samples = fwd.poll(counted, COUNT_DEADLINE_S, 0.5)
        if not samples:
            lines = fwd.by(fw.samples(), "flagwatch_lines_total", "source")
            pytest.fail("flagwatch lines_total %s, want envoy=%d (files %s) journal=%d; daemon:\n%s"
                        % (lines, file_lines, stable, want_journal_lines, fw.stderr()), pytrace=False)
        flags = fwd.by(samples, "flagwatch_response_flags_total", "upstream_cluster", "response_flag")
        codes = fwd.by(samples, "flagwatch_responses_total", "upstream_cluster", "code_class")
        malformed = fwd.by(samples, "flagwatch_lines_malformed_total", "source", "reason")
        assert not any(malformed.values()), malformed

        envoy_2xx = {c: counters["cluster.%s.upstream_rq_2xx" % c] for c in (API, INVENTORY)}
        envoy_uf = counters["cluster.%s.upstream_rq_pending_failure_eject" % API]
        for cluster in (API, INVENTORY):
            assert codes.get((cluster, "2xx"), 0) == envoy_2xx[cluster], (cluster, codes, envoy_2xx)
        assert flags.get((API, "UF"), 0) == envoy_uf, (flags, envoy_uf)
        assert envoy_uf > 0
        # One line per request Envoy completed, each counted once under its cluster.
        envoy_total = sum(v for (c, _), v in codes.items() if c in (API, INVENTORY))
        completed = counters["http.ingress_http.downstream_rq_completed"]
        assert envoy_total == file_lines == completed, (codes, file_lines, completed)

        got_journal_flags = {f: v for (c, f), v in flags.items() if c == JOURNAL_CLUSTER}
        got_journal_codes = {k: v for (c, k), v in codes.items() if c == JOURNAL_CLUSTER and v}
        assert got_journal_flags == want_journal_flags, (got_journal_flags, want_journal_flags)
        assert got_journal_codes == want_journal_codes, (got_journal_codes, want_journal_codes)
        assert not [k for k in flags if "noise" in k[0]], "the sshd noise was counted: %s" % flags

        # -- Prometheus has the same numbers ------------------------------------------------
        want = {
            (API, "flags"): {f: v for (c, f), v in flags.items() if c == API},
            (API, "codes"): {k: v for (c, k), v in codes.items() if c == API},
            (INVENTORY, "codes"): {k: v for (c, k), v in codes.items() if c == INVENTORY},
            (JOURNAL_CLUSTER, "flags"): want_journal_flags,
            (JOURNAL_CLUSTER, "codes"): {k: v for (c, k), v in codes.items() if c == JOURNAL_CLUSTER},
        }
        last = {}

        def prometheus_agrees():
            for (cluster, kind), expected in want.items():
                if kind == "flags":
                    got = prometheus_values(prom, "flagwatch_response_flags_total", "response_flag", cluster)
                else:
                    got = prometheus_values(prom, "flagwatch_responses_total", "code_class", cluster)
                last[(cluster, kind)] = got
                if got != expected:
                    return False
            return True

        assert fwd.poll(prometheus_agrees, PROMETHEUS_DEADLINE_S, 1.0), (
            "Prometheus does not return flagwatch's numbers:\n got  %s\n want %s\ntargets: %s"
            % (last, want, [(t.get("health"), t.get("lastError")) for t in prom.targets()]))
        up = prom.query('up{job="flagwatch"}')
        assert up and up[0][1] == 1.0, up

        print("\nfull stack: alert %.1f s after the backend stopped, resolved %.1f s after it returned; "
              "envoy lines %d (files %s), api 2xx %d UF %d, inventory 2xx %d; journal lines %d %s; %.0f s"
              % (fired_after, resolved_after, file_lines, stable, envoy_2xx[API], envoy_uf, envoy_2xx[INVENTORY],
                 want_journal_lines, want_journal_flags, time.monotonic() - t0))
    finally:
        if traffic is not None:
            traffic.stop()
        procs.stop_all()
        if jd is not None:
            jd.stop()
