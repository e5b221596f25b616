"""The deployment files in deploy/ against the real daemon and the real promtool.

  deploy/kubernetes/*.yaml            parsed (duplicate keys are errors); the DaemonSet's
                                      security, probes, mounts, resources and command line
                                      (against `flagwatch run --help`); Service and
                                      ServiceMonitor wiring; the kustomization lists every file
  the ConfigMap's flagwatch.yaml      `flagwatch check-config` accepts it; the daemon runs on it
                                      (paths moved under tmp_path) and counts CRI-wrapped Istio
                                      lines; its rules are the shipped defaults
  deploy/prometheus/flagwatch-rules.yml  `promtool check rules`, `promtool test rules` (the unit
                                      tests in this folder), equal to the PrometheusRule's
                                      spec.groups; thresholds, `for` and severity of each alert are
                                      those of the daemon's default rules
  deploy/grafana/flagwatch.json       parses; every panel has a target with an expression, every
                                      expression parses (promtool) after Grafana's variables are
                                      substituted
  every PromQL selector               its metric exists in the daemon's /metrics (a daemon run on
                                      the ConfigMap's config), or is recorded by the rules, or is
                                      Prometheus' own (up, scrape_*); its label matchers name labels
                                      the metric has (or target labels)

Needs the flagwatch binary ($FLAGWATCH_BIN, default .build/debug/flagwatch), promtool (Debian's
`prometheus` package, or $PROMTOOL_BIN) and PyYAML. Optional: `kubectl kustomize` (kubectl on
the PATH) and the `kubernetes-validate` package (schema check of the core objects).
Everything listens on 127.0.0.1; the daemon is stopped by PID; every wait is bounded.
"""
import copy
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from harness import REPO
from harness.flagwatch import BIN, FlagwatchRun, run_argv, start_on_free_port
from harness.manifests import load, load_all
from harness.net import free_port
from harness.processes import Processes

HERE = Path(__file__).resolve().parent
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "kubernetes"
RULES_FILE = DEPLOY / "prometheus" / "flagwatch-rules.yml"
RULES_TEST = HERE / "flagwatch-rules.test.yml"
DASHBOARD = DEPLOY / "grafana" / "flagwatch.json"
DEFAULT_CONFIG = REPO / "config" / "flagwatch.yaml"
PROMTOOL = os.environ.get("PROMTOOL_BIN") or shutil.which("promtool") or "/usr/bin/promtool"

READY_TIMEOUT = 20.0
COUNT_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0

# Labels Prometheus adds to every scraped series (the ServiceMonitor adds node, keeps pod,
# container and endpoint; it drops service and namespace, see servicemonitor.yaml).
TARGET_LABELS = {"job", "instance", "node", "pod", "container", "endpoint"}
# Series Prometheus makes itself for every target.
PROMETHEUS_SERIES = {"up": set(), "scrape_duration_seconds": set(), "scrape_samples_scraped": set(),
                     "scrape_samples_post_metric_relabeling": set(), "scrape_series_added": set()}


# ------------------------------------------------------------------------------------ helpers

def manifests():
    """{(kind, name): object} of every document in deploy/kubernetes (the kustomization aside)."""
    objects = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in load_all(path):
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in objects, "%s/%s defined twice" % key
            objects[key] = doc
    return objects


def the(kind):
    found = [obj for (k, _), obj in manifests().items() if k == kind]
    assert len(found) == 1, "expected one %s in deploy/kubernetes, found %d" % (kind, len(found))
    return found[0]


def configmap_config():
    data = the("ConfigMap")["data"]
    assert list(data) == ["flagwatch.yaml"], data.keys()
    return data["flagwatch.yaml"]


def run(argv, timeout=60):
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


def flagwatch_bin():
    """The binary; retried briefly, as it may be being rebuilt."""
    deadline = time.monotonic() + 30
    while not os.access(BIN, os.X_OK):
        if time.monotonic() > deadline:
            pytest.fail("no flagwatch binary at %s (set FLAGWATCH_BIN)" % BIN)
        time.sleep(1)
    return BIN


def promtool():
    assert os.access(PROMTOOL, os.X_OK), "promtool not found (Debian's prometheus package; or set PROMTOOL_BIN)"
    return PROMTOOL


