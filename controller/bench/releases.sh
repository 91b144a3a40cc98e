#!/usr/bin/env bash
# Benchmark of releases against moto, in one run:
#  1. a no-op apply of the local config without releases and with both
#     functions released through an alias (canary for detection): wall
#     time and API calls side by side, and their ratio;
#  2. the time from an alarm going into ALARM during a canary shift to the
#     alias being back on the old version, with the daemon running the
#     shift (`run --mode enforce`) at two intervals (it reads the alarms
#     each time it requeues the shift: a tenth of the interval, at most
#     10 s), and with a waiting `apply` (alarm_check_seconds = 1).
#
#   controller/bench/releases.sh [RUNS]      (default 5)
#
# BIN=path/to/controller uses that binary instead of building the debug one.
# It starts its own moto server on a free loopback port and stops it after.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs="${1:-5}"

command -v moto_server >/dev/null || scripts/local-cloud.sh install
if [ -z "${BIN:-}" ]; then
    cargo build --quiet -p controller
    BIN="${CARGO_TARGET_DIR:-target}/debug/controller"
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
work=$(mktemp -d)
moto_server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://127.0.0.1:$port/moto-api/" 2>/dev/null && break; sleep 0.1; done

sed -e "s|^endpoint_url = .*|endpoint_url = \"http://127.0.0.1:$port\"|" \
    -e 's|^image = {.*package = "\([a-z]*\)".*|image_uri = "127.0.0.1:5000/anomaly-local/\1:v1"|' \
    config/local.toml >"$work/plain.toml"
export PANTHER_API_TOKEN=bench-token
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing CONTROLLER_LOG=warn
export CONTROLLER_LEASE_TTL=5s
python3 controller/bench/releases.py "$BIN" "http://127.0.0.1:$port" "$work" "$runs"
