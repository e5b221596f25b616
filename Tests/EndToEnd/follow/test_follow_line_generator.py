"""Self-check of the shared line generator, without --follow: plain `flagwatch scan` of the
generated Istio lines (and of their CRI-wrapped, P/F-split form) must give exactly the counts
the generator expects. If this fails, every scenario test's expectation is wrong, not --follow.
"""
import json
import subprocess

import pytest

pytestmark = pytest.mark.follow


def run_scan(binary, *args):
    result = subprocess.run([binary, "scan", "--output", "json", *args], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(result.stdout)
    # The generator predicts counts; a cluster's diagnosis is derived (checked in test_scan_cli.py).
    for cluster in report["clusters"].values():
        cluster.pop("diagnosis", None)
    return report


def test_generated_lines_parse_exactly(fw):
    data = fw.traffic.lines(3000)
    path = fw.tmp / "generated.log"
    path.write_bytes(data)
    expected = fw.traffic.expected()
    assert expected["lines"] == 3000
    # Every outcome, flags such as UF,URX and URX,UF, and the no-cluster "-" occur.
    flags = {f for c in expected["clusters"].values() for f in c["flags"]}
    assert {"UF", "URX", "UH", "UT", "UO", "UC", "DC", "NR"} <= flags
    assert "-" in expected["clusters"]
    observed = run_scan(fw.bin, "--format", "istio", str(path))
    assert observed == expected, fw.describe(expected, observed)
    wrapped = fw.tmp / "generated-cri.log"
    wrapped.write_bytes(fw.cri(data, split_every=97))
    observed = run_scan(fw.bin, "--format", "istio", "--container-format", "cri", str(wrapped))
    assert observed == expected, fw.describe(expected, observed)
