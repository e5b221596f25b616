"""`flagwatch run` with one file source and two journald sources, reloaded 17 times with only
`follow:` changed: every source's lines must still be counted under that source.

Before stream ids came from one set of disjoint ranges, the file follower of the 16th reload
got the id of the second journal source (1 + 16 << 36 == 1 << 40 + 1): that journal's entries
were counted under the file source, and after the 17th reload they were lost.
"""
import os
import signal

import pytest

from harness.flagwatch import RunningDaemon
from harness.lines import istio_line
from harness.polling import poll_until
from harness.processes import Processes, log_tail

pytestmark = pytest.mark.e2e

RELOADS = 17


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
    (logs / "access.log").write_text("".join(istio_line("outbound|80||file.default.svc.cluster.local", "UF", 503, i)
                                             for i in range(5)))
    config = tmp_path / "flagwatch.yaml"
    config.write_text(config_text(logs, jd.directory, state, 10))
    stderr = tmp_path / "flagwatch.stderr"
    processes = Processes()
    try:
        daemon = RunningDaemon(processes, config, stderr, extra_args=("--log-level", "info"))

        def lines(source):
            return daemon.sample('flagwatch_lines_total{source="%s"}' % source)

        for reload in range(1, RELOADS + 1):
            config.write_text(config_text(logs, jd.directory, state, 10 + reload % 2))
            os.kill(daemon.pid, signal.SIGHUP)
            poll_until(lambda: log_tail(stderr, 10000).count("configuration reloaded") == reload, 10,
                       "reload %d done" % reload, context=lambda: log_tail(stderr))

        jd.send([istio_line("outbound|80||b.default.svc.cluster.local", "UF", 503, i).encode() for i in range(30)],
                identifier="envoy-b")
        jd.send([istio_line("outbound|80||a.default.svc.cluster.local", "UF", 503, i).encode() for i in range(20)],
                identifier="envoy-a")
        with open(logs / "access.log", "a") as log:
            log.write("".join(istio_line("outbound|80||file.default.svc.cluster.local", "UF", 503, i) for i in range(10)))
        jd.sync()
        want = {"journal-a": 20, "journal-b": 30, "files": 15}
        poll_until(lambda: {source: lines(source) for source in want} == want, 15,
                   "lines per source == %r" % want,
                   context=lambda: "%r\n%s" % ({source: lines(source) for source in want}, log_tail(stderr)))
        assert processes.stop(daemon.process) == 0, log_tail(stderr)
    finally:
        processes.stop_all()
