"""Times `gatewatch replay` and DuckDB on the same NDJSON file and question, in one run.

The question: per server, the peak number of concurrent sessions and the p99 round-trip time.
DuckDB reads the NDJSON and sweeps connect/disconnect with a window function; gatewatch decodes,
validates, deduplicates and keeps exact session state (timeouts, server down), then answers from
its `concurrency` and `latency` tables. Both may use every core. The sides take turns,
GATEWATCH_BENCH_ROUNDS times each (default 5); each side's best wall time counts. Prints both
answers and the ratio duckdb_time / gatewatch_time (>= 1.0 means gatewatch is at least as fast).
"""
import os
import subprocess
import sys
import tempfile
import time

import duckdb

data = sys.argv[1]
size_mb = os.path.getsize(data) / 1e6
with open(data, "rb") as f:
    events = sum(1 for _ in f)

cfg = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
cfg.write('[engine]\nretention = "60d"\n')
cfg.close()

GW_SQL = """
WITH c AS (SELECT server, max(peak) AS peak_concurrency FROM concurrency GROUP BY server),
     l AS (SELECT server, hdr_quantile(hdr_merge(hist), 0.99) AS rtt_p99_ms FROM latency
           WHERE metric = 'rtt' GROUP BY server)
SELECT c.server, c.peak_concurrency, l.rtt_p99_ms FROM c LEFT JOIN l ON c.server = l.server
ORDER BY c.server
"""

DUCK_SQL = f"""
WITH ev AS (
    SELECT * FROM read_ndjson('{data}', columns = {{type: 'VARCHAR', ts: 'VARCHAR', server: 'VARCHAR',
                                                   session: 'VARCHAR', rtt_ms: 'DOUBLE'}})
),
deltas AS (
    SELECT server, CAST(ts AS TIMESTAMPTZ) AS t, CASE WHEN type = 'connect' THEN 1 ELSE -1 END AS d
    FROM ev WHERE type IN ('connect', 'disconnect')
),
running AS (
    SELECT server, sum(d) OVER (PARTITION BY server ORDER BY t, d ROWS UNBOUNDED PRECEDING) AS c
    FROM deltas
),
peaks AS (SELECT server, max(c) AS peak_concurrency FROM running GROUP BY server),
rtt AS (SELECT server, quantile_disc(rtt_ms, 0.99) AS rtt_p99_ms FROM ev WHERE type = 'latency' GROUP BY server)
SELECT p.server, p.peak_concurrency, r.rtt_p99_ms FROM peaks p LEFT JOIN rtt r USING (server)
ORDER BY p.server
"""


def run_gatewatch():
    t = time.perf_counter()
    out = subprocess.run(
        [os.environ.get("GATEWATCH_BIN", "./target/release/gatewatch"), "replay", data, "--config", cfg.name, "--sql", GW_SQL, "--format", "csv"],
        check=True, capture_output=True, text=True,
    )
    return time.perf_counter() - t, out.stdout, out.stderr.strip()


def run_duckdb():
    con = duckdb.connect()
    t = time.perf_counter()
    rows = con.execute(DUCK_SQL).fetchall()
    return time.perf_counter() - t, rows


# Alternating rounds, so a slow spell of a shared machine falls on both sides alike.
rounds = int(os.environ.get("GATEWATCH_BENCH_ROUNDS", "5"))
gw, dk = [], []
for _ in range(rounds):
    gw.append(run_gatewatch())
    dk.append(run_duckdb())
gw_best = min(g[0] for g in gw)
dk_best = min(d[0] for d in dk)
print(f"input: {data}: {events} events, {size_mb:.0f} MB, {os.cpu_count()} cores")
print(f"gatewatch replay: best {gw_best:.3f} s of {[round(g[0], 3) for g in gw]}  ({events / gw_best / 1e6:.2f} M events/s)")
print(f"  {gw[0][2]}")
print(f"duckdb {duckdb.__version__}:    best {dk_best:.3f} s of {[round(d[0], 3) for d in dk]}  ({events / dk_best / 1e6:.2f} M events/s)")
print("\nanswers (gatewatch csv | duckdb):")
print(gw[0][1].strip())
for r in dk[0][1]:
    print("  duckdb:", r)
print(f"\nratio duckdb_time / gatewatch_time = {dk_best / gw_best:.2f}  (target >= 1.0, aim 1.5)")
