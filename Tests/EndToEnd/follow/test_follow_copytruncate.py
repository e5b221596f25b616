"""copytruncate rotation (logrotate `copytruncate`): app.log is copied to app.log.N and then
truncated in place, while the application keeps its O_APPEND descriptor. Contract: when the size
is below flagwatch's offset, it restarts from 0. The copies are not watched.

Lines written between the copy and the truncation, before flagwatch read them, are lost to any
tailer (a known copytruncate limitation): the test never writes in that window while flagwatch
runs, and where it does (flagwatch stopped), those lines are not expected.
"""
import os
import shutil

import pytest

pytestmark = pytest.mark.follow


def copytruncate(log, n):
    shutil.copyfile(log, log.with_name("%s.%d" % (log.name, n)))
    os.truncate(log, 0)


def test_copytruncate_cycles(fw):
    log = fw.tmp / "app.log"
    fw.append(log, fw.traffic.uncounted(20))
    flagwatch = fw.start(files=[log])
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    try:
        for cycle in range(4):
            fw.write_all(fd, fw.traffic.lines(300))
            flagwatch.wait_counts(fw.traffic.expected())
            copytruncate(log, cycle + 1)
            if cycle % 2:
                # flagwatch first sees the empty file (size 0 < offset), then the new lines.
                flagwatch.hold(fw.traffic.expected(), n=3)
            # Fewer bytes than before the truncation: the size stays below the old offset.
            fw.write_all(fd, fw.traffic.lines(40))
            flagwatch.wait_counts(fw.traffic.expected())
        fw.write_all(fd, fw.traffic.lines(100))
    finally:
        os.close(fd)
    flagwatch.finish(fw.traffic.expected())


def test_copytruncate_while_paused(fw):
    log = fw.tmp / "app.log"
    flagwatch = fw.start(files=[log])
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fw.write_all(fd, fw.traffic.lines(300))
        flagwatch.wait_counts(fw.traffic.expected())
        flagwatch.pause()
        try:
            # Written and copied away before flagwatch could read them: gone from app.log.
            fw.write_all(fd, fw.traffic.uncounted(10))
            copytruncate(log, 1)
            fw.write_all(fd, fw.traffic.lines(25))
        finally:
            flagwatch.resume()
        flagwatch.wait_counts(fw.traffic.expected())
        fw.write_all(fd, fw.traffic.lines(500))  # now past the old offset again
    finally:
        os.close(fd)
    flagwatch.finish(fw.traffic.expected())
