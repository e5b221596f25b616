"""flagwatch's own log in a real systemd-journald (the `jd` fixture of conftest.py).

`flagwatch run` is started *inside* journald's private mount namespace (nsenter), where
/run/systemd/journal/socket is that journald's: the journal handler's sd_journal_sendv reaches
it as it would on a node. Its HTTP listener is on 127.0.0.1 (the network namespace is the
host's). The entries are read back with `journalctl --directory <journal dir> -o json`.

- `--log-target journal`: PRIORITY for debug/info/notice/warning/error records, the fixed
  fields (SYSLOG_IDENTIFIER, CODE_*, LOGGER), the metadata fields, the MESSAGE_IDs of the
  ready and stopped lines and of an alert's pending -> firing -> resolved transitions (a
  5 s window, `for: 1s`, `resolve_after: 1s`, UF lines appended to the followed log);
- `--log-target auto` under `systemd-cat` (journald's stdout stream protocol, as systemd
  connects a service's stderr) with JOURNAL_STREAM set to the stream's `dev:ino` as systemd
  does: native entries; the same variable with stderr redirected to a file (the case the rule
  exists for): lines on stderr, nothing native in the journal.

Every wait is bounded; every flagwatch is stopped by PID (SIGTERM, then SIGKILL in teardown).
"""
import json
import os
import signal
import socket
import subprocess

import pytest

from harness.flagwatch import BIN, start_on_free_port
from harness.journald import JournalRun as Run
from harness.net import free_port
from harness.polling import poll_or_fail as poll


READY_TIMEOUT = 20.0
ENTRY_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
TOOL_TIMEOUT = 15.0

# The contract documented in docs/daemon.md, "Logging" (Sources/flagwatch/LogMessageID.swift).
READY_ID = "b2502a4b971c4562833cf66199b608e0"
STOPPED_ID = "fd9625434f244517a2eefefc4c190282"
ALERT_PENDING_ID = "df7623ed38764f7a8bb73d5b8d828edf"
ALERT_FIRING_ID = "ea6d49aba83b4245b4c676ebfce32cb6"
ALERT_RESOLVED_ID = "50a8067cd4d14e42b4deac952e156898"

CLUSTER = "outbound|9001||payments.default.svc.cluster.local"
OK_LINE = (
    '[2026-11-22T02:34:27.532Z] "GET /reviews/1 HTTP/1.1" 200 - via_upstream - "-" 0 14 11 10 "-" "flag-harness/ok" '
    '"0d8e5a88-130d-4223-9294-7eee8276b7f5" "reviews.default.svc.cluster.local:8080" "127.0.0.1:18010" '
    "outbound|8080||reviews.default.svc.cluster.local 127.0.0.1:55718 127.0.0.1:18000 127.0.0.1:56922 - reviews-default\n"
)
UF_LINE = (
    '[2026-11-22T02:34:27.561Z] "GET /api/pay HTTP/1.1" 503 UF upstream_reset_before_response_started'
    "{remote_connection_failure|delayed_connect_error:_Connection_refused} - "
    '"delayed_connect_error:_Connection_refused" 0 98 0 - "-" "flag-harness/uf" "daad7b68-4bb4-4f21-9762-5f4f56c34fee" '
    '"payments.default.svc.cluster.local:9001" "127.0.0.1:18019" ' + CLUSTER + " - 127.0.0.1:18000 127.0.0.1:56936 - payments-default\n"
)

ALERTING = """\
windows: [5s]
alerting:
  evaluate_every: 1s
  rules:
    - name: JournalTestConnectFailures
      flags: [UF]
      window: 5s
      min_count: 3
      for: 1s
      resolve_after: 1s
      severity: critical
"""

pytestmark = pytest.mark.journald


def in_namespace(jd):
    """The nsenter prefix that runs a command in journald's mount namespace. nsenter (mount
    namespace only), systemd-cat and `sh -c 'exec ...'` all exec: the PID is flagwatch's."""
    prefix = ["nsenter", "--target", str(jd.pid), "--mount"]
    if jd.user_namespace:
        prefix += ["--user", "--preserve-credentials"]
    return prefix


