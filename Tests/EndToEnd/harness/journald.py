"""A private systemd-journald for the journal-source tests, and `flagwatch scan --follow` on it.

Each test gets its own journald (`jd` fixture, a `Journald`), started standalone in a private
mount namespace (`unshare --mount`): there, tmp directories are bind-mounted over /run,
/var/log and /etc/systemd/journald.conf, so journald's sockets and journal files are in the
test's tmp dir and the host's journal is never touched. Writers reach it three ways:

  jd.send(lines, ...)     the native protocol: datagrams to <tmp>/run/systemd/journal/socket
                          (from this process: a unix socket is found through any path to it)
  jd.cat(lines, ident)    `systemd-cat -t IDENT` (stdout stream protocol), run in the namespace
  jd.logger(line, ident)  `logger --journald`, run in the namespace

flagwatch is not in the namespace: it reads the files with `--journal-directory jd.directory`.

  fw.start(...)  starts `flagwatch scan --follow --output json --format istio` on the journal
                 and waits for the first object (ready); returns a `Follow` from the file-follow
                 kit (harness.flagwatch.FlagwatchFollow: wait_counts, hold, finish, stop, kill)
  fw.traffic     that kit's `Traffic`: Istio lines with the exact counts flagwatch must report

Every wait is bounded; journald and flagwatch are stopped by PID in teardown (the fixtures
are in journald/conftest.py).
"""
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from harness import follow as kit  # the file-follow kit: poll, merge_reports, describe_difference
from harness.flagwatch import BIN, INTERVAL, FlagwatchFollow, FlagwatchRun
from harness.processes import stop_popen

CHECKPOINT = 0.3          # --checkpoint-interval
JOURNALD_TIMEOUT = 15.0   # journald up, or down after SIGTERM
TOOL_TIMEOUT = 15.0       # systemd-cat, logger, journalctl

JOURNALD = next((p for p in ("/lib/systemd/systemd-journald", "/usr/lib/systemd/systemd-journald") if os.path.exists(p)), None)

# Written into the namespace's journald.conf: no rate limit (tests write thousands of entries
# in a second), no kernel messages, nothing forwarded anywhere.
JOURNALD_CONF = """\
[Journal]
Storage=persistent
RateLimitIntervalSec=0
RateLimitBurst=0
ReadKMsg=no
ForwardToSyslog=no
ForwardToKMsg=no
ForwardToConsole=no
ForwardToWall=no
"""

# Runs as `unshare --mount [--user --map-root-user] sh launch.sh ROOT`: unshare(1) makes the
# new mount namespace's propagation private, so these mounts stay in it. `exec` keeps the PID:
# the PID Popen returns is journald's, and the namespace ends with it.
LAUNCH = """\
set -eu
root=$1
mount --bind "$root/run" /run
mount --bind "$root/log" /var/log
if [ -e /etc/systemd/journald.conf ]; then mount --bind "$root/journald.conf" /etc/systemd/journald.conf; fi
mkdir -p /run/systemd/journal /var/log/journal
# Without this flag journald writes to /run/log/journal until systemd-journal-flush.service
# asks it to move to /var/log/journal; there is no such service here.
touch /run/systemd/journal/flushed
exec "$2"
"""


def _unshare_prefix():
    """How to get a private mount namespace here: as root directly, else inside a user
    namespace mapped to root (Debian allows unprivileged user namespaces by default)."""
    return ["unshare", "--mount"] if os.geteuid() == 0 else ["unshare", "--user", "--map-root-user", "--mount"]


_sandbox_problem = []


def sandbox_problem():
    """Why no private journald can run here (None if it can), checked once."""
    if not _sandbox_problem:
        problem = None
        missing = [tool for tool in ("unshare", "nsenter", "systemd-cat", "logger", "journalctl") if not shutil.which(tool)]
        if JOURNALD is None:
            problem = "systemd-journald is not installed (Debian package: systemd)"
        elif missing:
            problem = "missing tools: %s (Debian packages: util-linux, bsdutils, systemd)" % ", ".join(missing)
        else:
            probe = subprocess.run(_unshare_prefix() + ["true"], capture_output=True, timeout=TOOL_TIMEOUT)
            if probe.returncode != 0:
                problem = "cannot create a private mount namespace (%s): run as root or allow user namespaces" % (
                    probe.stderr.decode(errors="replace").strip())
        _sandbox_problem.append(problem)
    return _sandbox_problem[0]


