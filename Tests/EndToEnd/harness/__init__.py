"""The end-to-end harness: one importable package for every suite under Tests/EndToEnd.

Tests/EndToEnd/pytest.ini puts Tests/EndToEnd on sys.path (`pythonpath = .`), so any test or
conftest imports `from harness.<module> import ...`, whichever subset pytest runs.

  processes   Processes (start / stop by PID: SIGTERM, bounded wait, SIGCONT + SIGKILL),
              stop_pid, log_tail, tail, listen_ports, vm_status
  polling     poll_until (raises), poll (returns the last value), poll_or_fail
  net         LOOPBACK, free_port, http_get (URL), http_request (port, path, headers)
  metrics     metric_samples, flag_counts, parse_exposition, select, by, check_metrics_text
  lines       Istio access-log line generators (istio_line, istio_text_line, istio_cluster,
              access_log, Traffic with exact expected counts, CRI records)
  flagwatch   flagwatch_binary, FlagwatchRun (`flagwatch run`: start, ready, samples, stop),
              FlagwatchFollow (`flagwatch scan --follow --output json`), daemon_config
  envoy       the Envoy 1.40 harness (scenarios, start_envoy, send_chunk, expected_counts, ...)
  components  real Prometheus, Alertmanager, the toggle backends, RecordingProxy
  journald    a private systemd-journald (unshare --mount) and `scan --follow` on it
  follow      the file-follow kit (writers, rotation helpers) of follow/ and journald/
  listener    raw-socket HTTP/1.1 client and the exposition validator of daemon/
  alerting    the alerting scenario shared by alerting/ and full/ (Traffic thread, am_alert)
  container   podman, the image and the pod of container/; daemonset: the manifest -> podman
  browser     headless Chromium over the DevTools pipe: exact viewport, evaluate, screenshot
  manifests   StrictLoader, load, load_all: deploy/ YAML with duplicate keys as errors
  boot        the systemd-nspawn machine of systemd-boot/
  netns       PodNetwork: a network namespace + veth pair the test creates, nftables drops in it
  podlab      PodLab: pods in a PodNetwork behind a real Envoy 1.40 (diagnosis/)
  proxies     nginx and HAProxy in front of failing upstreams, and flagwatch on their logs, for
              nginx/ and haproxy/

Conftests hold fixtures only; every helper lives here.
"""
from pathlib import Path

E2E = Path(__file__).resolve().parent.parent       # Tests/EndToEnd
REPO = E2E.parent.parent                           # the checkout
