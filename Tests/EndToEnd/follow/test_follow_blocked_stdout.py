"""`scan --follow` whose standard output is not read for a while (issue 13). It used to block in
write(2) on the full pipe and stop following meanwhile, so files rotated away in that time were
never opened and their lines were lost. Contract: following goes on while reports wait; superseded
reports are dropped, a report is never cut; once the pipe is read again and SIGTERM comes, the last
report counts every line written, in every rotated file.
"""
import fcntl
import json
import os
import signal
import struct
import subprocess
import termios
import threading
import time

import pytest

from harness.polling import poll_until
from harness.processes import stop_pid

pytestmark = pytest.mark.follow

PIPE_SIZE = 4096             # the smallest pipe: one or two reports fill it
ROTATIONS = 5
LINES_PER_FILE = 40
STOP_TIMEOUT = 15.0
INTERVAL = 0.2               # seconds between reports


def unread_bytes(fd):
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


def has_open(pid, path):
    """Whether the process has the file now at `path` open (by inode; /proc/PID/fd links)."""
    try:
        inode = os.stat(path).st_ino
    except FileNotFoundError:
        return False
    fd_dir = "/proc/%d/fd" % pid
    for name in os.listdir(fd_dir):
        try:
            if os.stat(os.path.join(fd_dir, name)).st_ino == inode:
                return True
        except OSError:
            pass
    return False


def test_following_goes_on_while_nobody_reads_standard_output(fw):
    log = fw.tmp / "access.log"
    log.write_bytes(b"")
    argv = [fw.bin, "scan", "--follow", "--output", "json", "--format", "istio", "--interval", str(INTERVAL),
            "--rescan-interval", "1", "--rotated-file-grace", "60", "--file", str(log)]
    stderr = open(fw.tmp / "scan.stderr", "wb")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr)
    try:
        out = proc.stdout.fileno()
        fcntl.fcntl(out, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        # The first report says the file is open (its start position fixed): lines count from now.
        poll_until(lambda: unread_bytes(out) > 0, 15, "the first report")
        fw.append(log, fw.traffic.lines(LINES_PER_FILE))

        # Nobody reads: reports pile up until the pipe takes no more (a report is due every
        # interval, changed or not, so an unchanged fill level over five intervals means full).
        def full():
            before = unread_bytes(out)
            time.sleep(5 * INTERVAL)
            return before > 0 and unread_bytes(out) == before and before
        level = poll_until(full, 20, "the stdout pipe to fill up")
        assert proc.poll() is None

        # Rotations (rename + new file) while the pipe is full; every file gets lines.
        for rotation in range(1, ROTATIONS + 1):
            os.rename(log, "%s.%d" % (log, rotation))
            fw.append(log, fw.traffic.lines(LINES_PER_FILE))
            deadline = time.monotonic() + 5
            while not has_open(proc.pid, log) and time.monotonic() < deadline:
                time.sleep(0.05)
            fw.append(log, fw.traffic.lines(LINES_PER_FILE))
        assert unread_bytes(out) == level, "the pipe took more meanwhile: it was not full"

        # Read the pipe again, then stop: the last report must count everything.
        chunks = []
        reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read()), daemon=True)
        reader.start()
        time.sleep(1.0)
        os.kill(proc.pid, signal.SIGTERM)
        status = proc.wait(STOP_TIMEOUT)
        reader.join(10)
        assert status == 0
        lines = b"".join(chunks).splitlines()
        reports = [json.loads(line) for line in lines]  # every report whole: each line parses
        for report in reports:
            for cluster in report["clusters"].values():
                cluster.pop("diagnosis", None)
        expected = fw.traffic.expected()
        assert expected["lines"] == LINES_PER_FILE * (1 + 2 * ROTATIONS)
        assert reports[-1] == expected, fw.describe(expected, reports[-1])
    finally:
        if proc.poll() is None:
            stop_pid(proc.pid, grace=5, is_gone=lambda: proc.poll() is not None)
            proc.wait(10)
        proc.stdout.close()
        stderr.close()
