"""A rule's `clusters.include` that a backtracking engine needs exponential time for
(`^(a+)+$` against a cluster named 26 `a` and a `b`) must not hang the daemon's one loop:
health checks keep answering, the alert engine still evaluates, SIGTERM still stops it.

Before cluster patterns were matched by a linear-time automaton, the first evaluation of that
rule on that cluster never returned: /-/healthy timed out and SIGTERM was not handled.
"""
import pytest

from harness.flagwatch import RunningDaemon
from harness.lines import istio_line
from harness.net import http_get
from harness.polling import poll_until
from harness.processes import Processes

pytestmark = pytest.mark.e2e

HOSTILE = "a" * 26 + "b"


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
    processes = Processes()
    try:
        daemon = RunningDaemon(processes, config, tmp_path / "flagwatch.stderr")
        with open(log, "a") as out:
            out.write("".join(istio_line(HOSTILE, "UF", 503, i) for i in range(20)))
            out.write("".join(istio_line("a" * 20, "UF", 503, i) for i in range(20)))
        # Both clusters counted, then several evaluations (every 1 s) with the loop still answering.
        poll_until(lambda: daemon.sample('flagwatch_lines_total{source="envoy"}') == 40, 15, "40 lines counted",
                   context=daemon.log)
        # The rule matches "aaaa…a" (20 a) and not the hostile name: one alert, firing.
        poll_until(lambda: daemon.sample('flagwatch_alerts{alertname="Catastrophic",state="firing"}') == 1, 15,
                   "one firing alert", context=daemon.log)
        for _ in range(10):
            assert http_get(daemon.url("/-/healthy"), timeout=1)[0] == 200
        assert processes.stop(daemon.process, grace=10) == 0, daemon.log()
    finally:
        processes.stop_all()