def http_get(port, path, timeout=5.0):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


# ------------------------------------------------------------------------------------ PromQL

KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
            "offset", "bool", "inf", "nan", "atan2", "start", "end"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile"}
_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<number>[0-9][0-9a-zA-Z.]*|\.[0-9]+)
  | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^<>=(),{}@])
""", re.X)
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')\s*(,|$)')


def tokens(expr):
    out, pos = [], 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        assert m, "cannot tokenize %r at %d" % (expr, pos)
        pos = m.end()
        if m.lastgroup != "ws":
            out.append((m.lastgroup, m.group()))
    return out


def selectors(expr):
    """[(metric name, {label: (op, value)})] of every vector selector in a PromQL expression."""
    toks = tokens(expr)
    found, i = [], 0
    while i < len(toks):
        kind, text = toks[i]
        if kind == "ident" and text in GROUPING:
            i += 1
            if i < len(toks) and toks[i][1] == "(":  # a label list: skip it
                while toks[i][1] != ")":
                    i += 1
            i += 1
            continue
        following = toks[i + 1][1] if i + 1 < len(toks) else ""
        if kind == "ident" and text in AGGREGATIONS and following in ("by", "without"):
            i += 1  # `sum by (...) (...)`: the clause is skipped next
            continue
        if kind == "ident" and text.lower() not in KEYWORDS and following != "(":
            matchers = {}
            if i + 1 < len(toks) and toks[i + 1][1] == "{":
                j = i + 2
                body = []
                while toks[j][1] != "}":
                    body.append(toks[j][1])
                    j += 1
                text_body, pos = "".join(" " + t if t not in (",",) else t for t in body), 0
                while pos < len(text_body.strip()):
                    m = _MATCHER.match(text_body.strip(), pos)
                    assert m, "cannot parse the matchers {%s} in %r" % (text_body, expr)
                    matchers[m.group(1)] = (m.group(2), m.group(3)[1:-1])
                    pos = m.end()
                i = j
            found.append((text, matchers))
        i += 1
    return found


def test_promql_selector_parser():
    """The small PromQL scanner the checks below rely on."""
    got = selectors('sum by (upstream_cluster, response_flag) (rate(flagwatch_response_flags_total{job=~"$job", '
                    'upstream_cluster!~"a|b"}[5m])) / ignoring (response_flag) group_left () (x:y:z > 0) '
                    'and on (node) up offset 5m or label_replace(vector(0), "a", "$1", "b", "(.*)")')
    assert got == [("flagwatch_response_flags_total", {"job": ("=~", "$job"), "upstream_cluster": ("!~", "a|b")}),
                   ("x:y:z", {}), ("up", {})], got


# --------------------------------------------------------------------------- the real daemon

CLUSTER = "outbound|9080|v1|reviews.default.svc.cluster.local"
LINES = [(200, "-"), (503, "UF"), (503, "URX,UF"), (503, "UH"), (404, "NR"), (504, "UT"), (503, "UO"), (503, "UC")]


def istio_line(cluster, code, flags, seq):
    """One Istio 1.9+ TEXT access-log line (Istio's default format)."""
    details = "via_upstream" if code < 500 else "upstream_reset_before_response_started{connection_failure}"
    return ('[2026-11-22T06:00:00.000Z] "GET /r/%d HTTP/1.1" %d %s %s - "-" 0 %d 3 - "-" "curl/8.5.0" '
            '"6d7c5c7e-0f4a-4a55-9c1e-%012d" "reviews.default.svc.cluster.local:9080" "10.244.1.7:9080" %s '
            '- 10.244.0.17:15006 10.244.0.9:40312 - default\n' % (seq, code, flags, details, 100 + seq, seq, cluster))


class Exposition:
    """The families, sample label names and raw text of one /metrics page."""

    def __init__(self, text):
        self.text = text
        self.labels = {}  # metric name -> label names seen on its samples
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                self.labels.setdefault(line.split()[2], set())
            elif line and not line.startswith("#"):
                name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group()
                block = re.match(r"[^{ ]*\{(.*)\} ", line)
                names = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"', block.group(1))) if block else set()
                self.labels.setdefault(name, set()).update(names)


@pytest.fixture(scope="module")
def daemon_metrics(tmp_path_factory):
    """Runs `flagwatch run` on the ConfigMap's config, its /var/log/pods moved under a tmp dir,
    with an Alertmanager URL on a closed 127.0.0.1 port (so the notification families have
    samples) and a source whose directory is missing (so flagwatch_source_errors_total has
    one); writes CRI-wrapped Istio lines into a pod's istio-proxy log; returns the /metrics
    page once every line is counted."""
    tmp = tmp_path_factory.mktemp("daemon")
    binary = flagwatch_bin()
    pods = tmp / "pods"
    pod_dir = pods / "default_reviews-v1-7d4b9c_0f6e1d2c-1111-4c2b-9a55-6a1a3c9d2b10" / "istio-proxy"
    pod_dir.mkdir(parents=True)
    text = configmap_config().replace("/var/log/pods/", str(pods) + "/")
    config = yaml.safe_load(text)
    config["alerting"]["alertmanagers"] = ["http://127.0.0.1:%d" % free_port()]
    config["sources"].append({"name": "missing", "files": [str(tmp / "no-such-dir" / "*.log")]})
    config_path = tmp / "flagwatch.yaml"
    config_path.write_text(yaml.safe_dump(config))
    stderr_path = tmp / "flagwatch.stderr"

    processes = Processes()
    try:
        run = start_on_free_port(lambda port: FlagwatchRun(
            run_argv(config_path, port, ("--state-dir", tmp / "state"), binary=binary), stderr_path, port,
            processes), ready_timeout=READY_TIMEOUT)
        port = run.port
        assert http_get(port, "/-/healthy")[0] == 200

        # A new file under the pattern (read from its beginning), CRI-wrapped as containerd writes.
        written = 0
        with open(pod_dir / "0.log", "w") as log:
            for seq, (code, flags) in enumerate(LINES * 2):
                log.write("2026-11-22T06:00:00.%09dZ stdout F %s" % (seq, istio_line(CLUSTER, code, flags, seq)))
                written += 1
            log.write("2026-11-22T06:00:01.000000000Z stderr F 2026-11-22T06:00:01.000000Z\tinfo\tEnvoy proxy is ready\n")
            written += 1
        deadline = time.monotonic() + COUNT_TIMEOUT
        while True:
            body = http_get(port, "/metrics")[1].decode()
            if 'flagwatch_lines_total{source="istio-proxy"} %d\n' % written in body:
                break
            if time.monotonic() > deadline:
                pytest.fail("the daemon did not count the %d lines within %.0f s:\n%s\n%s" % (
                    written, COUNT_TIMEOUT, body[-2000:], stderr_path.read_text(errors="replace")[-3000:]))
            time.sleep(0.2)
        yield Exposition(body)
    finally:
        processes.stop_all(grace=STOP_TIMEOUT)


# ------------------------------------------------------------------------- Kubernetes objects

def test_manifests_parse_and_kustomization_lists_them():
    objects = manifests()
    kinds = sorted(k for k, _ in objects)
    assert kinds == sorted(["Namespace", "ConfigMap", "DaemonSet", "Service", "ServiceMonitor", "PrometheusRule"]), kinds
    namespace = the("Namespace")["metadata"]["name"]
    for (kind, name), obj in objects.items():
        if kind != "Namespace":
            assert obj["metadata"].get("namespace") == namespace, "%s/%s is not in namespace %s" % (kind, name, namespace)
        assert obj["metadata"]["labels"]["app.kubernetes.io/name"] == "flagwatch", (kind, name)
    assert the("ServiceMonitor")["apiVersion"] == "monitoring.coreos.com/v1"
    assert the("PrometheusRule")["apiVersion"] == "monitoring.coreos.com/v1"
    kustomization = load(K8S / "kustomization.yaml")
    files = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(kustomization["resources"]) == files
    assert kustomization["namespace"] == namespace
    image = the("DaemonSet")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.split(":")[0] in [entry["name"] for entry in kustomization.get("images", [])]


def test_daemonset():
    ds = the("DaemonSet")
    spec = ds["spec"]["template"]["spec"]
    assert ds["spec"]["selector"]["matchLabels"].items() <= ds["spec"]["template"]["metadata"]["labels"].items()
    assert {"operator": "Exists"} in spec["tolerations"], "no toleration of every taint: %r" % spec.get("tolerations")
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    [container] = spec["containers"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}

    # The command line is one the real CLI takes, with --config on the mounted ConfigMap.
    argv = container["command"] + container["args"]
    assert argv[:2] == ["flagwatch", "run"], argv
    help_text = run([flagwatch_bin(), "run", "--help"]).stdout
    for option in (a for a in argv[2:] if a.startswith("--")):
        assert re.search(r"^\s*%s\b" % re.escape(option), help_text, re.M), "%s is not an option of `flagwatch run`:\n%s" % (option, help_text)
    config_path = argv[argv.index("--config") + 1]
    config_dir, config_key = config_path.rsplit("/", 1)
    mount = mounts[config_dir]
    assert mount["readOnly"] is True
    assert volumes[mount["name"]]["configMap"]["name"] == the("ConfigMap")["metadata"]["name"]
    assert config_key in the("ConfigMap")["data"]
    config = yaml.safe_load(configmap_config())

    # Probes on the listener's port, by name.
    [port] = container["ports"]
    assert port["name"] == "metrics" and port["containerPort"] == int(config["listen"].rsplit(":", 1)[1])
    assert container["readinessProbe"]["httpGet"] == {"path": "/-/ready", "port": "metrics"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/-/healthy", "port": "metrics"}
    assert config["listen"].startswith(("0.0.0.0:", "[::]:")), "the probes and the Service need the pod IP: %s" % config["listen"]

    # Locked down.
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] != 0
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert not security.get("privileged")

    # /var/log/pods read-only; the state directory is the config's state_dir, on the host.
    pods = mounts["/var/log/pods"]
    assert pods["readOnly"] is True
    assert volumes[pods["name"]]["hostPath"]["path"] == "/var/log/pods"
    state = mounts[config["state_dir"]]
    assert not state.get("readOnly")
    assert volumes[state["name"]]["hostPath"] == {"path": config["state_dir"], "type": "DirectoryOrCreate"}
    assert {m["mountPath"] for m in container["volumeMounts"]} == {config_dir, "/var/log/pods", config["state_dir"]}

    # Requests and limits.
    for what in ("requests", "limits"):
        assert set(container["resources"][what]) == {"cpu", "memory"}, container["resources"]

    # The one init container: chmods and chowns the state directory, as root with CHOWN and
    # FOWNER only (FOWNER: from the pod's second start on, 65532 owns the directory).
    [init] = spec["initContainers"]
    assert init["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN", "FOWNER"]}
    assert init["securityContext"]["allowPrivilegeEscalation"] is False
    assert init["securityContext"]["readOnlyRootFilesystem"] is True
    assert [m["mountPath"] for m in init["volumeMounts"]] == [config["state_dir"]]
    # The init container uses flagwatch's own image (what the container test runs it in), and
    # the kustomization names that image for both.
    assert init["image"] == container["image"]
    [image] = load(K8S / "kustomization.yaml")["images"]
    assert "%s:%s" % (image["name"], image["newTag"]) == container["image"]
    assert "%d:%d" % (security["runAsUser"], security["runAsGroup"]) in " ".join(init["command"])


