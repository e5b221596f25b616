#!/usr/bin/env bash
# Benchmarks/run.sh: flagwatch's parser benchmarks (ordo-one/benchmark), then the zero-malloc check.
#
#   Benchmarks/run.sh                           # every benchmark, about 2 minutes
#   Benchmarks/run.sh --filter 'parse-.*'       # extra options go to `swift package benchmark`
#   Benchmarks/run.sh --max-duration 10         #   (see `swift package benchmark help`)
#
# What it does, from Benchmarks/ (a package of its own that depends on the main one by path):
#   1. `benchmark baseline update current` builds the benchmark target in release mode, runs
#      the benchmarks and stores the results in Benchmarks/.benchmarkBaselines/ (git-ignored).
#      Writing there is why `--allow-writing-to-package-directory` is passed.
#   2. Prints them (`baseline read current`). Rows marked `*` are per line (one iteration is
#      1,000 lines, scaling factor kilo): Throughput (# / s) = lines/s, Time (wall clock) = ns
#      per line, Malloc (total) = mallocs per line. `Bytes / s` is input bytes per second.
#   3. Prints mallocs per iteration (1,000 lines) unscaled, so a rare allocation is not
#      rounded away.
#   4. `benchmark thresholds check current`: compares with Benchmarks/Thresholds/*.p90.json,
#      which hold p90 mallocCountTotal = 0 (tolerance 0) for the parse and warm-pipeline
#      benchmarks: any allocation per line there fails the run.
#
# Exit status: 0 when the check passes; non-zero when a benchmark with a zero threshold
# allocates (the plugin exits 1 or 2 then), or when the build or a benchmark fails.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
SWIFT="${SWIFT:-swift}"

echo "== running benchmarks (release build) =="
"$SWIFT" package --allow-writing-to-package-directory benchmark baseline update current --no-progress "$@"

echo
echo "== results (rows marked * are per line; Bytes / s is input consumed per second) =="
"$SWIFT" package benchmark baseline read current --no-progress

echo
echo "== mallocs per iteration of 1,000 lines, unscaled =="
"$SWIFT" package benchmark baseline read current --no-progress --scale --metric mallocCountTotal \
    | grep -E '^[a-z][a-z0-9-]+$|Malloc \(total\)' || true

echo
echo "== zero-malloc check against Benchmarks/Thresholds/ =="
status=0
"$SWIFT" package benchmark thresholds check current --no-progress || status=$?
case "$status" in
    0) echo "run.sh: OK: no allocation per line in the parse and warm-pipeline benchmarks" ;;
    4) echo "run.sh: OK: better than the stored thresholds"; status=0 ;;
    *) echo "run.sh: FAILED: thresholds check exited $status (allocations per line, see above)" >&2 ;;
esac
exit "$status"
