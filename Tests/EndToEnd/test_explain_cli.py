"""The `flagwatch explain` command-line contract: flags by short name, long name and comma list,
unknown flags (exit status 2, close matches), a real access-log line and its diagnosis (the
same as scan's), a line that does not parse (exit status 1), the JSON shape, and escaping.

The line is one of the demo log's (config/demo: real lines from Envoy 1.40, Istio text format).
"""
import json
import subprocess

from harness import REPO
from harness.flagwatch import BIN

DEMO = REPO / "config" / "demo" / "istio-access.log"
AUTH = "outbound|443||auth.default.svc.cluster.local"


def explain(*args, stdin=None):
    return subprocess.run([BIN, "explain", *args], input=stdin, capture_output=True, timeout=30)


def ok(*args, stdin=None):
    result = explain(*args, stdin=stdin)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""
    return result.stdout.decode()


def demo_line(*parts):
    """The demo log's first line holding every part."""
    for line in DEMO.read_text().splitlines():
        if all(part in line for part in parts):
            return line
    raise AssertionError(f"no demo line with {parts}")


def scan_diagnosis(line, cluster):
    result = subprocess.run(
        [BIN, "scan", "--output", "json", "-"], input=(line + "\n").encode(), capture_output=True, timeout=30
    )
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)["clusters"][cluster]["diagnosis"]


def test_a_short_flag_prints_its_meaning_codes_and_the_causes_told_apart():
    out = ok("UF")
    lines = out.splitlines()
    assert lines[:4] == [
        "UF  UpstreamConnectionFailure",
        "  Upstream connection failure, in addition to 503.",
        "  Since Envoy ≤1.5 (long name since 1.28); HTTP and TCP.",
        "  Status codes: 503; 0 on TCP proxy lines.",
    ]
    assert lines[4] == "  Causes, and how to tell them apart:"
    causes = [line.split(":")[0] for line in lines if line.startswith("  - ")]
    assert causes == ["  - backend down", "  - packets dropped", "  - TLS trust failure", "  - mTLS mismatch", "  - upstream TLS failure"]
    trust = next(line for line in lines if line.startswith("  - TLS trust failure: "))
    assert "CERTIFICATE_VERIFY_FAILED" in trust and "SAN mismatch" in trust
    assert "      istioctl proxy-config secret <pod>  # the client's certificate and root CA, with their dates" in lines
    assert "      kubectl get endpointslice -n <namespace> -l kubernetes.io/service-name=<service>" in lines


def test_a_long_name_in_any_case_explains_the_same_flag():
    assert ok("upstreamconnectionfailure") == ok("UpstreamConnectionFailure") == ok("uf") == ok("UF")


def test_a_comma_list_explains_each_flag_in_its_order():
    out = ok("URX,UF")
    headers = [line for line in out.splitlines() if line and not line.startswith(" ")]
    assert headers == ["URX  UpstreamRetryLimitExceeded", "UF  UpstreamConnectionFailure"]
    assert out == ok("URX") + "\n" + ok("UF")
    # Spaces around the commas, as people type lists.
    assert ok("URX, UF") == out


def test_a_flag_without_a_diagnosis_cause_says_so():
    assert ok("DI") == (
        "DI  DelayInjected\n"
        "  Request delayed by fault injection.\n"
        "  Since Envoy ≤1.5 (long name since 1.28); HTTP only.\n"
        "  Causes: flagwatch's diagnosis names none for this flag; the line's response code details say more.\n"
    )


def test_an_unknown_flag_fails_with_status_2_and_close_matches():
    result = explain("UFX")
    assert result.returncode == 2
    assert result.stdout == b""
    assert result.stderr.decode() == (
        "flagwatch: unknown response flag 'UFX'; did you mean UF (UpstreamConnectionFailure), "
        "URX (UpstreamRetryLimitExceeded)? ('flagwatch explain' takes short or long names, see docs/cli.md)\n"
    )
    result = explain("UF,Bogus")
    assert result.returncode == 2
    assert result.stderr.decode() == (
        "flagwatch: unknown response flag 'Bogus' ('flagwatch explain' takes short or long names, see docs/cli.md)\n"
    )


def test_a_real_istio_line_with_uf_and_certificate_verify_failed_gets_scans_diagnosis():
    line = demo_line(AUTH, "CERTIFICATE_VERIFY_FAILED")
    reason = (
        "TLS_error:|268435581:SSL_routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:verify_cert_failed:"
        "_X509_verify_cert:_certificate_verification_error_at_depth_0:_unable_to_get_local_issuer_certificate:TLS_error_end"
    )
    out = ok(line)
    diagnosis = scan_diagnosis(line, AUTH)
    assert diagnosis["cause"] == "TLS trust failure"
    head = out.split("\n\nUF  UpstreamConnectionFailure\n")[0]
    assert head.splitlines() == [
        "Line (istio (1.9+)):",
        "  upstream cluster:          " + AUTH,
        "  response code:             503",
        "  flags:                     UF",
        "  response code details:     upstream_reset_before_response_started{remote_connection_failure|" + reason + "}",
        "  transport failure reason:  " + reason,
        "  upstream host:             127.0.0.1:18014",
        "",
        "Diagnosis: TLS trust failure (UF)",
        "  " + diagnosis["likely_cause"],
        "  Next steps:",
    ] + ["    " + step for step in diagnosis["next_steps"]]
    assert diagnosis["likely_cause"] == (
        "TLS trust failure (wrong CA): 1 of 1 UF failed certificate verification "
        "(CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate); "
        "compare the certificates with the DestinationRule's caCertificates and subjectAltNames"
    )
    # The flag's own explanation follows the diagnosis.
    assert out.endswith(ok("UF"))
    # The same line from standard input.
    assert ok("-", stdin=("\n" + line + "\n").encode()) == out


