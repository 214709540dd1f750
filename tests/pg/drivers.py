"""psycopg 3 and pandas against gatewatch's PostgreSQL front door, each answer checked against
the same question asked over POST /api/sql (JSON). Run by tests/it/postgres.rs:

    python drivers.py PG_HOST PG_PORT HTTP_URL

Exits non-zero with the first difference. psycopg sends every query through the extended
protocol (Parse/Bind/Execute) with typed parameters: a `timestamptz` for a datetime, `int8` or
`int2` for an int, text for a str.
"""
import datetime as dt
import json
import sys
import urllib.request
import warnings

import pandas as pd
import psycopg

host, port, http = sys.argv[1], int(sys.argv[2]), sys.argv[3]
UTC = dt.timezone.utc
WINDOW = (dt.datetime(2020, 3, 24, 8, 30, tzinfo=UTC), dt.datetime(2020, 3, 24, 9, 15, tzinfo=UTC))


def over_http(sql):
    req = urllib.request.Request(
        http + "/api/sql",
        data=sql.encode(),
        headers={"Content-Type": "text/plain", "Accept": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)


def comparable(v):
    """One value as both sides can say it: instants as epoch milliseconds, numbers as floats."""
    if v is None or (isinstance(v, float) and v != v):
        return None
    if isinstance(v, (dt.datetime, pd.Timestamp)):
        return round(v.timestamp() * 1000)
    if isinstance(v, str) and len(v) >= 19 and v[4] == "-" and v[10] in "T ":
        return round(dt.datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp() * 1000)
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return float(v)
    if hasattr(v, "item"):  # numpy scalars
        return comparable(v.item())
    return v


def same(name, got_rows, columns, http_rows):
    want = [[comparable(r.get(c)) for c in columns] for r in http_rows]
    got = [[comparable(v) for v in row] for row in got_rows]
    if got != want:
        sys.exit(f"{name}: PostgreSQL and HTTP differ\n  pg:   {got[:5]}\n  http: {want[:5]}")
    if not got:
        sys.exit(f"{name}: no rows, nothing compared")
    print(f"{name}: {len(got)} rows equal")


def literal(t):
    return "TIMESTAMP '" + t.strftime("%Y-%m-%d %H:%M:%S") + "'"


with psycopg.connect(host=host, port=port, user="gatewatch", dbname="gatewatch") as conn:
    # Parameters: a timestamp window and a server name, in a per-server peak question.
    sql = (
        "SELECT server, max(sessions) AS peak, sum(connects) AS connects FROM concurrency"
        " WHERE ts >= %s AND ts < %s AND server <> %s GROUP BY server ORDER BY server"
    )
    cur = conn.execute(sql, (WINDOW[0], WINDOW[1], "gw-99"))
    cols = [d.name for d in cur.description]
    ref = over_http(
        sql.replace("%s", literal(WINDOW[0]), 1).replace("%s", literal(WINDOW[1]), 1).replace("%s", "'gw-99'", 1)
    )
    same("psycopg, parameters", cur.fetchall(), cols, ref)

    # Types: what each column is said to be.
    cur = conn.execute("SELECT ts, server, sessions, capacity FROM concurrency LIMIT 1")
    oids = [d.type_code for d in cur.description]
    if oids != [1184, 25, 20, 20]:
        sys.exit(f"concurrency column types: {oids}, expected timestamptz, text, int8, int8")
    cur = conn.execute("SELECT minute, hist, hdr_quantile(hist, 0.99) AS p99 FROM latency LIMIT 1")
    oids = [d.type_code for d in cur.description]
    if oids != [1184, 17, 701]:
        sys.exit(f"latency column types: {oids}, expected timestamptz, bytea, float8")

    # Binary results: the same rows as text results.
    q = "SELECT minute, server, metric, hist, hdr_quantile(hist, 0.5) AS p50 FROM latency ORDER BY minute, server, metric LIMIT 50"
    text_rows = conn.execute(q).fetchall()
    binary_rows = conn.cursor(binary=True).execute(q).fetchall()
    if text_rows != binary_rows:
        sys.exit("binary and text results differ")
    print(f"binary results: {len(binary_rows)} rows equal to text")

    # A NULL through a parameter, and an integer parameter for a bigint column.
    cur = conn.execute(
        "SELECT count(*) AS n FROM concurrency WHERE sessions >= %s AND (capacity = %s OR %s IS NULL)",
        (5, None, None),
    )
    ref = over_http("SELECT count(*) AS n FROM concurrency WHERE sessions >= 5")
    same("psycopg, int and NULL parameters", cur.fetchall(), ["n"], ref)

    # pandas read_sql with parameters over a timestamp window (pandas warns that a bare DBAPI
    # connection is untested: that is psycopg's connection, which is what analysts use).
    warnings.simplefilter("ignore", UserWarning)
    frame = pd.read_sql(
        "SELECT minute, server, hdr_quantile(hdr_merge(hist), 0.99) AS p99 FROM latency"
        " WHERE metric = %(metric)s AND minute >= %(start)s AND minute < %(end)s"
        " GROUP BY minute, server ORDER BY minute, server",
        conn,
        params={"metric": "setup", "start": WINDOW[0], "end": WINDOW[1]},
    )
    ref = over_http(
        "SELECT minute, server, hdr_quantile(hdr_merge(hist), 0.99) AS p99 FROM latency"
        f" WHERE metric = 'setup' AND minute >= {literal(WINDOW[0])} AND minute < {literal(WINDOW[1])}"
        " GROUP BY minute, server ORDER BY minute, server"
    )
    if str(frame["minute"].dtype) not in ("datetime64[us, UTC]", "datetime64[ns, UTC]"):
        sys.exit(f"pandas reads minute as {frame['minute'].dtype}, not a UTC datetime")
    same("pandas read_sql", frame.itertuples(index=False), list(frame.columns), ref)

    # Session statements drivers send.
    conn.execute("SET application_name = 'drivers.py'")
    name = conn.execute("SHOW application_name").fetchone()[0]
    if name != "drivers.py":
        sys.exit(f"SHOW application_name said {name!r}")
    # psycopg opened a transaction for all of the above (it is not in autocommit mode).
    conn.commit()
print("drivers.py: all checks passed")
