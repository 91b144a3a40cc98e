#!/usr/bin/env bash
# Runs the whole test suite: installs the local cloud if it is missing,
# checks formatting and lints, then runs every test of the workspace.
# Tests that need AWS get their own moto server from the test harness.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/local-cloud.sh install
export CARGO_INCREMENTAL=0
export CARGO_TERM_COLOR=never

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "==> cargo test"
cargo test --workspace
