"""A rule's `clusters.include` that a backtracking engine needs exponential time for
(`^(a+)+$` against a cluster named 26 `a` and a `b`) must not hang the daemon's one loop:
health checks keep answering, the alert engine still evaluates, SIGTERM still stops it.

Before cluster patterns were matched by a linear-time automaton, the first evaluation of that
rule on that cluster never returned: /-/healthy timed out and SIGTERM was not handled.
"""
import os

import pytest

from e2e_helpers import Processes, free_port, http_get, log_tail, metric_samples, poll_until

pytestmark = pytest.mark.e2e

BIN = os.environ.get("FLAGWATCH_BIN") or os.path.join(os.path.dirname(__file__), "..", "..", "..", ".build", "debug", "flagwatch")
HOSTILE = "a" * 26 + "b"


def istio_line(cluster, index):
    return ('[2026-12-06T02:34:27.532Z] "GET /r/%d HTTP/1.1" 503 UF via_upstream - "-" 0 14 11 10 "-" '
            '"curl/8.5.0" "0d8e5a88-130d-4223-9294-7eee8276b7f5" "svc:8080" "10.244.1.7:8080" %s '
            "10.244.0.17:55718 10.244.0.17:15006 10.244.1.9:56922 - default\n" % (index, cluster))


def test_a_catastrophic_include_pattern_does_not_hang_the_loop(tmp_path):
    log = tmp_path / "access.log"
    log.write_text("")
    config = tmp_path / "flagwatch.yaml"
    config.write_text("""\
state_dir: %s
sources:
  - {name: envoy, files: ["%s"], format: istio, start_at: beginning}
alerting:
  evaluate_every: 1s
  rules:
    - name: Catastrophic
      flags: [UF]
      clusters: {include: "^(a+)+$"}
      window: 1m
      min_count: 1
      for: 0s
""" % (tmp_path / "state", log))
    port = free_port()
    url = "http://127.0.0.1:%d" % port
    stderr = tmp_path / "flagwatch.stderr"
    processes = Processes()
    try:
        daemon = processes.start([BIN, "run", "--config", config, "--listen", "127.0.0.1:%d" % port], stderr)
        poll_until(lambda: http_get(url + "/-/ready", timeout=2)[0] == 200, 20, "ready", context=lambda: log_tail(stderr))
        with open(log, "a") as out:
            out.write("".join(istio_line(HOSTILE, i) for i in range(20)))
            out.write("".join(istio_line("a" * 20, i) for i in range(20)))
        # Both clusters counted, then several evaluations (every 1 s) with the loop still answering.
        poll_until(lambda: metric_samples(http_get(url + "/metrics", timeout=2)[1].decode()).get(
            'flagwatch_lines_total{source="envoy"}') == 40, 15, "40 lines counted", context=lambda: log_tail(stderr))
        # The rule matches "aaaa…a" (20 a) and not the hostile name: one alert, firing.
        firing = poll_until(lambda: metric_samples(http_get(url + "/metrics", timeout=2)[1].decode()).get(
            'flagwatch_alerts{alertname="Catastrophic",state="firing"}') == 1, 15, "one firing alert",
            context=lambda: log_tail(stderr))
        assert firing
        for _ in range(10):
            assert http_get(url + "/-/healthy", timeout=1)[0] == 200
        assert processes.stop(daemon, grace=10) == 0, log_tail(stderr)
    finally:
        processes.stop_all()
