"""End-to-end: Envoy 1.40 streams every scenario of harness/envoy.py to `flagwatch run` over
gRPC (issue 16): exact counts against Envoy's own counters, and a flagwatch restart mid-traffic.

Both tests start backends.py and a real Envoy on the bootstrap of the file tests
(envoy-bootstrap.yaml.in) with one LogReceiver (harness.envoy.grpc_als_receiver): besides the
two files, `envoy.access_loggers.http_grpc` on the HTTP listener and `tcp_grpc` on the two
tcp_proxy listeners stream every entry to a flagwatch `grpc_access_log` source (source "mesh")
through an HTTP/2 cluster, flushing every 0.1 s. The first test adds a second LogReceiver
(harness.envoy.otel_receiver): Envoy's OpenTelemetry logger, the fields as attributes, on both
kinds of listener, to a second flagwatch (its totals are compared alone).

  test_every_scenario_streamed_over_grpc_is_counted_as_envoys_counters_say
      all 23 SCENARIOS (HTTP and TCP), interleaved in rounds. flagwatch's /metrics, per
      (cluster, flag) and per (cluster, code class), equal what expected_counts derives from
      Envoy's counters, with ALS's cluster semantics: an entry for which Envoy selected no
      upstream host (UH, FI, a pending-queue UO) has no upstream_cluster, so it counts under "-"
      (STREAMED_WITHOUT_HOST). lines_total{source="mesh"} equals Envoy's
      access_logs.grpc_access_log.grpc_entries_flushed (HTTP and TCP entries), which equals the
      requests sent; logs_written equals the HTTP entries (Envoy counts TCP entries there not at
      all); nothing dropped by Envoy (logs_dropped, grpc_entries_flush_failed) or by flagwatch
      (received_*_dropped_total), nothing malformed. Envoy's file log, parsed by the harness's
      own parser, is checked against the same counters first (a failure there is not
      flagwatch's). The OpenTelemetry flagwatch's /metrics equal expected_counts exactly, with
      the route's cluster on every entry (%UPSTREAM_CLUSTER_RAW%: no "-" for UH, FI or UO),
      lines_total equals the requests sent, and nothing is dropped on either side.

  test_a_flagwatch_restart_mid_traffic_loses_only_what_envoy_sent_while_it_was_down
      a client thread sends one request after another; the target changes with the phase, so
      each phase's entries are told apart by cluster: BEFORE (reviews, 200), DOWN (payments,
      UF: from the moment the stop is decided until the new flagwatch is ready) and AFTER
      (catalog, UC): clusters where Envoy selects a host, so the entries carry the cluster.
      flagwatch is stopped by PID with SIGTERM, the client keeps sending, flagwatch is started
      again on the same ports, the client keeps sending, then stops. Exactly:
        - every BEFORE entry was counted by the first flagwatch before it was stopped;
        - it left nothing in state_dir; the second one counted no BEFORE entry (nothing
          carried over or counted twice) and every AFTER entry (Envoy reconnects by itself);
        - first run (its "stopped" log line) + second run + lost == Envoy's
          grpc_entries_flushed == requests sent, and the lost are DOWN entries only;
        - every entry Envoy logged after the first flagwatch exited and flushed before the
          second one started is among the lost: Envoy neither buffers nor retries; it counts
          none of them in logs_dropped or grpc_entries_flush_failed, only the refused streams
          on the flagwatch_als cluster (upstream_cx_connect_fail,
          upstream_rq_pending_failure_eject) show the outage.
      The measured numbers are printed (docs/formats.md §10.3 has them).

Only 127.0.0.1; every process is stopped by PID (the procs fixture); every wait is bounded.
"""
import collections
import re
import signal
import threading
import time

import pytest

