#!/usr/bin/env bash
# `make run`: the daemon on the shipped default config (config/flagwatch.yaml), plus a demo log
# that this script keeps appending real Envoy 1.40 lines to (config/demo/istio-access.log, with
# fresh timestamps), so the metrics have something in them on a fresh machine. State goes to
# .run/state (the shipped state_dir, /var/lib/flagwatch, is for the installed service).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${FLAGWATCH_BIN:-.build/debug/flagwatch}
LISTEN=${FLAGWATCH_LISTEN:-127.0.0.1:9817}
mkdir -p .run/demo .run/state
: > .run/demo/access.log

python3 - .run/demo/access.log config/demo/istio-access.log <<'PY' &
import datetime, random, re, sys, time
target, source = sys.argv[1], sys.argv[2]
lines = [l for l in open(source, encoding="utf-8") if l.strip()]
stamp = re.compile(r"^\[[^\]]*\]")
deadline = time.monotonic() + 24 * 3600
with open(target, "a", encoding="utf-8") as out:
    while time.monotonic() < deadline:
        now = datetime.datetime.now(datetime.timezone.utc).strftime("[%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z]"
        out.writelines(stamp.sub(now, random.choice(lines), count=1) for _ in range(20))
        out.flush()
        time.sleep(1)
PY
WRITER=$!
trap 'kill $WRITER 2>/dev/null || true' EXIT

echo "flagwatch: serving http://$LISTEN/metrics and http://$LISTEN/ ; demo lines go to .run/demo/access.log (Ctrl-C stops)"
"$BIN" run --config config/flagwatch.yaml --state-dir .run/state --listen "$LISTEN" --file "$PWD/.run/demo/*.log"
