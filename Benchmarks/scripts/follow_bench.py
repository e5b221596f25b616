#!/usr/bin/env python3
"""follow_bench.py: can `flagwatch scan --follow`, or the daemon `flagwatch run`, keep up with
a busy access log, and what does it cost, busy and idle?

What `make bench-follow` (--mode scan, the default) and `make bench-daemon` (--mode daemon)
run. It builds nothing: build flagwatch first (swift build -c release), or set FLAGWATCH_BIN.

Two modes; everything below applies to both unless it says otherwise:
  scan:   `flagwatch scan --follow ... --output json --interval I`; its counts are the JSON
          reports it prints every I s.
  daemon: `flagwatch run --config CONFIG`, CONFIG written into the temporary folder: listen
          "127.0.0.1:0" (the port is read from /proc/PID), state_dir in the folder, one file
          source "bench" with files [DIR/*.log], format istio, start_at end, windows [1m, 5m,
          15m]. Its counts are scrapes: GET /metrics every --interval s on one keep-alive
          connection (Accept as Prometheus sends it, OpenMetrics first), reading
          flagwatch_lines_total{source="bench"}.

The target (from the issue): appending 1 M Istio text lines/s to a file for 30 s, flagwatch
keeps up (lag under 1 s of data) using at most 0.3 of a core; idle (nothing written), under
0.1 % of a core.

  1. Generates N distinct-ish Istio 1.9+ text lines (default 1,000,000, about 364 bytes each)
     with generate_corpus.py, plus their ground truth, and holds them in memory as one block.
  2. Creates an access log in a temporary folder on the same disk (TMPDIR or --dir), writes a
     few lines into it, and starts flagwatch, which starts at the end of the file:
     scan:   `flagwatch scan --follow --file DIR/*.log --format istio --output json --interval
             0.25`; ready is its first JSON object;
     daemon: `flagwatch run --config CONFIG`; ready is GET /-/ready returning 200, then the
             first scrape. Either must count 0 lines.
  3. A writer thread appends whole lines from the block, paced to --rate lines/s, one
     os.write every --batch-ms (10 ms: 10,000 lines, 3.6 MB), for --seconds. Batches are
     slices of the pre-joined block, so Python does no per-line work: the writer's cost is the
     kernel's copy into the page cache. On this project's VM, new page-cache pages are slow
     to touch the first time (see Ballast), so by default the log's blocks are reserved up
     front (fallocate KEEP_SIZE) and a ballast file of the run's size, written and synced
     before flagwatch starts, is truncated as the writer appends: its freed pages are warm.
     With both, the writer reached the rate using 0.26-0.51 of a core for 364 MB/s; without
     (--no-preallocate --no-ballast) it reached only 0.70-0.83 M lines/s using 0.7-0.9 of a core.
     The achieved rate is measured and reported; if the writer falls more than 2 % short,
     the run is not valid.
  4. Lag: each report flagwatch prints (daemon: each scrape's response, once its body is read)
     is time-stamped when it arrives; lag in seconds of data is (lines written when the report
     arrives - lines the report counts) / --rate. Also reported as time lag: arrival time
     minus the time the counted line was written (a stall of the whole machine shows there,
     not in the data lag). The data lag can be slightly negative: a batch is readable before
     its write returns and is counted as written. Daemon mode also reports the scrapes' wall
     times while writing (a scrape's lag includes its own duration).
     After the writer stops, flagwatch must count exactly the lines written within 2 s.
  5. CPU: flagwatch's utime+stime from /proc/PID/stat (clock ticks; the kernel scales them to
     the scheduler's exact run time) from the writer's start until flagwatch has counted
     everything, divided by the writer's duration: the cores needed to keep up with the data.
     Also: the same over the writer's window alone, the precise figure from
     /proc/PID/task/*/sched (se.sum_exec_runtime), CPU-s per million lines, the writer
     thread's own CPU, and the machine's busy cores (/proc/stat, approximate).
     Peak RSS is VmHWM from /proc/PID/status.
     Daemon mode: the daemon's CPU includes answering the scrapes made meanwhile (4 a second
     at the default --interval). Their share is estimated: after the drain, with the periodic
     scrapes paused, --scrape-cost-scrapes (20) back-to-back scrapes measure the daemon's CPU
     per scrape (sum_exec_runtime), times the scrapes made while counting. The target is
     checked on the CPU including the scrapes.
  6. Idle, --idle-seconds (60) each with nothing written. Ticks are 10 ms: 60 s resolves
     0.017 % of a core (the scheduler's figure is shown too).
     scan, two ways (--idle-mode):
       same:  the benchmarked process after the run, still reporting every 0.25 s
              (information only: the target is for the default interval);
       fresh: a new flagwatch with --idle-interval (default 2 s, flagwatch's default) that has
              first counted the whole corpus from the beginning of another file, so its
              reports hold every cluster, as a daemon that has seen traffic. Checked against
              the target.
     daemon: the benchmarked daemon after the run (it has every cluster):
       no scrapes at all: checked against the target;
       then, unless --idle-scrape-interval is 0, a scrape every --idle-scrape-interval s
       (default 15, a common Prometheus scrape interval; the first half an interval in, so
       none falls on the window's edges): information only.
     A line count is read after each window (daemon: a scrape outside the window); it must
     not have changed.
  7. SIGTERM: exit status 0. The final counts must equal the ground truth: lines, no
     malformed lines, requests summing to the lines, and every cluster's code classes and flags
     when the writer wrote whole copies of the block (as with the defaults: 30 M lines = 30
     copies).
     scan:   the final JSON object, printed on SIGTERM;
     daemon: the last scrape, made just before SIGTERM: flagwatch_lines_total and
             flagwatch_lines_malformed_total of the source, flagwatch_responses_total (code
             classes; their sum is the cluster's requests) and flagwatch_response_flags_total
             per cluster, label values unescaped.

Prints a short summary, then one JSON line with every figure.

Exit status: 0 every target met; 1 a target missed or wrong counts; 2 the measurement is not
valid (missing binary, the writer could not reach the rate, flagwatch did not start, too
little disk space).

Every process is stopped by its PID; every wait has a deadline.
"""

import argparse
import array
import bisect
import ctypes
import ctypes.util
import glob
import http.client
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GENERATOR = os.path.join(ROOT, "Benchmarks", "scripts", "generate_corpus.py")
HZ = os.sysconf("SC_CLK_TCK")

TARGET_LAG_S = 1.0
TARGET_CORES = 0.3
TARGET_IDLE_PERCENT = 0.1


class SetupError(Exception):
    pass


