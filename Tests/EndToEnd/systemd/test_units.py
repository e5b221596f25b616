"""The systemd units (systemd/) and `make install`: layout, `systemd-analyze verify`, the
`systemd-analyze security` exposure, and the socket's port against the default config.

No systemd needs to be running: `verify` and `security --offline=yes` read unit files. The
binary comes from $FLAGWATCH_BIN (default .build/debug/flagwatch); `make install-files`
installs it without building. Every subprocess has a timeout.
"""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness import REPO
from harness.boot import ACCEPTED_LABELS, OK_THRESHOLD
from harness.flagwatch import BIN

TIMEOUT = 60

# systemd-analyze security: 0.0 PERFECT, 0.1-0.9 SAFE, 1.0-4.9 OK, 5.0-7.4 MEDIUM, then
# EXPOSED, UNSAFE, DANGEROUS. --threshold= is on the 0-100 scale (4.9 -> 49).


def systemd_analyze():
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.fail("systemd-analyze is missing: apt-get install systemd "
                    "(make test installs it through scripts/install-deps.sh test)")
    return path


def flagwatch_bin():
    if not os.access(BIN, os.X_OK):
        pytest.fail("no flagwatch binary at %s (make build, or set FLAGWATCH_BIN)" % BIN)
    return BIN


