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
import datetime
import json
import os
import random
import signal
import subprocess
import threading
import time
import uuid
import zlib
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
BIN = os.environ.get("FLAGWATCH_BIN", str(REPO / ".build" / "debug" / "flagwatch"))

INTERVAL = 0.2           # --interval for every test: one JSON object every 0.2 s
RESCAN = 1.0             # --rescan-interval unless a test says otherwise
READY_TIMEOUT = 15.0     # first JSON object
COUNT_TIMEOUT = 20.0     # counts reach the expected value
STOP_TIMEOUT = 15.0      # exit after SIGTERM / SIGINT
SETTLE_REPORTS = 4       # after the counts are right, they must stay right this many objects
NOBODY = 65534


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "follow: end-to-end scenario test of `flagwatch scan --follow` (file tailing, rotation, "
        "checkpoints); runs the flagwatch binary ($FLAGWATCH_BIN, default .build/debug/flagwatch)",
    )


# --------------------------------------------------------------------------------------------
# Istio 1.9+ TEXT access-log lines (the shape of config/demo/istio-access.log)
# --------------------------------------------------------------------------------------------

# (service, port, method, path, route)
SERVICES = [
    ("reviews", 9080, "GET", "/reviews/{n}", "reviews-default"),
    ("payments", 9001, "POST", "/api/pay", "payments-default"),
    ("ledger", 9002, "GET", "/entries", "ledger-retry"),
    ("inventory", 8080, "GET", "/stock/{n}", "inventory-default"),
    ("checkout", 8080, "POST", "/cart", "checkout-default"),
    ("search", 8080, "GET", "/q?term={n}", "search-timeout"),
]

# (weight, code, flags, response_code_details, upstream_transport_failure_reason, kind)
# kind: "ok" upstream answered; "connfail" no upstream connection; "nohost" no upstream host;
#       "noroute" no cluster at all.
REFUSED = "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}"
OUTCOMES = [
    (40, 200, "-", "via_upstream", "-", "ok"),
    (4, 500, "-", "via_upstream", "-", "ok"),
    (8, 503, "UF", REFUSED, "delayed_connect_error:_Connection_refused", "connfail"),
    (6, 503, "URX,UF", REFUSED, "delayed_connect_error:_Connection_refused", "connfail"),
    (3, 503, "UF,URX", "-", "-", "connfail"),
    (5, 503, "UH", "no_healthy_upstream", "-", "nohost"),
    (4, 504, "UT", "response_timeout", "-", "ok"),
    (3, 503, "UO", "upstream_reset_before_response_started{overflow}", "-", "nohost"),
    (3, 503, "UC", "upstream_reset_before_response_started{connection_termination}", "-", "ok"),
    (3, 0, "DC", "downstream_remote_disconnect", "-", "ok"),
    (3, 404, "NR", "route_not_found", "-", "noroute"),
]
USER_AGENTS = [
    "curl/8.5.0",
    "Go-http-client/1.1",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    'Mozilla/5.0 "quoted" (X11; Linux x86_64) flagwatch-e2e',
    "envoy/1.30 grpc-go/1.60.1",
]


def cluster_name(service, port):
    return "outbound|%d||%s.default.svc.cluster.local" % (port, service)