def log(msg):
    print("follow_bench: " + msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------
# /proc readers
# ------------------------------------------------------------------------------------------

def proc_ticks(pid):
    """utime + stime of the whole process (all threads, live and exited), in clock ticks."""
    with open("/proc/%d/stat" % pid) as fh:
        data = fh.read()
    fields = data[data.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); utime is field 14, stime field 15.
    return int(fields[11]) + int(fields[12])


def proc_sched_ms(pid):
    """Sum of se.sum_exec_runtime (ms, microsecond precision) over the live threads, or None."""
    total = 0.0
    found = False
    for path in glob.glob("/proc/%d/task/*/sched" % pid):
        try:
            with open(path) as fh:
                for line in fh:
                    if line.startswith("se.sum_exec_runtime"):
                        total += float(line.split(":")[1])
                        found = True
                        break
        except OSError:
            continue
    return total if found else None


def proc_status_kb(pid, key):
    with open("/proc/%d/status" % pid) as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def machine_busy_ticks():
    """(busy, total) jiffies over all CPUs from /proc/stat."""
    with open("/proc/stat") as fh:
        parts = fh.readline().split()
    values = [int(v) for v in parts[1:9]]  # user nice system idle iowait irq softirq steal
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


class CpuMark:
    """A point in time with flagwatch's CPU counters."""

    def __init__(self, pid):
        self.t = time.monotonic()
        self.ticks = proc_ticks(pid)
        self.sched_ms = proc_sched_ms(pid)
        self.machine_busy, self.machine_total = machine_busy_ticks()


def cpu_between(a, b, per_seconds=None):
    """Cores used between two marks: ticks-based and sched-based, over `per_seconds` (default
    the wall time between them)."""
    seconds = per_seconds if per_seconds is not None else (b.t - a.t)
    seconds = max(seconds, 1e-9)
    out = {
        "wall_s": round(b.t - a.t, 3),
        "per_s": round(seconds, 3),
        "ticks": b.ticks - a.ticks,
        "cores": (b.ticks - a.ticks) / HZ / seconds,
    }
    if a.sched_ms is not None and b.sched_ms is not None:
        out["sched_cores"] = (b.sched_ms - a.sched_ms) / 1000.0 / seconds
    else:
        out["sched_cores"] = None
    ncpu = os.cpu_count() or 1
    dt = b.machine_total - a.machine_total
    out["machine_busy_cores"] = (b.machine_busy - a.machine_busy) / dt * ncpu if dt > 0 else None
    return out


# ------------------------------------------------------------------------------------------
# Corpus
# ------------------------------------------------------------------------------------------

def preallocate(fd, nbytes):
    """fallocate(FALLOC_FL_KEEP_SIZE): reserves the file's blocks beyond its end without
    changing its size, so the writer's appends (and the kernel's writeback) do not allocate
    blocks as they go. Readers see the same file. Returns None or the reason it failed."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
        if libc.fallocate(fd, 1, 0, int(nbytes)) != 0:  # 1 = FALLOC_FL_KEEP_SIZE
            return os.strerror(ctypes.get_errno())
    except (OSError, AttributeError) as e:
        return str(e)
    return None


class Ballast:
    """A clean file of the run's size, given back to the kernel as the writer needs memory.

    Why: on a VM with free page reporting (virtio-balloon; this project's machine), memory
    the guest has not used lately belongs to the host again, and the first touch of each page
    is slow. Appending 364 MB/s to a file needs 364 MB/s of new page-cache pages; taken from
    such memory, the kernel's copy into them costs the writer 1.5-2 CPU-s per GB and the writer
    cannot reach 1 M lines/s on two cores. Pages freed by truncating a file and reused at once
    are warm: the same appends then cost about 0.3-0.5 CPU-s per GB. So the ballast is written
    and fsynced before flagwatch starts, and the writer truncates it by as many bytes as it is
    about to append. flagwatch's cost is not changed: it reads the same page-cache pages."""

    def __init__(self, path, nbytes, chunk):
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        piece = memoryview(chunk)
        size = 0
        t0 = time.monotonic()
        while size < nbytes:
            size += os.write(self.fd, piece[:min(len(piece), nbytes - size)])
            if time.monotonic() - t0 > 600:
                raise SetupError("writing the ballast file took more than 600 s")
        os.fsync(self.fd)
        self.size = size

    def release(self, nbytes):
        if self.size > 0:
            self.size = max(0, self.size - nbytes)
            os.ftruncate(self.fd, self.size)

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


def mem_available():
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def make_corpus(workdir, lines, seed):
    """Runs generate_corpus.py; returns (block bytes, line offsets, truth dict)."""
    out = os.path.join(workdir, "corpus", "corpus.txt")
    truth = os.path.join(workdir, "corpus", "truth.json")
    os.makedirs(os.path.dirname(out))
    cmd = [sys.executable, GENERATOR, "--lines", str(lines), "--seed", str(seed), "--out", out,
           "--truth", truth, "-q"]
    try:
        subprocess.run(cmd, check=True, timeout=600)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        raise SetupError("corpus generation failed: %s" % e)
    with open(out, "rb") as fh:
        block = fh.read()
    with open(truth) as fh:
        truth_doc = json.load(fh)
    os.unlink(out)
    offsets = array.array("q", [0])
    find = block.find
    pos = 0
    end = len(block)
    while pos < end:
        nl = find(b"\n", pos)
        if nl < 0:
            raise SetupError("corpus does not end with a newline")
        pos = nl + 1
        offsets.append(pos)
    if len(offsets) - 1 != lines or truth_doc.get("lines") != lines:
        raise SetupError("corpus has %d lines, want %d" % (len(offsets) - 1, lines))
    return block, offsets, truth_doc


# ------------------------------------------------------------------------------------------
# flagwatch and the counts it shows
# ------------------------------------------------------------------------------------------

class FlagwatchProcess:
    """One flagwatch process, stopped by its PID, and the counts it has shown so far: samples
    of (arrival monotonic, lines written then, lines counted). A subclass's thread feeds them
    through _record (scan --follow: its JSON reports; run: scrapes of /metrics)."""

    noun = "reports"

    def __init__(self, argv, stderr_path, written_fn, stdout=subprocess.PIPE):
        self.written_fn = written_fn
        self.samples = []          # (arrival monotonic, lines written then, lines counted)
        self.last_raw = None       # the last report / /metrics body that had a line count
        self.last_lines = None
        self.bad_output = []
        self.error = None          # why the thread gave up early, if it did
        self.ready_t = None        # when flagwatch said it was ready (None: its first sample)
        self.cond = threading.Condition()
        self.eof = False
        self.thread = None
        self.stderr_fh = open(stderr_path, "wb")
        self.argv = argv
        # If this script dies without stopping it (SIGKILL), flagwatch gets SIGTERM from the
        # kernel: setpriv sets the parent-death signal and execs flagwatch (same PID).
        setpriv = shutil.which("setpriv")
        prefix = [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []
        self.proc = subprocess.Popen(prefix + argv, stdin=subprocess.DEVNULL,
                                     stdout=self.stderr_fh if stdout is None else stdout, stderr=self.stderr_fh)
        self.pid = self.proc.pid

    def _start_thread(self, target, name):
        self.thread = threading.Thread(target=target, name=name, daemon=True)
        self.thread.start()

    def _record(self, now, lines, raw):
        """A report or scrape arrived at `now`, counting `lines` (None: not understood)."""
        written = self.written_fn()
        with self.cond:
            if lines is None:
                if len(self.bad_output) < 5:
                    self.bad_output.append(raw[:300])
            else:
                self.samples.append((now, written, lines))
                self.last_lines = lines
                self.last_raw = raw
            self.cond.notify_all()

    def _finished(self):
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def wait_for(self, predicate, timeout):
        """Waits until predicate(last_lines) holds; returns the time it held, or None."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                if self.last_lines is not None and predicate(self.last_lines):
                    return self.samples[-1][0]
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.eof:
                    return None
                self.cond.wait(min(remaining, 0.5))

    def samples_between(self, t0, t1):
        with self.cond:
            return [s for s in self.samples if t0 < s[0] <= t1]

    def current_lines(self):
        """The line count now (a scraped daemon is scraped for it)."""
        with self.cond:
            return self.last_lines

    def take_final_sample(self):
        """Before SIGTERM: a daemon is scraped one last time (scan --follow prints its own)."""

    def final_report(self):
        """The last counts as {"lines", "malformed", "clusters": {name: {requests, codes,
        flags}}} (the shape of scan's JSON report), or None."""
        raise NotImplementedError

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=15.0):
        """SIGTERM by PID; SIGKILL by PID if it has not exited in time. Returns the exit status."""
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log("flagwatch (pid %d) did not exit %g s after SIGTERM; killing it" % (self.pid, timeout))
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
                self._join()
                return None
        self._join()
        return self.proc.returncode

    def _join(self):
        if self.thread is not None:
            self.thread.join(10)
        self.stderr_fh.close()


class ScanFollow(FlagwatchProcess):
    """`flagwatch scan --follow`; a thread reads its JSON reports."""

    def __init__(self, binary, pattern, interval, stderr_path, written_fn, extra=()):
        super().__init__([binary, "scan", "--follow", "--file", pattern, "--format", "istio",
                          "--output", "json", "--interval", repr(interval)] + list(extra),
                         stderr_path, written_fn)
        self._start_thread(self._read, "reports")

    def _read(self):
        stdout = self.proc.stdout
        while True:
            raw = stdout.readline()
            now = time.monotonic()
            if not raw:
                break
            # {"lines":N,... : read N without parsing the whole object (kept for the end).
            head = raw[:40]
            lines = None
            if head.startswith(b'{"lines":'):
                digits = head[9:].split(b",", 1)[0].split(b"}", 1)[0]
                if digits.isdigit():
                    lines = int(digits)
            self._record(now, lines, raw)
        self._finished()

    def final_report(self):
        try:
            final = json.loads(self.last_raw) if self.last_raw else None
        except ValueError:
            return None
        return final if isinstance(final, dict) else None


# What Prometheus asks for (OpenMetrics first), as in daemon_bench.py.
PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
DAEMON_SOURCE = "bench"


def write_daemon_config(workdir, pattern):
    """The config of the benchmarked daemon (keys as in config/flagwatch.yaml)."""
    path = os.path.join(workdir, "flagwatch.yaml")
    with open(path, "w") as fh:
        fh.write('listen: "127.0.0.1:0"\n'
                 'state_dir: %s\n'
                 'sources:\n'
                 '  - name: %s\n'
                 '    files: [%s]\n'
                 '    format: istio\n'
                 '    start_at: end\n'
                 'windows: [1m, 5m, 15m]\n'
                 % (json.dumps(os.path.join(workdir, "state")), DAEMON_SOURCE, json.dumps(pattern)))
    return path


def listen_ports(pid):
    """TCP ports the process listens on, from its socket descriptors and /proc/PID/net/tcp*."""
    inodes = set()
    try:
        fds = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return []
    for fd in fds:
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        try:
            with open("/proc/%d/net/%s" % (pid, table)) as fh:
                rows = fh.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == "0A" and fields[9] in inodes:   # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return sorted(ports)


_SAMPLE_LINE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,?)')
_UNESCAPE = re.compile(r"\\(.)")


def parse_metric_samples(body, names):
    """(name, labels, value) of every sample of the families `names` in a Prometheus text or
    OpenMetrics body; label values unescaped. Raises ValueError on a line it cannot read."""
    out = []
    for line in body.decode("utf-8").split("\n"):
        if not line or line[0] == "#":
            continue
        m = _SAMPLE_LINE.fullmatch(line)
        if m is None:
            raise ValueError("not a sample: %r" % line[:200])
        if m.group(1) not in names:
            continue
        labels = {}
        block = m.group(2) or ""
        pos = 0
        while pos < len(block):
            lm = _LABEL.match(block, pos)
            if lm is None:
                raise ValueError("bad labels: %r" % line[:200])
            labels[lm.group(1)] = _UNESCAPE.sub(lambda e: "\n" if e.group(1) == "n" else e.group(1), lm.group(2))
            pos = lm.end()
        value = m.group(3)
        out.append((m.group(1), labels, int(value) if value.isdigit() else float(value)))
    return out


def metrics_report(body, source):
    """A /metrics body as scan's JSON report: lines and malformed of `source`; per cluster,
    the code classes (flagwatch_responses_total), flags (flagwatch_response_flags_total) and
    requests (the sum of the code classes; the daemon has no per-cluster request counter)."""
    report = {"lines": None, "malformed": {}, "clusters": {}}
    families = ("flagwatch_lines_total", "flagwatch_lines_malformed_total", "flagwatch_responses_total",
                "flagwatch_response_flags_total")
    for name, labels, value in parse_metric_samples(body, families):
        if name == "flagwatch_lines_total":
            if labels.get("source") == source:
                report["lines"] = value
        elif name == "flagwatch_lines_malformed_total":
            if labels.get("source") == source and value != 0:
                report["malformed"][labels.get("reason")] = value
        else:
            c = report["clusters"].setdefault(labels.get("upstream_cluster"), {"requests": 0, "codes": {}, "flags": {}})
            if name == "flagwatch_responses_total":
                c["codes"][labels.get("code_class")] = value
                c["requests"] += value
            else:
                c["flags"][labels.get("response_flag")] = value
    return report


class Daemon(FlagwatchProcess):
    """`flagwatch run --config CONFIG`; a thread finds its port (/proc), waits for /-/ready,
    then scrapes /metrics every `period` seconds on one keep-alive connection (as Prometheus
    does), reading flagwatch_lines_total{source=...}. Scrapes can be paused (set_period(None))
    and made by the main thread (scrape_now); one lock serializes them."""

    noun = "scrapes"

    def __init__(self, binary, config, stderr_path, written_fn, period, ready_timeout=30.0):
        super().__init__([binary, "run", "--config", config], stderr_path, written_fn, stdout=None)
        self.period = period
        self.ready_timeout = ready_timeout
        self.port = None
        self.conn = None
        self.http_lock = threading.Lock()
        self.wake = threading.Event()
        self.closing = False
        self.next_t = None
        self.scrape_times = []     # (arrival monotonic, wall ms) of every /metrics scrape
        self.lines_key = ('\nflagwatch_lines_total{source="%s"} ' % DAEMON_SOURCE).encode()
        self._start_thread(self._poll, "scrapes")

    def _get(self, path, accept=None):
        """GET on the keep-alive connection (reconnecting once if the daemon closed it)."""
        for attempt in (0, 1):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                self.conn.request("GET", path, headers={"Accept": accept} if accept else {})
                r = self.conn.getresponse()
                return r.status, r.read()
            except (http.client.HTTPException, ConnectionError):
                if self.conn is not None:
                    self.conn.close()
                    self.conn = None
                if attempt == 1 or self.proc.poll() is not None:
                    raise

    def _scrape_locked(self):
        t0 = time.monotonic()
        status, body = self._get("/metrics", PROMETHEUS_ACCEPT)
        now = time.monotonic()
        lines = None
        if status == 200:
            at = body.find(self.lines_key)
            if at >= 0:
                digits = body[at + len(self.lines_key):body.find(b"\n", at + 1)]
                lines = int(digits) if digits.isdigit() else None
        self.scrape_times.append((now, (now - t0) * 1000.0))
        self._record(now, lines, body if status == 200 else b"HTTP %d: %s" % (status, body[:200]))
        return lines

    def _poll(self):
        try:
            deadline = time.monotonic() + self.ready_timeout
            while self.port is None:
                if self.proc.poll() is not None or self.closing:
                    raise SetupError("flagwatch run exited with status %s before listening" % self.proc.poll())
                if time.monotonic() > deadline:
                    raise SetupError("flagwatch run did not listen within %g s" % self.ready_timeout)
                ports = listen_ports(self.pid)
                if ports:
                    self.port = ports[0]
                else:
                    time.sleep(0.02)
            while True:
                with self.http_lock:
                    status, _ = self._get("/-/ready")
                if status == 200:
                    break
                if time.monotonic() > deadline or self.closing:
                    raise SetupError("/-/ready did not return 200 within %g s (last: %d)" % (self.ready_timeout, status))
                time.sleep(0.02)
            self.ready_t = time.monotonic()
            self.next_t = self.ready_t
            while not self.closing and self.proc.poll() is None:
                with self.http_lock:
                    period = self.period
                    now = time.monotonic()
                    if period is not None and now >= self.next_t:
                        self.next_t += period
                        if self.next_t < now:      # behind: do not try to make up the scrapes
                            self.next_t = now
                        self._scrape_locked()
                        continue
                    pause = 1.0 if period is None else min(1.0, self.next_t - now)
                self.wake.wait(pause)
                self.wake.clear()
        except Exception as e:  # reported by the main thread
            if not self.closing:
                self.error = e
        finally:
            self._finished()

    def set_period(self, period, first_in=0.0):
        """Scrape every `period` s from `first_in` s on; None pauses. On return no scrape of
        the thread is in flight (and, paused, none will start)."""
        with self.http_lock:
            self.period = period
            self.next_t = time.monotonic() + first_in
        self.wake.set()

    def scrape_now(self):
        with self.http_lock:
            return self._scrape_locked()

    def current_lines(self):
        return self.scrape_now()

    def scrape_cost(self, n):
        """Daemon CPU per scrape: n back-to-back scrapes with the thread paused."""
        self.set_period(None)
        time.sleep(0.2)
        a = CpuMark(self.pid)
        for _ in range(n):
            self.scrape_now()
        b = CpuMark(self.pid)
        walls = sorted(ms for _, ms in self.scrape_times[-n:])
        ms = (b.sched_ms - a.sched_ms) if a.sched_ms is not None and b.sched_ms is not None \
            else (b.ticks - a.ticks) * 1000.0 / HZ
        return {"scrapes": n, "cpu_ms_per_scrape": ms / n, "ticks": b.ticks - a.ticks,
                "wall_ms_median": percentile(walls, 50), "wall_ms_max": walls[-1],
                "body_bytes": len(self.last_raw or b"")}

    def take_final_sample(self):
        self.set_period(None)
        self.scrape_now()

    def final_report(self):
        if not self.last_raw:
            return None
        try:
            return metrics_report(self.last_raw, DAEMON_SOURCE)
        except (ValueError, UnicodeDecodeError) as e:
            with self.cond:
                self.bad_output.append(("unreadable /metrics: %s" % e).encode())
            return None

    def stop(self, timeout=15.0):
        self.closing = True
        self.wake.set()
        rc = super().stop(timeout)
        if self.conn is not None:
            self.conn.close()
        return rc


# ------------------------------------------------------------------------------------------
# The writer
# ------------------------------------------------------------------------------------------

class Writer:
    """Appends whole lines of the block to fd, paced to `rate` lines/s, one write per batch."""

    def __init__(self, fd, block, offsets, rate, seconds, batch_s, ballast=None):
        self.fd = fd
        self.ballast = ballast
        self.view = memoryview(block)
        self.offsets = offsets
        self.nlines = len(offsets) - 1
        self.rate = rate
        self.seconds = seconds
        self.batch_s = batch_s
        self.total = int(round(rate * seconds))
        self.written = 0            # lines whose write has returned
        self.bytes = 0
        self.pos = 0                # next line of the block
        self.timeline_t = []        # after each batch: time, lines written
        self.timeline_n = []
        self.t0 = self.t_end = None
        self.cpu_s = None
        self.writes = 0
        self.late_batches = 0       # batches that started more than one batch period late
        self.error = None
        self.stop = False           # set by the main thread to end the run early

    def _write_lines(self, n):
        while n > 0:
            k = min(n, self.nlines - self.pos)
            view = self.view[self.offsets[self.pos]:self.offsets[self.pos + k]]
            if self.ballast is not None:
                self.ballast.release(len(view))
            while len(view):
                done = os.write(self.fd, view)
                view = view[done:]
                self.bytes += done
                self.writes += 1
            self.pos = (self.pos + k) % self.nlines
            n -= k
            self.written += k

    def run(self):
        try:
            ru0 = resource.getrusage(resource.RUSAGE_THREAD)
            self.t0 = t0 = time.monotonic()
            deadline = t0 + self.seconds
            cap = max(1, int(self.rate * 0.1))      # at most 100 ms of lines per write when behind
            tick = t0
            loops = 0
            max_loops = int(self.seconds / self.batch_s) * 4 + 1000
            while loops < max_loops and not self.stop:
                loops += 1
                now = time.monotonic()
                if now >= deadline:
                    break
                if now - tick > self.batch_s:
                    self.late_batches += 1
                due = min(self.total, int(self.rate * (now - t0))) - self.written
                if due > 0:
                    self._write_lines(min(due, cap))
                    self.timeline_t.append(time.monotonic())
                    self.timeline_n.append(self.written)
                tick += self.batch_s
                if tick < now:                   # behind: do not try to make up the sleeps
                    tick = now
                pause = tick - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
            # The last batch: whatever is due at the deadline, if the writer is on pace.
            due = self.total - self.written
            if 0 < due <= cap and not self.stop:
                self._write_lines(due)
                self.timeline_t.append(time.monotonic())
                self.timeline_n.append(self.written)
            self.t_end = time.monotonic()
            ru1 = resource.getrusage(resource.RUSAGE_THREAD)
            self.cpu_s = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        except Exception as e:  # reported by the main thread
            self.error = e
            if self.t_end is None:
                self.t_end = time.monotonic()

    def time_written(self, lines):
        """When the writer had first written at least `lines` lines (None: not yet)."""
        i = bisect.bisect_left(self.timeline_n, lines)
        return self.timeline_t[i] if i < len(self.timeline_t) else None


# ------------------------------------------------------------------------------------------
# Figures
# ------------------------------------------------------------------------------------------

def percentile(values, p):
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1)))))
    return s[k]


