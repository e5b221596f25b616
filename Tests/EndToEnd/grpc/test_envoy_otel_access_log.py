"""End-to-end: a real Envoy 1.40 exports its access log to `flagwatch run` as OTLP logs (issue 16).

Envoy's `envoy.access_loggers.open_telemetry` logger points at flagwatch's `grpc_access_log`
source (an HTTP/2 cluster, envoy-otel.yaml.in), which serves OTLP's LogsService/Export on the same
port as Envoy's access-log service. Variants of the logger, one test each:
- attributes: `attributes:` name the fields under Istio's JSON keys (response_flags,
  upstream_cluster, ...); the body is a line in no access-log format, so a record counted from
  its body would be malformed; once with %RESPONSE_FLAGS%, once with %RESPONSE_FLAGS_LONG%;
- istio body: no attributes, the body is Istio's text format (what Istio's envoyOtelAls provider
  sends by default), parsed with the source's `format: istio`.
The test sends OK_REQUESTS direct 200s and REFUSED_REQUESTS requests to a cluster whose endpoint
refuses connections, then checks, exactly, that flagwatch's /metrics equal Envoy's own counters:
lines = the OTel logger's logs_written, UF on the refused cluster = its
upstream_rq_pending_failure_eject, the 2xx, nothing dropped on either side, nothing malformed.

Only 127.0.0.1; every process is stopped by PID (the procs fixture); every wait is bounded.
"""
from pathlib import Path

import pytest

from harness.envoy import envoy_counter, find_envoy
from harness.flagwatch import flagwatch_binary
from harness.metrics import parse_exposition, select
from harness.net import LOOPBACK, free_port, http_get
from harness.polling import poll_until

pytestmark = pytest.mark.e2e

HERE = Path(__file__).resolve().parent
OK_REQUESTS = 20
REFUSED_REQUESTS = 7
READY_TIMEOUT = 15.0
SETTLE_TIMEOUT = 10.0
REFUSED_CLUSTER = "outbound|9001||payments.default.svc.cluster.local"
# Envoy's stats for its OpenTelemetry access loggers (found in GET /stats of Envoy 1.40).
OTEL_STAT_PREFIX = "access_logs.open_telemetry_access_log."

# Istio's default text format (Istio 1.23+), as Istio puts it in the OTel logger's body.
ISTIO_TEXT_FORMAT = (
    '[%START_TIME%] \\"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\\" %RESPONSE_CODE% '
    '%RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% '
    '\\"%UPSTREAM_TRANSPORT_FAILURE_REASON%\\" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% '
    '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \\"%REQ(X-FORWARDED-FOR)%\\" \\"%REQ(USER-AGENT)%\\" '
    '\\"%REQ(X-REQUEST-ID)%\\" \\"%REQ(:AUTHORITY)%\\" \\"%UPSTREAM_HOST%\\" %UPSTREAM_CLUSTER_RAW% '
    '%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% '
    '%REQUESTED_SERVER_NAME% %ROUTE_NAME%\\n')


def attributes_variant(flags_operator):
    """The fields as attributes under Istio's JSON keys, the flags printed by `flags_operator`;
    the body a line in no access-log format (a record read from it would be malformed)."""
    pairs = (
        ("response_code", "%RESPONSE_CODE%"),
        ("response_flags", flags_operator),
        ("response_code_details", "%RESPONSE_CODE_DETAILS%"),
        ("upstream_transport_failure_reason", "%UPSTREAM_TRANSPORT_FAILURE_REASON%"),
        ("upstream_cluster", "%UPSTREAM_CLUSTER_RAW%"),
        ("upstream_host", "%UPSTREAM_HOST%"),
        ("route_name", "%ROUTE_NAME%"),
        ("user_agent", "%REQ(USER-AGENT)%"),
    )
    return ('              body: { string_value: "%REQ(:METHOD)% %REQ(:PATH)%" }\n'
            '              attributes:\n'
            '                values:\n' + "".join(
                '                - { key: "%s", value: { string_value: "%s" } }\n' % pair for pair in pairs))


# The logger's body and attributes (YAML under typed_config) and the source's format, per variant.
VARIANTS = {
    "attributes": (attributes_variant("%RESPONSE_FLAGS%"), "auto"),
    # Envoy 1.28+'s long flag names (UpstreamConnectionFailure) map to the same flags.
    "attributes, long flag names": (attributes_variant("%RESPONSE_FLAGS_LONG%"), "auto"),
    "istio body": ('              body: { string_value: "%s" }\n' % ISTIO_TEXT_FORMAT, "istio"),
}


def ready(url):
    try:
        return http_get(url, timeout=1.0)[0] == 200
    except OSError:
        return False


