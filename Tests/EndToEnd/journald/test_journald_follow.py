"""`flagwatch scan --follow` on a journal source, against a real (private) systemd-journald.

Contract: each journal entry matching the `--journal-match`es (journalctl's syntax: same field
ORed, different fields ANDed, `+` between groups ORs them) is one line, its MESSAGE. Counts are
exact: no entry from another writer, none twice, none missed. `--start-at end` skips what the
journal held at start. With `--state-dir`, the position (cursor of the last entry, and the time
the journal was last read to its end) is saved every `--checkpoint-interval` and on SIGTERM; a
restart resumes after it, counting the entries written while stopped, also when nothing had
matched for a while, after SIGKILL (from the last save), and across rotation and vacuuming.
"""
import json
import signal
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.journald

REPO = Path(__file__).resolve().parents[3]
DEMO_LOG = REPO / "config" / "demo" / "istio-access.log"


# -- counting -----------------------------------------------------------------------------------


def test_demo_log_counts_like_scan(fw):
    """The demo log's 330 Envoy lines, one entry each: the same counts as `flagwatch scan` on
    the file, and none of the matching entries already in the journal at start."""
    status, out, err = fw.scan("--output", "json", "--format", "istio", DEMO_LOG)
    assert status == 0, err
    expected = json.loads(out)
    assert expected["lines"] == 330
    # Counts are compared (the follow kit drops each cluster's diagnosis from the reports too).
    for cluster in expected.get("clusters", {}).values():
        cluster.pop("diagnosis", None)
    fw.jd.send(fw.traffic.uncounted(25))
    fw.jd.sync()
    run = fw.start()
    fw.jd.send(DEMO_LOG.read_bytes())
    run.finish(expected)


def test_every_writer_counts_exactly(fw):
    """Native protocol, `systemd-cat` (stream) and `logger --journald`; a MESSAGE that keeps
    its newline (binary field) is the same line."""
    run = fw.start()
    fw.jd.send(fw.traffic.lines(200))
    fw.jd.cat(fw.traffic.lines(150, outcome="UF,URX"), "envoy")
    for line in fw.traffic.make(3, service="ledger"):
        fw.jd.logger(line, "envoy")
        fw.traffic.record([line])
    fw.jd.send(fw.traffic.lines(20, outcome="UH"), keep_newline=True)
    run.finish(fw.traffic.expected())


def test_start_at_end_without_any_matching_entry_yet(fw):
    """No matching entry at start: the entries written before flagwatch first reads are all
    counted (after sd_journal_seek_tail, sd_journal_next would jump to the newest of them)."""
    fw.jd.send(fw.traffic.uncounted(20), identifier="sshd")
    run = fw.start()
    run.pause()
    fw.jd.send(fw.traffic.lines(50))
    fw.jd.sync()
    run.resume()
    run.finish(fw.traffic.expected())


def test_start_at_beginning_counts_what_is_there(fw):
    fw.jd.send(fw.traffic.lines(60))
    fw.jd.send(fw.traffic.uncounted(10), identifier="sshd")
    fw.jd.sync()
    run = fw.start(start_at="beginning")
    fw.jd.send(fw.traffic.lines(15))
    run.finish(fw.traffic.expected())


# -- matches ------------------------------------------------------------------------------------

# Who writes: SYSLOG_IDENTIFIER and, for some, CONTAINER_NAME (as Docker's journald driver sets).
WRITERS = {
    "envoy": dict(identifier="envoy"),
    "envoy-in-istio-proxy": dict(identifier="envoy", CONTAINER_NAME="istio-proxy"),
    "dockerd-istio-proxy": dict(identifier="dockerd", CONTAINER_NAME="istio-proxy"),
    "sidecar": dict(identifier="istio-proxy"),
    "other": dict(identifier="sshd", CONTAINER_NAME="web"),
}


@pytest.mark.parametrize(
    "matches,counted",
    [
        (["SYSLOG_IDENTIFIER=envoy"], {"envoy", "envoy-in-istio-proxy"}),
        (["SYSLOG_IDENTIFIER=envoy", "SYSLOG_IDENTIFIER=istio-proxy"], {"envoy", "envoy-in-istio-proxy", "sidecar"}),
        (["SYSLOG_IDENTIFIER=envoy", "CONTAINER_NAME=istio-proxy"], {"envoy-in-istio-proxy"}),
        (["SYSLOG_IDENTIFIER=envoy", "+", "CONTAINER_NAME=istio-proxy"], {"envoy", "envoy-in-istio-proxy", "dockerd-istio-proxy"}),
        (["CONTAINER_NAME=istio-proxy", "+", "SYSLOG_IDENTIFIER=istio-proxy"], {"envoy-in-istio-proxy", "dockerd-istio-proxy", "sidecar"}),
    ],
    ids=["one-field", "same-field-or", "fields-and", "plus-or", "plus-or-other-order"],
)
def test_matches(fw, matches, counted):
    for fields in WRITERS.values():
        fw.jd.send(fw.traffic.uncounted(5), **fields)
    fw.jd.sync()
    run = fw.start(matches=matches)
    for _ in range(2):
        for name, fields in WRITERS.items():
            fw.jd.send(fw.traffic.lines(20) if name in counted else fw.traffic.uncounted(20), **fields)
    run.finish(fw.traffic.expected())


def test_bad_match_is_refused(cli, tmp_path):
    status, out, err = cli.scan("--follow", "--journal-match", "syslog_identifier=envoy", "--journal-directory", tmp_path)
    assert status == 2, (status, out, err)
    assert err.startswith("flagwatch: ") and err.count("\n") == 1, err
    assert "syslog_identifier=envoy" in err, err


