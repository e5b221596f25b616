"""Fixtures of the listener tests; the helpers are in harness/listener.py."""
import pytest

from harness.listener import Kit


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "daemon: end-to-end test of the `flagwatch run` HTTP listener over raw sockets on 127.0.0.1; "
        "runs the flagwatch binary ($FLAGWATCH_BIN, default .build/debug/flagwatch)",
    )
    config.addinivalue_line("markers", "slow: waits out a real 30-60 s listener timeout")


@pytest.fixture
def fw(tmp_path):
    kit = Kit(tmp_path)
    try:
        yield kit
    finally:
        kit.close()


@pytest.fixture
def daemon(fw):
    """A daemon with a small log (8 clusters, 72 lines)."""
    return fw.start()