from harness.envoy import (
    SCENARIOS, STREAMED_WITHOUT_HOST, count_log, counter_value, counts_from_metrics, differences, expected_counts,
    fetch_counters, find_envoy, grpc_als_receiver, http_get, otel_log_counters, otel_receiver, parse_text,
    send_rounds, start_envoy, streamed_log_counters, svc, vhost, wait_for_stable_logs,
)
from harness.flagwatch import FlagwatchRun, run_argv
from harness.metrics import metric_samples
from harness.net import LOOPBACK, free_port
from harness.polling import poll_until

pytestmark = pytest.mark.e2e

SOURCE = "mesh"
REQUESTS = 8                 # requests (or TCP connections) per scenario
ROUNDS = 2
TRAFFIC_BUDGET_S = 40.0
SETTLE_TIMEOUT = 15.0        # Envoy flushes every 0.1 s; flagwatch counts within a poll round
STOP_TIMEOUT = 10.0


def flagwatch_config(tmp, als_port):
    config = tmp / "flagwatch.yaml"
    (tmp / "state").mkdir(exist_ok=True)
    config.write_text('state_dir: %s\nsources:\n  - name: %s\n    grpc_access_log: { listen: "%s:%d" }\n'
                      % (tmp / "state", SOURCE, LOOPBACK, als_port))
    return config


def start_flagwatch(procs, config, metrics_port, log):
    run = FlagwatchRun(run_argv(config, metrics_port, ("--log-level", "info")), log, metrics_port, procs)
    return run.wait_ready()


def scrape(run):
    status, body = run.get("/metrics")
    assert status == 200, "GET /metrics: %s%s" % (status, run.context())
    return body


def settled(envoy_admin, run, want):
    """Envoy's counters and flagwatch's page once Envoy has handed `want` entries to its gRPC
    streams (grpc_entries_flushed) and flagwatch's lines_total has reached that (bounded)."""
    def check():
        counters = fetch_counters(envoy_admin)
        flushed = streamed_log_counters(counters)["flushed"]
        if flushed < want:
            return None
        body = scrape(run)
        lines = metric_samples(body.decode()).get('flagwatch_lines_total{source="%s"}' % SOURCE, 0)
        return (counters, body) if lines >= flushed else None
    return poll_until(check, SETTLE_TIMEOUT, "Envoy flushed %d streamed entries and flagwatch counted them"
                      % want, interval=0.2, context=run.context)


# --------------------------------------------------------------------------- every scenario