class Kit:
    def __init__(self, tmp, jd):
        self.tmp = tmp
        self.jd = jd
        self.logs = tmp / "logs"
        self.logs.mkdir()
        self.log = self.logs / "access.log"
        self.log.write_text(OK_LINE * 3)
        self.state = tmp / "state"
        self.runs = []

    def config(self, port, extra=""):
        path = self.tmp / "flagwatch.yaml"
        path.write_text(
            'listen: "127.0.0.1:%d"\n'
            "state_dir: %s\n"
            "sources:\n"
            "  - name: envoy\n"
            '    files: ["%s/*.log"]\n'
            "    format: istio\n"
            "    start_at: beginning\n%s" % (port, self.state, self.logs, extra))
        return path

    def start(self, wrap=None, args=(), extra_config="", name="flagwatch", env_extra=None):
        """`flagwatch run` in the namespace: `wrap(argv)` may put it under systemd-cat / sh."""
        def start(port):
            argv = [BIN, "run", "--config", str(self.config(port, extra_config)), *args]
            if wrap:
                argv = wrap(argv)
            env = {k: v for k, v in os.environ.items() if k not in ("JOURNAL_STREAM", "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID")}
            env.update(env_extra or {})
            run = Run(self.tmp, in_namespace(self.jd) + argv, port, "%s-%d" % (name, len(self.runs) + 1), env=env)
            self.runs.append(run)
            return run
        return start_on_free_port(start)

    def entries(self):
        """Every entry in the journal, as journalctl's JSON objects (after `journalctl --sync`)."""
        self.jd.sync()
        result = subprocess.run(["journalctl", "--directory", self.jd.directory, "-o", "json", "--no-pager"],
                                capture_output=True, timeout=TOOL_TIMEOUT)
        assert result.returncode == 0, result.stderr.decode(errors="replace")
        return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]

    def entries_of(self, run):
        return [e for e in self.entries() if e.get("_PID") == str(run.pid)]

    def wait_entry(self, run, what, timeout=ENTRY_TIMEOUT, **fields):
        def found():
            matching = [e for e in self.entries_of(run) if all(e.get(k) == v for k, v in fields.items())]
            return matching
        try:
            return poll(found, timeout, what, interval=0.3)
        except BaseException:
            print("entries of pid %d:" % run.pid)
            for entry in self.entries_of(run):
                print({k: v for k, v in entry.items() if not k.startswith("__")})
            print(run.context())
            raise

    def close(self):
        for run in self.runs:
            run.close()


@pytest.fixture
def lk(tmp_path, jd):
    if not os.path.exists(BIN):
        pytest.fail("no flagwatch binary at %s (build it, or set FLAGWATCH_BIN)" % BIN)
    kit = Kit(tmp_path, jd)
    try:
        yield kit
    finally:
        kit.close()


def check_fixed_fields(entry, priority, logger="flagwatch"):
    assert entry["SYSLOG_IDENTIFIER"] == "flagwatch", entry
    assert entry["PRIORITY"] == str(priority), entry
    assert entry["LOGGER"] == logger, entry
    assert entry["CODE_FILE"].endswith(".swift"), entry
    assert int(entry["CODE_LINE"]) > 0, entry
    assert entry["CODE_FUNC"], entry
    # Written by journald from the sender's credentials: the native protocol, not a stream.
    assert entry["_TRANSPORT"] == "journal", entry


