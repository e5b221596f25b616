"""A watched file is deleted and a new one is created at the same path. Contract: a file
deleted while open is read to its end (including what its writer appends after the unlink),
and the recreated file is new: read from offset 0. Also: replaced by a rename over it.
"""
import os

import pytest

pytestmark = pytest.mark.follow


def test_delete_and_recreate(fw):
    log = fw.tmp / "app.log"
    fw.append(log, fw.traffic.uncounted(30))
    flagwatch = fw.start(files=[log])

    # 1. The application writes through its descriptor.
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    fw.write_all(fd, fw.traffic.lines(200))
    flagwatch.wait_counts(fw.traffic.expected())

    # 2. While flagwatch is stopped: more lines, unlink, more lines into the deleted file
    #    through the still-open descriptor, then a new file with lines at the same path.
    flagwatch.pause()
    try:
        fw.write_all(fd, fw.traffic.lines(100))
        os.unlink(log)
        fw.write_all(fd, fw.traffic.lines(50))
        os.close(fd)
        fw.append(log, fw.traffic.lines(70))
    finally:
        flagwatch.resume()
    flagwatch.wait_counts(fw.traffic.expected(), what="deleted file read to its end + new file from 0")

    # 3. Delete, let flagwatch notice the file is gone, then create it again.
    os.unlink(log)
    flagwatch.hold(fw.traffic.expected(), n=3)
    fw.append(log, fw.traffic.lines(80))
    flagwatch.wait_counts(fw.traffic.expected())
    fw.append(log, fw.traffic.lines(20))
    flagwatch.wait_counts(fw.traffic.expected())

    # 4. Delete and recreate at once (the path is never missing when flagwatch looks), several
    #    times. Each generation lives until it was counted: a file deleted before anyone opened
    #    it cannot be read by any tailer.
    for _ in range(5):
        os.unlink(log)
        fw.append(log, fw.traffic.lines(30))
        flagwatch.wait_counts(fw.traffic.expected(), what="the recreated file read from 0")

    # 5. Replaced by a rename over it (mv new app.log) while the writer still appends to the
    #    replaced, now deleted file; flagwatch stopped meanwhile.
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    try:
        fw.write_all(fd, fw.traffic.lines(30))
        flagwatch.wait_counts(fw.traffic.expected())
        flagwatch.pause()
        try:
            staging = fw.tmp / "app.log.new"
            staging.write_bytes(fw.traffic.lines(45))
            fw.write_all(fd, fw.traffic.lines(15))
            os.rename(staging, log)
            fw.write_all(fd, fw.traffic.lines(25))
        finally:
            flagwatch.resume()
    finally:
        os.close(fd)
    flagwatch.wait_counts(fw.traffic.expected(), what="replaced file read to its end + replacement from 0")
    fw.append(log, fw.traffic.lines(10))
    flagwatch.finish(fw.traffic.expected())