class Journald:
    """One standalone systemd-journald writing into `root` (a tmp dir)."""

    def __init__(self, root):
        self.root = Path(root)
        for sub in ("run", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "journald.conf").write_text(JOURNALD_CONF)
        (self.root / "launch.sh").write_text(LAUNCH)
        self.socket_path = str(self.root / "run" / "systemd" / "journal" / "socket")
        self.stderr_path = self.root / "journald.stderr"
        self._stderr = open(self.stderr_path, "wb")
        self.user_namespace = os.geteuid() != 0
        self.proc = subprocess.Popen(
            _unshare_prefix() + ["sh", str(self.root / "launch.sh"), str(self.root), JOURNALD],
            stdin=subprocess.DEVNULL, stdout=self._stderr, stderr=self._stderr)
        self.pid = self.proc.pid
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.settimeout(TOOL_TIMEOUT)
        self.directory = self._wait_ready()

    def _wait_ready(self):
        """The journal directory (<root>/log/journal/<machine-id>) once journald has created
        its system.journal and its socket."""
        deadline = time.monotonic() + JOURNALD_TIMEOUT
        journal_root = self.root / "log" / "journal"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail("systemd-journald exited with %s:\n%s" % (self.proc.returncode, self.stderr_tail()))
            files = list(journal_root.glob("*/system.journal"))
            if files and os.path.exists(self.socket_path):
                return str(files[0].parent)
            time.sleep(0.05)
        pytest.fail("systemd-journald did not create its journal and socket within %.0f s:\n%s"
                    % (JOURNALD_TIMEOUT, self.stderr_tail()))

    def stderr_tail(self, n=30):
        try:
            return "\n".join(self.stderr_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def _in_namespace(self, argv, data=None):
        prefix = ["nsenter", "--target", str(self.pid), "--mount"]
        if self.user_namespace:
            prefix += ["--user", "--preserve-credentials"]
        result = subprocess.run(prefix + argv, input=data, capture_output=True, timeout=TOOL_TIMEOUT)
        if result.returncode != 0:
            pytest.fail("%s failed (%d): %s" % (" ".join(argv), result.returncode, result.stderr.decode(errors="replace")))
        return result

    # -- writers ------------------------------------------------------------------------------

    def send(self, lines, identifier="envoy", keep_newline=False, **fields):
        """One entry per line through the native protocol: MESSAGE = the line (without its
        newline unless keep_newline), SYSLOG_IDENTIFIER (unless None), and the given fields."""
        if isinstance(lines, (bytes, bytearray)):
            lines = bytes(lines).splitlines(keepends=True)
        extra = b"".join(_field(name, value) for name, value in fields.items())
        if identifier is not None:
            extra += _field("SYSLOG_IDENTIFIER", identifier)
        for line in lines:
            message = bytes(line) if keep_newline else bytes(line).rstrip(b"\n")
            # Blocks while journald's receive buffer is full (bounded by the socket timeout).
            self._socket.sendto(_field("MESSAGE", message) + extra, self.socket_path)
        return len(lines)

    def cat(self, lines, identifier):
        """`systemd-cat -t IDENT`: each line of stdin becomes an entry."""
        if isinstance(lines, (list, tuple)):
            lines = b"".join(lines)
        self._in_namespace(["systemd-cat", "-t", identifier], data=lines)

    def logger(self, line, identifier):
        """`logger --journald`: one entry from journal fields on stdin."""
        message = bytes(line).rstrip(b"\n")
        self._in_namespace(["logger", "--journald"], data=b"MESSAGE=%s\nSYSLOG_IDENTIFIER=%s\n" % (message, identifier.encode()))

    # -- maintenance --------------------------------------------------------------------------

    def sync(self):
        """`journalctl --sync`: returns once journald has written everything it received."""
        self._in_namespace(["journalctl", "--sync"])

    def rotate(self):
        """`journalctl --rotate`: journald archives system.journal (system@...journal) and
        starts a new one."""
        before = set(self.archived())
        self._in_namespace(["journalctl", "--rotate"])
        kit.poll(lambda: set(self.archived()) - before, JOURNALD_TIMEOUT, "an archived journal file after --rotate")

    def archived(self):
        return sorted(str(p) for p in Path(self.directory).glob("system@*.journal"))

    def vacuum(self):
        """What vacuuming does to archived files: unlinks them (all of them, here)."""
        removed = self.archived()
        for path in removed:
            os.unlink(path)
        return removed

    def stop(self):
        if self.proc.poll() is None:
            stop_popen(self.proc, grace=JOURNALD_TIMEOUT)
        self._socket.close()
        self._stderr.close()


def _field(name, value):
    """One native-protocol field: `NAME=value\\n`, or the binary form (name, newline, 64-bit
    little-endian length, bytes, newline) when the value holds a newline."""
    if isinstance(value, str):
        value = value.encode()
    name = name.encode()
    if b"\n" in value:
        return name + b"\n" + len(value).to_bytes(8, "little") + value + b"\n"
    return name + b"=" + value + b"\n"


class Kit:
    """What a test uses: the journald, the traffic, flagwatch runs on a shared state dir."""

    checkpoint_interval = CHECKPOINT
    kit = kit  # the file-follow kit: poll, merge_reports, describe_difference

    def __init__(self, tmp, jd, traffic):
        self.tmp = tmp
        self.jd = jd
        self.traffic = traffic
        self.state = tmp / "state"
        self._runs = []

    def scan(self, *args):
        """`flagwatch scan ARGS` (not following): exit status, stdout, stderr."""
        result = subprocess.run([BIN, "scan", *[str(a) for a in args]], capture_output=True, timeout=TOOL_TIMEOUT)
        return result.returncode, result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace")

    def argv(self, *extra, matches=("SYSLOG_IDENTIFIER=envoy",), start_at="end", state=True):
        argv = [BIN, "scan", "--follow", "--output", "json", "--format", "istio",
                "--interval", str(INTERVAL), "--journal-directory", self.jd.directory, "--start-at", start_at]
        for match in matches:
            argv += ["--journal-match", match]
        if state:
            argv += ["--state-dir", str(self.state), "--checkpoint-interval", str(CHECKPOINT)]
        return argv + [str(arg) for arg in extra]

    def start(self, *extra, **kw):
        """Starts flagwatch on the journal; returns once it printed its first object (ready)."""
        run = FlagwatchFollow(self.argv(*extra, **kw), str(self.tmp / ("flagwatch-%d.stderr" % (len(self._runs) + 1))))
        self._runs.append(run)
        run.wait_ready()
        return run

    def checkpoint(self):
        """The saved checkpoints (the state dir holds only the journal source's)."""
        files = list(self.state.glob("*.checkpoint.json"))
        assert files, "no checkpoint in %s" % self.state
        return [json.loads(f.read_text()) for f in files]

    def close(self):
        for run in self._runs:
            run.close()


def _require_cli():
    try:
        usage = subprocess.run([BIN, "scan", "--help"], capture_output=True, timeout=TOOL_TIMEOUT).stdout.decode()
    except OSError as error:
        pytest.fail("cannot run %s: %s" % (BIN, error))
    if "--journal-match" not in usage or "--journal-directory" not in usage:
        pytest.fail("%s scan has no --journal-match / --journal-directory" % BIN)


class JournalRun(FlagwatchRun):
    """One `flagwatch run` in journald's namespace (through nsenter, systemd-cat or `sh -c
    exec`, which keep the PID); its stdout and stderr to <tmp>/<name>.stderr."""

    def __init__(self, tmp, argv, port, name, env=None):
        super().__init__(argv, tmp / ("%s.stderr" % name), port, env=env)

    def wait_ready(self, timeout=20.0):
        super().wait_ready(timeout, interval=0.1)
        # The PID is flagwatch's own (nsenter / systemd-cat / sh exec it).
        assert os.path.realpath("/proc/%d/exe" % self.pid) == os.path.realpath(BIN), self.context()

