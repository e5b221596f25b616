"""The `flagwatch scan` command-line contract: outputs, exit statuses, standard input,
container wrappers, and Prometheus text that promtool accepts.

Uses the demo log shipped in config/demo (330 real lines from Envoy 1.40, Istio text format).
"""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from harness import REPO
from harness.flagwatch import BIN

DEMO = REPO / "config" / "demo" / "istio-access.log"
PAYMENTS = "outbound|9001||payments.default.svc.cluster.local"
LEDGER = "outbound|9002||ledger.default.svc.cluster.local"


def scan(*args, stdin=None, check=True):
    result = subprocess.run(
        [BIN, "scan", *args], input=stdin, capture_output=True, timeout=60
    )
    if check:
        assert result.returncode == 0, result.stderr.decode()
    return result


def scan_json(*args, stdin=None):
    return json.loads(scan("--output", "json", *args, stdin=stdin).stdout)


def demo_lines():
    return DEMO.read_bytes().splitlines(keepends=True)


def test_binary_exists():
    assert Path(BIN).exists(), f"build flagwatch first (looked for {BIN})"


def test_version():
    result = subprocess.run([BIN, "--version"], capture_output=True, timeout=10)
    assert result.returncode == 0
    assert result.stdout.decode().strip() == "0.1.0"


def test_json_shape_and_counts():
    report = scan_json(str(DEMO))
    assert set(report) == {"lines", "malformed", "clusters"}
    assert report["lines"] == len(demo_lines()) == 330
    assert report["malformed"] == {}
    payments = dict(report["clusters"][PAYMENTS])
    payments.pop("diagnosis")
    assert payments == {"requests": 10, "codes": {"5xx": 10}, "flags": {"UF": 10}}
    # URX,UF on one line counts once under each flag.
    assert report["clusters"][LEDGER]["flags"] == {"UF": 10, "URX": 10}
    # Lines without a cluster are under "-".
    assert report["clusters"]["-"]["flags"] == {"DPE": 10, "LH": 10, "NC": 10, "NR": 10}
    assert sum(c["requests"] for c in report["clusters"].values()) == 330


def test_a_file_named_twice_or_through_a_link_is_read_once(tmp_path):
    """As /var/log/containers/*.log (links) beside /var/log/pods/*/*/*.log would name it."""
    log = tmp_path / "pods" / "0.log"
    log.parent.mkdir()
    shutil.copy(DEMO, log)
    link = tmp_path / "containers.log"
    link.symlink_to(log)
    result = scan("--output", "json", str(log), str(link), str(log))
    assert json.loads(result.stdout)["lines"] == 330
    assert result.stderr.decode().splitlines() == [
        "flagwatch: %s is the same file as %s: read once" % (link, log),
        "flagwatch: %s is the same file as %s: read once" % (log, log),
    ]


def test_since_and_until_count_only_the_lines_that_started_in_the_window():
    lines = [line.decode() for line in demo_lines()]
    second = [line for line in lines if line.startswith("[2026-11-22T02:34:28")]
    assert len(second) == 18
    result = scan("--output", "json", "--since", "2026-11-22T02:34:28Z", "--until", "2026-11-22T03:34:29+01:00",
                  str(DEMO))
    report = json.loads(result.stdout)
    assert report["lines"] == len(second)
    flags = {}
    for line in second:
        for flag in line.split('"')[2].split()[1].split(","):
            if flag != "-":
                flags[flag] = flags.get(flag, 0) + 1
    counted = {}
    for cluster in report["clusters"].values():
        for flag, n in cluster["flags"].items():
            counted[flag] = counted.get(flag, 0) + n
    assert counted == flags and flags, (counted, flags)
    assert result.stderr.decode() == (
        "flagwatch: --since/--until: %d lines in the window counted, %d before or after it left out\n"
        % (len(second), len(lines) - len(second)))
    # A time ago: the demo's lines are older than an hour.
    old = scan("--output", "json", "--since", "1h", str(DEMO))
    assert json.loads(old.stdout)["lines"] == 0
    assert "0 lines in the window counted, 330 before or after it left out" in old.stderr.decode()


