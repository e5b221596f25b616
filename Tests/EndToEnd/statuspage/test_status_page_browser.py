"""The status page (`GET /`) in a real browser: headless Chromium loads it from a running
`flagwatch run` that follows a log of real-shaped Istio lines, with a firing alert.

How the page is measured: Chromium runs with `--remote-debugging-pipe` (harness/browser.py), the
DevTools protocol over two pipes, standard library only. The test sets the viewport exactly
(`Emulation.setDeviceMetricsOverride`: 1280 x 900 as a desktop window, 390 x 844 as a phone with
the page's `<meta viewport>` honoured), loads the page, and reads the facts from the live DOM
with `Runtime.evaluate`: the panels' texts, `document.documentElement.scrollWidth` against
`innerWidth`, each timestamp's line boxes. The page itself has no script, so nothing the test
measures is put there by the page. Screenshots of the whole page at both widths are kept: in
pytest's tmp dir, and copied to $FLAGWATCH_TEST_ARTIFACTS (default `.build/test-artifacts/` of
the checkout), see docs/testing.md.
"""
import json
import os
import shutil
import subprocess

import pytest

from harness import REPO
from harness.browser import Chromium
from harness.flagwatch import BIN, daemon_config, start_run
from harness.net import http_get
from harness.polling import poll_until

pytestmark = pytest.mark.e2e

PAYMENTS = "outbound|9001||payments.default.svc.cluster.local"
REVIEWS = "outbound|9080||reviews.default.svc.cluster.local"
# Chosen by whoever writes a log line: a script tag, both quotes and an ampersand.
HOSTILE = "outbound|8080||<script>alert(\"x\")</script>'q&.default.svc.cluster.local"
# A name with nothing to break it at, longer than a phone is wide.
LONG = "outbound|15021||" + "a-very-long-service-name-with-no-spaces-at-all" * 3 + ".default.svc.cluster.local"

REFUSED_DETAILS = ("upstream_reset_before_response_started"
                   "{remote_connection_failure|delayed_connect_error:_Connection_refused}")
REFUSED_REASON = "delayed_connect_error:_Connection_refused"


def line(cluster, index, failed):
    """One Istio 1.9+ TEXT line (Istio's default format): a refused UF, or a 200."""
    if failed:
        status = '503 UF %s - "%s" 0 91 0 -' % (REFUSED_DETAILS, REFUSED_REASON)
    else:
        status = '200 - via_upstream - "-" 0 14 11 10'
    return ('[2026-12-06T02:34:27.532Z] "GET /r/%d HTTP/1.1" %s "-" "curl/8.5.0" '
            '"0d8e5a88-130d-4223-9294-7eee8276b7f5" "svc:8080" "10.244.1.7:8080" %s '
            "10.244.0.17:55718 10.244.0.17:15006 10.244.1.9:56922 - default\n" % (index, status, cluster))


LINES = ([line(PAYMENTS, i, failed=True) for i in range(30)] + [line(REVIEWS, i, failed=False) for i in range(20)]
         + [line(HOSTILE, i, failed=True) for i in range(6)] + [line(LONG, i, failed=True) for i in range(4)])

ALERTING = """alerting:
  evaluate_every: 1s
  rules:
    - name: UpstreamConnectFailures
      flags: [UF, URX]
      window: 1m
      min_count: 20
      for: 0s
"""

# Everything the test reads from the page, in one evaluation of the live DOM.
PAGE_FACTS = """(() => {
  const text = (root, selector) => { const e = root.querySelector(selector); return e ? e.textContent : null; };
  const failing = [...document.querySelectorAll('#failing article')].map(a => ({
    name: text(a, 'h3 .name'), cause: text(a, 'h3 .cause-label'), flag: text(a, 'h3 .flag'),
    likely: text(a, 'p.likely'), steps: [...a.querySelectorAll('pre.steps .cmd')].map(c => c.textContent),
    stepSelect: [...a.querySelectorAll('pre.steps .cmd')].map(c => getComputedStyle(c).userSelect),
    likelyTop: a.querySelector('p.likely').getBoundingClientRect().top,
  }));
  const alerts = [...document.querySelectorAll('#alerts article')].map(a => ({
    state: text(a, '.state'), cluster: text(a, 'p.name'), cause: text(a, '.cause-label'), likely: text(a, 'p.likely'),
  }));
  const boxes = [...document.querySelectorAll('.wide')].map(b => [b.scrollWidth, b.clientWidth]);
  return {
    innerWidth: window.innerWidth, scrollWidth: document.documentElement.scrollWidth,
    sections: [...document.querySelectorAll('main > section')].map(s => s.id),
    failing, alerts, boxes,
    scripts: document.getElementsByTagName('script').length,
    timeLines: [...document.querySelectorAll('time')].map(t => t.getClientRects().length),
  };
})()"""


