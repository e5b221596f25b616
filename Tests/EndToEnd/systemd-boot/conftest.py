"""Fixtures of the boot test (a systemd-nspawn machine); the helpers are in harness/boot.py."""
import os
import shutil
import time

import pytest

from harness.boot import Machine, install_flagwatch, mounts_under, pristine_root_tarball, unpack_root


@pytest.fixture(scope="module")
def machine(tmp_path_factory):
    """The booted container for the module's tests (in order). A fresh copy of the cached root
    each session: nothing of an earlier run survives."""
    if os.geteuid() != 0:
        pytest.fail("the boot test needs root (systemd-nspawn --boot, mmdebstrap, make install into the root)")
    started = time.monotonic()
    tarball = pristine_root_tarball()
    base = tmp_path_factory.mktemp("systemd-boot")
    root = base / "root"
    unpack_root(tarball, root)
    unpacked = time.monotonic()
    install_output = install_flagwatch(root)
    installed = time.monotonic()
    booted = Machine(root, base / "nspawn.log")
    try:
        booted.install_output = install_output
        booted.boot_state = booted.wait_booted()
        print("root %.1f s, make install %.1f s, boot %.1f s" % (
            unpacked - started, installed - unpacked, time.monotonic() - installed))
        yield booted
    finally:
        booted.shutdown()
        leftovers = mounts_under(root)
        assert not leftovers, "mounts left under %s: %r" % (root, leftovers)
        shutil.rmtree(base, ignore_errors=True)