@pytest.mark.parametrize("args,says", [
    (["--since", "yesterday"], "--since yesterday: expected an RFC 3339 time"),
    (["--until", "2026-11-31T00:00:00Z"], "--until 2026-11-31T00:00:00Z: expected an RFC 3339 time"),
    (["--since", "2026-11-22T02:35:00Z", "--until", "2026-11-22T02:34:00Z"], "--since must be before --until"),
    (["--since", "15m", "--follow", "--file", "/tmp/x.log"], "--since and --until take a time window"),
])
def test_a_bad_time_window_exits_2_naming_the_option(args, says):
    result = scan(*args, str(DEMO), check=False)
    assert result.returncode == 2, result.stderr.decode()
    assert says in result.stderr.decode()


@pytest.mark.parametrize("name,suffix,tool", [("gzip", "gz", "zcat"), ("bzip2", "bz2", "bzcat"), ("xz", "xz", "xzcat")])
def test_a_compressed_rotated_log_exits_2_saying_how_to_read_it(tmp_path, name, suffix, tool):
    import bz2
    import gzip
    import lzma
    compress = {"gzip": gzip.compress, "bzip2": bz2.compress, "xz": lzma.compress}[name]
    path = tmp_path / ("0.log.20261207-053000." + suffix)
    path.write_bytes(compress(DEMO.read_bytes()))
    result = scan(str(DEMO), str(path), check=False)
    assert result.returncode == 2
    assert result.stdout == b""
    assert result.stderr.decode() == "flagwatch: cannot read %s: it is %s-compressed; decompress it into standard " \
        "input: %s %s | flagwatch scan -\n" % (path, name, tool, path)


def test_standard_input_dash_and_no_argument():
    data = DEMO.read_bytes()
    from_file = scan_json(str(DEMO))
    assert scan_json("-", stdin=data) == from_file
    assert scan_json(stdin=data) == from_file


def test_malformed_lines_are_counted_by_reason_and_skipped():
    data = b"".join(demo_lines()[:10])
    data += b"[2026-11-22 02:34:27.532][12][info][main] starting main dispatch loop\n"
    data += b'{"response_code": 503, "upstream_cluster": "x"\n'
    data += b'{"response_code": 503, "upstream_cluster": "x"}\n'
    data += b"\n"
    data += b"x" * 70000 + b"\n"
    data += demo_lines()[10]
    report = scan_json("-", stdin=data)
    assert report["lines"] == 16
    assert report["malformed"] == {
        "not_access_log": 1,
        "bad_json": 1,
        "no_flags_field": 1,
        "empty_line": 1,
        "too_long": 1,
    }
    assert sum(c["requests"] for c in report["clusters"].values()) == 11


def test_partial_last_line_is_not_counted():
    lines = demo_lines()
    data = b"".join(lines[:5]) + lines[5].rstrip(b"\n")
    assert scan_json("-", stdin=data)["lines"] == 5


def cri_wrap(lines, split_every=None):
    out = []
    for line in lines:
        content = line.rstrip(b"\n")
        if split_every:
            chunks = [content[i : i + split_every] for i in range(0, len(content), split_every)]
        else:
            chunks = [content]
        for index, chunk in enumerate(chunks):
            tag = b"F" if index == len(chunks) - 1 else b"P"
            out.append(b"2026-11-22T02:34:27.532187654Z stdout " + tag + b" " + chunk + b"\n")
    return b"".join(out)


def docker_wrap(lines):
    out = []
    for line in lines:
        out.append(
            json.dumps({"log": line.decode(), "stream": "stdout", "time": "2026-11-22T02:34:27.5Z"}, separators=(",", ":")).encode() + b"\n"
        )
    return b"".join(out)


@pytest.mark.parametrize("container_format", ["auto", "cri"])
def test_cri_partial_lines_join_into_one_logical_line(container_format):
    expected = scan_json(str(DEMO))
    wrapped = cri_wrap(demo_lines(), split_every=100)
    assert scan_json("--container-format", container_format, "-", stdin=wrapped) == expected


@pytest.mark.parametrize("container_format", ["auto", "docker"])
def test_docker_json_file_lines(container_format):
    expected = scan_json(str(DEMO))
    assert scan_json("--container-format", container_format, "-", stdin=docker_wrap(demo_lines())) == expected


