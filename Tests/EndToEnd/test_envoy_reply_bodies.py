"""End-to-end: the bodies a real Envoy 1.40 sends when it answers a request itself (what a
client, curl or a gRPC error shows in a 503 storm), explained by `flagwatch explain`.

One request per scenario of harness/envoy.py (the same backends and bootstrap as
test_envoy_scan.py) through Envoy on 127.0.0.1; each reply body Envoy wrote goes to
`flagwatch explain --output json <body>`, which must give the flags Envoy wrote in the access
log for that very request (matched by x-request-id in the JSON log), and a diagnosis. Bodies
the upstream wrote (200 "ok ...") or empty ones (NR, NC, LH) are not Envoy's words: explain must
not take the upstream's for one.

Every process is stopped by PID (the procs fixture); every wait is bounded.
"""
import http.client
import json
import subprocess
import uuid

import pytest

from harness.envoy import SCENARIOS, find_envoy, start_envoy, vhost, wait_for_stable_logs
from harness.flagwatch import BIN
from harness.net import LOOPBACK

pytestmark = pytest.mark.e2e

# The scenarios whose request Envoy answers with a body of its own, and what the body tells:
# a retry overflow (UO next to UF) is not in the body, which names the last try's reset only.
BODY_FLAGS = {
    "uf": ["UF"], "urx": ["URX", "UF"], "uo_retry": ["UF"], "uh_hc": ["UH"], "uh_empty": ["UH"], "uc": ["UC"],
    "ut": ["UT"], "upe": ["UPE"], "ur": ["UR"], "si": ["SI"], "umsdr": ["UMSDR"], "noflag_504": [], "fi": ["FI"],
}
CAUSES = {"uf": "backend down", "urx": "backend down", "uh_hc": "no ready endpoints", "uc": "upstream closed connection",
          "ut": "upstream timeout"}


def request(port, host, path):
    """(status, body, x-request-id) of one GET with a request id of ours."""
    request_id = str(uuid.uuid4())
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=15)
    try:
        connection.request("GET", path, headers={"Host": host, "x-request-id": request_id})
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace"), request_id
    finally:
        connection.close()


def explain(text):
    result = subprocess.run([BIN, "explain", "--output", "json", text], capture_output=True, timeout=30)
    return result.returncode, result.stdout.decode(), result.stderr.decode()


@pytest.fixture(scope="module")
def replies(tmp_path_factory):
    """{scenario: (status, body, the JSON log entry of that request)} from one real Envoy."""
    from harness.processes import Processes
    work = tmp_path_factory.mktemp("reply-bodies")
    procs = Processes()
    try:
        stack = start_envoy(procs, work, find_envoy(), work / "access.log", work / "access.json.log")
        port = stack.ports["http"]
        sent = {}
        for scenario in SCENARIOS:
            if scenario.kind == "http":
                sent[scenario.name] = request(port, scenario.host, scenario.path)
            elif scenario.kind == "nr":
                sent[scenario.name] = request(port, vhost("unknown"), "/")
        wait_for_stable_logs([work / "access.json.log"], len(sent), 15.0)
        entries = {}
        for line in (work / "access.json.log").read_text().splitlines():
            entry = json.loads(line)
            entries[entry.get("request_id")] = entry
    finally:
        procs.stop_all()
    return {name: (status, body, entries.get(request_id)) for name, (status, body, request_id) in sent.items()}


@pytest.mark.parametrize("name", sorted(BODY_FLAGS))
def test_envoys_reply_body_gives_the_flags_of_its_access_log_line(replies, name):
    status, body, entry = replies[name]
    assert entry is not None, "no access-log line for the %s request" % name
    logged = set((entry["response_flags"] or "-").split(",")) - {"-"}
    assert body, "Envoy sent no body for %s (%s)" % (name, status)
    code, out, err = explain(body)
    assert code == 0, "explain %r failed (%d): %s" % (body, code, err)
    report = json.loads(out)
    flags = report["reply_body"]["response_flags"]
    assert flags == BODY_FLAGS[name], "%s: %r gave %s, expected %s" % (name, body, flags, BODY_FLAGS[name])
    # Ground truth: the flags Envoy logged for this very request hold every flag the body gave.
    assert set(flags) <= logged, "%s: body flags %s, logged %s" % (name, flags, sorted(logged))
    assert report["reply_body"]["default_status"] == status, report["reply_body"]
    assert (report["diagnosis"] is None) == (not flags), report["diagnosis"]
    if name in CAUSES:
        assert report["diagnosis"]["cause"] == CAUSES[name], report["diagnosis"]
    # The details explain derives are the ones Envoy logged, but for the transport failure
    # reason after `|`: Envoy's body has it only for TLS failures, not for a refused connect.
    logged_details = entry["response_code_details"]
    if report["reply_body"]["upstream_transport_failure_reason"] is None and "|" in logged_details:
        logged_details = logged_details.split("|")[0] + "}"
    assert report["reply_body"]["response_code_details"] == logged_details, (
        report["reply_body"], entry["response_code_details"])


@pytest.mark.parametrize("name", ["ok", "nr", "nc"])
def test_a_body_envoy_did_not_write_is_not_taken_for_one(replies, name):
    status, body, _ = replies[name]
    if not body:
        assert explain(body)[0] != 0
        return
    code, out, err = explain(body)
    assert code == 1 and "not an access-log line" in err, (code, out, err)
