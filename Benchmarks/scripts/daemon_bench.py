#!/usr/bin/env python3
"""daemon_bench.py: what a scrape of `flagwatch run` costs, and how much memory the daemon
holds, with about a thousand upstream clusters.

It builds nothing unless the binary is missing: build first (`make release`: swift build -c
release --product flagwatch --static-swift-stdlib), or pass --build.

Targets:
  (a) GET /metrics with ~10,000 series: median and p99 wall time over --scrapes (200) scrapes
      under 10 ms each (--scrape-target-ms);
  (b) VmRSS of the daemon with 1,000 clusters under 30 MiB (--rss-target-mib).

  1. Writes an Istio 1.9+ TEXT log into a temporary folder: for each of --clusters (1000)
     distinct `outbound|PORT||svc-N.ns-M.svc.cluster.local` clusters, one 200 line and one 503
     line per flag set of --flags (default "UF,URX,UF": lines with UF and with URX,UF, so two
     flags per cluster). Per cluster that is 2 code classes + 2 flag counters + 3 windows x 2
     flags + 3 response windows + 1 info series = 14 series (--flags UF: 10 series).
  2. Starts `flagwatch run` on a config following that file (start_at beginning, windows 1m,
     5m, 15m), listening on 127.0.0.1:0; the port is read from /proc/PID (its listening socket).
     Waits until /metrics shows every line counted.
  3. RSS: VmRSS before any scrape, after the first, and after all of them; VmHWM at the end;
     plus the anonymous / file-backed split (RssAnon, RssFile: shared libraries).
  4. Latency: one keep-alive connection (as Prometheus keeps one), --warmup (20) unmeasured
     scrapes, then --scrapes timed ones per format: OpenMetrics (what Prometheus asks for)
     and Prometheus text 0.0.4. Wall time from sending the request to the last body byte
     (this includes Python's http.client reading the body). Median, p90, p99 (nearest rank),
     max; and the daemon's own CPU time per scrape (utime+stime from /proc/PID/stat over the
     timed scrapes).
  5. --perf DIR: records `perf record -g -p PID` during an extra --scrapes scrapes (OpenMetrics)
     and writes `perf report --stdio` (children and self) into DIR.

Prints a summary, then one JSON line with every figure. Exit status: 0 all targets met, 1 a
target missed, 2 the measurement could not be made. Every process is stopped by its PID; every
wait has a deadline.
"""

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ACCEPT = {
    "openmetrics": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                   "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "text": "text/plain;version=0.0.4;q=1.0",
}


def fail(message, code=2):
    print("daemon_bench: " + message, file=sys.stderr)
    sys.exit(code)


def istio_line(cluster, code, flags, seq):
    details = "via_upstream" if code < 500 else "upstream_reset_before_response_started{connection_failure}"
    return ('[2026-11-22T06:00:00.000Z] "GET /r/%d HTTP/1.1" %d %s %s - "-" 0 %d 3 - "-" "curl/8.5.0" '
            '"6d7c5c7e-0f4a-4a55-9c1e-%012d" "reviews.default.svc.cluster.local:9080" "10.244.1.7:9080" %s '
            '- 10.244.0.17:15006 10.244.0.9:40312 - default\n'
            % (seq, code, flags, details, 100 + seq % 900, seq, cluster))


def listen_ports(pid):
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            m = re.match(r"socket:\[(\d+)\]$", os.readlink("/proc/%d/fd/%s" % (pid, fd)))
        except OSError:
            continue
        if m:
            inodes.add(m.group(1))
    ports = set()
    for table in ("tcp", "tcp6"):
        try:
            with open("/proc/%d/net/%s" % (pid, table)) as f:
                for row in f.read().splitlines()[1:]:
                    fields = row.split()
                    if fields[3] == "0A" and fields[9] in inodes:
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except OSError:
            pass
    return sorted(ports)


def vm_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, rest = line.partition(":")
            parts = rest.split()
            if len(parts) == 2 and parts[1] == "kB":
                out[key] = int(parts[0]) * 1024
    return out


