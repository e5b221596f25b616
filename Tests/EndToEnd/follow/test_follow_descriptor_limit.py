"""Running out of file descriptors (issue 13). With more files under a glob than descriptors, a
rescan used to fail to read the directory (EMFILE), take its files for gone, close them, find them
again as new and read them from offset 0, in a loop: lines counted kept rising past lines written,
at 83 % CPU, with /metrics and /-/healthy timing out.

Contract: the daemon follows as many files as fit, the others wait with their position and are read
from it when a descriptor is free (an idle file gives its descriptor up), so lines counted equal
lines written exactly and stay equal across rescans; /-/healthy answers; the shortage is counted as
flagwatch_source_errors_total{kind="fd_limit"}; the waiting files' positions survive a restart. The
soft RLIMIT_NOFILE is raised to the hard limit at start, by `run` and by `scan --follow`.
"""
import os
import re
import time

import pytest

from harness.follow import DaemonRun
from harness.net import http_get
from harness.polling import poll_until

pytestmark = pytest.mark.follow

FILES = 600
LINES_PER_FILE = 5
NOFILE = (256, 256)          # hard == soft: the daemon cannot raise it
COUNT_TIMEOUT = 90.0
HOLD_SECONDS = 6.0           # six rescans at rescan_interval 1s


def write_files(fw, logs, lines_each):
    for index in range(FILES):
        fw.append(logs / ("app-%04d.log" % index), fw.traffic.lines(lines_each))


def wait_exact_and_hold(run, expected, what):
    poll_until(lambda: run.lines_total() >= expected, COUNT_TIMEOUT, "%d lines counted (%s)" % (expected, what),
               interval=0.5, context=run.context)
    deadline = time.monotonic() + HOLD_SECONDS
    while time.monotonic() < deadline:
        counted = run.lines_total()
        assert counted == expected, "%s: %d lines counted, %d written\n%s" % (what, counted, expected, run.context())
        status, body = http_get(run.url("/-/healthy"), timeout=2.0)
        assert status == 200, "/-/healthy answered %s" % status
        time.sleep(0.5)


def test_more_files_than_descriptors_are_each_counted_exactly_once(fw, processes):
    logs = fw.tmp / "logs"
    logs.mkdir()
    state = fw.tmp / "state"
    write_files(fw, logs, LINES_PER_FILE)
    run = DaemonRun(fw.tmp, processes, "%s/*.log" % logs, state_dir=state, nofile=NOFILE)
    run.wait_ready(timeout=60)
    wait_exact_and_hold(run, FILES * LINES_PER_FILE, "the lines present at start")
    samples = run.samples()
    assert run.error_count("fd_limit", samples) > 0, "no fd_limit error counted\n%s" % run.context()
    assert samples.get("process_open_fds", 0) <= NOFILE[0], samples.get("process_open_fds")

    # One more line in every file: files that gave their descriptor up resume at their position.
    write_files(fw, logs, 1)
    wait_exact_and_hold(run, FILES * (LINES_PER_FILE + 1), "one more line in every file")
    assert run.stop() == 0, run.context()
    log = run.log_text()
    if "cannot save checkpoint" in log:
        assert "checkpoints saved" not in log.split("cannot save checkpoint")[-1], run.context()

    # Positions of every file, open or waiting, were saved: a restart counts only what is new.
    write_files(fw, logs, 1)
    again = DaemonRun(fw.tmp, processes, "%s/*.log" % logs, state_dir=state, nofile=NOFILE, name="restart")
    again.wait_ready(timeout=60)
    wait_exact_and_hold(again, FILES, "after a restart, only the line written while stopped")
    assert again.stop() == 0, again.context()
    assert "checkpoints saved" in again.log_text()


def soft_nofile(pid):
    with open("/proc/%d/limits" % pid) as limits:
        match = re.search(r"^Max open files\s+(\d+)\s+(\d+)", limits.read(), re.M)
    return int(match.group(1)), int(match.group(2))


def test_run_raises_the_soft_descriptor_limit_to_the_hard_one(fw, processes):
    logs = fw.tmp / "logs"
    logs.mkdir()
    write_files(fw, logs, 1)
    run = DaemonRun(fw.tmp, processes, "%s/*.log" % logs, state_dir=fw.tmp / "state", nofile=(256, 4096))
    run.wait_ready(timeout=60)
    assert soft_nofile(run.pid) == (4096, 4096)
    assert run.samples().get("process_max_fds") == 4096
    assert run.stop() == 0, run.context()


def test_scan_follow_raises_the_soft_descriptor_limit_to_the_hard_one(fw):
    log = fw.tmp / "a.log"
    log.write_bytes(b"")
    follow = fw.start(files=[log], prefix=["prlimit", "--nofile=256:4096", "--"])
    assert soft_nofile(follow.pid) == (4096, 4096)
    follow.stop()
