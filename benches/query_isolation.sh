#!/usr/bin/env bash
# Ingest rate of the live service while runaway queries run vs while idle, one run, same broker
# and topic. Starts tansu (tests/kafka/tansu.sh) unless GATEWATCH_BENCH_BROKERS is set.
# Usage: bash benches/query_isolation.sh [DAYS]   (about 250k events per simulated weekday)
set -euo pipefail
cd "$(dirname "$0")/.."
export GATEWATCH_BENCH_DAYS="${1:-12}"
if [ -z "${GATEWATCH_BENCH_BROKERS:-}" ]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  GATEWATCH_BENCH_BROKERS=$(bash tests/kafka/tansu.sh start "$port" $$)
  export GATEWATCH_BENCH_BROKERS
fi
cargo bench --bench query_isolation
