"""Permission denied, then fixed. The tests run as root, who reads anything, so flagwatch runs
as nobody (setpriv --reuid=65534 --regid=65534 --clear-groups) and the tmp dirs are made
traversable. A file of mode 000 present at startup, one created later with mode 000, and a file
in a directory nobody may not enter (0700, root's) are all denied at first. Contract: the error
is logged and retried on the next rescan, never fatal; other files keep being followed. After
chmod 644 / 755 every line is counted. --start-at beginning, so that a file present at startup
and a file that appears later are both read from offset 0.
"""
import os

import pytest

pytestmark = pytest.mark.follow

NOBODY = 65534


def uid_of(pid):
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith("Uid:"):
                return [int(x) for x in line.split()[1:]]
    return None


def test_permission_denied_then_fixed(fw):
    if os.geteuid() != 0:
        pytest.skip("needs root to run flagwatch as another user (setpriv)")
    fw.make_traversable()
    root = fw.tmp / "logs"
    root.mkdir(mode=0o755)
    root.chmod(0o755)
    readable = root / "open.log"
    readable.write_bytes(fw.traffic.lines(40))
    readable.chmod(0o644)

    denied_lines = fw.traffic.make(50)
    secret = root / "secret.log"
    secret.write_bytes(b"".join(denied_lines))
    secret.chmod(0o000)

    locked = root / "locked"
    locked.mkdir()
    locked_lines = fw.traffic.make(35)
    (locked / "inner.log").write_bytes(b"".join(locked_lines))
    (locked / "inner.log").chmod(0o644)
    locked.chmod(0o700)

    flagwatch = fw.start(
        "--start-at", "beginning",
        files=[root / "*.log", locked / "*.log"], rescan=0.5, as_nobody=True,
    )
    assert uid_of(flagwatch.pid) == [NOBODY] * 4, "flagwatch does not run as nobody"
    flagwatch.wait_counts(fw.traffic.expected(), what="the readable file only")
    flagwatch.hold(fw.traffic.expected(), n=4)

    # A new file, unreadable from birth; the readable one keeps growing.
    late_lines = fw.traffic.make(45)
    fd = os.open(root / "late.log", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o000)
    try:
        fw.write_all(fd, b"".join(late_lines))
    finally:
        os.close(fd)
    assert (os.stat(root / "late.log").st_mode & 0o777) == 0
    fw.append(readable, fw.traffic.lines(20))
    flagwatch.wait_counts(fw.traffic.expected(), what="the readable file's new lines")
    flagwatch.hold(fw.traffic.expected(), n=4)
    assert flagwatch.proc.poll() is None

    # Fixed: every line of every file is counted.
    secret.chmod(0o644)
    (root / "late.log").chmod(0o644)
    locked.chmod(0o755)
    fw.traffic.record(denied_lines + late_lines + locked_lines)
    flagwatch.wait_counts(fw.traffic.expected(), what="all files after chmod")
    fw.append(secret, fw.traffic.lines(10))
    fw.append(root / "late.log", fw.traffic.lines(10))
    fw.append(locked / "inner.log", fw.traffic.lines(10))
    flagwatch.finish(fw.traffic.expected())