def test_the_container_test_runs_the_daemonsets_security_context_mounts_and_args():
    """Tests/EndToEnd/container runs the image with the podman options daemonset_container.py
    derives from the DaemonSet; the derivation refuses any setting it does not translate, so the
    container test runs with every securityContext field, mount and arg the DaemonSet has."""
    from harness import daemonset as daemonset_container
    daemonset = daemonset_container.load_daemonset()
    assert daemonset == the("DaemonSet")
    sources = {"config": "CONFIG", "pods": "PODS", "state": "STATE"}
    options, args = daemonset_container.run_options(daemonset, sources)
    assert options == [
        "--user", "65532:65532", "--group-add", "0",
        "--read-only", "--read-only-tmpfs=false",
        "--security-opt", "no-new-privileges",
        "--cap-drop=ALL",
        "--volume", "CONFIG:/etc/flagwatch:ro",
        "--volume", "PODS:/var/log/pods:ro",
        "--volume", "STATE:/var/lib/flagwatch",
        "--entrypoint", '["flagwatch"]',
    ]
    assert args == ["run", "--config", "/etc/flagwatch/flagwatch.yaml", "--log-level", "info"]
    init, command = daemonset_container.init_options(daemonset, sources)
    assert init == [
        "--user", "0:0", "--group-add", "0",
        "--read-only", "--read-only-tmpfs=false",
        "--security-opt", "no-new-privileges",
        "--cap-drop=ALL", "--cap-add=CHOWN", "--cap-add=FOWNER",
        "--volume", "STATE:/var/lib/flagwatch",
        "--entrypoint", '["sh"]',
    ]
    assert command == ["-c", "chmod 0750 /var/lib/flagwatch && chown 65532:65532 /var/lib/flagwatch"]
    # A field the translation does not know is refused, not ignored.
    altered = copy.deepcopy(daemonset)
    altered["spec"]["template"]["spec"]["containers"][0]["securityContext"]["procMount"] = "Unmasked"
    with pytest.raises(daemonset_container.Untranslated):
        daemonset_container.run_options(altered, sources)
    altered = copy.deepcopy(daemonset)
    altered["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0]["subPath"] = "x"
    with pytest.raises(daemonset_container.Untranslated):
        daemonset_container.run_options(altered, sources)


def test_service_and_servicemonitor():
    ds, service, monitor = the("DaemonSet"), the("Service"), the("ServiceMonitor")
    labels = ds["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    [port] = service["spec"]["ports"]
    assert port["name"] == "metrics" and port["targetPort"] == "metrics"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [service["metadata"]["namespace"]]
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    relabel = endpoint["relabelings"]
    assert {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"} in relabel
    # flagwatch_upstream_cluster_info's own service/namespace labels must not be renamed.
    assert any(r.get("action") == "labeldrop" and re.fullmatch(r["regex"], "service") and re.fullmatch(r["regex"], "namespace")
               for r in relabel)


def test_kubectl_kustomize_builds():
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl is not installed (optional)")
    result = run([kubectl, "kustomize", str(K8S)])
    assert result.returncode == 0, result.stderr
    built = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(result.stdout) if d}
    assert built == set(manifests())


def test_core_objects_match_the_kubernetes_schema():
    validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed (optional)")
    for (kind, name), obj in manifests().items():
        if obj["apiVersion"].startswith("monitoring.coreos.com"):
            continue
        validate.validate(obj, "1.30.0", strict=True)


# ------------------------------------------------------------------------ the daemon's config

def test_configmap_config_is_accepted_by_check_config(tmp_path):
    """check-config only parses and validates: the paths (/var/log/pods, /var/lib/flagwatch)
    need not exist here."""
    path = tmp_path / "flagwatch.yaml"
    path.write_text(configmap_config())
    result = run([flagwatch_bin(), "check-config", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: listen 0.0.0.0:9817, state_dir /var/lib/flagwatch, 1 source (istio-proxy: 1 pattern, format istio)" in result.stdout, result.stdout
    assert "alerting: 5 rule(s)" in result.stdout, result.stdout
    # And a broken copy is refused (the check is real).
    path.write_text(configmap_config().replace("container_format: cri", "container_fromat: cri"))
    result = run([flagwatch_bin(), "check-config", str(path)])
    assert result.returncode != 0 and "unknown key" in result.stderr, result.stdout + result.stderr


def test_configmap_config_follows_istio_pods_and_has_the_default_rules():
    config = yaml.safe_load(configmap_config())
    [source] = config["sources"]
    assert source["files"] == ["/var/log/pods/*/istio-proxy/*.log"]
    assert source["format"] == "istio" and source["container_format"] == "cri"
    assert "1m" in config["windows"], "the Prometheus rules read window=\"1m\""
    defaults = yaml.safe_load(DEFAULT_CONFIG.read_text())["alerting"]
    mine = config["alerting"]
    assert mine["alertmanagers"] == [] and not mine.get("webhooks"), "the PrometheusRule pages by default (see deploy/README.md)"
    stripped = [{k: v for k, v in rule.items() if k != "runbook_url"} for rule in mine["rules"]]
    assert stripped == defaults["rules"]
    for key in ("evaluate_every", "resend_every", "webhook_repeat_every", "notification_timeout", "queue_capacity", "baseline"):
        assert mine[key] == defaults[key], key


def test_daemon_runs_on_the_configmap_config(daemon_metrics):
    """The daemon on the ConfigMap's config counted every CRI-wrapped Istio line."""
    text = daemon_metrics.text
    assert 'flagwatch_responses_total{upstream_cluster="%s",code_class="5xx"} 12\n' % CLUSTER in text
    assert 'flagwatch_response_flags_total{upstream_cluster="%s",response_flag="UF"} 4\n' % CLUSTER in text
    assert 'flagwatch_response_flags_window{upstream_cluster="%s",response_flag="UH",window="1m"} 2\n' % CLUSTER in text
    assert 'flagwatch_lines_malformed_total{source="istio-proxy",reason="not_access_log"} 1\n' in text
    assert 'flagwatch_lines_malformed_total{source="istio-proxy",reason="bad_cri_line"} 0\n' in text


# ------------------------------------------------------------------------------------- rules

def rule_groups():
    return load(RULES_FILE)["groups"]


def recorded_names():
    return {rule["record"] for group in rule_groups() for rule in group["rules"] if "record" in rule}


def test_promtool_check_rules():
    result = run([promtool(), "check", "rules", str(RULES_FILE)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout, result.stdout


def test_promtool_unit_tests_of_the_rules():
    result = run([promtool(), "test", "rules", str(RULES_TEST)], timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheusrule_groups_equal_the_rules_file():
    assert the("PrometheusRule")["spec"]["groups"] == rule_groups()
    result = run(["python3", str(DEPLOY / "prometheus" / "sync-prometheusrule.py"), "--check"])
    assert result.returncode == 0, result.stderr


def test_alerts_mirror_the_default_rules():
    """Same names, flags, clusters, gate, ratio, spike factor, `for`, severity and runbook URL
    as the daemon's rules in the ConfigMap (the shipped defaults)."""
    rules = {rule["name"]: rule for rule in yaml.safe_load(configmap_config())["alerting"]["rules"]}
    [alerts] = [g["rules"] for g in rule_groups() if g["name"] == "flagwatch.alerts"]
    assert [a["alert"] for a in alerts] == list(rules)
    recordings = {r["labels"]["rule"]: r["expr"] for g in rule_groups() for r in g["rules"]
                  if r.get("record") == "flagwatch:rule_flagged:window1m"}
    assert set(recordings) == set(rules)
    for alert in alerts:
        rule = rules[alert["alert"]]
        expr = " ".join(alert["expr"].split())
        name = rule["name"]
        assert "flagwatch:rule_flagged:window1m{rule=\"%s\"} >= %d " % (name, rule["min_count"]) in expr, expr
        assert "/ on (upstream_cluster) flagwatch:responses:window1m >= %s " % rule["ratio"] in expr, expr
        assert ">= on (upstream_cluster) %s * avg_over_time(flagwatch:rule_flagged:window1m{rule=\"%s\"}[1h] offset 5m)" % (
            rule["spike_factor"], name) in expr, expr
        assert set(re.findall(r'rule="([^"]+)"', expr)) == {name}, expr
        assert alert["for"] == rule["for"]
        assert alert["labels"]["severity"] == rule["severity"]
        if len(rule["flags"]) == 1:
            assert alert["labels"]["response_flag"] == rule["flags"][0]
        assert alert["annotations"]["runbook_url"] == rule["runbook_url"]
        assert {"summary", "description"} <= set(alert["annotations"])
        assert "min_count %d, ratio >= %.1f %%" % (rule["min_count"], rule["ratio"] * 100) in alert["annotations"]["description"]
        # The per-rule count: exactly the rule's flags, and its cluster exclusion.
        recording = recordings[name]
        [flag_matcher] = [m["response_flag"] for n, m in selectors(recording) if "response_flag" in m]
        op, value = flag_matcher
        assert sorted(value.split("|")) == sorted(rule["flags"]) and op == ("=~" if len(rule["flags"]) > 1 else "=")
        exclude = rule.get("clusters", {}).get("exclude")
        for metric, matchers in selectors(recording):
            if exclude:  # the daemon searches ^(A|B)$; PromQL's !~ is anchored already
                assert matchers.get("upstream_cluster") == ("!~", re.sub(r"^\^\((.*)\)\$$", r"\1", exclude)), (metric, matchers)
            else:
                assert "upstream_cluster" not in matchers, (metric, matchers)


# ---------------------------------------------------------------------------------- dashboard

GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def dashboard_exprs():
    """[(where, expr)] of every target of every panel (rows included) of the dashboard."""
    dashboard = json.loads(DASHBOARD.read_text())
    out = []

    def walk(panels):
        for panel in panels:
            for target in panel.get("targets", []):
                out.append((panel["title"], target.get("expr", "")))
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    return out


def grafana_to_promql(expr):
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$__" not in expr, expr
    return expr  # $job, $node, $upstream_cluster stay inside label-matcher strings


def test_dashboard_json():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for name in ("upstream_cluster", "node", "job"):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    ids = set()
    for panel in dashboard["panels"]:
        assert panel["id"] not in ids
        ids.add(panel["id"])
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], "panel %r has no targets" % panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), "an empty expression in panel %r" % panel["title"]
            assert target["datasource"]["uid"] == "${datasource}"
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"]), panel["title"]
    exprs = " ".join(expr for _, expr in dashboard_exprs())
    for wanted in ('flagwatch_alerts{state="firing"', "flagwatch_notifications_total", "flagwatch_notification_queue_length",
                   "flagwatch_lines_total", "flagwatch_lines_malformed_total", 'code_class="5xx"', "topk(", "up{",
                   "sum by (upstream_cluster, response_flag) (rate(flagwatch_response_flags_total"):
        assert wanted in exprs, "no panel uses %s" % wanted


def test_dashboard_promql_parses(tmp_path):
    """promtool parses every dashboard expression (as recording rules in a scratch file)."""
    rules = [{"record": "dashboard:expr_%d" % index, "expr": grafana_to_promql(expr)}
             for index, (_, expr) in enumerate(dashboard_exprs())]
    path = tmp_path / "dashboard-exprs.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run([promtool(), "check", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------- metric names against /metrics

def used_selectors():
    """[(where, metric, matchers)] of the rules, the dashboard's panels and its variables."""
    out = []
    for group in rule_groups():
        for rule in group["rules"]:
            where = "rule %s" % (rule.get("record") or rule.get("alert"))
            out += [(where, name, m) for name, m in selectors(rule["expr"])]
    for title, expr in dashboard_exprs():
        out += [("panel %r" % title, name, m) for name, m in selectors(grafana_to_promql(expr))]
    for variable in json.loads(DASHBOARD.read_text())["templating"]["list"]:
        m = re.fullmatch(r"label_values\((.*),\s*([a-zA-Z_]+)\)", variable["query"]) if variable["type"] == "query" else None
        if variable["type"] == "query":
            assert m, variable["query"]
            out += [("variable %s" % variable["name"], name, dict(matchers, **{m.group(2): ("=~", ".+")}))
                    for name, matchers in selectors(m.group(1))]
    return out


def test_every_metric_used_is_exported_by_the_daemon(daemon_metrics):
    exported = daemon_metrics.labels
    recorded = recorded_names()
    problems = []
    checked = set()
    for where, name, matchers in used_selectors():
        if name in recorded:
            continue
        if name in PROMETHEUS_SERIES:
            known = TARGET_LABELS
        elif name in exported:
            known = exported[name] | TARGET_LABELS
        else:
            problems.append("%s: %s is not in the daemon's /metrics" % (where, name))
            continue
        checked.add(name)
        for label in matchers:
            if label not in known:
                problems.append("%s: %s has no label %r (it has %s)" % (where, name, label, sorted(known)))
    assert not problems, "\n".join(problems)
    # The families the issue asks for are all used somewhere.
    for name in ("flagwatch_response_flags_total", "flagwatch_responses_total", "flagwatch_response_flags_window",
                 "flagwatch_responses_window", "flagwatch_alerts", "flagwatch_notifications_total",
                 "flagwatch_notification_queue_length", "flagwatch_lines_total", "flagwatch_lines_malformed_total"):
        assert name in checked, "%s is used nowhere" % name


def test_readme_names_every_deploy_file():
    readme = (DEPLOY / "README.md").read_text()
    for path in sorted(p for p in DEPLOY.rglob("*") if p.is_file() and p.name != "README.md"):
        assert str(path.relative_to(DEPLOY)) in readme, "deploy/README.md does not mention %s" % path.relative_to(DEPLOY)
