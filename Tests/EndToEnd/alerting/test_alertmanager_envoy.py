"""End-to-end: real Envoy traffic, a backend switched off, and the alert in a real Alertmanager.

The module fixture `stack` starts two toggle backends (api, inventory), Envoy 1.40 in front of
them writing Istio's TEXT log, a real Alertmanager, and `flagwatch run` following the log with
rules evaluated every second and Alertmanager as receiver; a client thread sends about 20
requests per second to each service for the whole test.

  test_backend_down_fires_and_resolves  the api backend is stopped: UF spike -> the alert
        UpstreamConnectFailures (response_flag UF, service api, namespace default) is in
        Alertmanager's /api/v2/alerts with likely cause "backend down" within the deadline,
        trend "rising" (the spike has just started) and first_seen_failing (RFC 3339 UTC) between
        the backend's stop and now, in the annotations, in the daemon's /api/v1/alerts figures,
        on the status page and in the transition's log line;
        the backend is started again on the same port -> the alert leaves Alertmanager
        (resolved), and the daemon logged firing -> resolved.
  test_no_healthy_upstream_fires_and_resolves  the inventory backend fails Envoy's health check:
        UH -> NoHealthyUpstream with likely cause "no ready endpoints"; healthy again -> resolved.
  test_counts_equal_envoy  after the traffic stops: the daemon's counters equal Envoy's own per
        cluster (2xx responses, UF, UH), and every notification was delivered.
"""
import datetime
import http.client
import json
import os
import signal
import time

import pytest

from harness.alerting import API, INVENTORY, Traffic, am_alert
from harness.components import Alertmanager, start_backend
from harness.envoy import Procs, complete_lines, fetch_counters, find_envoy, start_alerting_envoy as start_envoy, tail, wait_for_stable_logs

pytestmark = pytest.mark.e2e

FIRE_DEADLINE_S = 45      # rule: 10 s window, for 2 s, evaluated every 1 s; plus delivery
RESOLVE_DEADLINE_S = 45   # the 10 s window empties, resolve_after 3 s, then delivery

CONFIG = """\
listen: "127.0.0.1:0"
state_dir: {state}
sources:
  - {{name: envoy, files: ["{log}"], format: istio, start_at: beginning}}
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
    - name: NoHealthyUpstream
      flags: [UH]
      window: 10s
      min_count: 5
      ratio: 0.5
      for: 2s
      resolve_after: 3s
      severity: critical
"""


class Stack:
    pass


@pytest.fixture(scope="module")
def stack(tmp_path_factory, fwd):
    envoy_bin = find_envoy()
    work = tmp_path_factory.mktemp("alerting-e2e")
    procs = Procs()
    s = Stack()
    s.work, s.procs, s.fwd = work, procs, fwd
    s.log = work / "access-istio.log"
    s.traffic = None
    try:
        s.api, s.api_port = start_backend(procs, work, "api")
        s.inventory, s.inventory_port = start_backend(procs, work, "inventory")
        s.admin, s.envoy_port = start_envoy(procs, work, envoy_bin, s.log, s.api_port, s.inventory_port)
        s.alertmanager = Alertmanager(procs, work / "alertmanager")
        s.daemon = fwd.Daemon(procs, work / "daemon", CONFIG.format(state=work / "state", log=s.log,
                                                                    alertmanager=s.alertmanager.url))
        s.traffic = Traffic(s.envoy_port)
        s.traffic.start()
        yield s
    finally:
        if s.traffic is not None:
            s.traffic.stop()
        procs.stop_all()


def daemon_alerts(stack):
    status, _, body = stack.fwd.http_get(stack.daemon.port, "/api/v1/alerts")
    assert status == 200
    return json.loads(body)["data"]["alerts"]


def rfc3339_utc(text):
    """Seconds since the epoch of an RFC 3339 time in UTC to the second (`2026-12-07T02:18:04Z`)."""
    moment = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    return moment.replace(tzinfo=datetime.timezone.utc).timestamp()


def wait_healthy_baseline(stack):
    """Some healthy traffic first: no alert anywhere."""
    assert stack.fwd.poll(lambda: stack.traffic.sent["api"] >= 40, 30), "no traffic through Envoy"
    assert am_alert(stack, "UpstreamConnectFailures", API) is None
    assert daemon_alerts(stack) == []


