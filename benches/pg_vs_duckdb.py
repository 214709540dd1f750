"""Incident-window questions through psql against gatewatch's PostgreSQL front door, and the same
questions in DuckDB over the same Parquet files, in one run, alternating sides.

    python pg_vs_duckdb.py ARCHIVE_DIR ARCHIVE_PG_PORT MEMORY_PG_PORT     (benches/pg_vs_duckdb.rs)

Questions: the queries/ files that read the archived tables, restricted to a 90-minute window
(08:00-09:30 on 18 March 2020), a whole-week peak per server and a p99 setup time per day.
gatewatch answers p99s by merging its minute HdrHistograms exactly; DuckDB has no HdrHistogram,
so it answers them with quantile_disc over the raw samples in `events` (the same question, a
different route; the answers agree to HdrHistogram's 3 significant digits).

gatewatch is timed by psql's own \\timing (the round trip of each query on one open connection,
no process start), DuckDB by wall time around execute+fetchall in this process. Each round runs
every question on one side, then the other, the first side swapping each round; each side's
median over GATEWATCH_BENCH_ROUNDS rounds (default 7) counts. Then the connection cost: a new
libpq connection (psycopg) to the first row of `SELECT * FROM servers`, 50 times.
"""
import datetime as dt
import os
import re
import statistics
import subprocess
import sys
import time

import duckdb
import psycopg

archive, archive_port, memory_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ROUNDS = int(os.environ.get("GATEWATCH_BENCH_ROUNDS", "7"))
PSQL = os.environ.get("PSQL", "psql")

GW_W = "{t} >= TIMESTAMP '2020-03-18 08:00:00' AND {t} < TIMESTAMP '2020-03-18 09:30:00'"
DK_W = "{t} >= TIMESTAMPTZ '2020-03-18 08:00:00+00' AND {t} < TIMESTAMPTZ '2020-03-18 09:30:00+00'"


def both(sql, t="ts"):
    return sql.replace("{W}", GW_W.format(t=t)), sql.replace("{W}", DK_W.format(t=t))


QUESTIONS = [
    ("auth_failures_by_reason", *both(
        'SELECT type, reason, count(*) AS events, count(DISTINCT "user") AS users FROM events'
        " WHERE type IN ('auth_fail', 'reject') AND {W} GROUP BY type, reason ORDER BY type, events DESC, reason")),
    ("load_imbalance", *both(
        "SELECT ts AS second, max(sessions) AS busiest, min(sessions) AS quietest, max(sessions) - min(sessions) AS spread"
        " FROM concurrency WHERE date_part('second', ts) = 59 AND {W} GROUP BY ts HAVING avg(sessions) > 0 ORDER BY second")),
    ("login_storm", *both(
        "SELECT date_trunc('minute', ts) AS minute, sum(CASE WHEN type = 'connect' THEN 1 ELSE 0 END) AS connects,"
        " sum(CASE WHEN type = 'reject' THEN 1 ELSE 0 END) AS rejects, sum(CASE WHEN type = 'auth_fail' THEN 1 ELSE 0 END) AS auth_failures"
        " FROM events WHERE {W} AND type IN ('connect', 'reject', 'auth_fail') GROUP BY date_trunc('minute', ts) ORDER BY minute")),
    ("minutes_above_90pct", *both(
        "SELECT server, sum(CASE WHEN peak > 0.9 * capacity THEN 1 ELSE 0 END) AS minutes_above_90pct, count(*) AS minutes_observed"
        " FROM (SELECT server, date_trunc('minute', ts) AS minute, max(peak) AS peak, min(capacity) AS capacity FROM concurrency"
        " WHERE capacity IS NOT NULL AND {W} GROUP BY server, date_trunc('minute', ts)) per_minute GROUP BY server ORDER BY server")),
    ("peak_vs_capacity", *both(
        "SELECT server, max(peak) AS peak_sessions, max(capacity) AS capacity, round(100.0 * max(peak) / max(capacity), 1) AS pct"
        " FROM concurrency WHERE {W} GROUP BY server ORDER BY server")),
    ("setup_p50_p99_5min",
        "SELECT server, date_bin(INTERVAL '5 minutes', minute) AS five_min, hdr_count(hdr_merge(hist)) AS connects,"
        " hdr_quantile(hdr_merge(hist), 0.5) AS p50, hdr_quantile(hdr_merge(hist), 0.99) AS p99 FROM latency"
        " WHERE metric = 'setup' AND " + GW_W.format(t="minute") + " GROUP BY server, date_bin(INTERVAL '5 minutes', minute) ORDER BY server, five_min",
        "SELECT server, time_bucket(INTERVAL '5 minutes', ts) AS five_min, count(*) AS connects,"
        " quantile_disc(setup_ms, 0.5) AS p50, quantile_disc(setup_ms, 0.99) AS p99 FROM events"
        " WHERE setup_ms IS NOT NULL AND " + DK_W.format(t="ts") + " GROUP BY server, five_min ORDER BY server, five_min"),
    ("week_peak_per_server",
        "SELECT server, max(peak) AS peak FROM concurrency GROUP BY server ORDER BY server",
        "SELECT server, max(peak) AS peak FROM concurrency GROUP BY server ORDER BY server"),
    ("setup_p99_per_day",
        "SELECT date_trunc('day', minute) AS day, hdr_quantile(hdr_merge(hist), 0.99) AS p99 FROM latency WHERE metric = 'setup' GROUP BY 1 ORDER BY 1",
        "SELECT date_trunc('day', ts) AS day, quantile_disc(setup_ms, 0.99) AS p99 FROM events WHERE setup_ms IS NOT NULL GROUP BY 1 ORDER BY 1"),
]

