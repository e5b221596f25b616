"""Fixtures every suite may use; the helpers are in the `harness` package (see harness/__init__.py)."""
import pytest

from harness.components import DAEMON_HELPERS
from harness.processes import Processes


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "e2e: end-to-end test that starts real components (Envoy 1.40, Prometheus, Alertmanager, "
        "journald) on 127.0.0.1 and runs the flagwatch binary ($FLAGWATCH_BIN, default .build/debug/flagwatch)",
    )


@pytest.fixture
def processes():
    """The processes a test starts (harness.processes.Processes), stopped by PID in teardown."""
    started = Processes()
    try:
        yield started
    finally:
        started.stop_all()


@pytest.fixture
def procs(processes):
    """The Envoy suites' name for `processes`."""
    return processes


@pytest.fixture(scope="session")
def fwd():
    """The daemon helpers as one namespace (fwd.Daemon, fwd.Prometheus, fwd.poll, fwd.by, ...)."""
    return DAEMON_HELPERS
