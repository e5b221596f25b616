"""A file that ends without a newline. Contract: its last line is not counted: not while
following, not in the last object on SIGTERM, not when the file is rotated away. The checkpoint
is the offset after the last complete line, so when the line is finished while flagwatch is
down, the next run counts it once, whole.
"""
import os
import signal

import pytest

pytestmark = pytest.mark.follow


def test_unterminated_last_line_at_startup(fw):
    log = fw.tmp / "app.log"
    (line,) = fw.traffic.make(1, service="ledger", outcome="URX,UF")
    log.write_bytes(fw.traffic.lines(5) + line.rstrip(b"\n"))
    flagwatch = fw.start("--start-at", "beginning", files=[log])
    flagwatch.wait_counts(fw.traffic.expected())
    flagwatch.hold(fw.traffic.expected(), n=6, what="5 lines, the unterminated one not counted")
    flagwatch.finish(fw.traffic.expected())


def test_unterminated_last_line_rotated_away(fw):
    log = fw.tmp / "app.log"
    log.write_bytes(b"")
    flagwatch = fw.start(files=[log])
    fw.append(log, fw.traffic.lines(30))
    (line,) = fw.traffic.make(1, service="payments", outcome="UF")
    fw.append(log, line.rstrip(b"\n"))
    flagwatch.wait_counts(fw.traffic.expected())
    os.rename(log, log.with_name("app.log.1"))
    fw.append(log, fw.traffic.lines(20))
    flagwatch.wait_counts(fw.traffic.expected(), what="new file counted, old unterminated line not")
    flagwatch.finish(fw.traffic.expected())


def test_unterminated_line_finished_while_down(fw):
    state = fw.tmp / "state"
    state.mkdir()
    log = fw.tmp / "app.log"
    args = ["--state-dir", state, "--checkpoint-interval", "0.5", "--start-at", "beginning"]
    (line,) = fw.traffic.make(1, service="ledger", outcome="URX,UF")
    cut = line.index(b" URX,UF ") + 4
    log.write_bytes(fw.traffic.lines(5) + line[:cut])

    first = fw.start(*args, files=[log])
    first.finish(fw.traffic.expected(), sig=signal.SIGTERM)

    fw.traffic.reset()
    fw.append(log, line[cut:])
    fw.traffic.record([line])
    fw.append(log, fw.traffic.lines(3))
    second = fw.start(*args, files=[log])
    second.finish(fw.traffic.expected(), what="the finished line counted once, whole, in the second run")