def scaled_truth(truth, copies):
    """Ground truth for `copies` whole copies of the block."""
    clusters = {}
    for name, c in truth["clusters"].items():
        clusters[name] = {"requests": c["requests"] * copies,
                          "codes": {k: v * copies for k, v in c["codes"].items()},
                          "flags": {k: v * copies for k, v in c["flags"].items()}}
    return {"lines": truth["lines"] * copies, "malformed": {}, "clusters": clusters}


def drop_zeros(clusters):
    """The counts only: zeros left out, and a cluster's `diagnosis` (derived from the counts,
    not counted) dropped, as scan-vs-wc.sh does."""
    out = {}
    for name, c in clusters.items():
        e = dict(c)
        e.pop("diagnosis", None)
        for k in ("codes", "flags"):
            if isinstance(e.get(k), dict):
                e[k] = {a: b for a, b in e[k].items() if b != 0}
        out[name] = e
    return out


def measure_idle(fw, seconds, mode, target):
    """CPU of a running flagwatch over `seconds` with nothing written. `target`: whether the
    idle target applies to this measurement (else it is shown for information)."""
    with fw.cond:
        before = fw.last_lines
    a = CpuMark(fw.pid)
    time.sleep(seconds)
    b = CpuMark(fw.pid)
    out = cpu_between(a, b)
    reports = len(fw.samples_between(a.t, b.t))
    after = fw.current_lines()   # a daemon is scraped for it, after the measured window
    out["mode"] = mode
    out["target"] = target
    out["reports"] = reports
    out["percent"] = out["cores"] * 100
    out["sched_percent"] = out["sched_cores"] * 100 if out["sched_cores"] is not None else None
    out["resolution_percent"] = 100.0 / HZ / max(out["per_s"], 1e-9)
    cpu_ms = (out["sched_cores"] if out["sched_cores"] is not None else out["cores"]) * out["per_s"] * 1000
    out["cpu_ms_per_report"] = cpu_ms / reports if reports else None
    out["lines_changed"] = before != after
    return out