def metric(samples, name, **labels):
    """The sum of one metric's samples whose labels include `labels` (0 when none)."""
    return sum(value for _, value in select(samples, name, **labels))


def start_flagwatch_and_envoy(tmp_path, procs, variant):
    """flagwatch with one grpc_access_log source (`mesh`, the variant's format), then Envoy with
    the variant's OTel logger; both ready. Returns the ports."""
    fields, source_format = VARIANTS[variant]
    ports = {name: free_port() for name in ("METRICS", "OTLP", "ADMIN", "HTTP", "REFUSED")}
    config = tmp_path / "flagwatch.yaml"
    config.write_text(
        'listen: "%s:%d"\nstate_dir: %s\nsources:\n  - name: mesh\n'
        '    grpc_access_log: { listen: "%s:%d" }\n    format: %s\n'
        % (LOOPBACK, ports["METRICS"], tmp_path / "state", LOOPBACK, ports["OTLP"], source_format))
    (tmp_path / "state").mkdir()
    procs.start([flagwatch_binary(), "run", "--config", str(config)], tmp_path / "flagwatch.log")
    poll_until(lambda: ready("http://%s:%d/-/ready" % (LOOPBACK, ports["METRICS"])), READY_TIMEOUT,
               "flagwatch ready")

    bootstrap = (HERE / "envoy-otel.yaml.in").read_text().replace("@@OTEL_FIELDS@@\n", fields)
    for name, port in ports.items():
        bootstrap = bootstrap.replace("@@%s_PORT@@" % name, str(port))
    (tmp_path / "envoy.yaml").write_text(bootstrap)
    procs.start([find_envoy(), "-c", str(tmp_path / "envoy.yaml"), "--concurrency", "1", "-l", "warning",
                 "--base-id", str(ports["ADMIN"])], tmp_path / "envoy.log")
    poll_until(lambda: ready("http://%s:%d/ready" % (LOOPBACK, ports["ADMIN"])), READY_TIMEOUT, "Envoy ready",
               context=lambda: (tmp_path / "envoy.log").read_text()[-2000:])
    return ports


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_flags_per_cluster_exported_as_otlp_logs_equal_envoys_counters(tmp_path, procs, variant):
    ports = start_flagwatch_and_envoy(tmp_path, procs, variant)
    codes = [http_get("http://%s:%d/ok" % (LOOPBACK, ports["HTTP"]))[0] for _ in range(OK_REQUESTS)]
    codes += [http_get("http://%s:%d/refused" % (LOOPBACK, ports["HTTP"]))[0] for _ in range(REFUSED_REQUESTS)]
    assert codes == [200] * OK_REQUESTS + [503] * REFUSED_REQUESTS

    total = OK_REQUESTS + REFUSED_REQUESTS
    written_stat = OTEL_STAT_PREFIX + "logs_written"
    written = poll_until(
        lambda: envoy_counter(ports["ADMIN"], written_stat) >= total and envoy_counter(ports["ADMIN"], written_stat),
        SETTLE_TIMEOUT, "Envoy's OTel logger flush")
    metrics_url = "http://%s:%d/metrics" % (LOOPBACK, ports["METRICS"])

    def counted():
        samples = parse_exposition(http_get(metrics_url)[1])
        return samples if metric(samples, "flagwatch_lines_total", source="mesh") >= written else None

    samples = poll_until(counted, SETTLE_TIMEOUT, "flagwatch counting Envoy's log records",
                         context=lambda: (tmp_path / "flagwatch.log").read_text()[-2000:])

    assert written == total
    assert envoy_counter(ports["ADMIN"], OTEL_STAT_PREFIX + "logs_dropped") == 0
    assert metric(samples, "flagwatch_lines_total", source="mesh") == written
    assert metric(samples, "flagwatch_response_flags_total", upstream_cluster=REFUSED_CLUSTER,
                  response_flag="UF") == \
        envoy_counter(ports["ADMIN"], "cluster.%s.upstream_rq_pending_failure_eject" % REFUSED_CLUSTER) == \
        REFUSED_REQUESTS
    assert metric(samples, "flagwatch_responses_total", upstream_cluster="-", code_class="2xx") == OK_REQUESTS
    assert metric(samples, "flagwatch_responses_total", upstream_cluster=REFUSED_CLUSTER, code_class="5xx") == \
        REFUSED_REQUESTS
    assert metric(samples, "flagwatch_received_entries_dropped_total", source="mesh") == 0
    assert metric(samples, "flagwatch_received_messages_dropped_total", source="mesh") == 0
    assert metric(samples, "flagwatch_lines_malformed_total", source="mesh") == 0
