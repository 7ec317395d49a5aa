#!/usr/bin/env bash
# Installs what the over-the-wire benchmarks need: the peers (PyPI) and wrk (Debian).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv && .venv/bin/pip install -q -e '.[bench]'
if ! command -v wrk >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null \
            || echo "setup: wrk could not be installed; benchmarks/wire.py falls back to its Python load generator"
    else
        echo "setup: wrk is missing and this is not root; benchmarks/wire.py falls back to its Python load generator"
    fi
fi
