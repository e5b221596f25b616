"""A real nginx (Debian's nginx-light) in front of failing upstreams: its error log and its
ingress-nginx style access log, read with `flagwatch scan` (each format, and `auto`) and with
`flagwatch run` (the shipped default rules), give exactly the flags the test made happen, and
an alert fires with the right likely cause."""
import pytest

from harness.processes import log_tail
from harness.polling import poll_until
from harness.proxies import (
    alerts, daemon_flag_counts, drive, firing, flags_by_cluster, scan_json, start_daemon, start_follow, wait_for_lines,
)

pytestmark = pytest.mark.e2e

REQUESTS = 12  # each group gets as many; the default rules want min_count 10


def make_failures(nginx):
    """Drives every group; returns what nginx answered, per group."""
    answers = {
        "refusing": drive(nginx.url("refusing"), REQUESTS),
        "closing": drive(nginx.url("closing"), REQUESTS),
        # proxy_read_timeout is 1 s: in parallel, so the test waits once.
        "hanging": drive(nginx.url("hanging"), REQUESTS, parallel=True),
        "alldown": drive(nginx.url("alldown"), REQUESTS),
    }
    assert answers["refusing"] == [502] * REQUESTS
    assert answers["closing"] == [502] * REQUESTS
    assert answers["hanging"] == [504] * REQUESTS
    assert answers["alldown"] == [502] * REQUESTS
    # nginx writes both logs as it finishes each request; wait for the last lines.
    wait_for_lines(nginx.access_log, lambda text: text.count("\n") == 4 * REQUESTS, "nginx's access log complete")
    wait_for_lines(nginx.error_log, lambda text: text.count("no live upstreams") == REQUESTS - 1, "nginx's error log complete")


def expected_error_log_flags(nginx):
    refusing, = nginx.servers["refusing"]
    hanging, = nginx.servers["hanging"]
    closing, = nginx.servers["closing"]
    first, second = nginx.servers["alldown"]
    return {
        refusing: {"UF": REQUESTS},
        hanging: {"UT": REQUESTS},
        closing: {"UC": REQUESTS},
        # The first request tries both servers (each marked failed: max_fails=1); every later
        # one finds no live server in the group.
        first: {"UF": 1},
        second: {"UF": 1},
        "alldown": {"UH": REQUESTS - 1},
    }


# What the access log proves: the 504s, and the group's name where the address goes. The 502s
# of refusing and closing servers look alike there (docs/formats.md §9.2).
EXPECTED_ACCESS_LOG_FLAGS = {"hanging": {"UT": REQUESTS}, "alldown": {"UH": REQUESTS - 1}}


def test_scan_reads_nginx_error_and_access_logs(nginx):
    make_failures(nginx)
    context = log_tail(nginx.error_log, 60)

    error_report = scan_json("nginx-error", [nginx.error_log])
    assert flags_by_cluster(error_report) == expected_error_log_flags(nginx), context
    # "upstream server temporarily disabled" (warn, about an upstream) counts without a flag;
    # nothing is malformed.
    assert error_report["malformed"] == {}, error_report["malformed"]
    refusing, = nginx.servers["refusing"]
    diagnosis = error_report["clusters"][refusing]["diagnosis"]
    assert diagnosis["cause"] == "backend down", diagnosis
    assert "(connection refused): 12 of 12 UF were 111: Connection refused" in diagnosis["likely_cause"], diagnosis
    assert error_report["clusters"]["alldown"]["diagnosis"]["cause"] == "no live upstream servers"
    assert error_report["clusters"][nginx.servers["closing"][0]]["diagnosis"]["cause"] == "upstream closed connection"

    access_report = scan_json("nginx", [nginx.access_log])
    assert flags_by_cluster(access_report) == EXPECTED_ACCESS_LOG_FLAGS
    assert access_report["malformed"] == {}
    for group in nginx.servers:
        assert access_report["clusters"][group]["requests"] == REQUESTS
    assert access_report["clusters"]["refusing"]["codes"] == {"5xx": REQUESTS}

    # auto recognises both logs.
    both = scan_json("auto", [nginx.error_log, nginx.access_log])
    expected = expected_error_log_flags(nginx)
    for cluster, flags in EXPECTED_ACCESS_LOG_FLAGS.items():
        for flag, count in flags.items():
            expected.setdefault(cluster, {})
            expected[cluster][flag] = expected[cluster].get(flag, 0) + count
    assert flags_by_cluster(both) == expected


def test_run_counts_nginx_logs_and_fires_the_default_rules(nginx, procs, tmp_path):
    make_failures(nginx)
    daemon = start_daemon(procs, tmp_path / "flagwatch", [
        {"name": "nginx-error", "files": [str(nginx.error_log)], "format": "nginx-error"},
        {"name": "nginx-access", "files": [str(nginx.access_log)], "format": "auto"},
    ])
    refusing, = nginx.servers["refusing"]
    hanging, = nginx.servers["hanging"]
    expected = {(cluster, flag): count for cluster, flags in expected_error_log_flags(nginx).items() for flag, count in flags.items()}
    expected[("hanging", "UT")] = REQUESTS
    expected[("alldown", "UH")] = 2 * (REQUESTS - 1)
    poll_until(lambda: daemon_flag_counts(daemon) == expected, 20, "daemon's flag counts == %r" % expected,
               context=lambda: "%r\n%s" % (daemon_flag_counts(daemon), daemon.log()))

    alert = poll_until(lambda: firing(daemon, "UpstreamConnectFailures", refusing), 30, "UpstreamConnectFailures firing",
                       context=lambda: alerts(daemon))
    assert alert["labels"]["response_flag"] == "UF"
    assert alert["figures"]["likelyCause"] == "backend down"
    assert "connection refused" in alert["annotations"]["likely_cause"], alert
    assert any("curl -sv" in step for step in alert["annotations"]["next_steps"].split("\n")), alert

    no_live = poll_until(lambda: firing(daemon, "NoHealthyUpstream", "alldown"), 30, "NoHealthyUpstream firing")
    assert no_live["figures"]["likelyCause"] == "no live upstream servers"
    assert "max_fails" in no_live["annotations"]["likely_cause"]

    timeout = poll_until(lambda: firing(daemon, "UpstreamTimeouts", hanging), 30, "UpstreamTimeouts firing")
    assert "proxy_read_timeout" in timeout["annotations"]["likely_cause"]


def test_follow_counts_both_nginx_logs_as_they_grow(nginx, procs, tmp_path):
    # Started before the traffic, from the files' ends; `auto` recognises each log's format.
    # nginx created both logs at start-up.
    follow = start_follow(procs, tmp_path / "follow", "auto", [nginx.error_log, nginx.access_log])
    make_failures(nginx)
    expected = expected_error_log_flags(nginx)
    expected["hanging"] = {"UT": REQUESTS}
    expected["alldown"] = {"UH": 2 * (REQUESTS - 1)}
    poll_until(lambda: flags_by_cluster(follow.latest()) == expected, 20, "scan --follow's report == %r" % expected,
               context=lambda: "%r\n%s" % (follow.latest(), follow.context()))
    assert follow.latest()["malformed"] == {}
