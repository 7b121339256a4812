#!/usr/bin/env bash
# Builds and runs `dataplane up`: everything on this machine, on the embedded store.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec cargo run --release --locked -- up "$@"