def make(*args):
    """`make -C REPO args`, without the variables of an outer make (make test)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "FLAGWATCH_BIN")}
    result = subprocess.run(["make", "--no-print-directory", "-C", str(REPO), *args],
                            env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, "make %s failed:\n%s%s" % (" ".join(args), result.stdout, result.stderr)
    return result.stdout


def unit_settings(path):
    """{key: [values]} of a unit file (comments and section headers skipped)."""
    settings = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def install(destdir, prefix="/usr", sysconfdir="/etc"):
    # SYSTEMCTL=true: never touch the host's systemd, even without DESTDIR.
    return make("install-files", "DESTDIR=%s" % destdir if destdir else "DESTDIR=",
                "PREFIX=%s" % prefix, "SYSCONFDIR=%s" % sysconfdir,
                "FLAGWATCH_BIN=%s" % flagwatch_bin(), "SYSTEMCTL=true")


def test_make_install_puts_files_in_place(tmp_path):
    dest = tmp_path / "dest"
    install(dest)
    binary = dest / "usr/bin/flagwatch"
    service = dest / "usr/lib/systemd/system/flagwatch.service"
    socket_unit = dest / "usr/lib/systemd/system/flagwatch.socket"
    config = dest / "etc/flagwatch/flagwatch.yaml"
    assert os.access(binary, os.X_OK)
    assert binary.read_bytes() == Path(flagwatch_bin()).read_bytes()
    assert socket_unit.read_text() == (REPO / "systemd/flagwatch.socket").read_text()
    assert config.read_text() == (REPO / "config/flagwatch.yaml").read_text()

    settings = unit_settings(service)
    assert settings["Type"] == ["notify"]
    assert settings["NotifyAccess"] == ["main"]
    assert settings["WatchdogSec"] == ["30s"]
    assert settings["Restart"] == ["on-failure"]
    # The shell's kill: /bin/kill (procps) is missing on minimal systems (found by systemd-boot/).
    assert settings["ExecReload"] == ["/bin/sh -c 'kill -HUP \"$$MAINPID\"'"]
    assert settings["DynamicUser"] == ["yes"]
    assert settings["StateDirectory"] == ["flagwatch"]
    # Both commands run the installed binary on the installed config.
    (start,) = settings["ExecStart"]
    (pre,) = settings["ExecStartPre"]
    assert start.split() == ["/usr/bin/flagwatch", "run", "--config", "/etc/flagwatch/flagwatch.yaml",
                             "--state-dir", "${STATE_DIRECTORY}"]
    assert pre.split() == ["/usr/bin/flagwatch", "check-config", "/etc/flagwatch/flagwatch.yaml"]

    # A changed config survives a reinstall and an uninstall; the default one is removed.
    config.write_text(config.read_text() + "# local change\n")
    assert "keeping the existing" in install(dest)
    assert config.read_text().endswith("# local change\n")
    make("uninstall", "DESTDIR=%s" % dest, "PREFIX=/usr", "SYSTEMCTL=true")
    assert not binary.exists() and not service.exists() and not socket_unit.exists()
    assert config.exists()
    install(dest)
    config.write_text((REPO / "config/flagwatch.yaml").read_text())
    make("uninstall", "DESTDIR=%s" % dest, "PREFIX=/usr", "SYSTEMCTL=true")
    assert not config.exists() and not config.parent.exists()


def test_unit_command_lines_match_the_cli(tmp_path):
    """Every option the unit passes to `flagwatch run` exists, and its ExecStartPre accepts the
    installed default config."""
    install(None, prefix=tmp_path / "usr", sysconfdir=tmp_path / "etc")
    settings = unit_settings(tmp_path / "usr/lib/systemd/system/flagwatch.service")
    (pre,) = settings["ExecStartPre"]
    result = subprocess.run(pre.split(), capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout
    help_text = subprocess.run([flagwatch_bin(), "run", "--help"], capture_output=True, text=True,
                               timeout=TIMEOUT).stdout
    (start,) = settings["ExecStart"]
    for option in (word for word in start.split() if word.startswith("--")):
        assert option + " " in help_text, "%s is not an option of flagwatch run:\n%s" % (option, help_text)


def test_systemd_analyze_verify(tmp_path):
    """verify checks the files and that the commands exist: install for real under tmp_path
    (PREFIX and SYSCONFDIR there, no DESTDIR) so ExecStart names an existing binary."""
    analyze = systemd_analyze()
    install(None, prefix=tmp_path / "usr", sysconfdir=tmp_path / "etc")
    unit_dir = tmp_path / "usr/lib/systemd/system"
    (start,) = unit_settings(unit_dir / "flagwatch.service")["ExecStart"]
    assert start.split()[0] == str(tmp_path / "usr/bin/flagwatch")
    result = subprocess.run([analyze, "verify", "--man=no", str(unit_dir / "flagwatch.service"),
                             str(unit_dir / "flagwatch.socket")],
                            capture_output=True, text=True, timeout=TIMEOUT)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # verify also loads the host's units the ours depend on; only complaints about ours count.
    assert not [line for line in output.splitlines() if "flagwatch" in line], output


def test_systemd_analyze_security_is_ok(tmp_path):
    analyze = systemd_analyze()
    dest = tmp_path / "dest"
    install(dest)
    result = subprocess.run([analyze, "security", "--offline=yes", "--root=%s" % dest,
                             "--threshold=%d" % round(OK_THRESHOLD * 10),
                             "/usr/lib/systemd/system/flagwatch.service"],
                            capture_output=True, text=True, timeout=TIMEOUT)
    output = result.stdout + result.stderr
    match = re.search(r"Overall exposure level for flagwatch\.service: (\d+\.\d) (\w+)", output)
    assert match, output
    level, label = float(match.group(1)), match.group(2)
    print(match.group(0))
    assert level <= OK_THRESHOLD and label in ACCEPTED_LABELS, output
    assert result.returncode == 0, output
    # The README quotes the measured score.
    assert "%s %s" % (match.group(1), label) in (REPO / "systemd/README.md").read_text()


def test_socket_port_matches_default_config_and_readme():
    (listen,) = unit_settings(REPO / "systemd/flagwatch.socket")["ListenStream"]
    config_listen = re.search(r'^listen:\s*"?([^"\s]+)"?', (REPO / "config/flagwatch.yaml").read_text(), re.M)
    assert config_listen, "no listen: in config/flagwatch.yaml"
    assert listen == config_listen.group(1)
    configuration = (REPO / "docs" / "configuration.md").read_text()
    assert "| `listen` | `%s` |" % listen in configuration
    assert listen in (REPO / "systemd/README.md").read_text()
