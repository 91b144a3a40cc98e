#!/usr/bin/env bash
# Runs the whole test suite: installs the local cloud if it is missing,
# checks formatting and lints, then runs every test of the workspace.
# Tests that need AWS get their own moto server from the test harness.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/local-cloud.sh install
# The image tests build with the Docker daemon (each starts its own registry).
scripts/local-cloud.sh engine
export CARGO_INCREMENTAL=0
export CARGO_TERM_COLOR=never

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "==> cargo test"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole workspace (cargo prints one per test binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?$/) p += $i; if ($(i+1) ~ /^failed;?$/) f += $i } }
     END { printf "workspace: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
