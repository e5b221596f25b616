"""Kubelet container-log rotation under /var/log/pods (a tmp copy of the layout):
DIR/var/log/pods/<ns>_<pod>_<uid>/<container>/0.log, CRI records, followed with
--file 'DIR/var/log/pods/*/*/*.log' --container-format cri.

A writer appends at a steady rate like containerd. Kubelet's rotation: compress the earlier
rotated files except the newest (gzip into 0.log.<ts>.tmp, rename to 0.log.<ts>.gz, delete the
uncompressed one), rename 0.log to 0.log.<YYYYMMDD-hhmmss>, then the runtime reopens 0.log (it
writes into the renamed file until then). A second pod's container is followed at the same
time and not rotated. Contract: the renamed file is read to its end, the new 0.log from 0,
*.gz never read: every line written is counted exactly once.
"""
import gzip
import os
import time

import pytest

pytestmark = pytest.mark.follow

ROTATIONS = 4


def compress(rotated):
    temporary = rotated.with_name(rotated.name + ".tmp")
    with open(rotated, "rb") as source, gzip.open(temporary, "wb") as target:
        target.write(source.read())
    os.rename(temporary, rotated.with_name(rotated.name + ".gz"))
    os.unlink(rotated)


def test_kubelet_rotation_with_gzip(fw):
    pods = fw.tmp / "var" / "log" / "pods"
    rotating = pods / "istio-system_istio-ingressgateway-6b7f9c8d4-k8s2p_4d0c5f7e-2b9a-4e31-8c6d-1f2e3a4b5c6d" / "istio-proxy" / "0.log"
    steady = pods / "default_payments-5d8f7c9b4-x2x4q_0b7e6a52-3c1d-4f8e-9a61-2f4c7d9e1a10" / "istio-proxy" / "0.log"
    for log in (rotating, steady):
        log.parent.mkdir(parents=True)
        fw.append(log, fw.cri(fw.traffic.uncounted(20)))
    # A gzipped rotation from before startup.
    old = rotating.with_name("0.log.20261122-095900.gz")
    with gzip.open(old, "wb") as handle:
        handle.write(fw.cri(fw.traffic.uncounted(50)))

    flagwatch = fw.start("--container-format", "cri", files=[pods / "*" / "*" / "*.log"])
    writer = fw.writer(rotating, rate=2500, wrap=fw.cri)
    other = fw.writer(steady, rate=300, batch=2, wrap=fw.cri)
    rotated = []
    for i in range(ROTATIONS):
        time.sleep(0.35)
        for earlier in rotated[:-1]:
            if earlier.exists():
                compress(earlier)
        target = rotating.with_name("0.log.20261122-1015%02d" % i)
        os.rename(rotating, target)
        rotated.append(target)
        time.sleep(0.05)  # the runtime still writes into the renamed file
        writer.reopen()
    time.sleep(0.35)
    writer.stop()
    other.stop()
    assert writer.written > 1000
    names = sorted(p.name for p in rotating.parent.iterdir())
    assert names == sorted(
        ["0.log", "0.log.20261122-095900.gz"]
        + ["0.log.20261122-1015%02d.gz" % i for i in range(ROTATIONS - 2)]
        + ["0.log.20261122-1015%02d" % i for i in range(ROTATIONS - 2, ROTATIONS)]
    ), names
    flagwatch.finish(fw.traffic.expected())
