#!/usr/bin/env bash
# Real PostgreSQL clients for the front-door tests (tests/it/postgres.rs), installed once per
# machine and reused:
#   - Debian's psql (postgresql-client; 15 on Debian 12),
#   - psql 16 for `\bind` (psql 15 has none): the client shipped in the PyPI wheel pgserver,
#   - psycopg 3 and pandas (PyPI), in a venv,
#   - node-postgres, `pg` (npm).
#
#   tests/pg/clients.sh install   # prints KEY=VALUE lines: PSQL, PSQL16, PYTHON, NODE_PATH
#
# The venv and node_modules live in $GATEWATCH_PG_CLIENTS_HOME (default
# ~/.cache/gatewatch/pg-clients).
set -euo pipefail

home="${GATEWATCH_PG_CLIENTS_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/gatewatch/pg-clients}"
python_packages=('psycopg[binary]==3.3.9' 'pandas==3.1.1' 'pgserver==0.1.4' 'duckdb==1.4.1' 'pytz==2025.2')
node_package='pg@8.16.3'

install() {
    if ! command -v psql >/dev/null; then
        apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends postgresql-client >&2
    fi
    mkdir -p "$home"
    if [ ! -f "$home/venv/.installed-4" ]; then
        python3 -m venv "$home/venv" >&2
        "$home/venv/bin/pip" install -q --disable-pip-version-check "${python_packages[@]}" >&2
        touch "$home/venv/.installed-4"
    fi
    if [ ! -f "$home/node/node_modules/pg/package.json" ]; then
        mkdir -p "$home/node"
        (cd "$home/node" && npm install --silent --no-audit --no-fund "$node_package" >&2)
    fi
    local pginstall
    pginstall="$("$home/venv/bin/python" -c 'import importlib.resources as r; print(r.files("pgserver")/"pginstall")' 2>/dev/null)"
    echo "PSQL=$(command -v psql)"
    echo "PSQL16=$pginstall/bin/psql"
    echo "PSQL16_LIB=$pginstall/lib"
    echo "PYTHON=$home/venv/bin/python"
    echo "NODE_PATH=$home/node/node_modules"
}

case "${1:-}" in
    install) install ;;
    *) echo "usage: $0 install" >&2; exit 2 ;;
esac
