"""The shipped units booted under a real PID-1 systemd: a Debian bookworm root (mmdebstrap,
minbase + systemd, systemd-sysv, dbus, curl), `make install DESTDIR=<root>`, then
`systemd-nspawn --boot --private-network` on it. The tests drive the booted system with
`nsenter -t <the container's PID 1> -a <command>`; no systemd has to run on the host.

  pristine_root_tarball()  the mmdebstrap tarball, built once into the cache directory
                           ${FLAGWATCH_TEST_CACHE:-/var/cache/flagwatch-tests}, named with a
                           hash of the mmdebstrap arguments
  install_flagwatch(root)  `make install DESTDIR=root` (or `make install-files` when
                           .build/release/flagwatch is newer than every source file)
  Machine                  the booted container: run(), sh(), systemctl(), show(), http(),
                           metrics(), journal(); shutdown() stops it by PID
  Traffic                  Istio access-log lines and the exact counts they must give
  machine                  module fixture: a fresh copy of the root per session, installed,
                           booted, `systemctl is-system-running` settled; powered off and
                           deleted in teardown

Test modules import these helpers as `boot_kit` (`from conftest import ...` would get whichever
conftest.py was imported first when several suites run together). Every wait is bounded; every
process is stopped by PID.
"""
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from harness import REPO
from harness.flagwatch import release_binary, release_make_args
from harness.lines import istio_line
from harness.metrics import flag_counts, metric_samples
from harness.polling import poll_until
from harness.processes import Processes, log_tail, stop_pid

RELEASE_BIN = release_binary()

# The issue fixes these: a minimal Debian with systemd as init, D-Bus and curl (for /metrics).
MMDEBSTRAP_ARGS = ("--variant=minbase", "--include=systemd,systemd-sysv,dbus,curl", "bookworm")
CACHE_DIR = Path(os.environ.get("FLAGWATCH_TEST_CACHE") or "/var/cache/flagwatch-tests")

MMDEBSTRAP_TIMEOUT = 900.0   # a fresh root takes 30-100 s; a slow mirror more
INSTALL_TIMEOUT = 3600.0     # `make install` may have to build the release binary first
BOOT_TIMEOUT = 90.0          # nspawn started -> `systemctl is-system-running` settled
COMMAND_TIMEOUT = 60.0       # one command inside the container
POWEROFF_TIMEOUT = 30.0      # SIGTERM to nspawn (a clean halt inside) -> nspawn gone

CONTAINER_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "TERM": "dumb",
    "SYSTEMD_COLORS": "0",
    "SYSTEMD_PAGER": "",
    "SYSTEMD_LESS": "",
}
# The daemon's default listen, from config/flagwatch.yaml and flagwatch.socket.
BASE_URL = "http://127.0.0.1:9817"
ENVOY_LOG = "/var/log/envoy/access.log"
STATE_DIR = "/var/lib/private/flagwatch"

# journald MESSAGE_IDs (Sources/flagwatch/LogMessageID.swift).
MESSAGE_ID_READY = "b2502a4b971c4562833cf66199b608e0"
MESSAGE_ID_STOPPED = "fd9625434f244517a2eefefc4c190282"


def require_tool(name):
    """A host tool the suite cannot run without: missing is a failure (make install-deps
    installs it), not a skip."""
    path = shutil.which(name)
    if path is None:
        pytest.fail("%s is missing: scripts/install-deps.sh test (apt-get install mmdebstrap "
                    "systemd-container util-linux) installs it" % name)
    return path