def test_every_scenario_streamed_over_grpc_is_counted_as_envoys_counters_say(tmp_path, procs):
    als_port, metrics_port = free_port(), free_port()
    run = start_flagwatch(procs, flagwatch_config(tmp_path, als_port), metrics_port, tmp_path / "flagwatch.log")
    # A second flagwatch receives Envoy's OpenTelemetry logger (its own totals, compared alone).
    (tmp_path / "otel").mkdir()
    otlp_port, otel_metrics_port = free_port(), free_port()
    otel_run = start_flagwatch(procs, flagwatch_config(tmp_path / "otel", otlp_port), otel_metrics_port,
                               tmp_path / "flagwatch-otel.log")
    text_log = tmp_path / "access-istio.log"
    stack = start_envoy(procs, tmp_path, find_envoy(), text_log, tmp_path / "access.json.log",
                        receivers=(grpc_als_receiver(als_port), otel_receiver(otlp_port)))

    t0 = time.monotonic()
    sent, client = send_rounds(REQUESTS, ROUNDS, TRAFFIC_BUDGET_S, stack.ports, stack.admin)
    total = sum(sent.values())
    wait_for_stable_logs([text_log], total)
    counters, body = settled(stack.admin, run, total)
    counters = fetch_counters(stack.admin)  # again: nothing may have come after the settle
    print("\n%d requests in %.1f s; streamed: %s" % (total, time.monotonic() - t0, streamed_log_counters(counters)))

    # The harness first: Envoy's file log, by the harness's own parser, against the same counters.
    harness = differences(expected_counts(SCENARIOS, sent, counters), count_log(text_log, parse_text),
                          "Envoy's text log (own parser)")
    harness += ["%s: sent %d, client saw %s, %s = %s" % (s.name, sent[s.name], dict(client[s.name]), s.stats[0],
                                                        counter_value(counters, s.stats[0], s))
                for s in SCENARIOS if s.kind != "uo" and counter_value(counters, s.stats[0], s) != sent[s.name]]
    if harness:
        pytest.fail("the Envoy harness itself is inconsistent (not a flagwatch problem):\n  "
                    + "\n  ".join(harness), pytrace=False)

    # The http_grpc and tcp_grpc loggers share one set of counters; logs_written counts the HTTP
    # entries only, grpc_entries_flushed both.
    tcp = [s for s in SCENARIOS if s.kind.startswith("tcp_")]
    tcp_total = sum(sent[s.name] for s in tcp)
    streamed = streamed_log_counters(counters)
    assert streamed == {"written": total - tcp_total, "dropped": 0, "flushed": total, "flush_failed": 0}, \
        "Envoy's gRPC access-log counters: %s (%d requests, %d of them TCP)" % (streamed, total, tcp_total)

    expected = expected_counts(SCENARIOS, sent, counters, without_host=STREAMED_WITHOUT_HOST)
    got = counts_from_metrics(body, SOURCE)
    problems = differences(expected, got, "flagwatch /metrics (gRPC)")
    if problems:
        pytest.fail("\n  ".join(["flagwatch's /metrics disagree with Envoy's counters:"] + problems), pytrace=False)
    samples = metric_samples(body.decode())
    assert samples['flagwatch_received_messages_dropped_total{source="%s"}' % SOURCE] == 0
    assert samples['flagwatch_received_entries_dropped_total{source="%s"}' % SOURCE] == 0
    assert got["lines"] == streamed["flushed"]
    assert sum(got["clusters"][s.cluster]["codes"].get("0", 0) for s in tcp) == tcp_total, \
        "the tcp_grpc entries (code 0) are all there"

    # OpenTelemetry: every entry, HTTP and TCP, under the route's cluster (no STREAMED_WITHOUT_HOST).
    otel_body = poll_until(
        lambda: (lambda body: body if metric_samples(body.decode()).get(
            'flagwatch_lines_total{source="%s"}' % SOURCE, 0) >= total else None)(scrape(otel_run)),
        SETTLE_TIMEOUT, "the OpenTelemetry flagwatch counting %d entries" % total, interval=0.2,
        context=otel_run.context)
    time.sleep(0.5)
    otel_body = scrape(otel_run)
    otel_counters = otel_log_counters(fetch_counters(stack.admin))
    print("OpenTelemetry logger: %s" % otel_counters)
    assert otel_counters == {"written": total, "dropped": 0}, "Envoy's OpenTelemetry logger: HTTP and TCP entries"
    otel_got = counts_from_metrics(otel_body, SOURCE)
    problems = differences(expected_counts(SCENARIOS, sent, counters), otel_got, "flagwatch /metrics (OTLP)")
    if problems:
        pytest.fail("\n  ".join(["flagwatch's /metrics of the OTLP source disagree with Envoy's counters:"]
                                + problems), pytrace=False)
    otel_samples = metric_samples(otel_body.decode())
    assert otel_got["lines"] == total
    assert otel_samples['flagwatch_received_entries_dropped_total{source="%s"}' % SOURCE] == 0


# --------------------------------------------------------------------------- restart

PHASES = {  # phase -> (Host, path, cluster, the Envoy counter that counts its requests, client status)
    "before": (vhost("reviews"), "/reviews/1", svc(8080, "reviews"), "upstream_rq_2xx", "200"),
    "down": (vhost("payments"), "/", svc(9001, "payments"), "upstream_rq_pending_failure_eject", "503"),
    "after": (vhost("catalog"), "/", svc(8080, "catalog"), "upstream_cx_destroy_remote_with_active_rq", "503"),
}
REQUEST_GAP_S = 0.02     # the client's pause between requests: about 40 requests per second
BEFORE_S = 2.0
DOWN_S = 3.0             # from the process's exit until the second flagwatch is started
AFTER_S = 2.0
FLUSH_MARGIN_S = 0.5
STOPPED_LINE = re.compile(r"received (\d+) entries")


