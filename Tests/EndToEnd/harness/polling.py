"""Bounded waiting. Every loop has a deadline.

  poll_until(check, timeout, what)   returns check()'s first truthy value; raises Timeout (an
                                     AssertionError) naming `what`; exceptions are "not yet"
  poll(predicate, timeout)           returns the last value (falsy on timeout)
  poll_or_fail(predicate, timeout, what)  pytest.fail on timeout
"""
import time

import pytest


class Timeout(AssertionError):
    """poll_until's deadline passed: an assertion failure, so pytest reports it as such."""


def poll_until(check, timeout, what, interval=0.1, context=None):
    """Calls `check()` until it returns a truthy value, and returns that value. After `timeout`
    seconds raises Timeout naming `what`, the last value (or exception) seen, and `context()`
    (e.g. a log tail) when given. Exceptions from `check` count as "not yet"."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = check()
            if last:
                return last
        except Exception as error:  # noqa: BLE001 - "not yet", reported if it lasts
            last = error
        if time.monotonic() >= deadline:
            extra = ""
            if context is not None:
                try:
                    extra = "\n" + str(context())
                except Exception as error:  # noqa: BLE001
                    extra = "\n(context unavailable: %r)" % error
            raise Timeout("%s: not within %.0f s; last: %r%s" % (what, timeout, last, extra))
        time.sleep(interval)


def poll(predicate, timeout, interval=0.1):
    """Calls predicate() until it returns something truthy or `timeout` seconds pass; returns
    the last value (falsy on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def poll_or_fail(predicate, timeout, what, interval=0.05):
    """Like poll, but a timeout fails the test (pytest.fail) naming `what`."""
    value = poll(predicate, timeout, interval)
    if not value:
        pytest.fail("timed out after %.1f s waiting for %s" % (timeout, what))
    return value