def idle_in_fresh_process(args, block, workdir, seconds):
    """Idle CPU of a fresh flagwatch with --idle-interval that has first counted the corpus
    (so its report has every cluster, as a daemon that has seen traffic), then sees nothing."""
    idledir = os.path.join(workdir, "idle")
    os.makedirs(idledir)
    with open(os.path.join(idledir, "preload.log"), "wb") as fh:
        fh.write(block)
    lines = block.count(b"\n")
    fw = ScanFollow(args.binary, os.path.join(idledir, "*.log"), args.idle_interval,
                    os.path.join(workdir, "flagwatch-idle.stderr"), lambda: lines, ["--start-at", "beginning"])
    try:
        if fw.wait_for(lambda n: n >= lines, 120) is None:
            raise SetupError("the idle flagwatch did not count its %d preloaded lines within 120 s (last: %s)"
                             % (lines, fw.last_lines))
        time.sleep(1.0)
        out = measure_idle(fw, seconds, "fresh process after counting %d lines, --interval %g"
                           % (lines, args.idle_interval), target=True)
        out["peak_rss_mb"] = round((proc_status_kb(fw.pid, "VmHWM") or 0) / 1024, 1)
    finally:
        rc = fw.stop()
    out["exit_status"] = rc
    return out


# ------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--mode", choices=["scan", "daemon"], default="scan",
                    help="scan (default): benchmark `flagwatch scan --follow`; daemon: `flagwatch run --config` "
                         "on a config written into the temporary folder, scraped over HTTP")
    ap.add_argument("--rate", type=int, default=1_000_000, help="lines per second (default 1,000,000)")
    ap.add_argument("--seconds", type=float, default=30.0, help="writing time (default 30)")
    ap.add_argument("--batch-ms", type=float, default=10.0, help="time between writes (default 10 ms)")
    ap.add_argument("--interval", type=float, default=0.25, help="scan: flagwatch --interval; daemon: time between scrapes of /metrics (default 0.25 s)")
    ap.add_argument("--idle-seconds", type=float, default=60.0, help="idle measurement (default 60 s; 0 skips it)")
    ap.add_argument("--idle-mode", choices=["both", "same", "fresh"], default="both",
                    help="scan mode: same: the benchmarked process after the run (reports every --interval); fresh: "
                         "a new flagwatch with --idle-interval that has counted the corpus first; both (default). "
                         "Daemon mode: always the benchmarked daemon, without scrapes (and see "
                         "--idle-scrape-interval)")
    ap.add_argument("--idle-interval", type=float, default=2.0,
                    help="--interval of the fresh idle process (default 2, flagwatch's default; at most 60)")
    ap.add_argument("--idle-scrape-interval", type=float, default=15.0,
                    help="daemon mode: a second idle measurement with a scrape every this many seconds "
                         "(default 15; 0 skips it)")
    ap.add_argument("--scrape-cost-scrapes", type=int, default=20,
                    help="daemon mode: back-to-back scrapes after the run that measure the daemon's CPU per scrape "
                         "(default 20; 0 skips it)")
    ap.add_argument("--corpus-lines", type=int, default=1_000_000,
                    help="distinct lines generated and cycled through (default 1,000,000)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--dir", default=None, help="parent of the temporary folder (default TMPDIR or /tmp)")
    ap.add_argument("--no-preallocate", dest="preallocate", action="store_false",
                    help="do not reserve the log's blocks up front (fallocate KEEP_SIZE); appends then cost "
                         "the writer, and the kernel's writeback, more CPU")
    ap.add_argument("--no-ballast", dest="ballast", action="store_false",
                    help="do not write the ballast file that gives the writer warm memory (see Ballast)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (the log is large)")
    ap.add_argument("--max-lag", type=float, default=TARGET_LAG_S, help="target: lag below this (s of data)")
    ap.add_argument("--max-cores", type=float, default=TARGET_CORES, help="target: cores while writing")
    ap.add_argument("--max-idle-percent", type=float, default=TARGET_IDLE_PERCENT, help="target: idle %% of a core")
    ap.add_argument("--drain-seconds", type=float, default=2.0,
                    help="target: counted == written this soon after the writer stops (default 2)")
    args = ap.parse_args(argv)
    for name in ("rate", "seconds", "batch_ms", "interval", "corpus_lines", "idle_interval"):
        if getattr(args, name) <= 0:
            ap.error("--%s must be positive" % name.replace("_", "-"))
    if args.idle_seconds < 0 or args.idle_seconds > 3600 or args.seconds > 3600:
        ap.error("--seconds and --idle-seconds must be at most 3600 (and not negative)")
    if args.idle_scrape_interval < 0 or args.scrape_cost_scrapes < 0:
        ap.error("--idle-scrape-interval and --scrape-cost-scrapes must not be negative")
    if args.idle_interval > 60:
        ap.error("--idle-interval must be at most 60 (the fresh process's report says when it has counted its corpus)")

    args.binary = os.environ.get("FLAGWATCH_BIN", os.path.join(ROOT, ".build", "release", "flagwatch"))
    if not (os.path.isfile(args.binary) and os.access(args.binary, os.X_OK)):
        log("no flagwatch binary at %s (build it: swift build -c release, or set FLAGWATCH_BIN)" % args.binary)
        return 2
    args.binary = os.path.abspath(args.binary)

    def interrupted(signum, frame):
        raise KeyboardInterrupt
    # SIGTERM, SIGHUP and SIGINT (even when started in the background, where SIGINT is ignored)
    # unwind through the finally blocks, which stop flagwatch and remove the files.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)

    workdir = tempfile.mkdtemp(prefix="follow-bench.", dir=args.dir)
    try:
        return run(args, workdir)
    except SetupError as e:
        log("cannot measure: %s" % e)
        return 2
    except KeyboardInterrupt:
        log("interrupted; flagwatch stopped, temporary files removed")
        return 130
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log("kept %s" % workdir)