class Client(threading.Thread):
    """Sends requests one after another to the current phase's host until stopped; counts
    what it saw per phase."""

    def __init__(self, http_port):
        super().__init__(daemon=True)
        self.http_port = http_port
        self.phase = "before"
        self.seen = collections.defaultdict(collections.Counter)
        self.started = {}  # phase -> the moment its first request began
        self.times = collections.defaultdict(list)  # phase -> [(began, answered)] of each request
        self.done = threading.Event()
        self.error = None

    def run(self):
        try:
            while not self.done.is_set():
                phase = self.phase
                self.started.setdefault(phase, time.monotonic())
                host, path, _, _, _ = PHASES[phase]
                began = time.monotonic()
                self.seen[phase][http_get(self.http_port, host, path, "flagwatch-e2e/restart")] += 1
                self.times[phase].append((began, time.monotonic()))
                time.sleep(REQUEST_GAP_S)
        except Exception as error:  # noqa: BLE001 - reported by the test
            self.error = error

    def switch(self, phase):
        """From now on `phase`; returns once its first request began, so every request of the
        phase before has been answered (one request at a time)."""
        self.phase = phase
        poll_until(lambda: phase in self.started or self.error, 10, "the client's first %s request" % phase)

    def finish(self):
        self.done.set()
        self.join(10)
        assert not self.is_alive() and self.error is None, "client: %r" % self.error


def phase_counter(counters, phase):
    _, _, cluster, stat, _ = PHASES[phase]
    return counters["cluster.%s.%s" % (cluster, stat)]


def cluster_lines(body, phase):
    return counts_from_metrics(body, SOURCE)["clusters"].get(PHASES[phase][2], {"requests": 0})["requests"]


