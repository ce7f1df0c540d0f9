#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian machine and runs them all:
# lint (ruff), types (mypy), then pytest (unit tests and tests against real Triton, Prometheus,
# promtool, SQLite, systemd-analyze and tmux). This is the README's test command; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use: promtool/prometheus (alert rules, end to end), Alertmanager
# (the alerts' routing, end to end), tmux (a real terminal), systemd-analyze (the unit file).
# Installed only when missing.
need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v tmux >/dev/null 2>&1 || need+=(tmux)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
if [ ${#need[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
