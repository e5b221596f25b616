"""Fixtures of the journal-source tests; the helpers (a private systemd-journald, flagwatch on
it) are in harness/journald.py."""
import pytest

from harness.journald import Journald, Kit, _require_cli, sandbox_problem
from harness.lines import Traffic


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "journald: end-to-end test of the journal source against a private systemd-journald "
        "(unshare --mount); runs the flagwatch binary ($FLAGWATCH_BIN, default .build/debug/flagwatch)",
    )


@pytest.fixture
def jd(tmp_path):
    problem = sandbox_problem()
    if problem:
        pytest.skip(problem)
    journald = Journald(tmp_path / "journald")
    try:
        yield journald
    finally:
        journald.stop()


@pytest.fixture
def cli(tmp_path):
    """flagwatch's journal options without a journald (argument checks)."""
    _require_cli()
    return Kit(tmp_path, None, None)


@pytest.fixture
def fw(tmp_path, jd, request):
    _require_cli()
    kit_ = Kit(tmp_path, jd, Traffic(request.node.nodeid))
    try:
        yield kit_
    finally:
        kit_.close()
