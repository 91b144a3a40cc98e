#!/usr/bin/env bash
# Benchmark of the controller against moto: wall time and API calls of a
# full apply from empty, a no-op diff and a no-op apply.
#
#   controller/bench/run.sh [RUNS]     (default 5 runs of each)
#
# It starts its own moto server on a free loopback port and stops it after.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs="${1:-5}"

scripts/local-cloud.sh install
cargo build --quiet -p controller
bin=target/debug/controller

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
work=$(mktemp -d)
moto_server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://127.0.0.1:$port/moto-api/" 2>/dev/null && break; sleep 0.1; done

# The engine alone: functions take prebuilt image URIs (image builds are
# measured by controller/bench/images.sh when it exists, and by the image tests).
sed -e "s|^endpoint_url = .*|endpoint_url = \"http://127.0.0.1:$port\"|" \
    -e 's|^image = {.*package = "\([a-z]*\)".*|image_uri = "127.0.0.1:5000/anomaly-local/\1:v1"|' \
    config/local.toml >"$work/bench.toml"
export PANTHER_API_TOKEN=bench-token
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing CONTROLLER_LOG=warn

# Runs one command, prints "<seconds> <total calls> <mutating calls>".
measure() {
    local start end
    start=$(date +%s%N)
    "$bin" "$@" "$work/bench.toml" --output json >"$work/out.json" || [ $? -eq 2 ]
    end=$(date +%s%N)
    python3 - "$work/out.json" "$start" "$end" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
calls = report.get("calls") or report.get("outcome", {}).get("calls", {})
print((int(sys.argv[3]) - int(sys.argv[2])) / 1e9, calls.get("total", 0), calls.get("mutating", 0))
PY
}

declare -A results
for _ in $(seq 1 "$runs"); do
    curl -fsS -X POST "http://127.0.0.1:$port/moto-api/reset" >/dev/null
    results[full]+="$(measure apply)"$'\n'
    results[diff]+="$(measure diff)"$'\n'
    results[noop]+="$(measure apply)"$'\n'
done

python3 - "$runs" <<PY
import statistics, sys
rows = {"apply from empty": """${results[full]}""", "no-op diff": """${results[diff]}""", "no-op apply": """${results[noop]}"""}
print(f"controller against moto, {sys.argv[1]} runs each (median; debug build)")
print(f"{'scenario':<18}{'wall s':>9}{'API calls':>11}{'mutating':>10}")
for name, text in rows.items():
    values = [list(map(float, line.split())) for line in text.strip().splitlines()]
    wall = statistics.median(v[0] for v in values)
    calls = statistics.median(v[1] for v in values)
    mutating = statistics.median(v[2] for v in values)
    print(f"{name:<18}{wall:>9.3f}{calls:>11.0f}{mutating:>10.0f}")
PY
