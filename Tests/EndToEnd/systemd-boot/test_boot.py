"""The shipped flagwatch.service and flagwatch.socket under a real PID-1 systemd (Debian bookworm
booted with systemd-nspawn), installed by `make install`, on the shipped default config.

One booted container for the module; the tests run in order and build on each other (the
service enabled by the first is reloaded, restarted by the watchdog, stopped, then started by
its socket). Counts are exact: each daemon process counts what was written while it ran.
"""
import json
import re
import time

import pytest

from harness.boot import (ACCEPTED_LABELS, ENVOY_LOG, MESSAGE_ID_READY, MESSAGE_ID_STOPPED, OK_THRESHOLD, REPO,
                          RELEASE_BIN, STATE_DIR, Traffic, source_lines, wait_counted)
from harness.metrics import flag_counts
from harness.polling import poll_until


UNIT_DIR = "/usr/local/lib/systemd/system"
WATCHDOG_DROPIN = "/etc/systemd/system/flagwatch.service.d/watchdog.conf"
A = "outbound|8080||reviews.bookinfo.svc.cluster.local"
B = "outbound|9080||ratings.bookinfo.svc.cluster.local"
C = "outbound|80||payments.shop.svc.cluster.local"
D = "inbound|8080||"
# The daemon's reload message for the shipped config (3 sources, 5 rules).
RELOADED = "configuration reloaded: 3 source(s), 5 alert rule(s)"


@pytest.fixture(scope="module")
def traffic():
    return Traffic()


def wait_service(machine, what, predicate, timeout=30.0):
    """Polls `systemctl show flagwatch.service` until predicate(properties) holds."""
    props = ("ActiveState", "SubState", "MainPID", "NRestarts", "Result", "StatusText")
    return poll_until(lambda: (lambda p: p if predicate(p) else None)(machine.show("flagwatch.service", *props)),
                      timeout, what, interval=0.2,
                      context=lambda: machine.systemctl("status", "flagwatch.service", check=False).stdout)


def daemon_entries(machine, *matches):
    """The journal entries `flagwatch run` itself wrote (not systemd's, not ExecStartPre's)."""
    return [entry for entry in machine.journal("-u", "flagwatch.service", *matches)
            if entry.get("_COMM") == "flagwatch" and " run " in entry.get("_CMDLINE", "")]


def checkpoint(machine, source):
    path = machine.host_path("%s/%s.checkpoint.json" % (STATE_DIR, source))
    return json.loads(path.read_text())


def test_the_container_boots_to_running_with_no_failed_unit(machine):
    failed = machine.systemctl("list-units", "--failed", "--plain", "--no-legend", check=False).stdout
    assert machine.boot_state == "running", "systemctl is-system-running: %s; failed units:\n%s" % (
        machine.boot_state, failed)
    assert failed.strip() == ""
    assert machine.run("systemd-detect-virt", check=False).stdout.strip() == "systemd-nspawn"
    assert machine.run("cat", "/proc/1/comm").stdout.strip() == "systemd"


def test_make_install_puts_the_release_binary_units_and_config_in_place(machine):
    binary = machine.host_path("/usr/local/bin/flagwatch")
    assert binary.read_bytes() == RELEASE_BIN.read_bytes(), "the installed binary is not .build/release/flagwatch"
    for unit in ("flagwatch.service", "flagwatch.socket"):
        assert machine.host_path("%s/%s" % (UNIT_DIR, unit)).read_text() == (REPO / "systemd" / unit).read_text()
    assert machine.host_path("/etc/flagwatch/flagwatch.yaml").read_text() == (REPO / "config/flagwatch.yaml").read_text()
    # systemd inside finds them where `make install` put them, and the binary runs there (no Swift runtime).
    assert machine.show("flagwatch.service", "FragmentPath")["FragmentPath"] == UNIT_DIR + "/flagwatch.service"
    assert machine.show("flagwatch.socket", "FragmentPath")["FragmentPath"] == UNIT_DIR + "/flagwatch.socket"
    assert "OK" in machine.run("flagwatch", "check-config", "/etc/flagwatch/flagwatch.yaml").stdout