def run(args, workdir):
    # --- corpus ---------------------------------------------------------------------------
    t = time.monotonic()
    log("generating %d lines with generate_corpus.py (seed %d) ..." % (args.corpus_lines, args.seed))
    block, offsets, truth = make_corpus(workdir, args.corpus_lines, args.seed)
    avg = len(block) / args.corpus_lines
    log("corpus: %d lines, %.1f MB, %.0f bytes/line (%.1f s)" % (args.corpus_lines, len(block) / 1e6, avg,
                                                                   time.monotonic() - t))
    need = args.rate * args.seconds * avg
    st = os.statvfs(workdir)
    free = st.f_bavail * st.f_frsize
    if free < need * 1.1 + 1e9:
        raise SetupError("%s has %.1f GB free; the run writes %.1f GB" % (workdir, free / 1e9, need / 1e9))
    ballast = None
    if args.ballast:
        if free < need * 2.2 + 2e9:
            log("not enough disk for the ballast file (%.1f GB free, want %.1f GB); writing without"
                % (free / 1e9, need * 2.2 / 1e9))
            args.ballast = False
        elif mem_available() < need * 1.2 + 2e9:
            log("not enough memory for the ballast file (%.1f GB available, want %.1f GB); writing without"
                % (mem_available() / 1e9, (need * 1.2 + 2e9) / 1e9))
            args.ballast = False
        else:
            t = time.monotonic()
            log("writing a %.1f GB ballast file (warm memory for the writer) ..." % (need / 1e9))
            ballast = Ballast(os.path.join(workdir, "corpus", "ballast"), int(need * 1.02) + (16 << 20),
                              memoryview(block)[:min(len(block), 16 << 20)])
            log("ballast written and synced in %.1f s" % (time.monotonic() - t))
    try:
        return run_measured(args, workdir, block, offsets, truth, avg, need, ballast)
    finally:
        if ballast is not None:
            ballast.close()


