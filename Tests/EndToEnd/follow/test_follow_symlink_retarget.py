"""A /var/log/containers-style symlink whose target changes. Kubernetes keeps
/var/log/containers/<pod>_<ns>_<container>-<id>.log as a symlink to
/var/log/pods/<ns>_<pod>_<uid>/<container>/N.log; here the link is retargeted atomically (a new
link renamed over it) to a new N.log. flagwatch follows --file DIR/containers/*.log with
--container-format cri. Contract: a retargeted symlink's new target is read from offset 0.
"""
import os

import pytest

pytestmark = pytest.mark.follow

POD_DIR = "pods/default_payments-5d8f7c9b4-x2x4q_0b7e6a52-3c1d-4f8e-9a61-2f4c7d9e1a10/istio-proxy"
LINK = "containers/payments-5d8f7c9b4-x2x4q_default_istio-proxy-4f2a9c1e7b3d.log"


def retarget(link, target):
    temporary = link.with_name(".link.tmp")
    os.symlink(target, temporary)
    os.rename(temporary, link)


def layout(fw):
    pods = fw.tmp / POD_DIR
    pods.mkdir(parents=True)
    link = fw.tmp / LINK
    link.parent.mkdir()
    first = pods / "0.log"
    fw.append(first, fw.cri(fw.traffic.uncounted(30)))
    os.symlink(first, link)
    return pods, link, first


def start(fw, link):
    return fw.start("--container-format", "cri", files=[link.parent / "*.log"])


def test_symlink_retarget(fw):
    pods, link, first = layout(fw)
    flagwatch = start(fw, link)
    fw.append(first, fw.cri(fw.traffic.lines(60)))
    flagwatch.wait_counts(fw.traffic.expected())

    # The new target already has lines when the link turns to it: all of them count.
    for n in (1, 2, 3):
        target = pods / ("%d.log" % n)
        fw.append(target, fw.cri(fw.traffic.lines(40)))
        retarget(link, target)
        flagwatch.wait_counts(fw.traffic.expected(), what="new symlink target %d.log read from 0" % n)
        fw.append(target, fw.cri(fw.traffic.lines(25)))
        flagwatch.wait_counts(fw.traffic.expected())
    flagwatch.finish(fw.traffic.expected())


def test_symlink_retarget_while_paused_reads_old_target_to_its_end(fw):
    # Like a rename rotation: lines the old target got before the link moved must count even
    # if flagwatch had not read them yet (here it is stopped with SIGSTOP).
    pods, link, first = layout(fw)
    flagwatch = start(fw, link)
    fw.append(first, fw.cri(fw.traffic.lines(60)))
    flagwatch.wait_counts(fw.traffic.expected())
    current = first
    for n in (1, 2):
        target = pods / ("%d.log" % n)
        flagwatch.pause()
        try:
            fw.append(current, fw.cri(fw.traffic.lines(45)))
            fw.append(target, fw.cri(fw.traffic.lines(35)))
            retarget(link, target)
        finally:
            flagwatch.resume()
        flagwatch.wait_counts(fw.traffic.expected(), what="old target to its end + new target from 0")
        current = target
    flagwatch.finish(fw.traffic.expected())
