#!/usr/bin/env bash
# Replay rate of gateway syslog next to the JSON rate of the same story, release build, in one
# run, alternating sides (the machine's clock is noisy: medians of 3).
#   syslog: ~3M lines, six vendors mixed as a relay carries them (benches/syslog_mix.py), read
#           with --input-format auto; most lines are gateway traffic, ignored and counted.
#   json:   the JSON story of the same days (every event: sessions, latency samples, rejects).
# Both on one core (taskset -c 0, one decoding worker) and on all cores.
# Usage: benches/syslog_replay.sh [DAYS] (default 14). Data goes to bench-data/syslog/.
set -euo pipefail
cd "$(dirname "$0")/.."
days=${1:-14}
cargo build --release -q
G=${CARGO_TARGET_DIR:-target}/release/gatewatch
D=bench-data/syslog
mkdir -p "$D"
for f in json cisco-asa pulse citrix-adc globalprotect fortigate openvpn; do
  [ -s "$D/$f.log" ] || $G simulate --days "$days" --start 2020-03-16 --output-format "$f" --out "$D/$f.log" 2>/dev/null
done
[ -s "$D/mixed.log" ] || python3 benches/syslog_mix.py "$D" "$D/mixed.log"
printf '[input]\nyear = 2020\n' > "$D/year.toml"
lines() { wc -l < "$1"; }
run() { # name file format cores -> seconds
  local start end
  start=$(date +%s.%N)
  if [ "$4" = 1 ]; then
    taskset -c 0 $G replay --workers 1 --config "$D/year.toml" --input-format "$3" "$2" --sql "SELECT count(*) FROM sessions" >/dev/null 2>"$D/$1.err"
  else
    $G replay --config "$D/year.toml" --input-format "$3" "$2" --sql "SELECT count(*) FROM sessions" >/dev/null 2>"$D/$1.err"
  fi
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}
median() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
for cores in 1 all; do
  s=(); j=()
  for _ in 1 2 3; do
    j+=("$(run json "$D/json.log" json $cores)")
    s+=("$(run syslog "$D/mixed.log" auto $cores)")
  done
  js=$(median "${j[@]}"); ss=$(median "${s[@]}")
  jl=$(lines "$D/json.log"); sl=$(lines "$D/mixed.log")
  printf 'cores %-3s  json   %8d lines  %6.2f s  %5.2f M lines/s\n' "$cores" "$jl" "$js" "$(echo "$jl / $js / 1000000" | bc -l)"
  printf 'cores %-3s  syslog %8d lines  %6.2f s  %5.2f M lines/s  (auto, six vendors)\n' "$cores" "$sl" "$ss" "$(echo "$sl / $ss / 1000000" | bc -l)"
done
tail -n1 "$D/syslog.err"
