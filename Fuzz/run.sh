#!/usr/bin/env bash
# Fuzz/run.sh [SECONDS]: libFuzzer + AddressSanitizer over the line framer, the container
# unwrapper, the access-log parser and the counting pipeline (Fuzz/FuzzParser.swift).
#
#   Fuzz/run.sh          # 60 seconds
#   Fuzz/run.sh 600      # longer
#   FUZZ_JOBS=2 Fuzz/run.sh 300          # parallel fuzzing processes (default 1)
#   Fuzz/run.sh 0 .fuzz/crash-<hash>     # re-run one input (prints the broken invariant / stack)
#
# Builds into .fuzz/ (git-ignored): each module (LineFraming, AccessLogParser, FlagCounting) is
# compiled on its own with -sanitize=fuzzer,address (its sources as SwiftPM compiles them, so
# no name clashes and the modules' `import`s work), then the harness is linked against them.
# The corpus .fuzz/corpus/ starts from Fuzz/seeds/ and keeps what the fuzzer finds between
# runs. On a crash libFuzzer writes the input to .fuzz/crash-* (leak-*, timeout-*, oom-*); the
# script prints its path and a hexdump and exits non-zero.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SECONDS_TO_RUN="${1:-60}"
REPRODUCE="${2:-}"
SWIFTC="${SWIFTC:-swiftc}"
OUT=.fuzz
BIN="$OUT/fuzz-parser"
MODULES="$OUT/modules"
CORPUS="$OUT/corpus"
JOBS="${FUZZ_JOBS:-1}"

mkdir -p "$MODULES" "$CORPUS"

# The flags of the package's hot-path modules (Package.swift) plus the sanitizers.
FLAGS=(-O -sanitize=fuzzer,address -parse-as-library -swift-version 6 -enable-upcoming-feature ExistentialAny
    -enforce-exclusivity=unchecked -g -I "$MODULES")

build_module() { # name, dependencies are found in $MODULES
    local name="$1"
    "$SWIFTC" "${FLAGS[@]}" -module-name "$name" -wmo -emit-module -emit-module-path "$MODULES/$name.swiftmodule" \
        -c -o "$MODULES/$name.o" Sources/"$name"/*.swift
}

# gold warns about every ASan helper symbol when linking; nothing to act on.
quiet_link() { grep -v "Cannot export local symbol '__asan" >&2 || true; }

# Rebuild when a source is newer than the binary (or the binary is missing).
if [[ ! -x "$BIN" ]] || [[ -n "$(find Sources/LineFraming Sources/AccessLogParser Sources/FlagCounting Fuzz/FuzzParser.swift \
    -newer "$BIN" -name '*.swift' -print -quit)" ]]; then
    echo "fuzz: building $BIN"
    build_module LineFraming
    build_module AccessLogParser
    build_module FlagCounting
    "$SWIFTC" "${FLAGS[@]}" -module-name FuzzParser Fuzz/FuzzParser.swift \
        "$MODULES/LineFraming.o" "$MODULES/AccessLogParser.o" "$MODULES/FlagCounting.o" -o "$BIN" 2> >(quiet_link)
fi

# On a crash the Swift runtime would start swift-backtrace, which hangs under libFuzzer's
# signal handling; libFuzzer and ASan print the stack themselves.
export SWIFT_BACKTRACE=enable=no
# Leak checks stay on, minus the harness's own global parsers (see Fuzz/lsan.supp).
export LSAN_OPTIONS="suppressions=$ROOT/Fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"

if [[ -n "$REPRODUCE" ]]; then
    exec "$BIN" "$REPRODUCE"
fi

cp -n Fuzz/seeds/* "$CORPUS"/ 2>/dev/null || true

# Old crash files would be reported again: keep only this run's.
mark="$OUT/.run-start"
touch "$mark"

echo "fuzz: running $BIN for ${SECONDS_TO_RUN}s (corpus $CORPUS, $(ls "$CORPUS" | wc -l) inputs, jobs $JOBS)"
status=0
ARGS=(-max_total_time="$SECONDS_TO_RUN" -rss_limit_mb=2048 -max_len=4096 -timeout=10 -print_final_stats=1
    -artifact_prefix="$OUT/" "$CORPUS")
# libFuzzer prints a line per new input; keep that in a log and show the summary (all of it on
# failure).
LOG="$OUT/last-run.log"
if [[ "$JOBS" -gt 1 ]]; then
    # Child processes share the corpus; the run still stops at the first crash (-ignore_crashes=0).
    "$BIN" -fork="$JOBS" "${ARGS[@]}" > "$LOG" 2>&1 || status=$?
else
    "$BIN" "${ARGS[@]}" > "$LOG" 2>&1 || status=$?
fi
if [[ "$status" -ne 0 ]]; then
    cat "$LOG" >&2
else
    grep -E '^(stat::|Done|#[0-9]+ *DONE)' "$LOG" || tail -n 5 "$LOG"
fi

crashes=$(find "$OUT" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) \
    -newer "$mark" | sort)
if [[ "$status" -ne 0 || -n "$crashes" ]]; then
    echo "fuzz: FAILED (libFuzzer exited $status)" >&2
    for file in $crashes; do
        echo "fuzz: crash input: $file ($(wc -c < "$file") bytes); reproduce with: Fuzz/run.sh 0 $file" >&2
        od -A x -t x1z -v "$file" | head -40 >&2
    done
    exit 1
fi
echo "fuzz: OK, no crash in ${SECONDS_TO_RUN}s"