def test_kubectl_timestamps_prefix():
    expected = scan_json(str(DEMO))
    prefixed = b"".join(b"2026-11-22T02:34:27.532187654Z " + line for line in demo_lines())
    assert scan_json("-", stdin=prefixed) == expected


def test_explicit_formats_agree():
    expected = scan_json(str(DEMO))
    assert scan_json("--format", "istio", str(DEMO)) == expected
    istio_format = (
        '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% '
        "%RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "
        '"%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% '
        '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" '
        '"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER% '
        "%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% "
        "%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n"
    )
    assert scan_json("--format", istio_format, str(DEMO)) == expected


def test_table_output():
    out = scan(str(DEMO)).stdout.decode()
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["UPSTREAM", "CLUSTER"]
    # Sorted by the most flagged cluster first: "-" has 40 flags.
    assert lines[1].startswith("- ")
    assert any(PAYMENTS in line and "UF=10" in line for line in lines)
    assert "lines: 330" in out and "malformed: 0" in out
    assert lines[0].split()[-2:] == ["LIKELY", "CAUSE"]
    assert any(PAYMENTS in line and line.endswith("backend down (UF)") for line in lines)
    # A cluster without flags has no cause.
    assert any("uploads.default" in line and line.endswith(" -") for line in lines)


# Each cause the demo log's real Envoy lines show: (cluster, flag, cause, a part of the
# sentence, a part of some next step).
DIAGNOSES = [
    (PAYMENTS, "UF", "backend down", "10 of 10 UF were connection refused (delayed_connect_error:_Connection_refused)",
     "kubectl get endpointslice -n default -l kubernetes.io/service-name=payments"),
    ("outbound|443||auth.default.svc.cluster.local", "UF", "TLS trust failure",
     "TLS trust failure (wrong CA): 10 of 10 UF failed certificate verification (CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate)",
     "openssl s_client -connect auth.default.svc.cluster.local:443 -servername auth.default.svc.cluster.local -showcerts"),
    ("outbound|443||legacy.default.svc.cluster.local", "UF", "mTLS mismatch",
     "UF were TLS handshake failures (WRONG_VERSION_NUMBER); TLS spoken to a plaintext port",
     "kubectl get peerauthentication -A"),
    ("outbound|8080||inventory.default.svc.cluster.local", "UH", "no ready endpoints", "10 of 10 UH were no_healthy_upstream",
     "kubectl get endpointslice -n default -l kubernetes.io/service-name=inventory"),
    ("-", "NR", "no route", "10 of 10 NR were route_not_found", "istioctl proxy-config routes <pod>"),
    ("outbound|8080||checkout.default.svc.cluster.local", "UO", "circuit breaker", "UO were overflow", "circuitBreakers"),
    ("outbound|8080||search.default.svc.cluster.local", "UT", "upstream timeout", "10 of 10 UT were response_timeout", "timeout"),
    (LEDGER, "UF", "backend down", "connection refused", "istioctl proxy-config endpoints <pod> --cluster '" + LEDGER + "'"),
]


@pytest.mark.parametrize("cluster,flag,cause,sentence,step", DIAGNOSES, ids=[d[2] + " " + d[1] for d in DIAGNOSES])
def test_json_diagnosis(cluster, flag, cause, sentence, step):
    diagnosis = scan_json(str(DEMO))["clusters"][cluster]["diagnosis"]
    assert set(diagnosis) == {"flag", "cause", "likely_cause", "next_steps", "scope", "hosts"}
    assert (diagnosis["flag"], diagnosis["cause"]) == (flag, cause), diagnosis
    assert sentence in diagnosis["likely_cause"], diagnosis
    assert any(step in s for s in diagnosis["next_steps"]), diagnosis


