"""inotify queue overflow, without touching sysctl. flagwatch is stopped (SIGSTOP) while more
than /proc/sys/fs/inotify/max_queued_events files are created and deleted in a watched
directory, then new log files (in that directory and in a new one) get lines and the existing
file grows. The kernel drops what does not fit in the queue and queues IN_Q_OVERFLOW. After
SIGCONT every line must be counted. --rescan-interval 3600, so only the rescan that the overflow
triggers can find the new files.

A self-check proves the flood overflows: an inotify instance of the test's own, watching the
same directory for IN_CREATE and not read during the flood, must get IN_Q_OVERFLOW.
"""
import ctypes
import errno
import os
import struct

import pytest

pytestmark = pytest.mark.follow

IN_CREATE = 0x00000100
IN_Q_OVERFLOW = 0x00004000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000


class Inotify:
    def __init__(self, path, mask):
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if libc.inotify_add_watch(self.fd, os.fsencode(str(path)), mask) < 0:
            error = ctypes.get_errno()
            os.close(self.fd)
            raise OSError(error, "inotify_add_watch")

    def masks(self):
        out = []
        while True:
            try:
                data = os.read(self.fd, 1 << 20)
            except BlockingIOError:
                return out
            except OSError as error:
                if error.errno == errno.EAGAIN:
                    return out
                raise
            offset = 0
            while offset < len(data):
                _wd, mask, _cookie, length = struct.unpack_from("iIII", data, offset)
                out.append(mask)
                offset += 16 + length

    def close(self):
        os.close(self.fd)


def test_inotify_queue_overflow(fw):
    with open("/proc/sys/fs/inotify/max_queued_events") as handle:
        max_queued = int(handle.read())
    root = fw.tmp / "logs"
    watched = root / "a"
    watched.mkdir(parents=True)
    app = watched / "app.log"
    fw.append(app, fw.traffic.uncounted(10))

    flagwatch = fw.start(files=[root / "*" / "*.log"], rescan=3600)
    fw.append(app, fw.traffic.lines(50))
    flagwatch.wait_counts(fw.traffic.expected())

    probe = Inotify(watched, IN_CREATE)
    try:
        flagwatch.pause()
        try:
            for i in range(max_queued + 2000):
                junk = watched / ("junk-%06d.tmp" % i)
                os.close(os.open(junk, os.O_WRONLY | os.O_CREAT, 0o644))
                os.unlink(junk)
            # Everything below happens after the queue is full: its events are dropped.
            fw.append(app, fw.traffic.lines(40))
            for k in range(20):
                fw.append(watched / ("new-%02d.log" % k), fw.traffic.lines(5))
            (root / "b").mkdir()
            fw.append(root / "b" / "x.log", fw.traffic.lines(30))
        finally:
            flagwatch.resume()
        masks = probe.masks()
    finally:
        probe.close()
    assert any(mask & IN_Q_OVERFLOW for mask in masks), (
        "self-check: the flood of %d creates did not overflow an inotify queue" % (max_queued + 2000))

    flagwatch.wait_counts(fw.traffic.expected(), what="every line, found by the overflow rescan")
    fw.append(root / "b" / "x.log", fw.traffic.lines(10))
    fw.append(watched / "new-00.log", fw.traffic.lines(10))
    flagwatch.finish(fw.traffic.expected())
