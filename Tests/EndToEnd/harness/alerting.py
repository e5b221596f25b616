"""The alerting scenario shared by alerting/test_alertmanager_envoy.py and full/: two services
behind Envoy (api, inventory), a client thread, and the alert as Alertmanager lists it.

  API, INVENTORY      the two services' Istio outbound cluster names
  Traffic(port)       about 20 requests/s to each service through Envoy until stop()
  am_alert(...)       one alert of a stack's Alertmanager, by alertname and cluster
  Alertmanager, start_backend, ALERTMANAGER_BIN  (harness.components)
  start_envoy         Envoy on alerting/envoy-alerting.yaml.in (harness.envoy.start_alerting_envoy)
"""
import http.client
import threading

from harness.components import ALERTMANAGER_BIN, Alertmanager, start_backend  # noqa: F401
from harness.envoy import start_alerting_envoy as start_envoy  # noqa: F401

API = "outbound|8080||api.default.svc.cluster.local"
INVENTORY = "outbound|8080||inventory.default.svc.cluster.local"


class Traffic(threading.Thread):
    """About 20 requests/s to each service through Envoy until stopped."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.halt = threading.Event()
        self.sent = {"api": 0, "inventory": 0}

    def run(self):
        while not self.halt.is_set():
            for service in ("api", "inventory"):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                try:
                    conn.request("GET", "/", headers={"Host": "%s.default.svc.cluster.local" % service})
                    conn.getresponse().read()
                except (OSError, http.client.HTTPException):
                    pass
                finally:
                    conn.close()
                self.sent[service] += 1
            self.halt.wait(0.05)

    def stop(self):
        self.halt.set()
        self.join(timeout=15)


def am_alert(stack, alertname, cluster):
    for alert in stack.alertmanager.alerts():
        labels = alert.get("labels", {})
        if labels.get("alertname") == alertname and labels.get("upstream_cluster") == cluster:
            return alert
    return None
