"""Fixtures of the nginx tests: the failing backends and a real nginx in front of them
(harness.proxies), on 127.0.0.1, with its own config and logs in the test's tmp dir, stopped by
PID (the root conftest's `processes`)."""
import pytest

from harness.proxies import Nginx, backends  # noqa: F401 (a fixture)


@pytest.fixture
def nginx(procs, backends, tmp_path):
    # nginx's master stops its worker and exits on SIGTERM (fast shutdown): the teardown sends
    # it to the master's PID.
    return Nginx(procs, tmp_path / "nginx", backends)
