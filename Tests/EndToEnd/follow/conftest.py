"""Fixtures of the `flagwatch scan --follow` scenario tests; the helpers are in harness/follow.py."""
import zlib

import pytest

from harness.follow import Kit


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "follow: end-to-end scenario test of `flagwatch scan --follow` (file tailing, rotation, "
        "checkpoints); runs the flagwatch binary ($FLAGWATCH_BIN, default .build/debug/flagwatch)",
    )


@pytest.fixture
def fw(tmp_path, request):
    kit = Kit(tmp_path, seed=zlib.crc32(request.node.nodeid.encode()))
    try:
        yield kit
    finally:
        kit.close()