duck = duckdb.connect()
duck.execute("SET TimeZone = 'UTC'")
for table in ("events", "concurrency", "latency"):
    duck.execute(
        f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{archive}/{table}/*/*/*.parquet', hive_partitioning = false)"
    )


def psql_timings(port):
    """Runs every question once in one psql session; returns ms per question and the answers."""
    script = "\\timing on\n" + "".join(q[1] + ";\n" for q in QUESTIONS)
    out = subprocess.run(
        [PSQL, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(port), "-U", "bench", "-d", "gatewatch"],
        input=script, capture_output=True, text=True, check=True,
    ).stdout
    times = [float(m) for m in re.findall(r"^Time: ([0-9.]+) ms", out, re.M)]
    assert len(times) == len(QUESTIONS), out[-2000:]
    return times, out


def duck_timings():
    times, answers = [], []
    for _, _, sql in QUESTIONS:
        t = time.perf_counter()
        rows = duck.execute(sql).fetchall()
        times.append((time.perf_counter() - t) * 1000)
        answers.append(rows)
    return times, answers


def run(port, label):
    gw, dk = [[] for _ in QUESTIONS], [[] for _ in QUESTIONS]
    for r in range(ROUNDS):
        sides = [("gw", lambda: psql_timings(port)[0]), ("duck", lambda: duck_timings()[0])]
        if r % 2:
            sides.reverse()
        for side, f in sides:
            for i, ms in enumerate(f()):
                (gw if side == "gw" else dk)[i].append(ms)
    print(f"\n{label}: median of {ROUNDS} rounds, ms (ratio = DuckDB / gatewatch; >= 1.0: gatewatch as fast or faster)")
    print(f"{'question':26} {'gatewatch':>10} {'DuckDB':>10} {'ratio':>7}")
    ratios = []
    for (name, _, _), g, d in zip(QUESTIONS, gw, dk):
        g, d = statistics.median(g), statistics.median(d)
        ratios.append(d / g)
        print(f"{name:26} {g:10.2f} {d:10.2f} {d / g:7.2f}")
    print(f"{'median ratio':26} {'':10} {'':10} {statistics.median(ratios):7.2f}")
    return statistics.median(ratios)


