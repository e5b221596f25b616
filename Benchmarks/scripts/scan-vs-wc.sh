#!/usr/bin/env bash
# scan-vs-wc.sh: how fast is `flagwatch scan` compared with `wc -l` on the same file?
#
# What `make bench` runs. It builds nothing: build flagwatch first (swift build -c release).
#
#   1. Generates an Istio TEXT corpus plus its ground truth with generate_corpus.py, unless a
#      corpus with the right number of lines (and its truth file) is already there.
#   2. Warms the page cache (cat FILE > /dev/null), so both tools read from memory.
#   3. Times BENCH_REPS interleaved repetitions of `wc -l FILE` and
#      `flagwatch scan --output json FILE` (wall clock, peak RSS via /usr/bin/time).
#   4. Checks that scan's `lines` equals wc -l's count, that scan's JSON equals the ground
#      truth, and that the median ratio scan/wc is at most BENCH_MAX_RATIO.
#
# Environment (all optional):
#   FLAGWATCH_BIN    flagwatch binary             (default .build/release/flagwatch)
#   BENCH_DIR        corpus folder                (default bench-data, git-ignored)
#   BENCH_LINES      corpus lines                 (default 5000000, about 1.8 GB)
#   BENCH_REPS       repetitions of each command  (default 3)
#   BENCH_MAX_RATIO  allowed median scan/wc ratio (default 3)
#   BENCH_SEED       generator seed               (default 42)
#   BENCH_TIMEOUT    seconds allowed for one timed run, and 3x that for the generator (default 300)
#
# Exit status: 0 all checks pass; 1 wrong output or ratio above target; 2 setup problem
# (missing binary, generator or command failure, timeout).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

FLAGWATCH_BIN="${FLAGWATCH_BIN:-.build/release/flagwatch}"
BENCH_DIR="${BENCH_DIR:-bench-data}"
BENCH_LINES="${BENCH_LINES:-5000000}"
BENCH_REPS="${BENCH_REPS:-3}"
BENCH_MAX_RATIO="${BENCH_MAX_RATIO:-3}"
BENCH_SEED="${BENCH_SEED:-42}"
BENCH_TIMEOUT="${BENCH_TIMEOUT:-300}"
GEN="$ROOT/Benchmarks/scripts/generate_corpus.py"

die() { echo "scan-vs-wc: $*" >&2; exit 2; }

