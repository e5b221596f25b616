#!/bin/sh
# Entries/s per core of the gRPC access-log source's decode-and-count path (als/main.swift),
# for Envoy's ALS messages and OTLP log records (attributes, and Istio text bodies):
# compiles LineFraming, AccessLogParser and FlagCounting with -O (whole module, as `make release`)
# into a scratch folder, then runs the measurement twice. Usage: Benchmarks/scripts/als_decode_bench.sh
set -eu
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/flagwatch-als-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
flags="-O -wmo -enforce-exclusivity=unchecked -swift-version 6"
cd "$work"
for module in LineFraming AccessLogParser FlagCounting; do
    # shellcheck disable=SC2086
    swiftc $flags -parse-as-library -I . -emit-module -emit-object -module-name "$module" \
        "$repo"/Sources/"$module"/*.swift -emit-module-path "$module.swiftmodule" -o "$module.o"
done
# shellcheck disable=SC2086
swiftc $flags -I . "$repo/Benchmarks/scripts/als/main.swift" LineFraming.o AccessLogParser.o FlagCounting.o -o als-bench
./als-bench
./als-bench
