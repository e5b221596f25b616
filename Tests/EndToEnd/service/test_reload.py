"""SIGHUP reload under traffic: sources added and removed, a rule changed, an invalid config
rejected, and nothing lost or counted twice — counts before + after equal the lines written,
windows and alert states carry over."""
import json
import signal
import threading
import time

from harness.lines import istio_line

CLUSTER_A = "outbound|8080||api.default.svc.cluster.local"
CLUSTER_B = "outbound|9090||pay.shop.svc.cluster.local"


def config_text(tmp_path, with_b, min_count=5, extra_window=False):
    text = (
        "state_dir: %s\n"
        "windows: [1m, 5m%s]\n"
        "sources:\n"
        "  - name: envoy\n"
        "    files: [\"%s/a*.log\"]\n"
        "    format: istio\n"
        "    start_at: beginning\n" % (tmp_path / "state", ", 15m" if extra_window else "", tmp_path / "logs")
    )
    if with_b:
        text += (
            "  - name: second\n"
            "    files: [\"%s/b*.log\"]\n"
            "    format: istio\n"
            "    start_at: beginning\n" % (tmp_path / "logs")
        )
    text += (
        "alerting:\n"
        "  evaluate_every: 1s\n"
        "  rules:\n"
        "    - name: ConnectFailures\n"
        "      flags: [UF, URX]\n"
        "      window: 1m\n"
        "      min_count: %d\n"
        "      for: 0s\n"
        "      severity: critical\n" % min_count
    )
    return text


class Writer(threading.Thread):
    """Appends lines to a file at about `rate` lines/s, in small bursts, until stopped."""

    def __init__(self, path, cluster, flags, code, rate=2000):
        super().__init__(daemon=True)
        self.path, self.cluster, self.flags, self.code, self.rate = path, cluster, flags, code, rate
        self.written = 0
        self.halt = threading.Event()

    def run(self):
        with open(self.path, "a") as out:
            while not self.halt.is_set():
                burst = "".join(istio_line(self.cluster, self.flags, self.code, self.written + i) for i in range(self.rate // 50))
                # Half a line now and the rest with the next burst sometimes: reloads must not
                # lose or double a line that is being written.
                out.write(burst)
                out.flush()
                self.written += self.rate // 50
                time.sleep(0.02)


def lines(samples, source):
    return samples.get('flagwatch_lines_total{source="%s"}' % source, 0)


def flag_total(samples, cluster, flag):
    return samples.get('flagwatch_response_flags_total{upstream_cluster="%s",response_flag="%s"}' % (cluster, flag), 0)


def test_reload_under_traffic_keeps_counts_windows_and_alerts(tmp_path, start_daemon):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.log").write_text("")
    (logs / "b.log").write_text("".join(istio_line(CLUSTER_B, "UH", 503, i) for i in range(300)))
    daemon = start_daemon(config_text(tmp_path, with_b=False))
    daemon.wait_ready()
    writer = Writer(logs / "a.log", CLUSTER_A, "UF", 503)
    writer.start()
    try:
        # The rule fires on the UF traffic.
        deadline = time.monotonic() + 20
        alerts = []
        while time.monotonic() < deadline:
            alerts = json.loads(daemon.get("/api/v1/alerts")[1])["data"]["alerts"]
            if any(a["state"] == "firing" for a in alerts):
                break
            time.sleep(0.2)
        assert any(a["state"] == "firing" for a in alerts), "no firing alert before the reloads: %r%s" % (alerts, daemon.context())
        fired_at = [a for a in alerts if a["state"] == "firing"][0]["firedAt"]

        # Reload 1: a second source appears (read from its beginning) and the rule's threshold changes.
        daemon.config.write_text(config_text(tmp_path, with_b=True, min_count=6))
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_for(lambda s: lines(s, "second") == 300, "the added source's 300 lines")
        time.sleep(0.5)
        # Reload 2: an invalid config is rejected; everything keeps running as before.
        daemon.config.write_text("sources:\n  - name: envoy\n    files: 12\n")
        daemon.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        # Reload 3: an extra window (windows re-laid out, rings copied); the second source removed.
        daemon.config.write_text(config_text(tmp_path, with_b=False, min_count=6, extra_window=True))
        daemon.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        # Reload 4: nothing changed.
        daemon.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
    finally:
        writer.halt.set()
        writer.join(10)
    written = writer.written
    samples = daemon.wait_for(lambda s: lines(s, "envoy") >= written, "all %d lines of a.log" % written)
    time.sleep(1.0)
    samples = daemon.samples()
    # Nothing lost, nothing counted twice across four reloads.
    assert lines(samples, "envoy") == written, (lines(samples, "envoy"), written)
    assert flag_total(samples, CLUSTER_A, "UF") == written
    assert flag_total(samples, CLUSTER_B, "UH") == 300
    # The 1m window holds the lines of the last minute: every one of them, across the relayout.
    window = samples.get('flagwatch_responses_window{upstream_cluster="%s",window="1m"}' % CLUSTER_A, 0)
    assert 0 < window <= written
    window_15m = samples.get('flagwatch_responses_window{upstream_cluster="%s",window="15m"}' % CLUSTER_A)
    assert window_15m == written, "the new 15m window should start with what the 5m one held: %r vs %d" % (window_15m, written)
    text = daemon.stderr_text()
    assert text.count("configuration reloaded") == 3, daemon.context()
    rejected = [line for line in text.splitlines() if "reload rejected, the running configuration stays in force" in line]
    assert len(rejected) == 1 and "files" in rejected[0] and "flagwatch.yaml:3" in rejected[0], daemon.context()
    # The alert kept firing through the reloads, with its original firing time.
    alerts = json.loads(daemon.get("/api/v1/alerts")[1])["data"]["alerts"]
    firing = [a for a in alerts if a["state"] == "firing"]
    assert firing and firing[0]["firedAt"] == fired_at, (alerts, fired_at)
    assert daemon.stop() == 0, daemon.context()