def test_journal_target_priorities_fields_and_message_ids(lk):
    # A corrupt checkpoint makes the file follower log an error (priority 3) and start anyway.
    lk.state.mkdir()
    (lk.state / "envoy.checkpoint.json").write_text("{not json")
    run = lk.start(args=["--log-target", "journal", "--log-level", "debug"], extra_config=ALERTING)

    ready = lk.wait_entry(run, "the ready entry", MESSAGE_ID=READY_ID)
    assert len(ready) == 1, ready
    check_fixed_fields(ready[0], 6)
    assert "ready: 1 source(s), listening on 127.0.0.1:%d" % run.port in ready[0]["MESSAGE"], ready[0]
    assert ready[0]["CODE_FILE"] == "flagwatch/Daemon.swift", ready[0]

    # debug (7): the open file limit; error (3): the corrupt checkpoint.
    debug = lk.wait_entry(run, "the debug entry", PRIORITY="7")
    assert any(e["MESSAGE"].startswith("open file limit") for e in debug), debug
    error = lk.wait_entry(run, "the corrupt-checkpoint error", PRIORITY="3")
    assert any("starts without it" in e["MESSAGE"] for e in error), error
    check_fixed_fields(error[0], 3)

    # An alert: UF lines on one cluster -> pending (notice, 5) -> firing (warning, 4) -> resolved
    # (notice) once the 5 s window has no UF left.
    with open(lk.log, "a") as log:
        log.write(UF_LINE * 6)
    pending = lk.wait_entry(run, "the pending transition", MESSAGE_ID=ALERT_PENDING_ID)[0]
    firing = lk.wait_entry(run, "the firing transition", MESSAGE_ID=ALERT_FIRING_ID)[0]
    resolved = lk.wait_entry(run, "the resolved transition", MESSAGE_ID=ALERT_RESOLVED_ID)[0]
    for entry, priority, state, previous in ((pending, 5, "pending", "inactive"), (firing, 4, "firing", "pending"),
                                             (resolved, 5, "resolved", "firing")):
        check_fixed_fields(entry, priority)
        assert entry["CODE_FILE"] == "flagwatch/AlertSupervisor.swift", entry
        assert entry["ALERTNAME"] == "JournalTestConnectFailures", entry
        assert entry["UPSTREAM_CLUSTER"] == CLUSTER, entry
        assert entry["RESPONSE_FLAG"] == "UF", entry
        assert entry["STATE"] == state, entry
        assert entry["PREVIOUS_STATE"] == previous, entry
        assert entry["MESSAGE"].startswith("alert JournalTestConnectFailures on %s: %s -> %s" % (CLUSTER, previous, state)), entry
        # message_id became MESSAGE_ID, not a field of its own.
        assert "FLAGWATCH_MESSAGE_ID" not in entry and "MESSAGE_ID" in entry, entry

    # SIGHUP: the reload's notice (5) without a message id.
    os.kill(run.pid, signal.SIGHUP)
    hup = lk.wait_entry(run, "the reload notice", PRIORITY="5", CODE_FILE="flagwatch/Daemon.swift")
    assert "configuration reloaded" in hup[0]["MESSAGE"] and "MESSAGE_ID" not in hup[0], hup[0]

    assert run.stop() == 0, run.context()
    stopped = lk.wait_entry(run, "the stopped entry", MESSAGE_ID=STOPPED_ID)
    assert len(stopped) == 1 and stopped[0]["MESSAGE"] == "stopped; checkpoints saved", stopped
    check_fixed_fields(stopped[0], 6)

    # Everything went to the journal: nothing fell back to stderr.
    assert "ready" not in run.stderr_text() and "alert" not in run.stderr_text(), run.context()
    # journalctl finds them by id, as docs/daemon.md says.
    by_id = subprocess.run(["journalctl", "--directory", lk.jd.directory, "-o", "json", "--no-pager",
                            "MESSAGE_ID=" + ALERT_FIRING_ID], capture_output=True, timeout=TOOL_TIMEOUT)
    assert [json.loads(l)["STATE"] for l in by_id.stdout.splitlines()] == ["firing"], by_id


def _systemd_cat(identifier, redirect_stderr_to=None):
    """Runs argv under `systemd-cat -t IDENT` (stdout and stderr on a journald stream socket)
    with JOURNAL_STREAM set as systemd sets it: `<st_dev>:<st_ino>` of that socket, decimal.
    With redirect_stderr_to, stderr then goes to that file (the variable is inherited but no
    longer true)."""
    script = 'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) && export JOURNAL_STREAM && exec "$@"'
    if redirect_stderr_to:
        script += ' 2>"$FLAGWATCH_STDERR"'

    def wrap(argv):
        return ["systemd-cat", "-t", identifier, "sh", "-c", script, "sh", *argv]
    env = {"FLAGWATCH_STDERR": str(redirect_stderr_to)} if redirect_stderr_to else None
    return wrap, env


def test_auto_target_follows_journal_stream(lk):
    wrap, env = _systemd_cat("fw-stream")
    run = lk.start(wrap=wrap, args=["--log-target", "auto"], name="auto-journal", env_extra=env)
    ready = lk.wait_entry(run, "the ready entry, native", MESSAGE_ID=READY_ID)
    check_fixed_fields(ready[0], 6)
    assert ready[0]["SYSLOG_IDENTIFIER"] == "flagwatch", ready[0]
    assert run.stop() == 0, run.context()
    lk.wait_entry(run, "the stopped entry", MESSAGE_ID=STOPPED_ID)
    # Nothing came through the stream as plain text lines.
    streamed = [e for e in lk.entries() if e.get("SYSLOG_IDENTIFIER") == "fw-stream"]
    assert streamed == [], streamed