def test_enable_now_returns_after_ready_with_a_status_text(machine, traffic):
    # Envoy's log as logrotate leaves it (root:adm 0640), with lines from before the start, and
    # journal entries from before the start: start_at: end, so none of them may be counted.
    machine.run("install", "-d", "-m", "0755", "/var/log/envoy")
    machine.run("install", "-m", "0640", "-o", "root", "-g", "adm", "/dev/null", ENVOY_LOG)
    machine.append_file(Traffic().make("envoy", [(A, "UF", 503, 3), (D, "NR", 404, 2)]))
    machine.send_journal(Traffic().make("journal", [(C, "UH", 503, 4)]))
    assert machine.run("stat", "-c", "%U:%G %a", ENVOY_LOG).stdout.split() == ["root:adm", "640"]

    started = time.monotonic()
    machine.systemctl("enable", "--now", "flagwatch.service", timeout=60)
    took = time.monotonic() - started
    # Type=notify: `enable --now` returned after READY=1, so right now the service is running,
    # says what it is doing, and answers ready.
    state = machine.show("flagwatch.service", "ActiveState", "SubState", "StatusText", "MainPID", "Type")
    status, _ = machine.http("/-/ready")
    print("enable --now: %.2f s; %r" % (took, state))
    assert (state["Type"], state["ActiveState"], state["SubState"]) == ("notify", "active", "running"), state
    assert state["StatusText"].strip(), state
    assert state["StatusText"].startswith("started: 3 source(s), listening on port 9817"), state
    assert status == 200
    assert machine.systemctl("is-enabled", "flagwatch.service").stdout.strip() == "enabled"
    samples = machine.metrics()
    assert flag_counts(samples) == {}
    assert all(source_lines(samples, s) == 0 for s in ("envoy", "istio-proxy", "journal")), samples


def test_the_dynamic_user_reads_the_log_file_and_the_journal_with_exact_counts(machine, traffic):
    pid = machine.main_pid()
    # The sandbox: a dynamic (non-root) user whose supplementary groups are adm and systemd-journal.
    status = machine.run("cat", "/proc/%d/status" % pid).stdout
    uid = int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))
    groups = set(re.search(r"^Groups:\s*(.*)$", status, re.M).group(1).split())
    wanted = {machine.run("getent", "group", name).stdout.split(":")[2] for name in ("adm", "systemd-journal")}
    assert uid >= 61184, "not a DynamicUser uid: %d" % uid
    assert wanted <= groups, (wanted, groups)

    machine.append_file(traffic.make("envoy", [(A, "UF", 503, 7), (A, "UF,URX", 503, 3), (A, "-", 200, 5),
                                               (B, "UH", 503, 4), (D, "NR", 404, 2)]))
    machine.send_journal(traffic.make("journal", [(C, "UT", 504, 6), (A, "UF", 503, 2), (C, "-", 200, 3)]))
    samples = wait_counted(machine, traffic)
    assert flag_counts(samples) == {(A, "UF"): 12, (A, "URX"): 3, (B, "UH"): 4, (D, "NR"): 2, (C, "UT"): 6}
    assert (source_lines(samples, "envoy"), source_lines(samples, "journal")) == (21, 11)
    errors = {k: v for k, v in samples.items() if k.startswith("flagwatch_source_errors_total") and 'source="istio-proxy"' not in k}
    assert errors == {} or set(errors.values()) == {0.0}, errors
    assert samples.get('flagwatch_source_files{source="envoy"}') == 1
    assert samples.get('flagwatch_source_files{source="journal"}') == 1


def test_reload_keeps_the_counts_and_later_lines_add_up(machine, traffic):
    pid = machine.main_pid()
    before = machine.metrics()

    def reloads():
        return [e for e in daemon_entries(machine, "_PID=%d" % pid) if e.get("MESSAGE") == RELOADED]
    done_before = len(reloads())
    machine.systemctl("reload", "flagwatch.service")
    # systemd 252 returns from reload once the signal is sent: wait for the daemon to say it is done.
    poll_until(lambda: len(reloads()) == done_before + 1, 15, "'%s' in the journal" % RELOADED, interval=0.2)
    wait_service(machine, "active/running after the reload",
                 lambda p: (p["ActiveState"], p["SubState"]) == ("active", "running") and p["MainPID"] == str(pid))
    after = machine.metrics()
    assert flag_counts(after) == flag_counts(before) == traffic.expected
    for source in ("envoy", "journal"):
        assert source_lines(after, source) == source_lines(before, source) == traffic.lines[source]

    machine.append_file(traffic.make("envoy", [(B, "UH", 503, 5), (C, "UO", 503, 2)]))
    machine.send_journal(traffic.make("journal", [(A, "URX,UF", 503, 4)]))
    samples = wait_counted(machine, traffic)
    assert flag_counts(samples)[(A, "UF")] == 16 and flag_counts(samples)[(B, "UH")] == 9
    assert machine.main_pid() == pid