def code_class(code):
    return "0" if code == 0 else "%dxx" % (code // 100)


class Line(bytes):
    """One access-log line (with its newline) and what flagwatch must count for it."""

    cluster: str
    code: int
    flags: tuple


class Traffic:
    """Makes lines and keeps the expected counts of the lines declared written (`record`)."""

    def __init__(self, seed):
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._seq = 0
        self.lines_recorded = 0
        self._clusters = {}

    def make(self, n=1, *, service=None, outcome=None):
        """n fresh lines, not yet recorded. service: a SERVICES name; outcome: a flags string
        such as "UF,URX" or "-" (the first OUTCOMES entry with those flags)."""
        out = []
        with self._lock:
            for _ in range(n):
                self._seq += 1
                out.append(self._line(self._seq, service, outcome))
        return out

    def record(self, lines):
        """Declares these lines written: flagwatch must count them."""
        with self._lock:
            for line in lines:
                self.lines_recorded += 1
                entry = self._clusters.setdefault(line.cluster, {"requests": 0, "codes": {}, "flags": {}})
                entry["requests"] += 1
                cls = code_class(line.code)
                entry["codes"][cls] = entry["codes"].get(cls, 0) + 1
                for flag in line.flags:
                    entry["flags"][flag] = entry["flags"].get(flag, 0) + 1

    def lines(self, n=1, **kw):
        """n fresh lines, recorded, joined: the bytes to write."""
        made = self.make(n, **kw)
        self.record(made)
        return b"".join(made)

    def uncounted(self, n=1, **kw):
        """n fresh lines that flagwatch must NOT count (before start, unwatched files...)."""
        return b"".join(self.make(n, **kw))

    def reset(self):
        """Forgets the recorded counts (a new flagwatch run counts from zero); lines stay unique."""
        with self._lock:
            self.lines_recorded = 0
            self._clusters = {}

    def expected(self):
        """The exact `--output json` object for everything recorded so far."""
        with self._lock:
            return {
                "lines": self.lines_recorded,
                "malformed": {},
                "clusters": json.loads(json.dumps(self._clusters)),
            }

    def _line(self, seq, service, outcome):
        rng = self._rng
        if service is None:
            svc = rng.choice(SERVICES)
        else:
            svc = next(s for s in SERVICES if s[0] == service)
        name, port, method, path, route = svc
        if outcome is None:
            weight, code, flags, details, utfr, kind = rng.choices(OUTCOMES, weights=[o[0] for o in OUTCOMES])[0]
        else:
            weight, code, flags, details, utfr, kind = next(o for o in OUTCOMES if o[2] == outcome)
        now = datetime.datetime.now(datetime.timezone.utc)
        start = now.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (now.microsecond // 1000)
        authority = "%s.default.svc.cluster.local:%d" % (name, port)
        pod_ip = "10.244.%d.%d" % (rng.randrange(1, 4), rng.randrange(2, 250))
        upstream_host = '"%s:%d"' % (pod_ip, port)
        upstream_local = "10.244.0.17:%d" % rng.randrange(32768, 60999)
        cluster = cluster_name(name, port)
        route_name = route
        duration = rng.randrange(0, 300)
        service_time = str(max(duration - 1, 0))
        bytes_sent = rng.randrange(0, 5000)
        if kind == "connfail":
            upstream_local, service_time = "-", "-"
        elif kind == "nohost":
            upstream_host, upstream_local, service_time = '"-"', "-", "-"
        elif kind == "noroute":
            upstream_host, upstream_local, service_time, cluster, route_name = '"-"', "-", "-", "-", "-"
        if code == 0 or code >= 500:
            service_time = "-"
        text = (
            '[%s] "%s %s HTTP/1.1" %d %s %s - "%s" %d %d %d %s "-" "%s" "%s" "%s" %s %s %s '
            "10.244.0.17:15006 10.244.%d.%d:%d outbound_.%d_._.%s.default.svc.cluster.local %s\n"
            % (
                start, method, path.format(n=seq), code, flags, details, utfr,
                rng.randrange(0, 2000), bytes_sent, duration, service_time,
                rng.choice(USER_AGENTS), uuid.UUID(int=rng.getrandbits(128), version=4),
                authority, upstream_host, cluster, upstream_local,
                rng.randrange(1, 4), rng.randrange(2, 250), rng.randrange(32768, 60999),
                port, name, route_name,
            )
        )
        line = Line(text.encode())
        line.cluster = cluster
        line.code = code
        line.flags = () if flags == "-" else tuple(flags.split(","))
        return line


def merge_reports(*reports):
    """Adds `--output json` objects: the counts of two runs over disjoint lines."""
    total = {"lines": 0, "malformed": {}, "clusters": {}}
    for report in reports:
        total["lines"] += report["lines"]
        for reason, n in report["malformed"].items():
            total["malformed"][reason] = total["malformed"].get(reason, 0) + n
        for name, c in report["clusters"].items():
            t = total["clusters"].setdefault(name, {"requests": 0, "codes": {}, "flags": {}})
            t["requests"] += c["requests"]
            for key in ("codes", "flags"):
                for k, v in c.get(key, {}).items():
                    t[key][k] = t[key].get(k, 0) + v
    return total


def subtract_reports(total, part):
    """total - part, zero counts left out as flagwatch leaves them out (negative ones kept, so a
    run that counted too much shows up in the diff)."""
    out = {"lines": total["lines"] - part["lines"], "malformed": {}, "clusters": {}}
    for reason in set(total["malformed"]) | set(part["malformed"]):
        n = total["malformed"].get(reason, 0) - part["malformed"].get(reason, 0)
        if n:
            out["malformed"][reason] = n
    empty = {"requests": 0, "codes": {}, "flags": {}}
    for name in set(total["clusters"]) | set(part["clusters"]):
        t, p = total["clusters"].get(name, empty), part["clusters"].get(name, empty)
        requests = t["requests"] - p["requests"]
        entry = {"requests": requests, "codes": {}, "flags": {}}
        for key in ("codes", "flags"):
            for k in set(t[key]) | set(p[key]):
                n = t[key].get(k, 0) - p[key].get(k, 0)
                if n:
                    entry[key][k] = n
        if requests or entry["codes"] or entry["flags"]:
            out["clusters"][name] = entry
    return out


def describe_difference(expected, observed):
    """A short human-readable diff of two `--output json` objects."""
    if observed is None:
        return "no JSON object at all"
    parts = ["lines: expected %s, observed %s" % (expected["lines"], observed.get("lines"))]
    if observed.get("malformed") != expected["malformed"]:
        parts.append("malformed: expected %s, observed %s" % (expected["malformed"], observed.get("malformed")))
    exp_c, obs_c = expected["clusters"], observed.get("clusters", {})
    for name in sorted(set(exp_c) | set(obs_c)):
        if exp_c.get(name) != obs_c.get(name):
            parts.append("  %s: expected %s, observed %s" % (name, exp_c.get(name), obs_c.get(name)))
    return "\n".join(parts)


def cri_wrap(lines, split_every=None, stream="stdout"):
    """CRI records (`<RFC3339Nano> stdout P|F <content>`) for whole lines. With split_every, each
    line's content is cut into chunks of that many bytes: P records, then the last as F."""
    if isinstance(lines, (bytes, bytearray)):
        lines = bytes(lines).splitlines(keepends=True)
    out = []
    for line in lines:
        content = line.rstrip(b"\n")
        chunks = [content]
        if split_every:
            chunks = [content[i : i + split_every] for i in range(0, len(content), split_every)]
        for index, chunk in enumerate(chunks):
            tag = b"F" if index == len(chunks) - 1 else b"P"
            out.append(cri_record(chunk, tag, stream))
    return b"".join(out)


def cri_record(content, tag=b"F", stream="stdout"):
    now = datetime.datetime.now(datetime.timezone.utc)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + "%06d123Z" % now.microsecond
    return b"%s %s %s %s\n" % (stamp.encode(), stream.encode(), tag, content)


def poll(predicate, timeout, what, interval=0.05):
    """Calls predicate until it returns a true value (returned) or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def append(path, data):
    """Appends bytes in one write() through O_APPEND; creates the file (0644)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# --------------------------------------------------------------------------------------------
# The flagwatch process
# --------------------------------------------------------------------------------------------


class Follow:
    """A running `flagwatch scan --follow --output json`; stdout is read by a thread, one JSON
    object per line; stderr goes to a file (its tail is shown on failures)."""

    def __init__(self, argv, stderr_path):
        self.argv = argv
        self.stderr_path = stderr_path
        self._stderr = open(stderr_path, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr)
        self.pid = self.proc.pid
        self.reports = []
        self.bad_output = []
        self.eof = False
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, name="flagwatch-stdout-%d" % self.pid, daemon=True)
        self._reader.start()

    # -- output -------------------------------------------------------------------------------

    def _read(self):
        for raw in self.proc.stdout:
            try:
                obj = json.loads(raw)
            except ValueError:
                obj = None
            with self._cond:
                if isinstance(obj, dict):
                    # The counts are compared here; a cluster's diagnosis is scan's (test_scan_cli.py).
                    for cluster in (obj.get("clusters") or {}).values():
                        if isinstance(cluster, dict):
                            cluster.pop("diagnosis", None)
                    self.reports.append(obj)
                else:
                    self.bad_output.append(raw)
                self._cond.notify_all()
        with self._cond:
            self.eof = True
            self._cond.notify_all()

    def latest(self):
        with self._cond:
            return self.reports[-1] if self.reports else None

    def count(self):
        with self._cond:
            return len(self.reports)

    def stderr_tail(self, n=40):
        try:
            lines = Path(self.stderr_path).read_bytes().decode(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def context(self):
        return "\n-- flagwatch argv: %s\n-- pid %d, exit status %s, %d objects; stderr tail (%s):\n%s" % (
            " ".join(self.argv), self.pid, self.proc.poll(), self.count(), self.stderr_path, self.stderr_tail()
        )

    def _wait_objects(self, n, timeout, what):
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.reports) < n:
                if self.eof or self.proc.poll() is not None:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.2))
            if len(self.reports) >= n:
                return
        pytest.fail("waiting for %s: flagwatch printed %d JSON objects, %d wanted%s"
                    % (what, self.count(), n, self.context()))

    def wait_ready(self, timeout=READY_TIMEOUT):
        """The first object: all sources are open and start positions fixed."""
        self._wait_objects(1, timeout, "the first JSON object (ready)")
        first = self.reports[0]
        assert set(first) == {"lines", "malformed", "clusters"}, first
        return first

    def wait_more(self, n=SETTLE_REPORTS, timeout=None):
        """Waits until n more objects have been printed (n more intervals have passed)."""
        target = self.count() + n
        self._wait_objects(target, timeout or (n * INTERVAL * 5 + 10), "%d more JSON objects" % n)
        return self.latest()

    def wait_counts(self, expected, timeout=COUNT_TIMEOUT, what="the expected counts"):
        """Waits until the latest object equals `expected` exactly; fails with a diff."""
        deadline = time.monotonic() + timeout
        while True:
            latest = self.latest()
            if latest == expected:
                return latest
            if self.proc.poll() is not None and self.eof:
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        pytest.fail("flagwatch did not reach %s within %.0f s:\n%s%s"
                    % (what, timeout, describe_difference(expected, self.latest()), self.context()))

    def hold(self, expected, n=SETTLE_REPORTS, what="the expected counts"):
        """The counts must still equal `expected` after n more objects (nothing counted twice,
        nothing counted early)."""
        latest = self.wait_more(n)
        assert latest == expected, "counts moved away from %s:\n%s%s" % (
            what, describe_difference(expected, latest), self.context())
        return latest

    def check_stream(self):
        """Every stdout line was a JSON object; cumulative counts never go down."""
        assert not self.bad_output, "stdout lines that are not JSON objects: %r%s" % (self.bad_output[:3], self.context())
        previous = 0
        for report in self.reports:
            assert report["lines"] >= previous, "cumulative `lines` went down: %d then %d%s" % (
                previous, report["lines"], self.context())
            previous = report["lines"]

    # -- signals ------------------------------------------------------------------------------

    def pause(self):
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.pid, signal.SIGCONT)

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Graceful stop: exit status 0 and one last object; returns that last object."""
        before = self.count()
        os.kill(self.pid, sig)
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail("flagwatch did not exit within %.0f s of %s%s" % (timeout, sig.name, self.context()))
        self._reader.join(10)
        assert status == 0, "exit status %s after %s%s" % (status, sig.name, self.context())
        assert self.count() > before, "no last JSON object after %s%s" % (sig.name, self.context())
        self.check_stream()
        return self.latest()

    def kill(self):
        """SIGKILL: no last object, no checkpoint save."""
        os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(STOP_TIMEOUT)
        self._reader.join(10)
        self.check_stream()

    def finish(self, expected, sig=signal.SIGTERM, what="the expected counts"):
        """Waits for exactly `expected`, checks it holds, stops with sig, checks the last object."""
        self.wait_counts(expected, what=what)
        self.hold(expected, what=what)
        final = self.stop(sig)
        assert final == expected, "last object after %s differs:\n%s%s" % (
            sig.name, describe_difference(expected, final), self.context())
        return final

    def open_paths(self):
        """What the process has open (readlink of /proc/PID/fd/*)."""
        paths = []
        fd_dir = "/proc/%d/fd" % self.pid
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

    def close(self):
        """Teardown: stop the process by PID whatever state it is in."""
        if self.proc.poll() is None:
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.kill(self.pid, sig)
                except ProcessLookupError:
                    pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self._reader.join(5)
        if self.proc.stdout:
            self.proc.stdout.close()
        self._stderr.close()


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
        follow = Follow(argv, self.tmp / ("flagwatch-run%d.stderr" % self._runs))
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


@pytest.fixture
def fw(tmp_path, request):
    kit = Kit(tmp_path, seed=zlib.crc32(request.node.nodeid.encode()))
    try:
        yield kit
    finally:
        kit.close()


@pytest.fixture
def processes():
    """The processes a test starts through e2e_helpers.Processes, stopped by PID in teardown."""
    from e2e_helpers import Processes
    started = Processes()
    try:
        yield started
    finally:
        started.stop_all()