def test_auto_target_with_redirected_stderr_uses_stderr(lk, tmp_path):
    redirected = tmp_path / "redirected.stderr"
    wrap, env = _systemd_cat("fw-redirected", redirect_stderr_to=redirected)
    run = lk.start(wrap=wrap, args=["--log-target", "auto"], name="auto-stderr", env_extra=env)
    poll(lambda: "ready" in redirected.read_text(errors="replace"), ENTRY_TIMEOUT, "the ready line on stderr")
    assert run.stop() == 0, run.context()
    poll(lambda: "stopped; checkpoints saved" in redirected.read_text(errors="replace"), ENTRY_TIMEOUT,
         "the stopped line on stderr")
    text = redirected.read_text(errors="replace")
    # StreamLogHandler's line, metadata included.
    assert "info flagwatch: message_id=%s" % READY_ID in text, text
    native = [e for e in lk.entries_of(run) if e.get("_TRANSPORT") == "journal"]
    assert native == [], native


def test_stderr_target_ignores_a_matching_journal_stream(lk):
    wrap, env = _systemd_cat("fw-forced-stderr")
    run = lk.start(wrap=wrap, args=["--log-target", "stderr"], name="forced-stderr", env_extra=env)
    streamed = lk.wait_entry(run, "the ready line through the stream", SYSLOG_IDENTIFIER="fw-forced-stderr")
    assert any("ready" in e["MESSAGE"] and e["_TRANSPORT"] == "stdout" for e in streamed), streamed
    assert run.stop() == 0, run.context()
    native = [e for e in lk.entries_of(run) if e.get("_TRANSPORT") == "journal"]
    assert native == [], native


def _private_run(tmp_path, name):
    """An `unshare --mount` prefix whose /run is `tmp_path/name` (so no journald socket, or
    a stale one the test puts there): `PREFIX + argv` runs argv (exec, same PID) in it."""
    prefix = ["unshare", "--mount"] if os.geteuid() == 0 else ["unshare", "--user", "--map-root-user", "--mount"]
    probe = subprocess.run(prefix + ["true"], capture_output=True, timeout=TOOL_TIMEOUT)
    if probe.returncode != 0:
        pytest.skip("cannot create a private mount namespace: %s" % probe.stderr.decode(errors="replace").strip())
    run_dir = tmp_path / name
    (run_dir / "systemd" / "journal").mkdir(parents=True)
    return run_dir, prefix + ["sh", "-c", 'mount --bind "$0" /run && exec "$@"', str(run_dir)]


@pytest.mark.parametrize("socket_state", ["missing", "stale"])
def test_journal_target_without_journald_logs_to_stderr(tmp_path, socket_state):
    """No journald socket: sd_journal_sendv would drop entries silently, so --log-target journal
    says so and logs to stderr. A stale socket (nobody reading): each record that fails to send
    goes to stderr instead."""
    if not os.path.exists(BIN):
        pytest.fail("no flagwatch binary at %s (build it, or set FLAGWATCH_BIN)" % BIN)
    run_dir, prefix = _private_run(tmp_path, "run")
    if socket_state == "stale":
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        stale.bind(str(run_dir / "systemd" / "journal" / "socket"))
        stale.close()  # the file stays; sending to it fails with ECONNREFUSED
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "access.log").write_text(OK_LINE)
    port = free_port()
    config = tmp_path / "flagwatch.yaml"
    config.write_text('listen: "127.0.0.1:%d"\nstate_dir: %s\nsources:\n  - name: envoy\n    files: ["%s/*.log"]\n'
                      % (port, tmp_path / "state", logs))
    run = Run(tmp_path, prefix + [BIN, "run", "--config", str(config), "--log-target", "journal"], port, "no-journald")
    try:
        run.wait_ready()
        poll(lambda: "ready" in run.stderr_text(), ENTRY_TIMEOUT, "the ready line on stderr")
        assert run.stop() == 0, run.context()
        text = run.stderr_text()
        assert "stopped; checkpoints saved" in text, text
        assert "message_id=%s" % READY_ID in text, text
        warned = "no journald (/run/systemd/journal/socket is missing)" in text
        assert warned == (socket_state == "missing"), text
    finally:
        run.close()