def cpu_seconds(pid):
    """utime + stime of the process (/proc/PID/stat), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def print_smaps(pid, count):
    """Resident memory per mapping, largest first, summed per file (anonymous mappings by address)."""
    per_mapping = {}
    name = None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            fields = line.split()
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                name = fields[5] if len(fields) > 5 else "[anon " + fields[0] + "]"
            elif fields and fields[0] == "Rss:" and name is not None:
                per_mapping[name] = per_mapping.get(name, 0) + int(fields[1]) * 1024
    top = sorted(per_mapping.items(), key=lambda item: -item[1])[:count]
    print("  resident memory by mapping (top %d of %d):" % (len(top), len(per_mapping)))
    for mapping, size in top:
        print("    %8.2f MiB  %s" % (mib(size), mapping))


def mib(n):
    return round(n / 2**20, 2)


def percentile(sorted_values, p):
    """Nearest rank."""
    index = max(0, min(len(sorted_values) - 1, int(-(-p * len(sorted_values) // 100)) - 1))
    return sorted_values[index]


class Scraper:
    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def get(self, accept):
        self.conn.request("GET", "/metrics", headers={"Accept": accept})
        r = self.conn.getresponse()
        body = r.read()
        if r.status != 200:
            fail("GET /metrics: %d" % r.status)
        return body

    def time(self, accept, n):
        times = []
        body = b""
        for _ in range(n):
            t0 = time.perf_counter()
            body = self.get(accept)
            times.append((time.perf_counter() - t0) * 1000.0)
        return times, body

    def close(self):
        self.conn.close()


def counted_lines(body):
    m = re.search(rb'^flagwatch_lines_total\{source="bench"\} (\d+)$', body, re.M)
    return int(m.group(1)) if m else -1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", default=os.environ.get("FLAGWATCH_BIN") or os.path.join(ROOT, ".build", "release", "flagwatch"))
    ap.add_argument("--build", action="store_true", help="swift build -c release --product flagwatch --static-swift-stdlib first")
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--flags", default="UF,URX,UF", help="flag sets, one 503 line per set per cluster; "
                    "'/'-separated, e.g. 'UF/URX,UF' (the default, written UF,URX,UF: UF and URX,UF)")
    ap.add_argument("--scrapes", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--scrape-target-ms", type=float, default=10.0)
    ap.add_argument("--rss-target-mib", type=float, default=30.0)
    ap.add_argument("--perf", metavar="DIR", help="also record perf -g during extra scrapes; reports go to DIR")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--smaps", type=int, default=0, metavar="N",
                    help="also print the N mappings with the most resident memory (from /proc/PID/smaps)")
    args = ap.parse_args()

    if args.flags == "UF,URX,UF":
        flag_sets = ["UF", "URX,UF"]
    else:
        flag_sets = [s for s in args.flags.split("/") if s]
    if args.build or not os.access(args.binary, os.X_OK):
        if not args.build:
            print("daemon_bench: %s missing; building it" % args.binary, file=sys.stderr)
        r = subprocess.run(["swift", "build", "-c", "release", "--product", "flagwatch", "--static-swift-stdlib"], cwd=ROOT, timeout=1800)
        if r.returncode != 0:
            fail("swift build failed")
    if not os.access(args.binary, os.X_OK):
        fail("no flagwatch binary at %s" % args.binary)

    work = tempfile.mkdtemp(prefix="flagwatch-daemon-bench-")
    proc = None
    perf = None
    try:
        log = os.path.join(work, "access.log")
        lines = []
        seq = 0
        for i in range(args.clusters):
            cluster = "outbound|%d||svc-%05d.ns-%d.svc.cluster.local" % (8000 + i % 1000, i, i % 37)
            for code, flags in [(200, "-")] + [(503, f) for f in flag_sets]:
                lines.append(istio_line(cluster, code, flags, seq))
                seq += 1
        with open(log, "w") as f:
            f.write("".join(lines))
        config = os.path.join(work, "flagwatch.yaml")
        with open(config, "w") as f:
            f.write('listen: "127.0.0.1:0"\nstate_dir: %s\nsources:\n  - name: bench\n    files: [%s]\n'
                    '    format: istio\n    start_at: beginning\nwindows: [1m, 5m, 15m]\n'
                    % (json.dumps(os.path.join(work, "state")), json.dumps(log)))
        stderr = open(os.path.join(work, "flagwatch.stderr.log"), "wb")
        proc = subprocess.Popen([args.binary, "run", "--config", config], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=stderr)
        stderr.close()
        deadline = time.monotonic() + 20
        port = None
        while time.monotonic() < deadline and port is None:
            if proc.poll() is not None:
                fail("flagwatch run exited with %d" % proc.returncode)
            ports = listen_ports(proc.pid)
            port = ports[0] if ports else None
            time.sleep(0.05)
        if port is None:
            fail("flagwatch run did not listen within 20 s")
        # Wait for every line without scraping /metrics (a scrape changes the RSS figures).
        deadline = time.monotonic() + 60
        size = os.path.getsize(log)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                fail("flagwatch run exited with %d" % proc.returncode)
            if log_read_to_end(proc.pid, log, size):
                break
            time.sleep(0.05)
        else:
            fail("flagwatch did not read the log to its end within 60 s")
        time.sleep(0.3)
        rss_before = vm_status(proc.pid)

        scraper = Scraper(port)
        first = scraper.get(ACCEPT["text"])
        if counted_lines(first) != len(lines):
            # Reading to the end of the file and counting happen in one loop iteration; give
            # it a moment, then check again.
            deadline = time.monotonic() + 10
            while counted_lines(first) != len(lines) and time.monotonic() < deadline:
                time.sleep(0.1)
                first = scraper.get(ACCEPT["text"])
            if counted_lines(first) != len(lines):
                fail("flagwatch counted %d of %d lines" % (counted_lines(first), len(lines)))
        rss_first = vm_status(proc.pid)
        series = sum(1 for line in first.split(b"\n") if line and not line.startswith(b"#"))
        cluster_series = sum(1 for line in first.split(b"\n") if b'upstream_cluster="' in line)

        results = {}
        for fmt in ("openmetrics", "text"):
            scraper.time(ACCEPT[fmt], args.warmup)
            cpu0 = cpu_seconds(proc.pid)
            times, body = scraper.time(ACCEPT[fmt], args.scrapes)
            cpu_ms = (cpu_seconds(proc.pid) - cpu0) * 1000.0 / args.scrapes
            s = sorted(times)
            results[fmt] = {"daemon_cpu_ms_per_scrape": round(cpu_ms, 3), "median_ms": round(percentile(s, 50), 3), "p90_ms": round(percentile(s, 90), 3),
                            "p99_ms": round(percentile(s, 99), 3), "max_ms": round(s[-1], 3),
                            "mean_ms": round(sum(s) / len(s), 3), "body_bytes": len(body)}
        rss_after = vm_status(proc.pid)
        if args.smaps:
            print_smaps(proc.pid, args.smaps)

        if args.perf:
            os.makedirs(args.perf, exist_ok=True)
            data = os.path.join(args.perf, "perf.data")
            perf = subprocess.Popen(["perf", "record", "-g", "-F", "4999", "-o", data, "-p", str(proc.pid)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
            scraper.time(ACCEPT["openmetrics"], args.scrapes)
            os.kill(perf.pid, signal.SIGINT)
            perf.wait(timeout=60)
            perf = None
            for mode, extra in (("children", ["--children"]), ("self", ["--no-children"])):
                with open(os.path.join(args.perf, "report-%s.txt" % mode), "w") as out:
                    subprocess.run(["perf", "report", "-i", data, "--stdio", "--percent-limit", "0.5", *extra],
                                   stdout=out, stderr=subprocess.DEVNULL, timeout=300)
        scraper.close()

        met = {
            "scrape_median": results["openmetrics"]["median_ms"] < args.scrape_target_ms
            and results["text"]["median_ms"] < args.scrape_target_ms,
            "scrape_p99": results["openmetrics"]["p99_ms"] < args.scrape_target_ms
            and results["text"]["p99_ms"] < args.scrape_target_ms,
            "rss": mib(rss_after["VmRSS"]) < args.rss_target_mib,
        }
        figures = {
            "binary": args.binary, "clusters": args.clusters, "flag_sets": flag_sets, "lines": len(lines),
            "series": series, "cluster_series": cluster_series, "scrapes": args.scrapes,
            "scrape": results, "scrape_target_ms": args.scrape_target_ms,
            "rss_mib": {"before_scrapes": mib(rss_before["VmRSS"]), "after_first_scrape": mib(rss_first["VmRSS"]),
                        "after_scrapes": mib(rss_after["VmRSS"]), "hwm": mib(rss_after["VmHWM"]),
                        "anon_after_scrapes": mib(rss_after.get("RssAnon", 0)),
                        "file_after_scrapes": mib(rss_after.get("RssFile", 0))},
            "rss_target_mib": args.rss_target_mib, "targets_met": met,
        }
        print("flagwatch run, %d clusters x flag sets %s: %d series on /metrics (%d with a cluster)"
              % (args.clusters, flag_sets, series, cluster_series))
        for fmt, r in results.items():
            print("  GET /metrics %-11s %d scrapes: median %.2f ms, p90 %.2f, p99 %.2f, max %.2f ms (%d bytes; "
                  "daemon CPU %.2f ms per scrape)   target < %.0f ms: %s"
                  % (fmt, args.scrapes, r["median_ms"], r["p90_ms"], r["p99_ms"], r["max_ms"], r["body_bytes"],
                     r["daemon_cpu_ms_per_scrape"],
                     args.scrape_target_ms, "met" if max(r["median_ms"], r["p99_ms"]) < args.scrape_target_ms
                     else "MISSED"))
        rm = figures["rss_mib"]
        print("  VmRSS: %.1f MiB before any scrape, %.1f after the first, %.1f after all (anon %.1f, file %.1f); "
              "VmHWM %.1f MiB   target < %.0f MiB: %s"
              % (rm["before_scrapes"], rm["after_first_scrape"], rm["after_scrapes"], rm["anon_after_scrapes"],
                 rm["file_after_scrapes"], rm["hwm"], args.rss_target_mib, "met" if met["rss"] else "MISSED"))
        if args.perf:
            print("  perf reports: %s/report-children.txt, report-self.txt" % args.perf)
        print(json.dumps(figures, sort_keys=True))
        return 0 if all(met.values()) else 1
    finally:
        if perf is not None and perf.poll() is None:
            os.kill(perf.pid, signal.SIGKILL)
            perf.wait(timeout=10)
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print("kept %s" % work, file=sys.stderr)


def log_read_to_end(pid, path, size):
    """Whether the process has read at least `size` bytes (rchar of /proc/PID/io: it reads the
    log with pread, so its descriptor's position says nothing). The first scrape then checks
    the line count exactly."""
    try:
        with open("/proc/%d/io" % pid) as f:
            for line in f:
                if line.startswith("rchar:"):
                    return int(line.split()[1]) >= size
    except OSError:
        pass
    return False


if __name__ == "__main__":
    sys.exit(main())
