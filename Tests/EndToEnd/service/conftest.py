"""Fixtures of the service tests (systemd notification protocol, reload); the daemon is
harness.flagwatch.start_service_run, stopped by PID in teardown."""
import pytest

from harness.flagwatch import start_service_run


@pytest.fixture
def start_daemon(tmp_path, processes):
    def start(config_text, env=None):
        return start_service_run(tmp_path, config_text, env, processes)
    return start
