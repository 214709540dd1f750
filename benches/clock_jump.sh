#!/usr/bin/env bash
# A broken clock's cost (issue 20): `replay` of a simulated story with the alert rules of
# docker/alert-rules.toml, against the same story in which gw-03's clock jumps +1 day, then
# +1 month, then +79 years at a quarter, half and three quarters of its events. Time and peak
# resident memory (`/usr/bin/time -f %M`) per side, sides alternating each round; then, once,
# the jumped story with the guard turned off (`input.max_lead` of 100,000 days: what every
# version before it did), stopped after 60 s.
# Usage: bash benches/clock_jump.sh [DAYS] [ROUNDS]   (GATEWATCH_BIN=path: that binary, no build)
set -euo pipefail
cd "$(dirname "$0")/.."
days="${1:-3}"
rounds="${2:-5}"
if [ -z "${GATEWATCH_BIN:-}" ]; then
  cargo build --release -q
fi
bin="${GATEWATCH_BIN:-${CARGO_TARGET_DIR:-target}/release/gatewatch}"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

"$bin" simulate --days "$days" --out "$dir/clean.ndjson" 2>/dev/null
python3 - "$dir/clean.ndjson" "$dir/jumped.ndjson" <<'EOF'
import json, sys
from datetime import datetime
src, dst = sys.argv[1], sys.argv[2]
lines = open(src).read().splitlines()
bad = [i for i, l in enumerate(lines) if '"server":"gw-03"' in l]
day = 86_400_000
shifts = [(3 * len(bad) // 4, 79 * 365 * day), (len(bad) // 2, 31 * day), (len(bad) // 4, day)]
for k, i in enumerate(bad):
    shift = next((s for start, s in shifts if k >= start), 0)
    if shift:
        v = json.loads(lines[i])
        ts = datetime.fromisoformat(v["ts"].replace("Z", "+00:00")).timestamp()
        v["ts"] = int(round(ts * 1000)) + shift
        lines[i] = json.dumps(v, separators=(",", ":"))
open(dst, "w").write("\n".join(lines) + "\n")
print(f"{len(lines)} events, {sum(1 for k in range(len(bad)) if k >= len(bad) // 4)} of gw-03 jumped", file=sys.stderr)
EOF
cat docker/alert-rules.toml > "$dir/guard-off.toml"
printf '\n[input]\nmax_lead = "100000d"\n' >> "$dir/guard-off.toml"

sql="SELECT server, max(peak) AS peak FROM concurrency GROUP BY server"
run() { # file config -> "seconds kib"
  /usr/bin/time -f "%e %M" -o "$dir/t" "$bin" replay "$1" --config "$2" --sql "$sql" --format csv >/dev/null 2>"$dir/err" || true
  tail -1 "$dir/t"
}
: >"$dir/clean.txt"
: >"$dir/jumped.txt"
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) -eq 1 ]; then order="clean jumped"; else order="jumped clean"; fi
  for side in $order; do
    m=$(run "$dir/$side.ndjson" docker/alert-rules.toml)
    echo "round $r $side: ${m% *} s, $(( ${m#* } / 1024 )) MiB"
    echo "$m" >>"$dir/$side.txt"
  done
done
python3 - "$dir/clean.txt" "$dir/jumped.txt" <<'EOF'
import statistics, sys
def load(p):
    rows = [tuple(map(float, l.split())) for l in open(p) if l.strip()]
    return statistics.median(r[0] for r in rows), max(r[1] for r in rows) / 1024
(ct, cm), (jt, jm) = load(sys.argv[1]), load(sys.argv[2])
print(f"clean:  median {ct:.2f} s, peak {cm:.0f} MiB")
print(f"jumped: median {jt:.2f} s, peak {jm:.0f} MiB")
print(f"jumped / clean: time {jt / ct:.2f}, memory {jm / cm:.2f}")
EOF
/usr/bin/time -f "%e %M" -o "$dir/t" timeout 60 "$bin" replay "$dir/jumped.ndjson" --config "$dir/guard-off.toml" --sql "$sql" --format csv >/dev/null 2>&1 || true
m=$(tail -1 "$dir/t")
echo "guard off (stopped at 60 s): ${m% *} s, $(( ${m#* } / 1024 )) MiB"
