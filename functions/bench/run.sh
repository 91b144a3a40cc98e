#!/usr/bin/env bash
# Benchmarks the functions side by side with the old scikit-learn pipeline.
# Usage: functions/bench/run.sh [--sizes 100000,1000000] [--seconds 10] [--connections 8] [--keep]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
cargo build --release -p training -p detection --examples --bins
python3 -c "import sklearn, pandas, boto3" 2>/dev/null || python3 -m pip install --quiet scikit-learn pandas boto3
command -v moto_server >/dev/null || python3 -m pip install --quiet "moto[server]==5.2.1"
RUST_LOG="${RUST_LOG:-warn}" exec python3 "$here/bench.py" "$@"
