#!/usr/bin/env bash
# Two gatewatch binaries on the same replay, alternating rounds, in one run: for checking that a
# change (a refactor, a dependency bump) costs nothing. Wall time and peak memory per round;
# medians and bests at the end.
# Usage: bash benches/replay_ab.sh A_BIN B_BIN [ROUNDS] [FILE]
#   FILE defaults to bench-data/march-2020-12d.ndjson (made by benches/replay_vs_duckdb.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
a=$1 b=$2 rounds=${3:-10} file=${4:-bench-data/march-2020-12d.ndjson}
# The question of benches/replay_vs_duckdb.sh: per-server peak concurrency and p99 rtt.
sql="WITH c AS (SELECT server, max(peak) AS peak FROM concurrency GROUP BY server),
  l AS (SELECT server, hdr_quantile(hdr_merge(hist), 0.99) AS p99 FROM latency WHERE metric = 'rtt' GROUP BY server)
SELECT c.server, c.peak, l.p99 FROM c LEFT JOIN l ON c.server = l.server ORDER BY c.server"
[ -s "$file" ] || { echo "no $file: run bash benches/replay_vs_duckdb.sh first" >&2; exit 1; }
cat "$file" > /dev/null # warm the page cache
out=$(mktemp)
for i in $(seq "$rounds"); do
  for side in a b; do
    bin=$a; [ "$side" = b ] && bin=$b
    /usr/bin/time -f "$side %e %M" -a -o "$out" "$bin" replay "$file" --sql "$sql" --format csv > /dev/null 2>&1
  done
done
python3 - "$out" "$a" "$b" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
for side, name in (("a", sys.argv[2]), ("b", sys.argv[3])):
    t = [float(r[1]) for r in rows if r[0] == side]
    m = [int(r[2]) / 1024 for r in rows if r[0] == side]
    print(f"{side}: {name}\n   wall median {statistics.median(t):.3f} s, best {min(t):.3f} s of {len(t)}; peak RSS median {statistics.median(m):.0f} MiB")
ta = statistics.median(float(r[1]) for r in rows if r[0] == "a")
tb = statistics.median(float(r[1]) for r in rows if r[0] == "b")
print(f"b / a median wall time = {tb / ta:.3f}")
PY
rm -f "$out"
