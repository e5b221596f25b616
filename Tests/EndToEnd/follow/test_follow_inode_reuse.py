"""Inode reuse: app.log is deleted and a new app.log gets the SAME inode number (ext4 hands a
freed inode out again at once; checked with os.stat). The new file starts with other bytes, so
its identity (dev + inode + fingerprint of the first bytes) differs: it must be read from 0.
The new file is made larger than the old one and appears whole (written under another name,
then renamed into place), so a daemon that keyed files by inode alone would resume at the old
offset and miss its first lines.

  live:     one flagwatch process; the inode is freed once flagwatch has closed the deleted file.
  restart:  flagwatch stops (SIGTERM, checkpoint saved), the file is replaced while it is down,
            and the second run must not apply the old checkpoint to the new file. Another file
            that stays the same checks that the checkpoint is applied where it belongs.
"""
import itertools
import os
import signal
import time

import pytest

pytestmark = pytest.mark.follow


def replace_with_same_inode(log, inode, content, timeout=5.0):
    """Writes `content` into a new file in log's directory that got inode `inode`, renames it
    to log and returns True; False if the file system did not give that inode back in time.
    The inode is freed a little after the last close (an inotify watch on it is released
    asynchronously), and a lower free inode is handed out first: the candidates that got
    another inode are kept until the end, so each new one gets the next free inode."""
    others = []
    deadline = time.monotonic() + timeout
    try:
        for i in itertools.count():
            candidate = log.with_name(".candidate-%d" % i)
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            if os.fstat(fd).st_ino == inode:
                try:
                    view = memoryview(content)
                    while view:
                        view = view[os.write(fd, view):]
                finally:
                    os.close(fd)
                os.rename(candidate, log)
                return True
            os.close(fd)
            others.append(candidate)
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)
    finally:
        for path in others:
            os.unlink(path)


def test_inode_reuse_live(fw):
    log = fw.tmp / "app.log"
    log.write_bytes(b"")
    # A short --checkpoint-interval only makes this quicker: flagwatch closes deleted files that
    # were read to their end on that tick, after a grace period (the poll below allows 30 s).
    flagwatch = fw.start("--checkpoint-interval", "0.5", files=[log])
    fw.append(log, fw.traffic.lines(100))
    flagwatch.wait_counts(fw.traffic.expected())
    old = os.stat(log)

    os.unlink(log)
    # The inode is only freed when flagwatch has let go of the deleted file.
    fw.poll(
        lambda: not any(p.endswith("/app.log (deleted)") for p in flagwatch.open_paths()),
        30, "flagwatch to close the deleted app.log (while it holds it open the inode is not freed)",
    )
    new_lines = fw.traffic.make(250)
    content = b"".join(new_lines)
    assert len(content) > 2 * old.st_size
    if not replace_with_same_inode(log, old.st_ino, content):
        pytest.skip("the file system did not reuse inode %d" % old.st_ino)
    new = os.stat(log)
    assert (new.st_dev, new.st_ino) == (old.st_dev, old.st_ino)
    fw.traffic.record(new_lines)
    flagwatch.wait_counts(fw.traffic.expected(), what="the new file with the reused inode read from 0")
    fw.append(log, fw.traffic.lines(20))
    flagwatch.finish(fw.traffic.expected())


def test_inode_reuse_across_restart(fw):
    state = fw.tmp / "state"
    state.mkdir()
    log = fw.tmp / "app.log"
    other = fw.tmp / "other.log"
    args = ["--state-dir", state, "--checkpoint-interval", "0.5", "--start-at", "beginning"]
    files = [fw.tmp / "*.log"]
    log.write_bytes(fw.traffic.lines(100))
    other.write_bytes(fw.traffic.lines(30))

    first = fw.start(*args, files=files)
    first.finish(fw.traffic.expected(), sig=signal.SIGTERM)
    old = os.stat(log)

    # While flagwatch is down: app.log replaced by a larger file with the same inode, and
    # other.log (same file) grows.
    fw.traffic.reset()
    os.unlink(log)
    new_lines = fw.traffic.make(250)
    content = b"".join(new_lines)
    assert len(content) > 2 * old.st_size
    if not replace_with_same_inode(log, old.st_ino, content):
        pytest.skip("the file system did not reuse inode %d" % old.st_ino)
    assert os.stat(log).st_ino == old.st_ino
    fw.traffic.record(new_lines)
    fw.append(other, fw.traffic.lines(20))

    second = fw.start(*args, files=files)
    fw.append(other, fw.traffic.lines(10))
    fw.append(log, fw.traffic.lines(10))
    second.finish(
        fw.traffic.expected(),
        what="new app.log (reused inode) read from 0, other.log resumed at its checkpoint",
    )