def start_flagwatch(args, workdir, pattern, written_fn):
    """The benchmarked process: scan --follow, or the daemon on a config written here."""
    stderr_path = os.path.join(workdir, "flagwatch.stderr")
    if args.mode == "daemon":
        return Daemon(args.binary, write_daemon_config(workdir, pattern), stderr_path, written_fn, args.interval)
    return ScanFollow(args.binary, pattern, args.interval, stderr_path, written_fn)


def check_final(final, total, truth, corpus_lines, what):
    """The final counts (scan's last JSON object, or the daemon's last /metrics as one)
    against the lines written and, for whole copies of the corpus, the ground truth.
    Returns (figures, failures)."""
    figures = {}
    failures = []
    if not isinstance(final, dict):
        return figures, ["no readable %s" % what]
    figures["final_lines"] = final.get("lines")
    if final.get("lines") != total:
        failures.append("%s: lines=%s, written %d" % (what, final.get("lines"), total))
    if final.get("malformed") != {}:
        failures.append("%s: malformed=%s" % (what, json.dumps(final.get("malformed"))[:200]))
    clusters = final.get("clusters") or {}
    requests = sum(c.get("requests", 0) for c in clusters.values() if isinstance(c, dict))
    if requests != total:
        failures.append("%s: requests sum to %d, written %d" % (what, requests, total))
    if total % corpus_lines == 0:
        want = scaled_truth(truth, total // corpus_lines)["clusters"]
        got = drop_zeros(clusters)
        figures["truth_checked"] = got == want
        if not figures["truth_checked"]:
            bad = sorted(k for k in set(want) | set(got) if got.get(k) != want.get(k))
            failures.append("%s differs from the ground truth in %d clusters, e.g. %s" % (what, len(bad), bad[:3]))
    else:
        figures["truth_checked"] = None  # not whole copies of the block: lines and sums only
    return figures, failures


def run_measured(args, workdir, block, offsets, truth, avg, need, ballast):
    daemon = args.mode == "daemon"

    # --- the log, flagwatch ------------------------------------------------------------------
    logdir = os.path.join(workdir, "logs")
    os.makedirs(logdir)
    path = os.path.join(logdir, "istio-access.log")
    pattern = os.path.join(logdir, "*.log")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    if args.preallocate:
        why = preallocate(fd, need * 1.05 + (64 << 20))
        if why:
            log("could not preallocate the log (%s); appending without" % why)
            args.preallocate = False
    seeded = min(1000, args.corpus_lines)
    os.write(fd, memoryview(block)[:offsets[seeded]])  # already there: flagwatch starts after these

    writer = Writer(fd, block, offsets, args.rate, args.seconds, args.batch_ms / 1000.0, ballast)
    writer.pos = 0
    fw = start_flagwatch(args, workdir, pattern, lambda: writer.written)
    noun = fw.noun
    result = {"mode": args.mode, "binary": args.binary, "rate_target": args.rate, "seconds_target": args.seconds,
              "batch_ms": args.batch_ms, "preallocated": args.preallocate,
              "ballast": args.ballast, "interval": args.interval, "corpus_lines": args.corpus_lines,
              "bytes_per_line": round(avg, 1), "cpus": os.cpu_count(), "clk_tck": HZ}
    failures = []
    invalid = []
    writer_thread = None
    try:
        t_start = time.monotonic()
        ready = fw.wait_for(lambda n: True, 35)
        if ready is None:
            raise SetupError("flagwatch was not ready (%s; exit status %s; stderr in %s)"
                             % (fw.error or "no %s within 35 s" % noun, fw.proc.poll(),
                                os.path.join(workdir, "flagwatch.stderr")))
        if fw.ready_t is not None:
            ready = fw.ready_t  # the daemon: /-/ready returned 200 (its first scrape follows at once)
        result["ready_s"] = round(ready - t_start, 3)
        log("flagwatch (pid %d%s) is ready after %.3f s"
            % (fw.pid, ", port %d" % fw.port if daemon else "", ready - t_start))
        if fw.last_lines != 0:
            failures.append("the first of the %s counts %d lines; flagwatch should start at the end"
                            % (noun, fw.last_lines))
        time.sleep(0.5)

        # --- the run -----------------------------------------------------------------------
        log("writing %d lines/s for %g s (%.0f MB/s) ..." % (args.rate, args.seconds, args.rate * avg / 1e6))
        writer_thread = threading.Thread(target=writer.run, name="writer", daemon=True)
        m0 = CpuMark(fw.pid)
        writer_thread.start()
        writer_thread.join(args.seconds + 120)
        if writer_thread.is_alive():
            raise SetupError("the writer did not finish within %g s" % (args.seconds + 120))
        m1 = CpuMark(fw.pid)
        if writer.error is not None:
            raise SetupError("the writer failed: %r" % writer.error)
        w_seconds = writer.t_end - writer.t0
        achieved = writer.written / w_seconds
        result.update({
            "written_lines": writer.written, "written_bytes": writer.bytes, "writer_seconds": round(w_seconds, 3),
            "rate_achieved": round(achieved), "writer_cpu_cores": round(writer.cpu_s / w_seconds, 3),
            "writer_writes": writer.writes, "writer_late_batches": writer.late_batches,
            # The longest time between two writes returning: a stall of the writer (or of the
            # whole VM) shows up here, and in the time lag but not in the data lag.
            "writer_max_gap_s": round(max((b - a for a, b in zip(writer.timeline_t, writer.timeline_t[1:])),
                                          default=0.0), 3),
        })
        if achieved < 0.98 * args.rate or writer.written < 0.98 * writer.total:
            invalid.append("the writer reached only %.0f lines/s (%d of %d lines); the target rate was not offered"
                           % (achieved, writer.written, writer.total))

        # --- drain: counted == written ---------------------------------------------------------
        total = writer.written
        drained = fw.wait_for(lambda n: n >= total, args.drain_seconds + 30)
        m2 = CpuMark(fw.pid) if fw.alive() else None
        if drained is None:
            failures.append("flagwatch did not count all %d lines within %g s of the writer stopping (last: %s)"
                            % (total, args.drain_seconds + 30, fw.last_lines))
            result["drain_s"] = None
        else:
            result["drain_s"] = round(max(0.0, drained - writer.t_end), 3)
            if drained - writer.t_end > args.drain_seconds:
                failures.append("counted == written only %.2f s after the writer stopped (target %g s)"
                                % (drained - writer.t_end, args.drain_seconds))
        if fw.last_lines is not None and fw.last_lines != total:
            failures.append("flagwatch counted %s lines, %d were written" % (fw.last_lines, total))

        # --- lag --------------------------------------------------------------------------------
        during = fw.samples_between(writer.t0 - 1e-9, writer.t_end)
        data_lag = [(w - c) / args.rate for (t, w, c) in during]
        time_lag = []
        for (t, w, c) in during:
            tw = writer.time_written(c) if c > 0 else writer.t0
            time_lag.append(max(0.0, t - tw) if tw is not None else 0.0)
        result.update({
            "lag_samples": len(during),
            "lag_data_s_max": round(max(data_lag), 4) if data_lag else None,
            "lag_data_s_p99": round(percentile(data_lag, 99), 4) if data_lag else None,
            "lag_data_s_p50": round(percentile(data_lag, 50), 4) if data_lag else None,
            "lag_time_s_max": round(max(time_lag), 4) if time_lag else None,
            "lag_time_s_p99": round(percentile(time_lag, 99), 4) if time_lag else None,
        })
        if len(during) < max(2, int(args.seconds / args.interval / 2)):
            failures.append("only %d %s arrived while writing (expected about %d)"
                            % (len(during), noun, args.seconds / args.interval))
        if data_lag and max(data_lag) >= args.max_lag:
            failures.append("lag reached %.3f s of data (target < %g s)" % (max(data_lag), args.max_lag))

        # --- CPU while writing -------------------------------------------------------------------
        busy = cpu_between(m0, m1)
        result["cpu_writing_window"] = busy
        if m2 is not None:
            work = cpu_between(m0, m2, per_seconds=w_seconds)
            result["cpu_until_counted"] = work
            cores = work["cores"]
        else:
            cores = busy["cores"]
        result["cpu_cores"] = round(cores, 4)
        # The same work per million lines: what 1 M lines/s would cost if the writer fell short.
        result["cpu_s_per_million_lines"] = round(cores * w_seconds / max(total / 1e6, 1e-9), 4)
        if cores > args.max_cores:
            failures.append("flagwatch used %.3f of a core (target <= %g)" % (cores, args.max_cores))
        if daemon:
            # The daemon's CPU above includes answering the scrapes; their share is estimated
            # from the CPU of back-to-back scrapes afterwards (same clusters, nothing written).
            end = m2 if m2 is not None else m1
            scrapes = [ms for (t, ms) in fw.scrape_times if m0.t < t <= end.t]
            result["scrapes_while_counting"] = len(scrapes)
            result["scrape_wall_ms_while_writing"] = {
                "median": round(percentile(scrapes, 50), 3) if scrapes else None,
                "max": round(max(scrapes), 3) if scrapes else None}
            if args.scrape_cost_scrapes > 0 and fw.alive():
                cost = fw.scrape_cost(args.scrape_cost_scrapes)
                result["scrape_cost"] = cost
                share = len(scrapes) * cost["cpu_ms_per_scrape"] / 1000.0 / w_seconds
                result["cpu_cores_scrapes_estimate"] = round(share, 4)
                result["cpu_cores_excluding_scrapes_estimate"] = round(cores - share, 4)
        result["peak_rss_mb_after_run"] = round((proc_status_kb(fw.pid, "VmHWM") or 0) / 1024, 1)

        # --- idle ----------------------------------------------------------------------------------
        idles = []
        if args.idle_seconds > 0 and daemon:
            fw.set_period(None)
            log("idle: %g s with nothing written and no scrapes (same process) ..." % args.idle_seconds)
            time.sleep(1.0)
            result["idle_same"] = measure_idle(fw, args.idle_seconds, "same process after the run, no scrapes",
                                               target=True)
            idles.append("idle_same")
            if args.idle_scrape_interval > 0:
                log("idle: %g s with nothing written, a scrape every %g s ..."
                    % (args.idle_seconds, args.idle_scrape_interval))
                fw.set_period(args.idle_scrape_interval, first_in=args.idle_scrape_interval / 2)
                result["idle_scraped"] = measure_idle(
                    fw, args.idle_seconds, "same process, a scrape of /metrics every %g s (the first %g s in)"
                    % (args.idle_scrape_interval, args.idle_scrape_interval / 2), target=False)
                fw.set_period(None)
                idles.append("idle_scraped")
        elif args.idle_seconds > 0 and args.idle_mode in ("both", "same"):
            log("idle: %g s with nothing written (same process, reports every %g s) ..."
                % (args.idle_seconds, args.interval))
            time.sleep(1.0)
            # The idle target is for the default report interval (the fresh process at 2 s);
            # the run's own 0.25 s interval re-prints 4 reports a second: information only.
            result["idle_same"] = measure_idle(fw, args.idle_seconds, "same process after the run, --interval %g"
                                               % args.interval, target=False)
            idles.append("idle_same")
        result["peak_rss_mb"] = round((proc_status_kb(fw.pid, "VmHWM") or 0) / 1024, 1)

        # --- SIGTERM: the final counts -------------------------------------------------------------
        what = "the last scrape before SIGTERM" if daemon else "the final object"
        fw.take_final_sample()
        rc = fw.stop()
        result["exit_status"] = rc
        if rc != 0:
            failures.append("flagwatch exited with status %s after SIGTERM (want 0)" % rc)
        if fw.bad_output:
            failures.append("flagwatch gave %s that could not be read, e.g. %r" % (noun, fw.bad_output[0]))
        if fw.error is not None:
            failures.append("reading flagwatch's %s failed: %s" % (noun, fw.error))
        figures, bad = check_final(fw.final_report(), total, truth, args.corpus_lines, what)
        result.update(figures)
        failures.extend(bad)

        if args.idle_seconds > 0 and not daemon and args.idle_mode in ("both", "fresh"):
            log("idle: %g s with nothing written (fresh process, --interval %g) ..."
                % (args.idle_seconds, args.idle_interval))
            result["idle_fresh"] = idle_in_fresh_process(args, block, workdir, args.idle_seconds)
            idles.append("idle_fresh")
            if result["idle_fresh"]["exit_status"] != 0:
                failures.append("the idle flagwatch exited with status %s" % result["idle_fresh"]["exit_status"])

        for key in idles:
            idle = result[key]
            if idle["lines_changed"]:
                failures.append("%s: lines changed while nothing was written" % key)
            if idle["target"] and idle["percent"] >= args.max_idle_percent:
                failures.append("%s: %.3f %% of a core (target < %g %%; %s)"
                                % (key, idle["percent"], args.max_idle_percent, idle["mode"]))
    finally:
        writer.stop = True
        if writer_thread is not None:
            writer_thread.join(10)
        if fw is not None and fw.alive():
            fw.stop()
        os.close(fd)

    # --- report ------------------------------------------------------------------------------------
    result["failures"] = failures
    result["invalid"] = invalid
    result["pass"] = not failures and not invalid
    print_summary(args, result)
    print(json.dumps(result, sort_keys=True))
    sys.stdout.flush()
    if failures:
        return 1
    if invalid:
        return 2
    return 0


def fmt(v, spec="%.3f"):
    return "n/a" if v is None else spec % v


def print_summary(args, r):
    p = print
    daemon = r["mode"] == "daemon"
    noun = "scrapes" if daemon else "reports"
    p()
    if daemon:
        p("flagwatch run (file source, format istio, start_at end, windows 1m,5m,15m; GET /metrics every %g s, "
          "OpenMetrics, keep-alive): %s" % (args.interval, r["binary"]))
    else:
        p("flagwatch scan --follow (--format istio --output json --interval %g): %s" % (args.interval, r["binary"]))
    p("writer   %s lines/s for %s s (target %d/s for %g s): %s lines, %.2f GB, %s bytes/line; writer thread %s cores"
      % (fmt(r.get("rate_achieved"), "%d"), fmt(r.get("writer_seconds"), "%.2f"), args.rate, args.seconds,
         fmt(r.get("written_lines"), "%d"), (r.get("written_bytes") or 0) / 1e9, r["bytes_per_line"],
         fmt(r.get("writer_cpu_cores"))))
    p("lag      max %s s of data, p99 %s, p50 %s (%s %s)   target < %g s"
      % (fmt(r.get("lag_data_s_max")), fmt(r.get("lag_data_s_p99")), fmt(r.get("lag_data_s_p50")),
         r.get("lag_samples"), noun, args.max_lag))
    p("         time lag max %s s, p99 %s; longest gap between the writer's writes %s s"
      % (fmt(r.get("lag_time_s_max")), fmt(r.get("lag_time_s_p99")), fmt(r.get("writer_max_gap_s"))))
    if daemon:
        sw = r.get("scrape_wall_ms_while_writing") or {}
        p("         a scrape took %s ms (median), %s ms (max) while writing; lag counts from the response's arrival"
          % (fmt(sw.get("median"), "%.2f"), fmt(sw.get("max"), "%.2f")))
    p("drain    counted == written %s s after the writer stopped   target <= %g s"
      % (fmt(r.get("drain_s")), args.drain_seconds))
    cw = r.get("cpu_writing_window") or {}
    cu = r.get("cpu_until_counted") or {}
    p("cpu      %s of a core (ticks until all counted / writer time; %s ticks)   target <= %g"
      % (fmt(r.get("cpu_cores"), "%.4f"), cu.get("ticks", cw.get("ticks")), args.max_cores))
    if daemon:
        cost = r.get("scrape_cost")
        p("         this includes answering the %s scrapes of /metrics meanwhile%s"
          % (r.get("scrapes_while_counting"),
             "" if not cost else ": %.2f CPU-ms each (%d back-to-back scrapes afterwards, %d bytes, %.2f ms wall), "
             "about %s of a core; without them about %s"
             % (cost["cpu_ms_per_scrape"], cost["scrapes"], cost["body_bytes"], cost["wall_ms_median"],
                fmt(r.get("cpu_cores_scrapes_estimate"), "%.4f"), fmt(r.get("cpu_cores_excluding_scrapes_estimate"), "%.4f"))))
    p("         %s CPU-s per million lines" % fmt(r.get("cpu_s_per_million_lines"), "%.4f"))
    p("         writer window alone: %s (sched %s); machine busy %s of %d cores"
      % (fmt(cw.get("cores"), "%.4f"), fmt(cw.get("sched_cores"), "%.4f"), fmt(cw.get("machine_busy_cores"), "%.2f"),
         r["cpus"]))
    for key in ("idle_same", "idle_scraped", "idle_fresh"):
        idle = r.get(key)
        if not idle:
            continue
        p("idle     %s %% of a core over %.0f s (%d ticks, resolution %.4f %%; sched %s %%; %s %s, %s CPU-ms each)"
          % (fmt(idle.get("percent"), "%.4f"), idle["per_s"], idle["ticks"], idle["resolution_percent"],
             fmt(idle.get("sched_percent"), "%.4f"), idle["reports"], noun, fmt(idle.get("cpu_ms_per_report"), "%.2f")))
        p("         %s   %s" % (idle["mode"], "target < %g %%" % args.max_idle_percent if idle["target"] else "(information)"))
    p("memory   peak RSS %s MB (VmHWM)" % r.get("peak_rss_mb"))
    p("final    exit status %s after SIGTERM; %s: lines %s; ground truth %s"
      % (r.get("exit_status"), "last scrape before it (lines_total, responses_total, response_flags_total)"
         if daemon else "final object", r.get("final_lines"),
         {True: "equal", False: "DIFFERENT", None: "not compared (partial copy of the corpus)"}.get(r.get("truth_checked"))))
    for f in r["failures"]:
        p("FAIL: " + f)
    for f in r["invalid"]:
        p("NOT VALID: " + f)
    p("PASS" if r["pass"] else ("FAIL" if r["failures"] else "NOT VALID"))
    p()


if __name__ == "__main__":
    sys.exit(main())
