"""Rename rotation (logrotate's default, `create`), as in google/mtail's
log_rotation_integration_test: an application appends at a steady high rate through its own
descriptor while app.log is renamed to app.log.1 (older ones shifted) several times. The
application keeps writing into the renamed file for a moment, then reopens app.log. Half of the
rotations create the new empty app.log at once (logrotate `create`), the others leave it to the
application. Contract: the old file is read to its end, the new file from offset 0, so every
line written is counted exactly once.
"""
import os
import time

import pytest

pytestmark = pytest.mark.follow

ROTATIONS = 5
RATE = 3000  # lines per second


def rotate(log):
    """app.log.N -> app.log.N+1 (oldest first), then app.log -> app.log.1."""
    rotated = sorted(
        (int(p.name.rsplit(".", 1)[1]), p) for p in log.parent.glob(log.name + ".*") if p.name.rsplit(".", 1)[1].isdigit()
    )
    for n, path in reversed(rotated):
        os.rename(path, log.with_name("%s.%d" % (log.name, n + 1)))
    os.rename(log, log.with_name(log.name + ".1"))


def rotate_under_load(fw, log, writer):
    for i in range(ROTATIONS):
        time.sleep(0.3)
        rotate(log)
        if i % 2 == 0:
            os.close(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))  # logrotate `create`
        time.sleep(0.05)  # the application still writes into the renamed file
        writer.reopen()
    time.sleep(0.3)
    writer.stop()
    assert writer.reopens == ROTATIONS
    assert writer.written > 1000, writer.written


def test_rename_rotation_under_continuous_writing(fw):
    log = fw.tmp / "app.log"
    fw.append(log, fw.traffic.uncounted(50))  # before start: --start-at end skips these
    flagwatch = fw.start(files=[log])
    writer = fw.writer(log, rate=RATE)
    rotate_under_load(fw, log, writer)
    assert len(list(fw.tmp.glob("app.log.*"))) == ROTATIONS
    flagwatch.finish(fw.traffic.expected())


def test_rename_rotation_rotated_names_still_match_the_glob(fw):
    # With a glob that also matches app.log.1, app.log.2, ... a renamed file is the same file
    # (same dev + inode + first bytes) under a new name: it must not be read again from 0.
    log = fw.tmp / "app.log"
    fw.append(log, fw.traffic.uncounted(50))
    flagwatch = fw.start(files=[fw.tmp / "app.log*"])
    writer = fw.writer(log, rate=RATE)
    rotate_under_load(fw, log, writer)
    flagwatch.finish(fw.traffic.expected())


def test_rename_while_paused_reads_the_old_file_to_its_end(fw):
    # Deterministic version: flagwatch is stopped (SIGSTOP) while lines are appended, the file is
    # renamed, a new one is created with lines, and more lines go into the renamed file through
    # the application's old descriptor. After SIGCONT all of them must be counted.
    log = fw.tmp / "app.log"
    flagwatch = fw.start(files=[log])
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fw.write_all(fd, fw.traffic.lines(200))
        flagwatch.wait_counts(fw.traffic.expected())
        for _ in range(3):
            flagwatch.pause()
            try:
                fw.write_all(fd, fw.traffic.lines(150))
                rotate(log)
                fw.append(log, fw.traffic.lines(40))
                fw.write_all(fd, fw.traffic.lines(60))  # into the renamed file
            finally:
                flagwatch.resume()
            os.close(fd)
            fd = os.open(log, os.O_WRONLY | os.O_APPEND)
            flagwatch.wait_counts(fw.traffic.expected())
    finally:
        os.close(fd)
    flagwatch.finish(fw.traffic.expected())


def test_rotated_file_deleted_before_flagwatch_read_it(fw):
    # logrotate with `rotate 0`: renamed, then deleted, all while flagwatch is stopped and
    # before it read the last lines. It still holds the file open: read to its end.
    log = fw.tmp / "app.log"
    log.write_bytes(b"")
    flagwatch = fw.start(files=[log])
    fw.append(log, fw.traffic.lines(100))
    flagwatch.wait_counts(fw.traffic.expected())
    for _ in range(2):
        flagwatch.pause()
        try:
            fw.append(log, fw.traffic.lines(80))
            os.rename(log, log.with_name("app.log.1"))
            fw.append(log, fw.traffic.lines(30))
            os.unlink(log.with_name("app.log.1"))
        finally:
            flagwatch.resume()
        flagwatch.wait_counts(fw.traffic.expected(), what="the deleted rotated file read to its end")
    flagwatch.finish(fw.traffic.expected())