def artifacts_dir():
    """$FLAGWATCH_TEST_ARTIFACTS, else .build/test-artifacts of the checkout (git-ignored)."""
    path = os.environ.get("FLAGWATCH_TEST_ARTIFACTS") or str(REPO / ".build" / "test-artifacts")
    os.makedirs(path, exist_ok=True)
    return path


def scan_diagnosis(log, cluster):
    """The diagnosis `flagwatch scan --output json` gives the same lines (same diagnoser)."""
    result = subprocess.run([BIN, "scan", "--output", "json", str(log)], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return json.loads(result.stdout)["clusters"][cluster]["diagnosis"]


def test_the_status_page_leads_with_each_failing_clusters_cause_and_next_steps_and_fits_1280_px_and_a_phone(
        tmp_path, procs):
    log = tmp_path / "istio-access.log"
    log.write_text("".join(LINES))
    config = tmp_path / "flagwatch.yaml"
    config.write_text(daemon_config([{"name": "envoy", "files": [str(log)], "format": "istio",
                                      "start_at": "beginning"}], tmp_path / "state") + ALERTING)
    daemon = start_run(procs, config, tmp_path / "flagwatch.log")
    poll_until(lambda: daemon.lines_total() == len(LINES), 20, "all %d lines counted" % len(LINES),
               context=daemon.log_text)

    def payments_firing():
        alerts = json.loads(http_get(daemon.url("/api/v1/alerts"))[1])["data"]["alerts"]
        return [a for a in alerts if a["labels"]["upstream_cluster"] == PAYMENTS and a["state"] == "firing"]
    poll_until(payments_firing, 20, "the alert on payments fires", context=daemon.log_text)

    expected = scan_diagnosis(log, PAYMENTS)
    assert expected["cause"] == "backend down"
    assert expected["likely_cause"].startswith(
        "backend down, wrong port or NetworkPolicy: 30 of 30 UF were connection refused"), expected
    assert "kubectl get endpointslice -n default -l kubernetes.io/service-name=payments" in expected["next_steps"]

    browser = Chromium(procs, tmp_path)
    shots = []
    try:
        for width, height in ((1280, 900), (390, 844)):
            browser.open(daemon.url("/"), width, height)
            facts = browser.evaluate(PAGE_FACTS)
            shot = browser.screenshot(tmp_path / ("status-page-%d.png" % width))
            shots.append(shot)
            where = "at %d px (screenshot %s)" % (width, shot)

            # No sideways scrolling: the page is exactly as wide as the viewport asked for.
            assert facts["innerWidth"] == width, where
            assert facts["scrollWidth"] <= facts["innerWidth"], (where, facts["scrollWidth"])
            assert facts["sections"] == ["failing", "alerts", "clusters", "sources"], where
            # Timestamps are never broken over two lines.
            assert facts["timeLines"] and set(facts["timeLines"]) == {1}, (where, facts["timeLines"])
            assert facts["scripts"] == 0 and browser.dialogs == [], (where, browser.dialogs)

            # The failing clusters: payments first (its alert fires), then the hostile name
            # (6 UF), then the long one (4 UF); reviews answers fine and has no panel.
            assert [p["name"] for p in facts["failing"]] == [PAYMENTS, HOSTILE, LONG], where
            payments = facts["failing"][0]
            assert payments["cause"] == "backend down" and payments["flag"] == "UF", where
            assert payments["likely"] == expected["likely_cause"], where
            assert payments["steps"] == expected["next_steps"], where
            assert set(payments["stepSelect"]) == {"all"}, where  # a click selects a whole command
            # The hostile name is text: shown exactly, no element made of it.
            assert facts["failing"][1]["name"] == HOSTILE, where

            assert facts["alerts"] == [{"state": "firing", "cluster": PAYMENTS, "cause": "backend down",
                                        "likely": "backend down" + expected["likely_cause"]}], where
            if width == 1280:
                # On a desktop, payments' cause is on the first screen, and no table scrolls inside its box.
                assert 0 < payments["likelyTop"] < height, where
                assert all(scroll <= client for scroll, client in facts["boxes"]), (where, facts["boxes"])
    finally:
        browser.close()
        kept = artifacts_dir()
        for shot in shots:
            shutil.copy(shot, kept)
        print("status page screenshots: %s" % ", ".join(os.path.join(kept, s.name) for s in shots))
