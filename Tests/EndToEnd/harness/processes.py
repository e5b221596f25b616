"""Starting and stopping processes: the one way every suite does it.

  Processes            the processes one test starts; each stopped by PID (SIGTERM, a bounded
                       wait, then SIGCONT + SIGKILL), also when the test fails halfway
  stop_pid(...)        the same bounded stop for any PID
  log_tail / tail      the end of a process's log, for failure messages
  listen_ports(pid)    the TCP ports a process listens on (/proc)
  vm_status(pid)       /proc/PID/status memory lines

Every loop here has a deadline; nothing waits forever.
"""
import ctypes
import os
import re
import signal
import subprocess
import time
from pathlib import Path


def die_with_parent():
    """In the child: SIGTERM when the test process dies without its teardown (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _pid_gone(pid):
    try:
        os.kill(pid, 0)
        return False
    except ProcessLookupError:
        return True


def stop_pid(pid, sig=signal.SIGTERM, grace=10.0, is_gone=None):
    """Sends `sig` to `pid`, waits up to `grace` seconds for it to go, then SIGCONT + SIGKILL.
    Returns True if it went within the grace period. `is_gone()` tells whether it has exited
    (default: the PID no longer exists; a child of ours must be reaped by its Popen instead)."""
    gone = is_gone or (lambda: _pid_gone(pid))
    if sig is not None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if gone():
            return True
        time.sleep(0.05)
    kill_pid(pid)
    return False


def kill_pid(pid):
    """SIGCONT (a stopped process cannot die otherwise) and SIGKILL, by PID."""
    for last in (signal.SIGCONT, signal.SIGKILL):
        try:
            os.kill(pid, last)
        except ProcessLookupError:
            pass


def stop_popen(process, sig=signal.SIGTERM, grace=10.0):
    """stop_pid for a child of ours; reaps it. Returns its exit status, or None if it had to be
    killed after `grace` seconds."""
    in_time = stop_pid(process.pid, sig, grace, is_gone=lambda: process.poll() is not None)
    try:
        status = process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        status = None
    return status if in_time else None


class Processes:
    """The processes one test starts. `start` writes the child's stderr (and its stdout, unless
    the caller passes `stdout=`) to a file; `stop` ends one by PID and returns its exit status;
    `stop_all` (teardown) sends SIGTERM to the rest, waits `grace` seconds for all of them,
    then SIGKILLs whatever is left."""

    def __init__(self):
        self._started = []

    @property
    def procs(self):
        return list(self._started)

    def start(self, argv, log_path, env=None, stdout=None, stdin=subprocess.DEVNULL, preexec_fn=None,
              **popen_args):
        def child_setup():
            die_with_parent()
            if preexec_fn is not None:
                preexec_fn()
        with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            process = subprocess.Popen(
                [str(arg) for arg in argv], stdin=stdin, stdout=log if stdout is None else stdout, stderr=log,
                env=env, preexec_fn=child_setup, close_fds=True, **popen_args)
        process.log_path = log_path
        self._started.append(process)
        return process

    def stop(self, process, sig=signal.SIGTERM, grace=10.0):
        """Stops `process` (SIGTERM by default); returns its exit status, or None if it had to
        be killed after `grace` seconds."""
        return stop_popen(process, sig, grace)

    def stop_all(self, grace=5.0):
        running = [p for p in reversed(self._started) if p.poll() is None]
        for process in running:
            try:
                os.kill(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        for process in running:
            stop_pid(process.pid, None, max(0.1, deadline - time.monotonic()),
                     is_gone=lambda p=process: p.poll() is not None)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for process in self._started:
            if process.stdout:
                process.stdout.close()
        self._started = []


def log_tail(path, lines=30):
    try:
        with open(path, "rb") as log:
            text = log.read().decode("utf-8", "replace")
    except OSError as error:
        return "(no log at %s: %s)" % (path, error)
    return "--- %s ---\n%s" % (path, "\n".join(text.splitlines()[-lines:]))


def tail(path, n=20):
    """The last `n` lines of a file, without a header."""
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no %s)" % path


def listen_ports(pid):
    """TCP ports the process `pid` listens on (from its socket descriptors and /proc/net/tcp*)."""
    inodes = set()
    try:
        fds = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return []
    for fd in fds:
        try:
            m = re.match(r"socket:\[(\d+)\]$", os.readlink("/proc/%d/fd/%s" % (pid, fd)))
        except OSError:
            continue
        if m:
            inodes.add(m.group(1))
    ports = []
    for table in ("tcp", "tcp6"):
        try:
            with open("/proc/%d/net/%s" % (pid, table)) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == "0A" and fields[9] in inodes:  # 0A = LISTEN
                ports.append(int(fields[1].rsplit(":", 1)[1], 16))
    return sorted(set(ports))


def vm_status(pid):
    """{"VmRSS": bytes, "VmHWM": bytes, ...} from /proc/PID/status (kB lines only)."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if len(parts) == 2 and parts[1] == "kB":
                    out[key] = int(parts[0]) * 1024
    except OSError:
        pass
    return out


def open_paths(pid):
    """What the process has open (readlink of /proc/PID/fd/*)."""
    paths = []
    fd_dir = "/proc/%d/fd" % pid
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return paths
    for name in names:
        try:
            paths.append(os.readlink(os.path.join(fd_dir, name)))
        except OSError:
            pass
    return paths
