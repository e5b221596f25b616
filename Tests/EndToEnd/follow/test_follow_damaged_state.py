"""A checkpoint path that is not a regular file (issue 13). The daemon reads its state directory
at start: a FIFO there used to block it in open(2) forever (never listening, deaf to SIGTERM), a
symlink to /dev/zero made it allocate until it aborted. Contract: such a checkpoint is refused
without blocking or reading it, counted as flagwatch_source_errors_total{kind="checkpoint_corrupt"},
the source starts per its start_at, the daemon becomes ready, counts every line exactly, replaces
the refused path with a real checkpoint, and exits 0 on SIGTERM within a bound.
"""
import os
import time

import pytest

from harness.follow import DaemonRun, SOURCE
from harness.polling import poll_until

pytestmark = pytest.mark.follow

STOP_GRACE = 15.0


def start_on_damaged_state(fw, processes, make_damage):
    logs = fw.tmp / "logs"
    logs.mkdir()
    (logs / "access.log").write_bytes(fw.traffic.lines(50))
    state = fw.tmp / "state"
    state.mkdir()
    checkpoint = state / ("%s.checkpoint.json" % SOURCE)
    make_damage(checkpoint)
    run = DaemonRun(fw.tmp, processes, "%s/*.log" % logs, state_dir=state)
    return run, checkpoint


def check_runs_and_stops(fw, run, checkpoint):
    run.wait_ready()
    poll_until(lambda: run.lines_total() == 50, 20, "all 50 lines counted", context=run.context)
    assert run.error_count("checkpoint_corrupt") == 1, run.context()
    started = time.monotonic()
    status = run.stop(timeout=STOP_GRACE)
    assert status == 0, "exit status %s after SIGTERM (None: killed after %.0f s)\n%s" % (status, STOP_GRACE, run.context())
    assert time.monotonic() - started < STOP_GRACE
    # The refused path was replaced by a real checkpoint.
    assert not checkpoint.is_symlink() and checkpoint.is_file(), os.stat(checkpoint, follow_symlinks=False)
    assert b'"offset"' in checkpoint.read_bytes()


def test_a_fifo_at_the_checkpoint_path_neither_blocks_the_start_nor_the_stop(fw, processes):
    run, checkpoint = start_on_damaged_state(fw, processes, lambda path: os.mkfifo(path, 0o600))
    check_runs_and_stops(fw, run, checkpoint)


def test_a_checkpoint_symlinked_to_dev_zero_is_refused_without_reading_it(fw, processes):
    run, checkpoint = start_on_damaged_state(fw, processes, lambda path: os.symlink("/dev/zero", path))
    check_runs_and_stops(fw, run, checkpoint)
