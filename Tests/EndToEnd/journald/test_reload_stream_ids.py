"""`flagwatch run` with one file source and two journald sources, reloaded 17 times with only
`follow:` changed: every source's lines must still be counted under that source.

Before stream ids came from one set of disjoint ranges, the file follower of the 16th reload
got the id of the second journal source (1 + 16 << 36 == 1 << 40 + 1): that journal's entries
were counted under the file source, and after the 17th reload they were lost.
"""
import os
import signal
import sys

import pytest

from e2e_helpers import Processes, free_port, http_get, log_tail, metric_samples, poll_until

pytestmark = pytest.mark.e2e

BIN = os.environ.get("FLAGWATCH_BIN") or os.path.join(os.path.dirname(__file__), "..", "..", "..", ".build", "debug", "flagwatch")
RELOADS = 17


def istio_line(cluster, index):
    return ('[2026-12-06T02:34:27.532Z] "GET /r/%d HTTP/1.1" 503 UF via_upstream - "-" 0 14 11 10 "-" '
            '"curl/8.5.0" "0d8e5a88-130d-4223-9294-7eee8276b7f5" "svc:8080" "10.244.1.7:8080" %s '
            "10.244.0.17:55718 10.244.0.17:15006 10.244.1.9:56922 - default" % (index, cluster))


def config_text(logs, journal_directory, state, rescan):
    return """\
state_dir: %(state)s
sources:
  - name: files
    files: ["%(logs)s/*.log"]
    format: istio
    start_at: beginning
  - name: journal-a
    journald: {matches: ["SYSLOG_IDENTIFIER=envoy-a"], directory: "%(journal)s"}
    format: istio
    start_at: end
  - name: journal-b
    journald: {matches: ["SYSLOG_IDENTIFIER=envoy-b"], directory: "%(journal)s"}
    format: istio
    start_at: end
follow:
  rescan_interval: %(rescan)ds
""" % {"state": state, "logs": logs, "journal": journal_directory, "rescan": rescan}


def test_seventeen_reloads_of_follow_settings_keep_every_journal_source_counted_under_its_own_name(jd, tmp_path):
    logs, state = tmp_path / "logs", tmp_path / "state"
    logs.mkdir()
    state.mkdir()
    # A file under the glob, so that every new file follower opens a stream.
    (logs / "access.log").write_text("".join(istio_line("outbound|80||file.default.svc.cluster.local", i) + "\n"
                                             for i in range(5)))
    config = tmp_path / "flagwatch.yaml"
    config.write_text(config_text(logs, jd.directory, state, 10))
    port = free_port()
    stderr = tmp_path / "flagwatch.stderr"
    processes = Processes()
    try:
        daemon = processes.start([BIN, "run", "--config", config, "--listen", "127.0.0.1:%d" % port,
                                  "--log-level", "info"], stderr)
        url = "http://127.0.0.1:%d" % port
        poll_until(lambda: http_get(url + "/-/ready", timeout=2)[0] == 200, 20, "ready",
                   context=lambda: log_tail(stderr))

        def lines(source):
            return metric_samples(http_get(url + "/metrics")[1].decode()).get(
                'flagwatch_lines_total{source="%s"}' % source, 0)

        for reload in range(1, RELOADS + 1):
            config.write_text(config_text(logs, jd.directory, state, 10 + reload % 2))
            os.kill(daemon.pid, signal.SIGHUP)
            poll_until(lambda: log_tail(stderr, 10000).count("configuration reloaded") == reload, 10,
                       "reload %d done" % reload, context=lambda: log_tail(stderr))

        jd.send([istio_line("outbound|80||b.default.svc.cluster.local", i).encode() for i in range(30)],
                identifier="envoy-b")
        jd.send([istio_line("outbound|80||a.default.svc.cluster.local", i).encode() for i in range(20)],
                identifier="envoy-a")
        with open(logs / "access.log", "a") as log:
            log.write("".join(istio_line("outbound|80||file.default.svc.cluster.local", i) + "\n" for i in range(10)))
        jd.sync()
        want = {"journal-a": 20, "journal-b": 30, "files": 15}
        poll_until(lambda: {source: lines(source) for source in want} == want, 15,
                   "lines per source == %r" % want,
                   context=lambda: "%r\n%s" % ({source: lines(source) for source in want}, log_tail(stderr)))
        assert processes.stop(daemon) == 0, log_tail(stderr)
    finally:
        processes.stop_all()