def _clean_env(extra=None):
    """The host environment without an outer make's variables (make test) and without
    FLAGWATCH_BIN (the debug binary: `make install-files` would pick it up)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "FLAGWATCH_BIN", "NOTIFY_SOCKET",
                        "LISTEN_FDS", "LISTEN_PID", "WATCHDOG_USEC", "WATCHDOG_PID")}
    env.update(extra or {})
    return env


# --- The root ------------------------------------------------------------------------------

def pristine_root_tarball():
    """The cached mmdebstrap tarball, built when missing. Its name carries a hash of the
    arguments, so changing them builds a new one. A lock serializes concurrent sessions; the
    tarball is written under a temporary name and renamed, so a half-built one is never used."""
    mmdebstrap = require_tool("mmdebstrap")
    key = hashlib.sha256(json.dumps(["mmdebstrap", *MMDEBSTRAP_ARGS]).encode()).hexdigest()[:16]
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tarball = CACHE_DIR / ("debian-root-%s.tar" % key)
    with open(CACHE_DIR / (tarball.name + ".lock"), "w") as lock:
        def locked():
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return False
        poll_until(locked, MMDEBSTRAP_TIMEOUT, "the lock on %s" % tarball, interval=0.5)
        if tarball.exists():
            return tarball
        # mmdebstrap picks the output format from the name: keep ".tar" at the end.
        partial = CACHE_DIR / ("debian-root-%s.partial-%d.tar" % (key, os.getpid()))
        log = CACHE_DIR / ("debian-root-%s.log" % key)
        started = time.monotonic()
        try:
            with open(log, "wb") as out:
                result = subprocess.run([mmdebstrap, *MMDEBSTRAP_ARGS, str(partial)], stdin=subprocess.DEVNULL,
                                        stdout=out, stderr=out, timeout=MMDEBSTRAP_TIMEOUT, env=_clean_env())
            assert result.returncode == 0, "mmdebstrap failed (%d)\n%s" % (result.returncode, log_tail(log, 40))
            os.replace(partial, tarball)
        finally:
            if partial.exists():
                partial.unlink()
        print("mmdebstrap %s: %.0f s -> %s" % (" ".join(MMDEBSTRAP_ARGS), time.monotonic() - started, tarball))
        return tarball


def unpack_root(tarball, root):
    """A fresh copy of the pristine root: owners, modes and extended attributes as built."""
    root.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-xpf", str(tarball),
                             "-C", str(root)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, "unpacking %s failed:\n%s" % (tarball, result.stderr)


def _release_is_current():
    """.build/release/flagwatch exists and is newer than every source file (or it is the
    $FLAGWATCH_RELEASE_BIN the caller chose)."""
    if release_make_args():
        return True
    if not RELEASE_BIN.exists():
        return False
    inputs = [REPO / "Package.swift", REPO / "Package.resolved"]
    inputs += [path for path in (REPO / "Sources").rglob("*") if path.is_file()]
    newest = max(path.stat().st_mtime for path in inputs if path.exists())
    return RELEASE_BIN.stat().st_mtime > newest


def make(*args, timeout):
    result = subprocess.run(["make", "--no-print-directory", "-C", str(REPO), *args], env=_clean_env(),
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, "make %s failed:\n%s%s" % (" ".join(args), result.stdout[-4000:], result.stderr[-4000:])
    return result.stdout


def install_flagwatch(root):
    """Installs the release binary, the units and the default config into `root` the way a
    user does (`make install`, which builds the release binary first). When the release binary
    is already newer than the sources, `make install-files` installs it without asking SwiftPM."""
    if _release_is_current():
        return make("install-files", "DESTDIR=%s" % root, "FLAGWATCH_BIN=%s" % RELEASE_BIN, "SYSTEMCTL=true",
                    timeout=COMMAND_TIMEOUT)
    return make("install", "DESTDIR=%s" % root, "SYSTEMCTL=true", timeout=INSTALL_TIMEOUT)


def mounts_under(path):
    """Mount points of this mount namespace at or below `path`."""
    prefix = str(path).rstrip("/")
    found = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return found


# --- The booted container -----------------------------------------------------------------

class CommandFailed(AssertionError):
    pass


class Machine:
    """systemd-nspawn --boot on `root`, and commands run inside it through nsenter.

    Without a systemd on the host, nspawn must neither register the machine with machined
    (--register=no) nor ask for a transient scope (--keep-unit: it stays in its own cgroup);
    either needs the host's system bus."""

    def __init__(self, root, log_path):
        self.root = Path(root)
        self.log_path = log_path
        self.name = "flagwatch-boot-%d" % os.getpid()
        self.processes = Processes()
        self.leader = None
        self.nsenter = require_tool("nsenter")
        nspawn = require_tool("systemd-nspawn")
        # --console=read-only: the boot messages go to the log, nothing reads our stdin.
        self.nspawn = self.processes.start(
            [nspawn, "--boot", "--private-network", "--register=no", "--keep-unit", "--console=read-only",
             "--machine=%s" % self.name, "--directory=%s" % self.root],
            log_path, env=_clean_env({"SYSTEMD_COLORS": "0"}))
        # The service's main PIDs seen by the tests, and which of them ended how.
        self.clean_stops = []      # stopped with SIGTERM: "stopped; checkpoints saved" expected
        self.killed = []           # killed (watchdog): no such line

    def context(self):
        return log_tail(self.log_path, 40)

    @staticmethod
    def _is_namespace_init(pid):
        """Whether host PID `pid` is PID 1 of a PID namespace below ours."""
        try:
            status = Path("/proc/%s/status" % pid).read_text()
        except OSError:
            return False
        match = re.search(r"^NSpid:\s+(.+)$", status, re.M)
        return bool(match) and len(match.group(1).split()) >= 2 and match.group(1).split()[-1] == "1"

    def _find_leader(self):
        """The container's PID 1 (systemd) as seen from the host: the child of nspawn whose
        PID in its own namespace is 1. -1 when nspawn has exited."""
        if self.nspawn.poll() is not None:
            return -1
        for children in glob.glob("/proc/%d/task/*/children" % self.nspawn.pid):
            for child in Path(children).read_text().split():
                if self._is_namespace_init(child):
                    return int(child)
        return None

    def wait_booted(self, timeout=BOOT_TIMEOUT):
        """Waits for PID 1, then until `systemctl is-system-running` is past starting;
        returns its answer (running, degraded, ...)."""
        deadline = time.monotonic() + timeout
        leader = poll_until(self._find_leader, timeout, "the container's PID 1", context=self.context)
        if leader == -1:
            pytest.fail("systemd-nspawn exited with %s\n%s" % (self.nspawn.returncode, self.context()))
        self.leader = leader

        def settled():
            left = max(1.0, deadline - time.monotonic())
            state = self.run("systemctl", "is-system-running", check=False, timeout=min(10.0, left)).stdout.strip()
            return state if state not in ("", "initializing", "starting", "offline", "unknown") else None
        return poll_until(settled, max(1.0, deadline - time.monotonic()), "systemctl is-system-running settled",
                          interval=0.2, context=self.context)

    def run(self, *argv, input=None, check=True, timeout=COMMAND_TIMEOUT):
        """Runs argv inside the container (all its namespaces, its root, a clean environment);
        returns the CompletedProcess (text). check: a non-zero exit is a test failure."""
        assert self.leader is not None, "the container is not booted"
        command = [self.nsenter, "--target", str(self.leader), "--all", "--", *[str(a) for a in argv]]
        result = subprocess.run(command, input=input, capture_output=True, text=True, timeout=timeout,
                                env=CONTAINER_ENV)
        if check and result.returncode != 0:
            raise CommandFailed("in the container: %s -> exit %d\nstdout: %s\nstderr: %s" % (
                " ".join(map(str, argv)), result.returncode, result.stdout[-3000:], result.stderr[-3000:]))
        return result

    def sh(self, script, **kwargs):
        return self.run("/bin/sh", "-c", script, **kwargs)

    def systemctl(self, *args, **kwargs):
        return self.run("systemctl", "--no-pager", *args, **kwargs)

    def show(self, unit, *properties):
        """{property: value} of `systemctl show -p ...`."""
        out = self.systemctl("show", unit, *("--property=%s" % p for p in properties)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def main_pid(self, unit="flagwatch.service"):
        return int(self.show(unit, "MainPID")["MainPID"])

    def http(self, path, timeout=10.0):
        """(status, body) of a GET on the daemon's default listener, by curl inside the
        container; status 0 when nothing answered."""
        result = self.run("curl", "--silent", "--max-time", "%g" % timeout, "--write-out", "\n%{http_code}",
                          BASE_URL + path, check=False, timeout=timeout + 10)
        body, _, code = result.stdout.rpartition("\n")
        return int(code or 0), body

    def metrics(self):
        status, body = self.http("/metrics")
        assert status == 200, "GET /metrics answered %d: %s" % (status, body[:500])
        return metric_samples(body)

    def journal(self, *args):
        """journalctl -o json entries (dicts) for args (matches and options)."""
        out = self.run("journalctl", "--no-pager", "-o", "json", *args).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def append_file(self, text, path=ENVOY_LOG):
        """Appends like Envoy does: to the end of the existing file (same inode, same mode)."""
        self.run("/bin/sh", "-c", 'cat >> "$1"', "sh", path, input=text)

    def send_journal(self, text, identifier="envoy"):
        """One journal entry per line with SYSLOG_IDENTIFIER=identifier (`systemd-cat -t`)."""
        self.run("systemd-cat", "-t", identifier, input=text)
        self.run("journalctl", "--sync")

    def host_path(self, path):
        return self.root / path.lstrip("/")

    def shutdown(self):
        """A clean halt: SIGTERM to systemd-nspawn makes systemd inside power off; then a
        bounded wait, then SIGKILL to nspawn and to the container's PID 1 (which takes every
        process of the container with it)."""
        in_time = True
        if self.nspawn.poll() is None:
            in_time = self.processes.stop(self.nspawn, signal.SIGTERM, grace=POWEROFF_TIMEOUT) is not None
        # nspawn was killed: the container may live on without it. Its PID 1 takes the rest along.
        if not in_time and self.leader is not None and self._is_namespace_init(self.leader):
            stop_pid(self.leader, signal.SIGKILL, grace=10.0)
        self.processes.stop_all()


# --- Traffic -------------------------------------------------------------------------------

class Traffic:
    """Lines and what one daemon process must count for them: {(cluster, flag): n} and lines
    per source. reset() when a new process starts (counters start at 0)."""

    def __init__(self):
        self.index = 0
        self.reset()

    def reset(self):
        self.expected = {}
        self.lines = {}

    def make(self, source, spec):
        """spec: [(cluster, flags, code, count)]; flags "UF,URX" counts once per flag, "-" none."""
        text = []
        for cluster, flags, code, count in spec:
            for _ in range(count):
                self.index += 1
                text.append(istio_line(cluster, flags, code, self.index))
            if flags != "-":
                for flag in flags.split(","):
                    self.expected[(cluster, flag)] = self.expected.get((cluster, flag), 0) + count
            self.lines[source] = self.lines.get(source, 0) + count
        return "".join(text)


def source_lines(samples, source):
    return int(samples.get('flagwatch_lines_total{source="%s"}' % source, 0))


def wait_counted(machine, traffic, timeout=30.0):
    """Waits until every source's flagwatch_lines_total is what `traffic` wrote, then checks
    the per-cluster, per-flag counts are exactly the expected ones; returns the samples."""
    def counted():
        samples = machine.metrics()
        if all(source_lines(samples, source) == n for source, n in traffic.lines.items()):
            return samples
        return None

    def context():
        samples = machine.metrics()
        lines = {k: v for k, v in samples.items() if k.startswith(("flagwatch_lines", "flagwatch_source_errors"))}
        status = machine.systemctl("status", "flagwatch.service", check=False).stdout
        return "wanted lines %r; have %r\n%s" % (traffic.lines, lines, status)
    samples = poll_until(counted, timeout, "lines counted %r" % traffic.lines, interval=0.2, context=context)
    assert flag_counts(samples) == traffic.expected
    return samples


# The offline suite's threshold for `systemd-analyze security` ("OK": exposure <= 4.9), used by
# systemd/test_units.py and systemd-boot/test_boot.py.
OK_THRESHOLD = 4.9
ACCEPTED_LABELS = {"PERFECT", "SAFE", "OK"}