def test_backend_down_fires_and_resolves(stack):
    wait_healthy_baseline(stack)
    # The api backend goes away: Envoy's connections are refused (UF).
    stopped_at = time.time()
    os.kill(stack.api.pid, signal.SIGTERM)
    stack.api.wait(timeout=10)
    started = time.monotonic()
    alert = stack.fwd.poll(lambda: am_alert(stack, "UpstreamConnectFailures", API), FIRE_DEADLINE_S, 0.5)
    assert alert, "no alert in Alertmanager %.0f s after the backend stopped; daemon:\n%s" % (
        FIRE_DEADLINE_S, stack.daemon.stderr())
    fired_after = time.monotonic() - started
    labels, annotations = alert["labels"], alert["annotations"]
    assert labels["response_flag"] == "UF"
    assert labels["service"] == "api" and labels["namespace"] == "default"
    assert labels["severity"] == "critical"
    assert "backend down" in annotations["likely_cause"], annotations
    assert "kubectl" in annotations["next_steps"] or "istioctl" in annotations["next_steps"], annotations
    assert annotations["summary"].startswith("UF spike on " + API)
    assert alert["generatorURL"].startswith("http://127.0.0.1:%d/" % stack.daemon.port)
    assert alert["status"]["state"] == "active"
    print("alert in Alertmanager %.1f s after the backend stopped" % fired_after)

    # The spike has just started: the last 10 s hold the UF, the 50 s before them none.
    assert annotations["trend"] == "rising", annotations
    first_seen = rfc3339_utc(annotations["first_seen_failing"])
    assert stopped_at - 1 <= first_seen <= time.time() + 1, (annotations, stopped_at)
    entry = next(a for a in daemon_alerts(stack) if a["labels"]["alertname"] == "UpstreamConnectFailures")
    figures = entry["figures"]
    assert figures["likelyCause"] == "backend down", figures
    assert figures["trend"] in ("rising", "steady", "falling"), figures
    assert abs(rfc3339_utc(figures["firstSeenFailing"]) - first_seen) <= 1, (figures, annotations)
    assert entry["annotations"]["trend"] == figures["trend"], entry
    status, _, page = stack.fwd.http_get(stack.daemon.port, "/")
    assert status == 200
    assert '<dd class="trend">rising, first seen failing <time>' in page.decode(), page.decode()[:4000]
    log = (stack.work / "daemon" / "flagwatch.stderr.log").read_text()
    assert "trend=rising" in log and "first_seen_failing=" in log, log[-3000:]

    # The backend comes back on the same port: the alert resolves and leaves Alertmanager.
    stack.api, _ = start_backend(stack.procs, stack.work, "api-again", stack.api_port)
    started = time.monotonic()
    gone = stack.fwd.poll(lambda: am_alert(stack, "UpstreamConnectFailures", API) is None, RESOLVE_DEADLINE_S, 0.5)
    assert gone, "the alert is still active in Alertmanager %.0f s after the backend returned" % RESOLVE_DEADLINE_S
    print("resolved in Alertmanager %.1f s after the backend returned" % (time.monotonic() - started))
    log = (stack.work / "daemon" / "flagwatch.stderr.log").read_text()
    assert "alert UpstreamConnectFailures on %s: firing -> resolved" % API in log


def test_no_healthy_upstream_fires_and_resolves(stack):
    def control(path):
        conn = http.client.HTTPConnection("127.0.0.1", stack.inventory_port, timeout=5)
        conn.request("POST", path, body=b"")
        assert conn.getresponse().status == 200
        conn.close()

    control("/control/unhealthy")
    try:
        alert = stack.fwd.poll(lambda: am_alert(stack, "NoHealthyUpstream", INVENTORY), FIRE_DEADLINE_S, 0.5)
        assert alert, "no UH alert in Alertmanager; daemon:\n%s" % stack.daemon.stderr()
        assert alert["labels"]["response_flag"] == "UH"
        assert "no ready endpoints" in alert["annotations"]["likely_cause"], alert["annotations"]
        assert "endpointslice" in alert["annotations"]["next_steps"], alert["annotations"]
    finally:
        control("/control/healthy")
    gone = stack.fwd.poll(lambda: am_alert(stack, "NoHealthyUpstream", INVENTORY) is None, RESOLVE_DEADLINE_S, 0.5)
    assert gone, "the UH alert did not resolve"


def test_counts_equal_envoy(stack):
    stack.traffic.stop()
    sent = sum(stack.traffic.sent.values())
    wait_for_stable_logs([stack.log], sent, timeout=20)
    lines = complete_lines(stack.log)
    counters = fetch_counters(stack.admin)

    def counted():
        samples = stack.daemon.samples()
        total = sum(value for _, value in stack.fwd.select(samples, "flagwatch_lines_total"))
        return samples if total == lines else None

    samples = stack.fwd.poll(counted, 20, 0.2)
    assert samples, "the daemon did not count all %d lines" % lines
    flags = stack.fwd.by(samples, "flagwatch_response_flags_total", "upstream_cluster", "response_flag")
    codes = stack.fwd.by(samples, "flagwatch_responses_total", "upstream_cluster", "code_class")
    for cluster in (API, INVENTORY):
        assert codes.get((cluster, "2xx"), 0) == counters["cluster.%s.upstream_rq_2xx" % cluster], cluster
    assert flags.get((API, "UF"), 0) == counters["cluster.%s.upstream_rq_pending_failure_eject" % API]
    assert flags.get((INVENTORY, "UH"), 0) == counters["cluster.%s.upstream_cx_none_healthy" % INVENTORY]
    assert flags.get((API, "UF"), 0) > 0 and flags.get((INVENTORY, "UH"), 0) > 0
    results = stack.fwd.by(samples, "flagwatch_notifications_total", "receiver", "result")
    receiver = "alertmanager " + stack.alertmanager.url
    assert results.get((receiver, "success"), 0) >= 4, results  # two alerts, fired and resolved
    assert stack.fwd.by(samples, "flagwatch_notification_queue_length", "receiver").get((receiver,), 0) == 0
