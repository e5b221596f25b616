"""Restarts with --state-dir. Contract: checkpoints (offset after the last complete line, per
file identity) are saved every --checkpoint-interval and on SIGTERM/SIGINT; a second run with
the same state dir resumes exactly where the first stopped, counting only new lines, including
those written while it was down (also in a file rotated, truncated or created meanwhile).
After SIGKILL it resumes from the last saved checkpoint.
"""
import os
import shutil
import signal
import time

import pytest

pytestmark = pytest.mark.follow

CHECKPOINT = 0.3


def state_args(fw, *extra):
    state = fw.tmp / "state"
    state.mkdir(exist_ok=True)
    return ["--state-dir", state, "--checkpoint-interval", CHECKPOINT, *extra]


@pytest.mark.parametrize(
    "sig,start_at",
    [(signal.SIGTERM, "end"), (signal.SIGINT, "beginning")],
    ids=["SIGTERM-start-at-end", "SIGINT-start-at-beginning"],
)
def test_graceful_restart_resumes(fw, sig, start_at):
    a, b = fw.tmp / "a.log", fw.tmp / "b.log"
    make = fw.traffic.uncounted if start_at == "end" else fw.traffic.lines
    a.write_bytes(make(40))
    b.write_bytes(make(15))
    args = state_args(fw, "--start-at", start_at)
    files = [fw.tmp / "*.log"]

    first = fw.start(*args, files=files)
    fw.append(a, fw.traffic.lines(100))
    fw.append(b, fw.traffic.lines(60))
    (line,) = fw.traffic.make(1, service="ledger", outcome="UF,URX")
    fw.append(b, line[:150])  # unfinished when the first run stops
    first.finish(fw.traffic.expected(), sig=sig)

    # Down: both files grow, and b's unfinished line is finished.
    fw.traffic.reset()
    fw.append(a, fw.traffic.lines(70))
    fw.append(b, line[150:])
    fw.traffic.record([line])
    fw.append(b, fw.traffic.lines(30))

    second = fw.start(*args, files=files)
    fw.append(a, fw.traffic.lines(25))
    fw.append(b, fw.traffic.lines(25))
    second.finish(fw.traffic.expected(), what="only the lines written since the first run stopped")

    # A third run with nothing new counts nothing.
    fw.traffic.reset()
    third = fw.start(*args, files=files)
    third.finish(fw.traffic.expected(), what="nothing: no line was written since the second run")


def test_sigkill_restart_resumes_from_last_checkpoint(fw):
    a, b = fw.tmp / "a.log", fw.tmp / "b.log"
    a.write_bytes(fw.traffic.uncounted(20))
    b.write_bytes(b"")
    args = state_args(fw)
    files = [fw.tmp / "*.log"]

    first = fw.start(*args, files=files)
    fw.append(a, fw.traffic.lines(120))
    fw.append(b, fw.traffic.lines(80))
    first.wait_counts(fw.traffic.expected())
    time.sleep(4 * CHECKPOINT)  # several checkpoint intervals after everything was counted
    first.kill()

    fw.traffic.reset()
    fw.append(a, fw.traffic.lines(60))
    fw.append(b, fw.traffic.lines(40))
    second = fw.start(*args, files=files)
    fw.append(a, fw.traffic.lines(15))
    second.finish(fw.traffic.expected(), what="only the lines written after the last checkpoint")


def test_restart_under_continuous_writing_counts_each_line_once(fw):
    # The writer never stops: SIGTERM cuts the first run at an arbitrary point, maybe inside a
    # line. Both runs together must count every line exactly once.
    log = fw.tmp / "app.log"
    log.write_bytes(b"")
    args = state_args(fw)
    first = fw.start(*args, files=[log])
    writer = fw.writer(log, rate=2000, batch=3)
    time.sleep(1.0)
    first_final = first.stop(signal.SIGTERM)
    assert first_final["lines"] > 0
    time.sleep(0.5)
    second = fw.start(*args, files=[log])
    time.sleep(1.0)
    writer.stop()
    expected_second = fw.subtract(fw.traffic.expected(), first_final)
    second.finish(
        expected_second,
        what="all lines written minus those counted by the first run (%d of %d)"
        % (first_final["lines"], fw.traffic.expected()["lines"]),
    )


def test_rotated_and_truncated_while_down(fw):
    # While flagwatch is down, app.log gets lines and is then renamed away (a new app.log is
    # created), and sidecar.log is copytruncated to less than its checkpoint. The second run
    # reads the rest of the renamed file, the new app.log from 0 and sidecar.log from 0.
    app, sidecar = fw.tmp / "app.log", fw.tmp / "sidecar.log"
    app.write_bytes(b"")
    sidecar.write_bytes(b"")
    args = state_args(fw)
    files = [fw.tmp / "*.log"]
    first = fw.start(*args, files=files)
    fw.append(app, fw.traffic.lines(100))
    fw.append(sidecar, fw.traffic.lines(200))
    first.finish(fw.traffic.expected())

    fw.traffic.reset()
    fw.append(app, fw.traffic.lines(40))
    os.rename(app, fw.tmp / "app.log.1")
    fw.append(app, fw.traffic.lines(30))
    shutil.copyfile(sidecar, fw.tmp / "sidecar.log.1")
    os.truncate(sidecar, 0)
    fw.append(sidecar, fw.traffic.lines(25))

    second = fw.start(*args, files=files)
    fw.append(app, fw.traffic.lines(5))
    second.finish(fw.traffic.expected(), what="rest of the rotated file, new file and truncated file from 0")


def test_file_created_while_down_is_read_from_its_start(fw):
    # Its lines were written while flagwatch was down: with a checkpoint state, the second run
    # counts them (start-at applies to the first run only).
    app = fw.tmp / "app.log"
    app.write_bytes(fw.traffic.uncounted(10))
    args = state_args(fw)
    files = [fw.tmp / "*.log"]
    first = fw.start(*args, files=files)
    fw.append(app, fw.traffic.lines(50))
    first.finish(fw.traffic.expected())

    fw.traffic.reset()
    fw.append(fw.tmp / "new.log", fw.traffic.lines(35))
    fw.append(app, fw.traffic.lines(15))
    second = fw.start(*args, files=files)
    second.finish(fw.traffic.expected(), what="new.log, created while down, read from 0")