[[ "$BENCH_LINES" =~ ^[0-9]+$ && "$BENCH_LINES" -gt 0 ]] || die "BENCH_LINES must be a positive integer"
[[ "$BENCH_REPS" =~ ^[0-9]+$ && "$BENCH_REPS" -gt 0 ]] || die "BENCH_REPS must be a positive integer"
[[ "$BENCH_TIMEOUT" =~ ^[0-9]+$ && "$BENCH_TIMEOUT" -gt 0 ]] || die "BENCH_TIMEOUT must be a positive integer"
[[ "$BENCH_MAX_RATIO" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "BENCH_MAX_RATIO must be a number"
command -v python3 >/dev/null || die "python3 is needed"
[[ -x /usr/bin/time ]] || die "/usr/bin/time is needed (Debian package 'time')"
command -v timeout >/dev/null || die "timeout (coreutils) is needed"
[[ -x "$FLAGWATCH_BIN" ]] || die "no flagwatch binary at $FLAGWATCH_BIN (build it: swift build -c release, or set FLAGWATCH_BIN)"

if [[ "$BENCH_LINES" == 5000000 ]]; then
    name="istio-5m"
else
    name="istio-$BENCH_LINES"
fi
mkdir -p "$BENCH_DIR"
CORPUS="$BENCH_DIR/$name.log"
TRUTH="$BENCH_DIR/$name.truth.json"

# --- corpus ---------------------------------------------------------------------------------
truth_lines() {
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["lines"])' "$1" 2>/dev/null || echo -1
}
have=-1
if [[ -f "$CORPUS" && -f "$TRUTH" ]]; then
    have=$(wc -l < "$CORPUS")
    if [[ "$have" != "$BENCH_LINES" || "$(truth_lines "$TRUTH")" != "$BENCH_LINES" ]]; then
        echo "corpus $CORPUS has $have lines (or a stale truth file), want $BENCH_LINES: regenerating"
        have=-1
    fi
fi
if [[ "$have" == -1 ]]; then
    echo "generating $CORPUS ($BENCH_LINES lines, seed $BENCH_SEED) ..."
    t0=$EPOCHREALTIME
    timeout $((BENCH_TIMEOUT * 3)) python3 "$GEN" --lines "$BENCH_LINES" --seed "$BENCH_SEED" \
        --out "$CORPUS" --truth "$TRUTH" || die "corpus generation failed or timed out"
    printf 'generated in %.1f s\n' "$(python3 -c "print($EPOCHREALTIME - $t0)")"
fi
BYTES=$(stat -c %s "$CORPUS")

# --- timed runs -----------------------------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/scan-vs-wc.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

echo "warming the page cache ($((BYTES / 1000000)) MB) ..."
timeout "$BENCH_TIMEOUT" cat "$CORPUS" > /dev/null || die "could not read $CORPUS"

# run_timed TAG REP CMD...: wall seconds (EPOCHREALTIME) and peak RSS (KB, /usr/bin/time %M)
# appended to $WORK/TAG.times; stdout to $WORK/TAG.REP.out, stderr to $WORK/TAG.REP.err.
run_timed() {
    local tag=$1 rep=$2; shift 2
    local t0 t1 rc=0
    t0=$EPOCHREALTIME
    timeout "$BENCH_TIMEOUT" /usr/bin/time -f '%M' -o "$WORK/$tag.$rep.rss" "$@" \
        > "$WORK/$tag.$rep.out" 2> "$WORK/$tag.$rep.err" || rc=$?
    t1=$EPOCHREALTIME
    if [[ $rc -ne 0 ]]; then
        echo "scan-vs-wc: '$*' failed (exit $rc$([[ $rc == 124 ]] && echo ", timed out after ${BENCH_TIMEOUT}s"))" >&2
        head -c 2000 "$WORK/$tag.$rep.err" >&2 || true
        exit 2
    fi
    echo "$t0 $t1 $(tail -n 1 "$WORK/$tag.$rep.rss")" >> "$WORK/$tag.times"
}

echo "timing $BENCH_REPS interleaved runs of wc -l and flagwatch scan ..."
for ((r = 1; r <= BENCH_REPS; r++)); do
    run_timed wc "$r" wc -l "$CORPUS"
    run_timed scan "$r" "$FLAGWATCH_BIN" scan --output json "$CORPUS"
done

# --- report and checks ----------------------------------------------------------------------
python3 - "$WORK" "$BENCH_REPS" "$BYTES" "$TRUTH" "$BENCH_MAX_RATIO" "$CORPUS" "$FLAGWATCH_BIN" <<'PY'
import json, statistics, sys

work, reps, nbytes, truth_path, max_ratio, corpus, binary = sys.argv[1:8]
reps, nbytes, max_ratio = int(reps), int(nbytes), float(max_ratio)
failures = []

def timings(tag):
    walls, rss = [], []
    for line in open("%s/%s.times" % (work, tag)):
        t0, t1, kb = line.split()
        walls.append(float(t1) - float(t0))
        rss.append(int(kb))
    return walls, rss

wc_w, wc_rss = timings("wc")
sc_w, sc_rss = timings("scan")
wc_med, sc_med = statistics.median(wc_w), statistics.median(sc_w)

# wc -l's count (the same on every run)
wc_counts = {open("%s/wc.%d.out" % (work, r)).read().split()[0] for r in range(1, reps + 1)}
if len(wc_counts) != 1:
    failures.append("wc -l gave different counts: %s" % sorted(wc_counts))
wc_lines = int(sorted(wc_counts)[0])

# scan's JSON: every run must print the same document
docs = []
for r in range(1, reps + 1):
    raw = open("%s/scan.%d.out" % (work, r)).read()
    try:
        docs.append(json.loads(raw))
    except ValueError as e:
        print("scan run %d did not print JSON (%s); first 500 bytes:\n%s" % (r, e, raw[:500]))
        sys.exit(1)
if any(d != docs[0] for d in docs[1:]):
    failures.append("scan printed different JSON on different runs")
scan = docs[0]
scan_lines = scan.get("lines") if isinstance(scan, dict) else None

gb = nbytes / 1e9
print()
print("corpus  %s: %d lines, %.2f GB (%.0f bytes/line)" % (corpus, wc_lines, gb, nbytes / max(1, wc_lines)))
print("binary  %s" % binary)
print()
print("%-30s %9s %9s %9s %12s %14s" % ("command", "median s", "min s", "max s", "peak RSS MB", "throughput"))
print("%-30s %9.3f %9.3f %9.3f %12.1f %11.2f GB/s" % ("wc -l", wc_med, min(wc_w), max(wc_w), max(wc_rss) / 1024, gb / wc_med))
print("%-30s %9.3f %9.3f %9.3f %12.1f %11.2f GB/s" % ("flagwatch scan --output json", sc_med, min(sc_w), max(sc_w), max(sc_rss) / 1024, gb / sc_med))
print()
ratio = sc_med / wc_med if wc_med > 0 else float("inf")
print("scan throughput: %.2f GB/s, %.2f M lines/s" % (gb / sc_med, wc_lines / sc_med / 1e6))
print("ratio scan/wc (median): %.2fx    target: ratio <= %gx wc -l" % (ratio, max_ratio))
print()

# correctness
if scan_lines != wc_lines:
    failures.append("scan says lines=%r, wc -l says %d" % (scan_lines, wc_lines))
truth = json.load(open(truth_path))

def drop_zeros(doc):
    """Copy of doc's clusters with zero counts removed (the truth never has them)."""
    out = {}
    for name, c in (doc.get("clusters") or {}).items():
        if not isinstance(c, dict):
            out[name] = c
            continue
        e = dict(c)
        # The ground truth holds counts; a cluster's diagnosis is derived, not counted.
        e.pop("diagnosis", None)
        for k in ("codes", "flags"):
            if isinstance(e.get(k), dict):
                e[k] = {a: b for a, b in e[k].items() if b != 0}
        out[name] = e
    return out

if isinstance(scan, dict):
    extra = sorted(set(scan) - set(truth))
    if extra:
        print("note: scan JSON has top-level keys not in the ground truth (not compared): %s" % ", ".join(extra))
    got_clusters, want_clusters = drop_zeros(scan), truth["clusters"]
    if got_clusters != (scan.get("clusters") or {}):
        print("note: scan JSON lists zero counts (ignored in the comparison)")
    if scan.get("malformed", {}) != truth["malformed"]:
        failures.append("malformed: scan %s, truth %s" % (json.dumps(scan.get("malformed"))[:300], json.dumps(truth["malformed"])))
    if got_clusters != want_clusters:
        diffs = []
        for name in sorted(set(got_clusters) | set(want_clusters)):
            g, w = got_clusters.get(name), want_clusters.get(name)
            if g != w:
                diffs.append("  %s:\n    scan:  %s\n    truth: %s" % (name, json.dumps(g, sort_keys=True)[:400], json.dumps(w, sort_keys=True)[:400]))
        failures.append("clusters differ from the ground truth in %d of %d clusters, e.g.\n%s"
                        % (len(diffs), len(want_clusters), "\n".join(diffs[:5])))
else:
    failures.append("scan JSON is not an object")

ok_output = not failures
print("output check: %s" % ("scan JSON matches the ground truth (%d clusters) and wc -l" % len(truth["clusters"]) if ok_output else "MISMATCH"))
if ratio > max_ratio:
    failures.append("ratio %.2fx is above the target of %gx" % (ratio, max_ratio))
print("speed check:  %s" % ("ok (%.2fx <= %gx)" % (ratio, max_ratio) if ratio <= max_ratio else "FAIL (%.2fx > %gx)" % (ratio, max_ratio)))
if failures:
    print()
    for f in failures:
        print("FAIL: " + f)
    sys.exit(1)
print("PASS")
PY
