"""A real HAProxy in front of failing upstreams: its httplog and tcplog lines (with and without
a syslog header), read with `flagwatch scan --format haproxy` and `auto` and with `flagwatch run` (the
shipped default rules), give exactly the flags the test made happen per backend, and alerts
fire with the right likely cause."""
import threading

import pytest

from harness.processes import log_tail
from harness.polling import poll_until
from harness.proxies import (
    alerts, daemon_flag_counts, drive, firing, flags_by_cluster, scan_json, start_daemon, start_follow, wait_for_lines,
)

pytestmark = pytest.mark.e2e

REQUESTS = 12  # per backend; the default rules want min_count 10


def make_failures(haproxy, backends):
    answers = {
        "be_refused": drive(haproxy.url("be_refused"), REQUESTS),
        "be_close": drive(haproxy.url("be_close"), REQUESTS),
        "be_alldown": drive(haproxy.url("be_alldown"), REQUESTS),
        # timeout server is 1 s: in parallel, so the test waits once.
        "be_hang": drive(haproxy.url("be_hang"), REQUESTS, parallel=True),
    }
    # The queue: one request takes the server's only slot (maxconn 1) and hangs; the next ones
    # wait in the queue until timeout queue (500 ms) strikes.
    occupant = threading.Thread(target=lambda: answers.__setitem__("occupant", drive(haproxy.url("be_queue"), 1)), daemon=True)
    reached = backends.accepted[backends.hang] + 1
    occupant.start()
    poll_until(lambda: backends.accepted[backends.hang] >= reached, 5, "the occupant reached be_queue's server", interval=0.02)
    answers["be_queue"] = drive(haproxy.url("be_queue"), REQUESTS, parallel=True)
    occupant.join(15)
    assert answers["be_refused"] == [503] * REQUESTS
    assert answers["be_close"] == [502] * REQUESTS
    assert answers["be_alldown"] == [503] * REQUESTS
    assert answers["be_hang"] == [504] * REQUESTS
    assert answers["be_queue"] == [503] * REQUESTS
    assert answers["occupant"] == [504]
    haproxy.tcp_sessions(REQUESTS)
    total = 5 * REQUESTS + 1
    wait_for_lines(haproxy.log, lambda text: text.count('"GET /be_') == total and text.count(" be_tcp_refused/s1 ") == REQUESTS,
                   "haproxy logged %d requests and %d TCP sessions" % (total, REQUESTS))


EXPECTED = {
    "be_refused": {"UF": REQUESTS},
    "be_close": {"UC": REQUESTS},
    "be_alldown": {"UH": REQUESTS},
    "be_hang": {"UT": REQUESTS},
    "be_queue": {"UO": REQUESTS, "UT": 1},
    # tcplog: the state is `SC`, and there is no status.
    "be_tcp_refused": {"UF": REQUESTS},
}


def test_scan_reads_haproxy_httplog(haproxy, backends):
    make_failures(haproxy, backends)
    context = log_tail(haproxy.log, 80)
    requests = [line for line in haproxy.log.read_text().splitlines() if '"GET /be_' in line]
    # With a syslog header (`<134>Dec  6 20:15:01 haproxy[977]: ...`) or without.
    assert all(line.startswith("<") == (haproxy.log_format == "rfc3164") for line in requests), context
    report = scan_json("haproxy", [haproxy.log])
    assert flags_by_cluster(report) == EXPECTED, context
    for backend in ("be_refused", "be_close", "be_alldown", "be_hang"):
        assert report["clusters"][backend]["requests"] == REQUESTS
    assert report["clusters"]["be_refused"]["codes"] == {"5xx": REQUESTS}
    assert report["clusters"]["be_tcp_refused"]["codes"] == {"0": REQUESTS}
    diagnoses = {name: cluster["diagnosis"] for name, cluster in report["clusters"].items() if "diagnosis" in cluster}
    assert diagnoses["be_refused"]["cause"] == "backend down", diagnoses["be_refused"]
    assert "show servers state be_refused" in " ".join(diagnoses["be_refused"]["next_steps"])
    assert diagnoses["be_alldown"]["cause"] == "no live upstream servers"
    assert diagnoses["be_queue"]["cause"] == "server queue full"
    assert diagnoses["be_close"]["cause"] == "upstream closed connection"
    assert diagnoses["be_hang"]["cause"] == "upstream timeout"
    # auto: the same. HAProxy's own start-up messages (if any) are not access-log lines.
    auto = scan_json("auto", [haproxy.log])
    assert flags_by_cluster(auto) == EXPECTED
    assert set(auto["malformed"]) <= {"not_access_log"}, auto["malformed"]


def test_run_counts_haproxy_and_fires_the_default_rules(haproxy, backends, procs, tmp_path):
    make_failures(haproxy, backends)
    daemon = start_daemon(procs, tmp_path / "flagwatch", [{"name": "haproxy", "files": [str(haproxy.log)], "format": "haproxy"}])
    expected = {(backend, flag): count for backend, flags in EXPECTED.items() for flag, count in flags.items()}
    poll_until(lambda: daemon_flag_counts(daemon) == expected, 20, "daemon's flag counts == %r" % expected,
               context=lambda: "%r\n%s" % (daemon_flag_counts(daemon), daemon.log()))

    refused = poll_until(lambda: firing(daemon, "UpstreamConnectFailures", "be_refused"), 30, "UpstreamConnectFailures firing",
                         context=lambda: alerts(daemon))
    assert refused["labels"]["response_flag"] == "UF"
    assert refused["figures"]["likelyCause"] == "backend down"
    assert "connection refused" in refused["annotations"]["likely_cause"], refused
    assert "show servers state be_refused" in refused["annotations"]["next_steps"], refused

    no_server = poll_until(lambda: firing(daemon, "NoHealthyUpstream", "be_alldown"), 30, "NoHealthyUpstream firing")
    assert no_server["figures"]["likelyCause"] == "no live upstream servers"
    queue = poll_until(lambda: firing(daemon, "UpstreamOverflow", "be_queue"), 30, "UpstreamOverflow firing")
    assert queue["figures"]["likelyCause"] == "server queue full"


def test_follow_counts_haproxy_as_it_logs(haproxy, backends, procs, tmp_path):
    # Started before the traffic, from the file's end: every request is read live.
    follow = start_follow(procs, tmp_path / "follow", "haproxy", [haproxy.log])
    make_failures(haproxy, backends)
    poll_until(lambda: flags_by_cluster(follow.latest()) == EXPECTED, 20, "scan --follow's report == %r" % EXPECTED,
               context=lambda: "%r\n%s" % (follow.latest(), follow.context()))
    assert follow.latest()["malformed"] == {}
