"""Large bursts: tens of megabytes appended at once (more than flagwatch reads in one go, so
lines straddle its read-buffer boundaries), in one write() and in chunks cut at arbitrary
bytes, and a large file present at startup with --start-at beginning. Every line counts once.
"""
import pytest

pytestmark = pytest.mark.follow


def test_large_bursts(fw):
    log = fw.tmp / "app.log"
    existing = fw.traffic.lines(20000)  # ~9 MB before startup
    log.write_bytes(existing)
    flagwatch = fw.start("--start-at", "beginning", files=[log])
    fw.append(log, fw.traffic.lines(40000))  # ~18 MB in one write
    flagwatch.wait_counts(fw.traffic.expected(), timeout=60)
    data = fw.traffic.lines(30000)
    chunk = 1_000_003  # not a multiple of anything
    for start in range(0, len(data), chunk):
        fw.append(log, data[start : start + chunk])
    flagwatch.finish(fw.traffic.expected())
