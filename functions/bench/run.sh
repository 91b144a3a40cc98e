#!/usr/bin/env bash
# Benchmarks the functions side by side with the first model (the revision named by
# BASELINE_REV, built once into the target directory) and the old scikit-learn
# pipeline, in one run.
# Usage: functions/bench/run.sh [--sizes 100000,1000000] [--seconds 10] [--connections 8] [--runs 3] [--keep]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"
# The last revision whose model is the first one (file format 1).
baseline_rev="${BASELINE_REV:-6a61686}"
baseline="$target/bench-baseline"
if [ "$(cat "$baseline/REVISION" 2>/dev/null)" != "$baseline_rev" ]; then
  echo "building the first model's functions ($baseline_rev) into $baseline"
  tree="$(mktemp -d)/source"
  git worktree add --quiet --detach "$tree" "$baseline_rev"
  trap 'git worktree remove --force "$tree" 2>/dev/null || true' EXIT
  CARGO_TARGET_DIR="$target" cargo build --release --manifest-path "$tree/Cargo.toml" \
    -p training -p detection --examples --bins
  mkdir -p "$baseline"
  cp "$target/release/training" "$target/release/detection" \
     "$target/release/examples/score_latency" "$target/release/examples/http_load" "$baseline/"
  echo "$baseline_rev" > "$baseline/REVISION"
  git worktree remove --force "$tree"
  trap - EXIT
fi
cargo build --release -p training -p detection --examples --bins
python3 -c "import sklearn, pandas, boto3" 2>/dev/null || python3 -m pip install --quiet scikit-learn pandas boto3
command -v moto_server >/dev/null || python3 -m pip install --quiet "moto[server]==5.2.1"
RUST_LOG="${RUST_LOG:-warn}" CARGO_TARGET_DIR="$target" exec python3 "$here/bench.py" "$@"