def test_a_stopped_daemon_is_killed_by_the_watchdog_and_resumes_from_its_checkpoint(machine, traffic):
    machine.run("mkdir", "-p", WATCHDOG_DROPIN.rsplit("/", 1)[0])
    machine.run("/bin/sh", "-c", 'cat > "$1"', "sh", WATCHDOG_DROPIN, input="[Service]\nWatchdogSec=4s\n")
    try:
        machine.systemctl("daemon-reload")
        old = machine.main_pid()
        machine.systemctl("restart", "flagwatch.service")
        machine.clean_stops.append(old)
        props = machine.show("flagwatch.service", "WatchdogUSec", "MainPID", "NRestarts", "ActiveState")
        assert props["WatchdogUSec"] == "4s" and props["ActiveState"] == "active", props
        pid, restarts = int(props["MainPID"]), int(props["NRestarts"])
        traffic.reset()

        # N lines, counted, and the checkpoints at the end of what was written.
        machine.append_file(traffic.make("envoy", [(A, "UF", 503, 11), (B, "UH", 503, 6)]))
        machine.send_journal(traffic.make("journal", [(C, "UT", 504, 5)]))
        wait_counted(machine, traffic)
        size = machine.host_path(ENVOY_LOG).stat().st_size
        last_cursor = machine.journal("SYSLOG_IDENTIFIER=envoy", "-n", "1")[-1]["__CURSOR"]

        def saved():
            files = checkpoint(machine, "envoy").get("files") or []
            journal = checkpoint(machine, "journal").get("journal") or {}
            return [f["offset"] for f in files if f["path"] == ENVOY_LOG] == [size] and journal.get("cursor") == last_cursor
        poll_until(saved, 15, "checkpoints at offset %d and cursor %s" % (size, last_cursor), interval=0.2,
                   context=lambda: (checkpoint(machine, "envoy"), checkpoint(machine, "journal")))

        # A stuck loop: no more WATCHDOG=1. systemd kills it (SIGABRT) and restarts it.
        machine.run("/bin/sh", "-c", 'kill -STOP "$1"', "sh", str(pid))
        stopped_at = time.monotonic()
        traffic.reset()
        machine.append_file(traffic.make("envoy", [(A, "UF", 503, 8), (D, "NR", 404, 3), (B, "-", 200, 2)]))
        machine.send_journal(traffic.make("journal", [(C, "UT", 504, 4), (C, "UF", 503, 1)]))
        props = wait_service(machine, "a restart by the watchdog",
                             lambda p: int(p["NRestarts"]) == restarts + 1 and p["MainPID"] not in ("0", str(pid))
                             and (p["ActiveState"], p["SubState"]) == ("active", "running"), timeout=30)
        print("watchdog: killed and restarted %.1f s after SIGSTOP" % (time.monotonic() - stopped_at))
        machine.killed.append(pid)
        systemd_says = [e["MESSAGE"] for e in machine.journal("-u", "flagwatch.service", "_PID=1")]
        assert any("Watchdog timeout (limit 4s)" in m for m in systemd_says), systemd_says[-10:]
        assert any("Killing process %d (flagwatch) with signal SIGABRT" % pid in m for m in systemd_says), systemd_says[-10:]

        # The new process starts at 0 and reads from the checkpoints: exactly the M lines.
        samples = wait_counted(machine, traffic)
        assert flag_counts(samples) == {(A, "UF"): 8, (D, "NR"): 3, (C, "UT"): 4, (C, "UF"): 1}
        time.sleep(1.0)  # nothing more trickles in
        assert flag_counts(machine.metrics()) == traffic.expected
        assert (source_lines(samples, "envoy"), source_lines(samples, "journal")) == (13, 5)
    finally:
        machine.run("rm", "-f", WATCHDOG_DROPIN)
        machine.systemctl("daemon-reload")


def test_stop_exits_zero(machine, traffic):
    pid = machine.main_pid()
    machine.systemctl("stop", "flagwatch.service", timeout=40)
    machine.clean_stops.append(pid)
    props = machine.show("flagwatch.service", "ActiveState", "SubState", "Result", "ExecMainStatus", "ExecMainCode",
                         "ExecMainPID", "MainPID")
    assert props["ExecMainPID"] == str(pid), props
    assert (props["ActiveState"], props["Result"], props["ExecMainStatus"]) == ("inactive", "success", "0"), props
    assert props["ExecMainCode"] == "1", props  # CLD_EXITED: it exited, it was not killed
    # The checkpoints saved at the stop are at the end of the log.
    files = checkpoint(machine, "envoy")["files"]
    assert [f["offset"] for f in files if f["path"] == ENVOY_LOG] == [machine.host_path(ENVOY_LOG).stat().st_size]
    traffic.reset()


