"""New files and new directories under a glob (DIR/*/proxy/*.log). Contract: a file that
appears after startup is read from offset 0, whether it is created in a known directory, in a
directory created after startup (even when the file follows the mkdir at once), renamed into
place, arrives inside a whole directory moved in, or in a directory removed and created again. Files the glob does not match are never
read, and files present at startup start at their end (--start-at end, the default).
"""
import os
import shutil

import pytest

pytestmark = pytest.mark.follow


def test_new_files_and_directories_under_glob(fw):
    root = fw.tmp / "logs"
    existing = root / "a" / "proxy" / "x.log"
    existing.parent.mkdir(parents=True)
    fw.append(existing, fw.traffic.uncounted(40))
    # Not matched by the glob:
    (root / "a" / "other").mkdir()
    fw.append(root / "a" / "other" / "w.log", fw.traffic.uncounted(5))
    fw.append(root / "a" / "proxy" / "notes.txt", fw.traffic.uncounted(5))

    flagwatch = fw.start(files=[root / "*" / "proxy" / "*.log"])

    # Appends to the file present at startup.
    fw.append(existing, fw.traffic.lines(50))
    flagwatch.wait_counts(fw.traffic.expected())

    # A new file in a directory that is already watched.
    fw.append(root / "a" / "proxy" / "y.log", fw.traffic.lines(60))
    flagwatch.wait_counts(fw.traffic.expected(), what="new file in a known directory")

    # New directories and a file in them at once (the file may exist before any watch on them).
    os.makedirs(root / "b" / "proxy")
    fw.append(root / "b" / "proxy" / "z.log", fw.traffic.lines(70))
    flagwatch.wait_counts(fw.traffic.expected(), what="file in a directory created after startup")

    # New directories one level at a time, the file some intervals later.
    (root / "c").mkdir()
    flagwatch.wait_more(3)
    (root / "c" / "proxy").mkdir()
    flagwatch.wait_more(3)
    fw.append(root / "c" / "proxy" / "q.log", fw.traffic.lines(30))
    flagwatch.wait_counts(fw.traffic.expected(), what="file in a directory created in steps")

    # Written under another name, then renamed into place.
    staging = root / "a" / "proxy" / ".v.log.tmp"
    staging.write_bytes(fw.traffic.lines(25))
    os.rename(staging, root / "a" / "proxy" / "v.log")
    flagwatch.wait_counts(fw.traffic.expected(), what="file renamed into place")

    # A whole directory tree moved in (same file system).
    outside = fw.tmp / "outside" / "e"
    (outside / "proxy").mkdir(parents=True)
    fw.append(outside / "proxy" / "m.log", fw.traffic.lines(35))
    os.rename(outside, root / "e")
    flagwatch.wait_counts(fw.traffic.expected(), what="file in a directory moved in")

    # A directory removed with its files and created again (a pod deleted and recreated
    # under the same name): the new file is read from 0.
    shutil.rmtree(root / "b")
    flagwatch.hold(fw.traffic.expected(), n=3)
    os.makedirs(root / "b" / "proxy")
    fw.append(root / "b" / "proxy" / "z.log", fw.traffic.lines(45))
    flagwatch.wait_counts(fw.traffic.expected(), what="file in a directory removed and created again")

    # More lines everywhere; unmatched files and directories get lines too.
    for path in ["a/proxy/x.log", "a/proxy/y.log", "b/proxy/z.log", "c/proxy/q.log", "a/proxy/v.log", "e/proxy/m.log"]:
        fw.append(root / path, fw.traffic.lines(10))
    fw.append(root / "a" / "other" / "w.log", fw.traffic.uncounted(5))
    fw.append(root / "a" / "proxy" / "notes.txt", fw.traffic.uncounted(5))
    os.makedirs(root / "a" / "proxy" / "deeper")
    fw.append(root / "a" / "proxy" / "deeper" / "d.log", fw.traffic.uncounted(5))
    os.makedirs(root / "f" / "sidecar")
    fw.append(root / "f" / "sidecar" / "s.log", fw.traffic.uncounted(5))
    fw.append(root / "top.log", fw.traffic.uncounted(5))
    flagwatch.finish(fw.traffic.expected())


def test_file_matched_twice_is_counted_once(fw):
    # Several --file patterns, and a symlink, reach the same file: it is one file (one
    # identity), its lines count once.
    root = fw.tmp / "logs"
    root.mkdir()
    log = root / "istio-proxy.log"
    log.write_bytes(fw.traffic.uncounted(10))
    os.symlink(log, root / "alias.log")
    flagwatch = fw.start(files=[root / "*.log", root / "istio-*.log", log, root / "alias.log"])
    fw.append(log, fw.traffic.lines(80))
    flagwatch.wait_counts(fw.traffic.expected())
    late = root / "istio-late.log"
    late.write_bytes(fw.traffic.lines(30))
    os.symlink(late, root / "late-alias.log")
    fw.append(log, fw.traffic.lines(20))
    flagwatch.finish(fw.traffic.expected())
