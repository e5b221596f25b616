"""Shared helpers for the `flagwatch scan --follow` scenario tests (one file per scenario).

Everything a test needs comes from the `fw` fixture (a `Kit`):

  fw.tmp                 the test's tmp_path
  fw.traffic             a `Traffic`: makes realistic Istio 1.9+ text lines (several upstream
                         clusters, mixed response flags such as `UF,URX`) and keeps the exact
                         counts flagwatch must report for the lines the test declares written
  fw.start(...)          starts `flagwatch scan --follow --output json --format istio ...` and
                         returns a `Follow` (waits for the first JSON object, "ready")
  fw.append(path, data)  appends bytes with O_APPEND (creates the file)
  fw.writer(path, ...)   a `Writer` thread: an application appending at a steady rate through
                         its own descriptor, which it reopens on request (rotation)
  fw.cri(lines, ...)     wraps lines in CRI records (containerd / CRI-O), optionally split P/F
  fw.poll(...)           bounded poll
  fw.merge / fw.subtract add / subtract two `--output json` objects (runs over disjoint lines)
  fw.make_traversable()  lets uid 65534 (nobody) reach the tmp dir

Every wait is bounded. Every flagwatch process is stopped by PID in the fixture's teardown
(SIGCONT, then SIGKILL), whatever the test did. Counts are compared whole: the `lines`, the
(empty) `malformed` and every cluster's requests, codes and flags.
"""
import os
import threading
import time
from pathlib import Path

import pytest

from harness.flagwatch import BIN, INTERVAL, FlagwatchFollow, FlagwatchRun, run_argv
from harness.lines import (Traffic, cri_record, cri_wrap, describe_difference, merge_reports,  # noqa: F401
                           subtract_reports)
from harness.net import free_port
from harness.polling import poll_or_fail as poll

RESCAN = 1.0             # --rescan-interval unless a test says otherwise
NOBODY = 65534
SOURCE = "envoy"


def append(path, data):
    """Appends bytes in one write() through O_APPEND; creates the file (0644)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# --------------------------------------------------------------------------------------------
# The flagwatch process
# --------------------------------------------------------------------------------------------


class Writer(threading.Thread):
    """An application appending lines to `path` at a steady rate through its own descriptor
    (O_APPEND). reopen() makes it close that descriptor and open `path` again (creating it),
    as an application does after logrotate's rename. `wrap` turns line bytes into what is
    written (e.g. CRI records). Only lines whose write() returned are recorded."""

    def __init__(self, traffic, path, rate=2000, batch=4, wrap=None):
        super().__init__(name="writer-%s" % Path(path).name, daemon=True)
        self.traffic, self.path, self.rate, self.batch, self.wrap = traffic, path, rate, batch, wrap
        self.written = 0
        self.reopens = 0
        self.error = None
        self._stop_event = threading.Event()
        self._want_reopen = threading.Event()
        self._reopened = threading.Event()

    def run(self):
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            started = time.monotonic()
            while not self._stop_event.is_set():
                if self._want_reopen.is_set():
                    os.close(fd)
                    fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                    self.reopens += 1
                    self._want_reopen.clear()
                    self._reopened.set()
                made = self.traffic.make(self.batch)
                data = b"".join(made)
                write_all(fd, self.wrap(data) if self.wrap else data)
                self.traffic.record(made)
                self.written += len(made)
                ahead = started + self.written / self.rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            os.close(fd)
        except BaseException as error:  # reported by stop()
            self.error = error

    def reopen(self, timeout=5.0):
        self._reopened.clear()
        self._want_reopen.set()
        if not self._reopened.wait(timeout):
            pytest.fail("writer did not reopen %s within %.0f s (error: %r)" % (self.path, timeout, self.error))

    def stop(self):
        self._stop_event.set()
        self.join(10)
        assert not self.is_alive(), "writer thread did not stop"
        if self.error:
            raise self.error


class Kit:
    def __init__(self, tmp_path, seed):
        self.tmp = tmp_path
        self.bin = BIN
        self.traffic = Traffic(seed)
        self.poll = poll
        self.append = append
        self.cri = cri_wrap
        self.cri_record = cri_record
        self.merge = merge_reports
        self.subtract = subtract_reports
        self.write_all = write_all
        self.describe = describe_difference
        self._procs = []
        self._writers = []
        self._modes = []
        self._runs = 0

    def start(self, *args, files=(), fmt="istio", interval=INTERVAL, rescan=RESCAN, as_nobody=False, ready=True,
              prefix=()):
        """Starts flagwatch --follow; waits for the first object unless ready=False. prefix: a
        command that execs flagwatch, keeping its PID (e.g. `prlimit --nofile=...`)."""
        argv = [BIN, "scan", "--follow", "--output", "json", "--format", fmt,
                "--interval", str(interval), "--rescan-interval", str(rescan)]
        for pattern in files:
            argv += ["--file", str(pattern)]
        argv += [str(a) for a in args]
        if as_nobody:
            argv = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups"] + argv
        argv = [str(a) for a in prefix] + argv
        self._runs += 1
        follow = FlagwatchFollow(argv, self.tmp / ("flagwatch-run%d.stderr" % self._runs))
        self._procs.append(follow)
        if ready:
            follow.wait_ready()
        return follow

    def writer(self, path, **kw):
        writer = Writer(self.traffic, path, **kw)
        self._writers.append(writer)
        writer.start()
        return writer

    def make_traversable(self, path=None):
        """Adds o+x to path (default tmp) and every ancestor, restored at teardown, so that uid
        65534 can reach files there (pytest makes its tmp dirs 0700)."""
        current = Path(path or self.tmp).resolve()
        while current != current.parent:
            mode = current.stat().st_mode & 0o7777
            if not mode & 0o001:
                self._modes.append((current, mode))
                current.chmod(mode | 0o001)
            current = current.parent

    def close(self):
        for writer in self._writers:
            writer._stop_event.set()
            writer.join(5)
        for follow in self._procs:
            follow.close()
        for path, mode in reversed(self._modes):
            try:
                path.chmod(mode)
            except OSError:
                pass


def DaemonRun(tmp, processes, logs_glob, *, state_dir, nofile=None, rescan="1s", checkpoint="1s", name="run"):
    """`flagwatch run` on a files source (start_at beginning, a state dir, short rescan and
    checkpoint intervals) on a free port, optionally under `prlimit --nofile=SOFT:HARD` (which
    execs flagwatch: the PID stays the daemon's); a FlagwatchRun, not yet ready."""
    port = free_port()
    config = tmp / ("%s.yaml" % name)
    config.write_text(
        "listen: \"127.0.0.1:%d\"\n"
        "state_dir: %s\n"
        "sources:\n"
        "  - name: %s\n"
        "    files: [\"%s\"]\n"
        "    format: istio\n"
        "    start_at: beginning\n"
        "follow:\n"
        "  rescan_interval: %s\n"
        "  checkpoint_interval: %s\n" % (port, state_dir, SOURCE, logs_glob, rescan, checkpoint))
    prefix = ["prlimit", "--nofile=%d:%d" % nofile, "--"] if nofile is not None else []
    argv = run_argv(config, None, ("--log-target", "stderr", "--log-level", "info"), prefix)
    return FlagwatchRun(argv, tmp / ("%s.log" % name), port, processes)
