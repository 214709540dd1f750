#!/usr/bin/env bash
# A cluster of three members against one instance holding everything, in one run: fan-out ratio,
# bytes read by the member asked, recovery from a kill -9 (see benches/cluster.py).
# Usage: bash benches/cluster.sh [DAYS] [ROUNDS]     (default 3 days, 7 rounds)
set -euo pipefail
cd "$(dirname "$0")/.."
days=${1:-3}
rounds=${2:-7}
cargo build --release --quiet --bin gatewatch
python3 benches/cluster.py "${CARGO_TARGET_DIR:-target}/release/gatewatch" "$days" "$rounds"