def test_a_flagwatch_restart_mid_traffic_loses_only_what_envoy_sent_while_it_was_down(tmp_path, procs):
    als_port, metrics_port = free_port(), free_port()
    config = flagwatch_config(tmp_path, als_port)
    first = start_flagwatch(procs, config, metrics_port, tmp_path / "flagwatch-1.log")
    stack = start_envoy(procs, tmp_path, find_envoy(), tmp_path / "access-istio.log", tmp_path / "access.json.log",
                        receivers=(grpc_als_receiver(als_port),))
    als = "cluster.flagwatch_als."
    client = Client(stack.ports["http"])
    client.start()
    try:
        time.sleep(BEFORE_S)
        client.switch("down")
        # Every BEFORE entry reaches the first flagwatch before it is stopped.
        before = poll_until(lambda: (lambda c: c if phase_counter(c, "before") == cluster_lines(scrape(first), "before")
                                     else None)(fetch_counters(stack.admin)),
                            SETTLE_TIMEOUT, "the first flagwatch counted every BEFORE entry", interval=0.1)
        envoy_before = phase_counter(before, "before")
        stop_at = time.monotonic()
        status = first.stop(signal.SIGTERM, STOP_TIMEOUT)
        exited_at = time.monotonic()
        assert status == 0, first.context()
        at_exit = fetch_counters(stack.admin)
        # A receiving source has nothing to resume from: the state directory stays empty.
        assert sorted(p.name for p in (tmp_path / "state").iterdir()) == []
        time.sleep(DOWN_S)
        down_counters = fetch_counters(stack.admin)
        restart_at = time.monotonic()
        second = start_flagwatch(procs, config, metrics_port, tmp_path / "flagwatch-2.log")
        ready_at = time.monotonic()
        client.switch("after")
        time.sleep(AFTER_S)
    finally:
        client.finish()

    sent = {phase: sum(client.seen[phase].values()) for phase in PHASES}
    total = sum(sent.values())

    def all_after_counted():
        c = fetch_counters(stack.admin)
        return (c, scrape(second)) if phase_counter(c, "after") == cluster_lines(scrape(second), "after") else None
    counters, body = poll_until(all_after_counted, SETTLE_TIMEOUT, "the second flagwatch counted every AFTER entry")
    counters = fetch_counters(stack.admin)
    assert second.stop(signal.SIGTERM, STOP_TIMEOUT) == 0, second.context()

    first_total = stopped_count(first)
    second_total = stopped_count(second)
    second_lines = counts_from_metrics(body, SOURCE)
    streamed = streamed_log_counters(counters)
    envoy = {phase: phase_counter(counters, phase) for phase in PHASES}
    first_down = first_total - envoy_before
    second_by_phase = {phase: cluster_lines(body, phase) for phase in PHASES}
    lost = streamed["flushed"] - first_total - second_total
    # Logged after the first flagwatch had exited and flushed (every 0.1 s; FLUSH_MARGIN_S allows
    # for a late timer) before the second one was started: into a refused stream, for sure.
    closed = sum(1 for began, answered in client.times["down"]
                 if began >= exited_at and answered <= restart_at - FLUSH_MARGIN_S)
    report = {
        "sent": sent, "envoy": envoy, "streamed": streamed, "first run": first_total,
        "second run": second_total, "second by phase": second_by_phase, "lost": lost,
        "logged while nothing listened": closed,
        "down answered before the exit": sum(1 for _, answered in client.times["down"] if answered <= exited_at),
        "stop to exit s": round(exited_at - stop_at, 2), "exit to ready s": round(ready_at - exited_at, 2),
        "als cluster at exit": {k[len(als):]: v for k, v in at_exit.items() if k.startswith(als) and v},
        "als cluster while down": {k[len(als):]: v - at_exit.get(k, 0) for k, v in down_counters.items()
                                   if k.startswith(als) and v != at_exit.get(k, 0)},
        "als cluster at end": {k[len(als):]: v for k, v in counters.items() if k.startswith(als) and v},
    }
    print("\nrestart: %r" % report)

    # What the client saw is what Envoy counted and logged.
    for phase, (_, _, _, _, answer) in PHASES.items():
        assert client.seen[phase] == {answer: sent[phase]}, (phase, dict(client.seen[phase]))
        assert envoy[phase] == sent[phase], report
    assert streamed == {"written": total, "dropped": 0, "flushed": total, "flush_failed": 0}, report
    # Before the stop: all counted. After the restart: all counted again, nothing twice.
    assert envoy_before == sent["before"], report
    assert second_by_phase["before"] == 0, report  # nothing counted twice, nothing carried over
    assert second_by_phase["after"] == sent["after"], report
    # The stop line and the last scrape agree.
    assert second_total == second_lines["lines"] == sum(second_by_phase.values()), report
    # What is lost: DOWN entries only, none counted by Envoy as dropped.
    assert first_down >= 0 and lost == sent["down"] - first_down - second_by_phase["down"], report
    # Envoy neither buffers nor retries across the outage: all it logged while nothing listened
    # is among the lost (the rest of the lost were written into the streams the stop ended).
    assert closed > 0 and lost >= closed, report
    # While the port was closed Envoy opened a stream per flush, each refused: its batch counted
    # as flushed (submitted to the stream), then gone with the stream.
    assert down_counters[als + "upstream_cx_connect_fail"] > at_exit.get(als + "upstream_cx_connect_fail", 0), report
    assert down_counters[als + "upstream_rq_pending_failure_eject"] > \
        at_exit.get(als + "upstream_rq_pending_failure_eject", 0), report
    assert first_total + second_total + lost == streamed["flushed"] == total


def stopped_count(run):
    """The entries a run counted, from its "stopped" log line."""
    found = STOPPED_LINE.findall(run.log_text())
    assert len(found) == 1, "one 'received N entries' line expected%s" % run.context()
    return int(found[0])
