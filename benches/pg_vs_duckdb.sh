#!/usr/bin/env bash
# gatewatch's PostgreSQL front door vs DuckDB on the same Parquet archive, in one run.
# Usage: bash benches/pg_vs_duckdb.sh [DAYS]    (default 7: 16-22 March 2020, ~1.7M events)
# Generates the NDJSON into bench-data/ (once), builds the archive next to it (once), then runs
# benches/pg_vs_duckdb.rs (release), which serves both and runs benches/pg_vs_duckdb.py.
# The Python side (psycopg, duckdb) and psql come from tests/pg/clients.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
days=${1:-7}
eval "$(bash tests/pg/clients.sh install | sed 's/^/export /')"
mkdir -p bench-data
data=bench-data/march-2020-${days}d.ndjson
if [ ! -s "$data" ]; then
  cargo build --release --quiet
  "${CARGO_TARGET_DIR:-target}/release/gatewatch" simulate --scenario march-2020 --start 2020-03-16 \
    --days "$days" --seed 1 --out "$data"
fi
GATEWATCH_BENCH_PYTHON="$PYTHON" cargo bench --quiet --bench pg_vs_duckdb -- "$data"
