"""Real Envoy 1.40 in front of "pods" in a network namespace: the diagnosis end-to-end kit
(diagnosis/test_hosts_and_drops.py, diagnosis/capture_lines.py).

  PodLab.start(procs, work)  PodNetwork.create() (harness/netns.py), diagnosis/pods.py inside it,
                             Envoy on diagnosis/envoy-diagnosis.yaml.in (127.0.0.1, kernel-chosen
                             ports) writing the Istio TEXT log (+ %UPSTREAM_REQUEST_ATTEMPT_COUNT%)
                             and the Istio JSON log (+ upstream_request_attempt_count) into `work`,
                             and streaming every entry over gRPC to `als_port` (if given).
                             Every process through `procs` (stopped by PID); lab.close() deletes
                             the namespace
  lab.get(vhost)             one GET through Envoy with Host: <vhost>.default.svc.cluster.local;
                             the status as a string, or "error:<kind>"
  lab.get_many(vhost, n, concurrency)   n such GETs, `concurrency` at a time; Counter of statuses
  lab.counters()             Envoy's admin counters {name: value}
  lab.host_stats(cluster)    {"ip:port": {"cx_connect_fail": n, "rq_error": n, ...}} (/clusters)
  lab.wait_logs(n)           until both logs hold >= n lines and stop growing (bounded)
"""
import collections
import concurrent.futures
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness import E2E
from harness.envoy import admin_request, fetch_counters, find_envoy, http_get, launch_envoy, read_line, \
    wait_envoy_ready, wait_for_stable_logs
from harness.net import free_port
from harness.netns import PodNetwork
from harness.processes import tail

HERE = E2E / "diagnosis"
# What pods.py serves: POD3:8080 and POD4/POD5:8080 have nothing listening (refused).
POD_SERVERS = [("ok", 0, 8080), ("ok", 1, 8080), ("ok", 2, 8080),
               ("ok", 6, 9080), ("ok", 6, 9081), ("ok", 6, 9082), ("slow", 7, 8080)]
DROPPED_PORTS = (9080, 9081, 9082)


def fqdn(vhost):
    return "%s.default.svc.cluster.local" % vhost


@dataclass(repr=False)
class PodLab:
    net: PodNetwork
    envoy: subprocess.Popen
    admin: tuple
    port: int
    logs: dict = field(default_factory=dict)     # "text" / "json" -> Path

    @classmethod
    def start(cls, procs, work, lifetime=300, als_port=None):
        """`als_port`: where Envoy's gRPC access logger streams (a flagwatch grpc_access_log
        source); by default a port nothing listens on, so the logger only drops its entries."""
        envoy_bin = find_envoy()
        if als_port is None:
            als_port = free_port()
        net = PodNetwork.create()
        try:
            serve = ["--serve=%s@%s:%d" % (role, net.pod(i), port) for role, i, port in POD_SERVERS]
            pods = procs.start(net.exec_argv([sys.executable, HERE / "pods.py", "--lifetime", lifetime, *serve]),
                               work / "pods.log", stdout=subprocess.PIPE)
            line = read_line(pods.stdout, 10.0)
            if not line.startswith("{"):
                pytest.fail("pods.py did not start in %s: %r\n%s" % (net.name, line, tail(work / "pods.log")),
                            pytrace=False)
            for port in DROPPED_PORTS:
                net.drop_tcp_port(port)
            logs = {"text": work / "access-istio.log", "json": work / "access.json.log"}
            values = {"TEXT_LOG": str(logs["text"]), "JSON_LOG": str(logs["json"]), "ALS_PORT": str(als_port)}
            values.update({"POD%d" % i: net.pod(i) for i in range(8)})
            envoy, addr_file, envoy_log = launch_envoy(procs, work, envoy_bin, HERE / "envoy-diagnosis.yaml.in",
                                                       values, concurrency=1, cwd=work)
            admin, listeners = wait_envoy_ready(envoy, addr_file, envoy_log, health_check=False)
        except BaseException:
            procs.stop_all()
            net.delete()
            raise
        return cls(net=net, envoy=envoy, admin=admin, port=listeners["http"], logs=logs)

    def close(self):
        self.net.delete()

    def get(self, vhost, path="/", timeout=40.0):
        return http_get(self.port, fqdn(vhost), path, "flagwatch-e2e-diagnosis", timeout=timeout)

    def get_many(self, vhost, n, concurrency=1, path="/"):
        if concurrency <= 1:
            return collections.Counter(self.get(vhost, path) for _ in range(n))
        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            return collections.Counter(pool.map(lambda _: self.get(vhost, path), range(n)))

    def counters(self):
        return fetch_counters(self.admin)

    def host_stats(self, cluster):
        status, body = admin_request(self.admin, "/clusters?format=json", timeout=10.0)
        assert status == 200, "admin /clusters returned %s" % status
        for c in json.loads(body).get("cluster_statuses", []):
            if c["name"] == cluster:
                out = {}
                for h in c.get("host_statuses", []):
                    sa = h["address"]["socket_address"]
                    out["%s:%d" % (sa["address"], sa["port_value"])] = {
                        s["name"]: int(s.get("value", 0)) for s in h.get("stats", []) if "name" in s}
                return out
        return {}

    def wait_logs(self, want, timeout=15.0):
        return wait_for_stable_logs(list(self.logs.values()), want, timeout)
