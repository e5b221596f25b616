"""Fixtures of the HAProxy tests: the failing backends and a real HAProxy in front of them
(harness.proxies), on 127.0.0.1, with its own config in the test's tmp dir, logging to a file,
stopped by PID (the root conftest's `processes`)."""
import pytest

from harness.proxies import HAProxy, backends  # noqa: F401 (a fixture)


@pytest.fixture(params=["raw", "rfc3164"])
def haproxy(request, procs, backends, tmp_path):
    """HAProxy logging without a syslog header, and with one."""
    return HAProxy(procs, tmp_path / "haproxy", backends, log_format=request.param)