# The answers first: gatewatch from the archive and from memory, DuckDB from the Parquet files.
def answers(port):
    return "\n".join(l for l in psql_timings(port)[1].splitlines() if not l.startswith("Time: "))


from_archive = answers(archive_port)
from_memory = answers(memory_port)
if from_archive != from_memory:
    a, m = from_archive.splitlines(), from_memory.splitlines()
    first = next((i for i, (x, y) in enumerate(zip(a, m)) if x != y), min(len(a), len(m)))
    sys.exit(f"the archive and memory answers differ at line {first}:\n  archive: {a[first:first + 3]}\n  memory:  {m[first:first + 3]}")
_, duck_answers = duck_timings()


def per_question(out):
    """psql's rows of each question: the lines before each `Time:` line."""
    chunks, rows = [], []
    for line in out.splitlines():
        if line.startswith("Time: "):
            chunks.append(rows)
            rows = []
        elif line and line != "Timing is on.":
            rows.append(line.split("|"))
    return chunks


def value(v):
    """A cell as a number (instants as epoch seconds) where it is one, else its text."""
    if hasattr(v, "timestamp"):
        return v.timestamp()
    text = str(v)
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return dt.datetime.fromisoformat(text.replace("+00", "+00:00") if text.endswith("+00") else text).timestamp()
    except ValueError:
        return text


def agree(a, b, tolerance):
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= tolerance * max(abs(a), abs(b), 1e-9)
    return a == b


for (name, _, _), ours, theirs in zip(QUESTIONS, per_question(psql_timings(archive_port)[1]), duck_answers):
    # Percentiles: gatewatch's come from HdrHistograms (3 significant digits), DuckDB's from the
    # raw samples; everything else must be equal.
    tolerance = 0.01 if "p50" in name or "p99" in name else 1e-9
    if len(ours) != len(theirs) or not all(
        len(r) == len(t) and all(agree(value(x), value(y), tolerance) for x, y in zip(r, t))
        for r, t in zip(ours, theirs)
    ):
        sys.exit(f"{name}: gatewatch and DuckDB disagree\n  gatewatch: {ours[:3]}\n  DuckDB:    {theirs[:3]}")
rows = sum(len(a) for a in duck_answers)
print(f"archive {archive}: {len(QUESTIONS)} questions, {rows} rows; gatewatch (archive = memory) and DuckDB agree (percentiles within 1 %, the rest exactly)")

archive_ratio = run(archive_port, "archive (serve-archive over Parquet) vs DuckDB over the same Parquet")
memory_ratio = run(memory_port, "live memory (the service's tables) vs DuckDB over the Parquet")

def timed(step, n=50):
    """Median, p95 and max of `step` in ms, over n runs."""
    ms = []
    for _ in range(n):
        t = time.perf_counter()
        step()
        ms.append((time.perf_counter() - t) * 1000)
    ms.sort()
    return ms, f"median {statistics.median(ms):.2f} ms, p95 {ms[int(n * 0.95) - 1]:.2f} ms, max {ms[-1]:.2f} ms"


def connect():
    return psycopg.connect(host="127.0.0.1", port=memory_port, user="bench", dbname="gatewatch")


def first_row(sql):
    def step():
        with connect() as c:
            c.execute(sql).fetchone()
    return step


costs, said = timed(first_row("SELECT * FROM servers"))
print(f"\nnew connection to first row of SELECT * FROM servers (psycopg, loopback, 50 times): {said}")
print(f"  where it goes: connecting alone {timed(lambda: connect().close())[1]}")
print(f"                 SELECT 1 on a new connection {timed(first_row('SELECT 1'))[1]}")
with connect() as open_connection:
    print(f"                 SELECT * FROM servers on an open connection {timed(lambda: open_connection.execute('SELECT * FROM servers').fetchone())[1]}")
print(f"\nSUMMARY archive_ratio={archive_ratio:.2f} memory_ratio={memory_ratio:.2f} connect_median_ms={statistics.median(costs):.2f}")