def test_a_line_that_does_not_parse_fails_with_status_1_and_the_reason():
    result = explain("this is not an access log line")
    assert result.returncode == 1
    assert result.stdout == b""
    assert result.stderr.decode() == (
        "flagwatch: the line is not an access-log line of format auto (not_access_log); "
        "see 'flagwatch explain --help' for --format\n"
    )
    line = demo_line(AUTH, "CERTIFICATE_VERIFY_FAILED")
    result = explain("--format", "nginx", line)
    assert result.returncode == 1
    assert result.stderr.decode().startswith("flagwatch: the line is not an access-log line of format nginx (")
    result = explain("-", stdin=b"\n\n")
    assert result.returncode == 1
    assert result.stderr.decode() == "flagwatch: explain -: standard input has no line\n"


def test_json_output_of_flags_is_one_stable_object():
    report = json.loads(ok("--output", "json", "UF,DI"))
    assert set(report) == {"flags"}
    uf, di = report["flags"]
    assert set(uf) == {"short", "long", "meaning", "since_envoy", "tcp", "status_codes", "causes"}
    assert (uf["short"], uf["long"], uf["since_envoy"], uf["tcp"], uf["status_codes"]) == (
        "UF", "UpstreamConnectionFailure", "≤1.5", True, "503; 0 on TCP proxy lines")
    assert uf["meaning"] == "Upstream connection failure, in addition to 503"
    assert [c["cause"] for c in uf["causes"]] == ["backend down", "packets dropped", "TLS trust failure", "mTLS mismatch", "upstream TLS failure"]
    assert all(set(c) == {"cause", "evidence", "next_steps"} for c in uf["causes"])
    assert (di["short"], di["tcp"], di["status_codes"], di["causes"]) == ("DI", False, None, [])


def test_json_output_of_a_line_has_its_fields_scans_diagnosis_and_its_flags():
    line = demo_line("outbound|443||legacy.default.svc.cluster.local", "WRONG_VERSION_NUMBER")
    report = json.loads(ok("--output", "json", line))
    assert set(report) == {"line", "diagnosis", "flags"}
    reason = "TLS_error:|268435703:SSL_routines:OPENSSL_internal:WRONG_VERSION_NUMBER:TLS_error_end"
    assert report["line"] == {
        "format": "istio (1.9+)",
        "upstream_cluster": "outbound|443||legacy.default.svc.cluster.local",
        "response_code": 503,
        "response_flags": ["UF"],
        "unknown_flags": [],
        "response_code_details": "upstream_reset_before_response_started{remote_connection_failure|" + reason + "}",
        "upstream_transport_failure_reason": reason,
        "upstream_host": "127.0.0.1:18010",
    }
    scanned = scan_diagnosis(line, "outbound|443||legacy.default.svc.cluster.local")
    # One line cannot tell one host from all of them: explain says unknown where scan, which
    # sees no other host answer, says all hosts. Everything else is scan's.
    assert (report["diagnosis"]["scope"], scanned["scope"]) == ("unknown", "all hosts")
    assert {**report["diagnosis"], "scope": "all hosts"} == scanned
    assert report["diagnosis"]["hosts"] == [{"host": "127.0.0.1:18010", "count": 1}]
    assert report["diagnosis"]["cause"] == "mTLS mismatch"
    assert [flag["short"] for flag in report["flags"]] == ["UF"]
    ok_line = demo_line("outbound|8080||reviews.default.svc.cluster.local", '" 200 - via_upstream')
    plain = json.loads(ok("--output", "json", ok_line))
    assert (plain["diagnosis"], plain["flags"], plain["line"]["response_flags"]) == (None, [], [])


def test_text_from_the_line_is_escaped_in_both_outputs():
    line = demo_line(AUTH, "CERTIFICATE_VERIFY_FAILED").replace(AUTH, "outbound|443||au\x1b[31mth\x07.default.svc.cluster.local")
    out = ok(line)
    assert "\x1b" not in out and "\x07" not in out
    assert "outbound|443||au\ufffd[31mth\ufffd.default.svc.cluster.local" in out
    report = json.loads(ok("--output", "json", line))
    assert report["line"]["upstream_cluster"] == "outbound|443||au\x1b[31mth\x07.default.svc.cluster.local"
    assert "\\u001b" in ok("--output", "json", line)


def test_a_reply_body_is_explained_with_its_flags_and_diagnosis_from_standard_input_too():
    body = "upstream connect error or disconnect/reset before headers. reset reason: connection termination"
    out = ok(body)
    assert out.splitlines()[:2] == ["Envoy's own reply (not the upstream's):", "  " + body]
    assert "  flags:                     UC" in out
    assert "Diagnosis: upstream closed connection (UC)" in out
    # curl's output piped in: the same.
    assert ok("-", stdin=body.encode()) == out


def test_text_from_a_reply_body_is_escaped_in_both_outputs():
    body = ("upstream connect error or disconnect/reset before headers. reset reason: remote connection failure, "
            "transport failure reason: TLS_error:\x1b[31m\x07WRONG_VERSION_NUMBER")
    out = ok(body)
    assert "\x1b" not in out and "\x07" not in out
    assert "TLS_error:\ufffd[31m\ufffdWRONG_VERSION_NUMBER" in out
    text = ok("--output", "json", body)
    assert "\\u001b" in text
    report = json.loads(text)
    assert report["reply_body"]["upstream_transport_failure_reason"] == "TLS_error:\x1b[31m\x07WRONG_VERSION_NUMBER"
    assert report["diagnosis"]["cause"] == "mTLS mismatch"
