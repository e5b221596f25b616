"""Cluster names chosen by whoever writes a log line (a JSON access log here; on a node anyone
can `logger -t envoy`) must not break `/metrics` for every other series.

Before label values were escaped on bytes, a quote or backslash followed by a combining mark
and CR LF were single grapheme clusters that the escaping `switch` matched to nothing: they went
out raw and the whole page failed to parse. Checked with `promtool check metrics` (text format),
a real Prometheus scraping the daemon (it negotiates OpenMetrics), the status page and the
daemon's own log (no raw CR, LF or NUL).
"""
import json
import shutil
import subprocess
from pathlib import Path

import pytest


pytestmark = pytest.mark.e2e

HOSTILE = [
    'q"\u0301}x',              # a quote and a combining mark: one grapheme cluster
    "a\r\nb",                  # CR LF: one grapheme cluster
    "back\\\u0301slash",       # a backslash and a combining mark
    "nul\u0000byte",
    "esc\u001b[31mred",
    "del\u007f",
    'end"} 1\nfake_metric 2',  # an attempt to inject a sample
    "<script>alert(1)</script>\u0301",
]
NORMAL = "outbound|8080||reviews.default.svc.cluster.local"


def json_line(cluster, flags="UF"):
    return json.dumps({"start_time": "2026-12-06T10:00:00.000Z", "method": "GET", "path": "/",
                       "protocol": "HTTP/1.1", "response_code": 503, "response_flags": flags,
                       "upstream_cluster": cluster, "upstream_host": "10.0.0.1:8080",
                       "authority": "reviews:8080", "duration": 3}) + "\n"


def test_hostile_cluster_names_keep_every_series_parseable_for_promtool_prometheus_and_the_status_page(
        tmp_path, procs, fwd):
    log = tmp_path / "access.json.log"
    lines = [json_line(name) for name in HOSTILE] + [json_line(NORMAL)] * 5
    log.write_text("".join(lines))
    config = fwd.daemon_config([{"name": "envoy", "files": [str(log)], "format": "json",
                                 "start_at": "beginning"}], tmp_path / "state")
    daemon = fwd.Daemon(procs, tmp_path / "daemon", config)
    def lines_read():
        return sum(value for _, value in fwd.select(daemon.samples(), "flagwatch_lines_total", source="envoy"))
    assert fwd.poll(lambda: lines_read() == len(lines), 15.0), "lines read: %s\n%s" % (lines_read(), daemon.stderr())

    for accept in (fwd.ACCEPT_PROMETHEUS, fwd.ACCEPT_OPENMETRICS):
        _, body = daemon.scrape(accept)
        for raw in (b"\r", b"\x00", b"\x1b", b"\x7f"):
            assert raw not in body, "raw %r in the %s page" % (raw, accept)
        assert b"\nfake_metric 2" not in body
        samples = fwd.parse_exposition(body)  # raises on a line that is not a sample
        flagged = fwd.by(samples, "flagwatch_response_flags_total", "upstream_cluster")
        assert len(flagged) == len(HOSTILE) + 1, flagged
        assert flagged[(NORMAL,)] == 5
        assert flagged[('q"\u0301}x',)] == 1 and flagged[("a\ufffd\nb",)] == 1

    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing (apt-get install prometheus)"
    _, text = daemon.scrape(fwd.ACCEPT_PROMETHEUS)
    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=60)
    errors = [line for line in checked.stdout.decode(errors="replace").splitlines() + checked.stderr.decode(errors="replace").splitlines()
              if "error" in line.lower() and "parse" in line.lower()]
    assert not errors, "promtool cannot parse /metrics:\n%s" % "\n".join(errors)

    prometheus = fwd.Prometheus(procs, tmp_path / "prometheus", {"flagwatch": ["127.0.0.1:%d" % daemon.port]})

    def scraped():
        targets = prometheus.targets()
        return targets and targets[0]["health"] == "up" and targets[0]["lastError"] == "" and targets
    targets = fwd.poll(scraped, 20.0, 0.5)
    assert targets, "Prometheus could not scrape the page: %r" % prometheus.targets()
    series = prometheus.query('flagwatch_response_flags_total{job="flagwatch"}')
    clusters = sorted(labels["upstream_cluster"] for labels, _ in series)
    assert len(clusters) == len(HOSTILE) + 1, clusters
    by_cluster = {labels["upstream_cluster"]: value for labels, value in series}
    assert by_cluster[NORMAL] == 5
    # Kept as they were: printable text, quotes, backslashes, combining marks, LF (escaped as \n).
    assert by_cluster['q"\u0301}x'] == 1
    assert by_cluster["back\\\u0301slash"] == 1
    assert by_cluster['end"} 1\nfake_metric 2'] == 1
    assert by_cluster["<script>alert(1)</script>\u0301"] == 1
    # Other control characters are replaced by U+FFFD (README, "Metrics").
    assert by_cluster["a\ufffd\nb"] == 1
    assert by_cluster["nul\ufffdbyte"] == 1
    assert by_cluster["esc\ufffd[31mred"] == 1
    assert by_cluster["del\ufffd"] == 1

    status, _, page = fwd.http_get(daemon.port, "/")
    assert status == 200
    assert b"<script>" not in page and "&lt;script&gt;".encode() in page
    for raw in (b"\x00", b"\x1b", b"\x7f"):
        assert raw not in page

    assert daemon.terminate() == 0
    own_log = Path(daemon.stderr_path).read_bytes()
    for line in own_log.split(b"\n"):
        assert b"\r" not in line and b"\x00" not in line and b"\x1b" not in line, line