def test_missing_journal_directory_is_refused(cli, tmp_path):
    missing = tmp_path / "no-such-journal"
    status, out, err = cli.scan("--follow", "--journal-match", "SYSLOG_IDENTIFIER=envoy", "--journal-directory", missing)
    assert status == 2, (status, out, err)
    assert err.startswith("flagwatch: ") and "No such file or directory" in err, err


# -- restarts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_graceful_restart_resumes(fw, sig):
    fw.jd.send(fw.traffic.uncounted(30))
    fw.jd.sync()
    first = fw.start()
    fw.jd.send(fw.traffic.lines(100))
    first.finish(fw.traffic.expected(), sig=sig)
    assert fw.checkpoint()[0]["journal"].get("cursor"), fw.checkpoint()

    fw.traffic.reset()
    fw.jd.send(fw.traffic.lines(70))  # while stopped
    fw.jd.send(fw.traffic.uncounted(10), identifier="sshd")
    fw.jd.sync()
    second = fw.start()
    fw.jd.send(fw.traffic.lines(40))
    second.finish(fw.traffic.expected(), what="only the entries written since the first run stopped")

    fw.traffic.reset()
    third = fw.start()
    third.finish(fw.traffic.expected(), what="nothing: no entry was written since the second run")


def test_sigkill_resumes_from_the_last_checkpoint(fw):
    first = fw.start()
    fw.jd.send(fw.traffic.lines(120))
    first.wait_counts(fw.traffic.expected())
    time.sleep(3 * fw.checkpoint_interval + 0.5)  # a save after the last entry was counted
    first.kill()

    fw.traffic.reset()
    fw.jd.send(fw.traffic.lines(60))
    fw.jd.sync()
    second = fw.start()
    fw.jd.send(fw.traffic.lines(20))
    second.finish(fw.traffic.expected(), what="only the entries written since the checkpoint")


@pytest.mark.parametrize("matched_before", [False, True], ids=["never-matched", "matched-earlier"])
@pytest.mark.parametrize("stop", ["SIGTERM", "SIGKILL"])
def test_resume_after_nothing_matched_for_a_while(fw, matched_before, stop):
    """Only other writers' entries for several checkpoint intervals, then a stop: the position
    is still saved (with no cursor at all if nothing ever matched), and a restart counts the
    matching entries written while stopped, once."""
    first = fw.start()
    if matched_before:
        fw.jd.send(fw.traffic.lines(15))
        first.wait_counts(fw.traffic.expected())
    quiet_from = time.time()
    while time.time() < quiet_from + 6 * fw.checkpoint_interval:
        fw.jd.send(fw.traffic.uncounted(3), identifier="sshd")
        time.sleep(0.05)
    fw.jd.sync()
    time.sleep(3 * fw.checkpoint_interval + 0.5)
    if stop == "SIGTERM":
        final = first.stop()
        assert final == fw.traffic.expected(), fw.kit.describe_difference(fw.traffic.expected(), final)
    else:
        first.kill()
    (saved,) = fw.checkpoint()
    journal = saved["journal"]
    if matched_before:
        assert journal.get("cursor"), saved
    else:
        assert journal.get("cursor") is None, saved
    # Saved while nothing matched: the time it last read the journal to its end.
    assert journal["readUntilMicroseconds"] / 1e6 > quiet_from + fw.checkpoint_interval, (saved, quiet_from)

    fw.traffic.reset()
    fw.jd.send(fw.traffic.lines(45))  # while stopped
    fw.jd.send(fw.traffic.uncounted(5), identifier="sshd")
    fw.jd.sync()
    second = fw.start()
    fw.jd.send(fw.traffic.lines(25))
    second.finish(fw.traffic.expected(), what="the matching entries written since the quiet spell, once")


# -- rotation and vacuuming ---------------------------------------------------------------------


def test_rotation_and_vacuum_while_following(fw):
    """journald archives system.journal and starts a new one; archived files are deleted while
    flagwatch still stands in one of them. A writer keeps writing throughout."""
    run = fw.start()
    stop_writing = threading.Event()
    errors = []

    def write():
        try:
            while not stop_writing.is_set():
                fw.jd.send(fw.traffic.lines(10))
                time.sleep(0.01)
        except BaseException as error:  # reported below
            errors.append(error)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        for _ in range(3):
            time.sleep(0.3)
            fw.jd.rotate()
        time.sleep(0.3)
        assert len(fw.jd.vacuum()) >= 3
        time.sleep(0.3)
    finally:
        stop_writing.set()
        writer.join(10)
    assert not errors, errors
    fw.jd.send(fw.traffic.lines(30))
    run.finish(fw.traffic.expected(), what="every entry written across three rotations and a vacuum")


def test_restart_after_the_saved_entry_was_vacuumed(fw):
    """While flagwatch is stopped the journal is rotated and the file holding the saved
    cursor's entry deleted: it resumes with the first entry after it."""
    first = fw.start()
    fw.jd.send(fw.traffic.lines(40))
    first.finish(fw.traffic.expected())

    fw.traffic.reset()
    fw.jd.rotate()
    fw.jd.send(fw.traffic.lines(30))  # into the new system.journal
    fw.jd.sync()
    assert fw.jd.vacuum()
    second = fw.start()
    fw.jd.send(fw.traffic.lines(10))
    second.finish(fw.traffic.expected(), what="the entries written after the vacuumed one")