def test_json_diagnosis_scope_and_hosts():
    """The demo's backends each sit on one host that answers nothing else: every failure is
    'all hosts' (no other host answered 2xx); NR lines name no host: 'unknown'; UH lines name
    none because none was healthy: 'all hosts'."""
    clusters = scan_json(str(DEMO))["clusters"]
    payments = clusters[PAYMENTS]["diagnosis"]
    assert payments["scope"] == "all hosts"
    assert payments["hosts"] == [{"host": "127.0.0.1:18019", "count": 10}]
    assert clusters["-"]["diagnosis"]["scope"] == "unknown" and clusters["-"]["diagnosis"]["hosts"] == []
    inventory = clusters["outbound|8080||inventory.default.svc.cluster.local"]["diagnosis"]
    assert (inventory["scope"], inventory["hosts"]) == ("all hosts", [])
    vault = clusters["outbound|8443||vault.default.svc.cluster.local"]["diagnosis"]
    assert vault["cause"] == "packets dropped", vault
    assert "10 of 10 UF were connect timeouts (connection_timeout), after" in vault["likely_cause"], vault


def test_no_diagnosis_without_flags():
    report = scan_json(str(DEMO))
    assert "diagnosis" not in report["clusters"]["outbound|8080||uploads.default.svc.cluster.local"]


def test_prometheus_output_passes_promtool(tmp_path):
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: make test installs the prometheus package"
    text = scan("--output", "prometheus", str(DEMO)).stdout
    assert (
        f'flagwatch_response_flags_total{{upstream_cluster="{PAYMENTS}",response_flag="UF"}} 10'.encode() in text
    )
    assert f'flagwatch_responses_total{{upstream_cluster="{PAYMENTS}",code_class="5xx"}} 10'.encode() in text
    check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=30)
    # promtool exits 0 when the text is valid; it may still print lint hints on stdout.
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()


@pytest.mark.parametrize(
    "args",
    [
        ["--output", "xml", str(DEMO)],
        ["--container-format", "podman", str(DEMO)],
        ["--no-such-flag"],
        ["--format", "[%START_TIME%] %RESPONSE_CODE%", str(DEMO)],  # no flags operator
        ["--format", "%RESPONSE_FLAGS", str(DEMO)],  # unterminated operator
        ["--json-key", "nonsense=x", str(DEMO)],
        ["/nonexistent/access.log"],
        ["/"],
    ],
)
def test_bad_arguments_and_unreadable_files_exit_2_with_one_line(args):
    result = scan(*args, check=False)
    assert result.returncode == 2, (args, result.returncode, result.stderr)
    message = result.stderr.decode()
    assert message.startswith("flagwatch: "), message
    assert message.count("\n") == 1, message
    assert result.stdout == b""


def test_unreadable_file_permission(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    path = tmp_path / "secret.log"
    path.write_bytes(DEMO.read_bytes())
    path.chmod(0)
    result = scan(str(path), check=False)
    assert result.returncode == 2
    assert "Permission denied" in result.stderr.decode()


def test_large_file_parallel_scan_matches_stream(tmp_path):
    # Over 128 MiB, scan cuts the file into chunks read on several cores; the counts must
    # equal reading the same bytes as one stream from standard input.
    lines = demo_lines()
    block = b"".join(lines)
    path = tmp_path / "big.log"
    with open(path, "wb") as handle:
        written = 0
        while written < 140 * 1024 * 1024:
            handle.write(block)
            written += len(block)
    from_file = scan_json(str(path))
    with open(path, "rb") as handle:
        from_stdin = json.loads(
            subprocess.run([BIN, "scan", "--output", "json", "-"], stdin=handle, capture_output=True, timeout=120).stdout
        )
    assert from_file == from_stdin
    assert from_file["lines"] == written // len(block) * len(lines)
    # A time window: the chunks read on several cores leave out what one stream leaves out.
    window = ["--since", "2026-11-22T02:34:28Z", "--until", "2026-11-22T02:34:29Z"]
    windowed = scan("--output", "json", *window, str(path))
    with open(path, "rb") as handle:
        windowed_stdin = subprocess.run([BIN, "scan", "--output", "json", *window, "-"], stdin=handle,
                                        capture_output=True, timeout=120)
    assert json.loads(windowed.stdout) == json.loads(windowed_stdin.stdout)
    assert windowed.stderr == windowed_stdin.stderr
    per_block = sum(1 for line in lines if line.startswith(b"[2026-11-22T02:34:28"))
    assert json.loads(windowed.stdout)["lines"] == written // len(block) * per_block
