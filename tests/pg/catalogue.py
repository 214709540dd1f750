"""Runs the catalogue queries Grafana and DBeaver send (tests/pg/catalogue/*.sql) through
psycopg, that is through the extended protocol as JDBC and Grafana's Go driver send them, and
fails on the first error. Run by tests/it/postgres.rs: python catalogue.py PG_HOST PG_PORT FILE...
"""
import sys

import psycopg

host, port, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
with psycopg.connect(host=host, port=port, user="gatewatch", dbname="gatewatch", autocommit=True) as conn:
    ids = {
        "public_oid": conn.execute("SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = 'public'").fetchone()[0],
        "concurrency_oid": conn.execute("SELECT oid FROM pg_catalog.pg_class WHERE relname = 'concurrency'").fetchone()[0],
    }
    for path in files:
        text = open(path).read()
        blocks = [b for b in text.split("\n;\n") if b.strip() and not all(l.startswith("--") for l in b.strip().splitlines())]
        for block in blocks:
            sql = "\n".join(l for l in block.splitlines() if not l.startswith("--")).strip()
            sql = sql.replace("{public_oid}", str(ids["public_oid"])).replace("{concurrency_oid}", str(ids["concurrency_oid"]))
            try:
                cur = conn.execute(sql)
                rows = cur.fetchall() if cur.description else []
            except psycopg.Error as e:
                sys.exit(f"{path}: {e.sqlstate} {e}\n--- statement\n{sql}")
            print(f"{path.rsplit('/', 1)[-1]}: {len(rows)} rows: {sql.splitlines()[0][:70]}")
print("catalogue.py: every statement answered")
