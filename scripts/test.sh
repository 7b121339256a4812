#!/usr/bin/env bash
# The whole test suite, from a fresh machine: install what is missing, then format, lints, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# A test run is a one-off build: incremental caches would only double the disk it needs.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