def test_the_socket_alone_starts_the_service_on_the_first_request(machine, traffic):
    assert machine.show("flagwatch.service", "ActiveState")["ActiveState"] == "inactive"
    machine.systemctl("enable", "--now", "flagwatch.socket")
    socket = machine.show("flagwatch.socket", "ActiveState", "SubState", "Listen")
    assert (socket["ActiveState"], socket["SubState"]) == ("active", "listening"), socket
    assert socket["Listen"] == "127.0.0.1:9817 (Stream)", socket
    assert machine.show("flagwatch.service", "ActiveState")["ActiveState"] == "inactive"

    status, body = machine.http("/metrics", timeout=30)
    assert status == 200, body[:500]
    assert "flagwatch_build_info" in body
    props = wait_service(machine, "the service started by its socket",
                         lambda p: (p["ActiveState"], p["SubState"]) == ("active", "running"))
    assert machine.show("flagwatch.service", "TriggeredBy")["TriggeredBy"] == "flagwatch.socket"
    # It serves on the passed socket, and follows the sources from its checkpoints.
    pid = int(props["MainPID"])
    environ = machine.run("cat", "/proc/%d/environ" % pid).stdout.split("\0")
    assert "LISTEN_FDS=1" in environ, environ
    machine.append_file(traffic.make("envoy", [(B, "UO", 503, 3)]))
    machine.send_journal(traffic.make("journal", [(A, "UF", 503, 2)]))
    wait_counted(machine, traffic)


def test_the_journal_has_its_entries_with_message_id_and_priority(machine):
    entries = daemon_entries(machine)
    assert entries, "no entries of flagwatch run in journalctl -u flagwatch"
    # Native journal protocol (JOURNAL_STREAM matched): structured fields, a priority on each.
    assert {e.get("_TRANSPORT") for e in entries} == {"journal"}, {e.get("_TRANSPORT") for e in entries}
    assert all(e.get("PRIORITY") in list("01234567") for e in entries)
    assert all(e.get("SYSLOG_IDENTIFIER") == "flagwatch" for e in entries)
    # Nothing went wrong in the sandbox: no errors, and the only warning is the shipped config's
    # istio-proxy source, whose /var/log/pods does not exist on this machine.
    worse = [(e["PRIORITY"], e["MESSAGE"]) for e in entries if int(e["PRIORITY"]) <= 4
             and not e["MESSAGE"].startswith("source istio-proxy: cannot read directory /var/log/pods:")]
    assert worse == [], worse

    pids = {int(e["_PID"]) for e in entries}
    ready = [e for e in entries if e.get("MESSAGE_ID") == MESSAGE_ID_READY]
    stopped = [e for e in entries if e.get("MESSAGE_ID") == MESSAGE_ID_STOPPED]
    # One "ready" per daemon process that ran; "stopped" once per clean stop, none for the
    # process the watchdog killed.
    assert sorted(int(e["_PID"]) for e in ready) == sorted(pids), (ready, pids)
    assert sorted(int(e["_PID"]) for e in stopped) == sorted(machine.clean_stops), (stopped, machine.clean_stops)
    assert machine.killed and not set(machine.killed) & {int(e["_PID"]) for e in stopped}
    assert len(pids) == 4  # enable --now, the restart with the drop-in, the watchdog restart, the socket
    for entry in ready + stopped:
        assert entry["PRIORITY"] == "6", entry
    assert all(e["MESSAGE"].startswith("flagwatch ") and " ready: 3 source(s)" in e["MESSAGE"] for e in ready)
    assert all(e["MESSAGE"] == "stopped; checkpoints saved" for e in stopped)
    # journalctl MESSAGE_ID=... finds them too.
    assert len(machine.journal("MESSAGE_ID=%s" % MESSAGE_ID_READY)) == len(ready)


def test_systemd_analyze_security_rates_it_ok_inside_the_booted_system(machine):
    result = machine.run("systemd-analyze", "security", "--no-pager", "--threshold=%d" % round(OK_THRESHOLD * 10),
                         "flagwatch.service", check=False)
    output = result.stdout + result.stderr
    match = re.search(r"Overall exposure level for flagwatch\.service: (\d+\.\d) (\w+)", output)
    assert match, output
    print(match.group(0))
    level, label = float(match.group(1)), match.group(2)
    assert level <= OK_THRESHOLD and label in ACCEPTED_LABELS, output
    assert result.returncode == 0, output
    # The same score as the offline analysis quoted in systemd/README.md.
    assert "%s %s" % (match.group(1), label) in (REPO / "systemd/README.md").read_text()
