#!/usr/bin/env bash
# gatewatch replay vs DuckDB on the same NDJSON and the same question (per-server peak
# concurrency and p99 rtt), in one run. Usage: bash benches/replay_vs_duckdb.sh [DAYS]
# (GATEWATCH_BIN=path: that binary, no build)
# Generates ~250k events per simulated weekday (12 days from 16 March ≈ 3M events, ≈ 400 MB) into bench-data/.
set -euo pipefail
cd "$(dirname "$0")/.."
days=${1:-12}
mkdir -p bench-data
if [ ! -x .venv-bench/bin/python ]; then
  python3 -m venv .venv-bench
  .venv-bench/bin/pip install -q duckdb
fi
if [ -z "${GATEWATCH_BIN:-}" ]; then
  cargo build --release --quiet
fi
export GATEWATCH_BIN="${GATEWATCH_BIN:-${CARGO_TARGET_DIR:-target}/release/gatewatch}"
data=bench-data/march-2020-${days}d.ndjson
if [ ! -s "$data" ]; then
  "$GATEWATCH_BIN" simulate --scenario march-2020 --start 2020-03-16 --days "$days" --seed 1 --out "$data"
fi
exec .venv-bench/bin/python benches/replay_vs_duckdb.py "$data"
