#!/usr/bin/env bash
# Benchmark of `controller run` against moto: CPU and memory of the daemon
# over a while at a 10 s interval with a converged deployment (so: idle,
# observing only), and the AWS API calls per reconcile.
#
#   controller/bench/daemon.sh [MINUTES]      (default 10)
#
# CPU time and RSS come from /proc/<pid>; calls from the daemon's /metrics.
# BIN=path/to/controller uses that binary instead of building the debug one.
# It starts its own moto server on a free loopback port and stops it after.
set -euo pipefail
cd "$(dirname "$0")/../.."
minutes="${1:-10}"
interval="${INTERVAL:-10s}"

command -v moto_server >/dev/null || scripts/local-cloud.sh install
if [ -z "${BIN:-}" ]; then
    cargo build --quiet -p controller
    BIN="${CARGO_TARGET_DIR:-target}/debug/controller"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
listen="127.0.0.1:$(free_port)"
work=$(mktemp -d)
moto_server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto_pid=$!
daemon_pid=
cleanup() {
    [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null
    kill "$moto_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://127.0.0.1:$port/moto-api/" 2>/dev/null && break; sleep 0.1; done

# Prebuilt image URIs: the daemon's own cost, not the image builds'.
sed -e "s|^endpoint_url = .*|endpoint_url = \"http://127.0.0.1:$port\"|" \
    -e 's|^image = {.*package = "\([a-z]*\)".*|image_uri = "127.0.0.1:5000/anomaly-local/\1:v1"|' \
    config/local.toml >"$work/bench.toml"
export PANTHER_API_TOKEN=bench-token
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing CONTROLLER_LOG=warn
"$BIN" apply "$work/bench.toml" --output json >/dev/null

"$BIN" run "$work/bench.toml" --interval "$interval" --listen "$listen" 2>"$work/daemon.log" &
daemon_pid=$!
for _ in $(seq 1 200); do curl -fsS -o /dev/null "http://$listen/readyz" 2>/dev/null && break; sleep 0.1; done

metric() { curl -fsS "http://$listen/metrics" | awk -v name="$1" '$1 == name { print $2 }'; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$daemon_pid/stat"; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$daemon_pid/status"; }

hz=$(getconf CLK_TCK)
reconciles_before=$(metric controller_reconciles_total)
calls_before=$(metric controller_api_calls_total)
ticks_before=$(cpu_ticks)
start=$(date +%s.%N)
rss_min=$(rss_kib); rss_max=$rss_min; rss_sum=0; samples=0
end_at=$(( $(date +%s) + minutes * 60 ))
while [ "$(date +%s)" -lt "$end_at" ]; do
    sleep 5
    rss=$(rss_kib)
    rss_sum=$((rss_sum + rss)); samples=$((samples + 1))
    [ "$rss" -gt "$rss_max" ] && rss_max=$rss
    [ "$rss" -lt "$rss_min" ] && rss_min=$rss
done
ticks_after=$(cpu_ticks)
elapsed=$(echo "$(date +%s.%N) - $start" | bc -l)
reconciles=$(( $(metric controller_reconciles_total) - reconciles_before ))
calls=$(( $(metric controller_api_calls_total) - calls_before ))
mutating=$(metric controller_mutating_calls_total)
drifted=$(curl -fsS "http://$listen/metrics" | awk '$1 ~ /^controller_drifted_resources/ { s += $2 } END { print s + 0 }')

cpu_seconds=$(echo "($ticks_after - $ticks_before) / $hz" | bc -l)
printf 'daemon benchmark: %s at --interval %s, converged deployment (%s drifted)\n' "$(printf '%.0f s' "$elapsed")" "$interval" "$drifted"
printf '  reconciles        %d\n' "$reconciles"
printf '  CPU               %.2f s in total, %.3f %% of one core, %.1f ms per reconcile\n' \
    "$cpu_seconds" "$(echo "$cpu_seconds / $elapsed * 100" | bc -l)" "$(echo "$cpu_seconds * 1000 / ($reconciles + 0.000001)" | bc -l)"
printf '  RSS               min %d KiB, mean %d KiB, max %d KiB\n' "$rss_min" "$((rss_sum / (samples > 0 ? samples : 1)))" "$rss_max"
printf '  API calls         %d in total, %.1f per reconcile, %s mutating\n' "$calls" "$(echo "$calls / ($reconciles + 0.000001)" | bc -l)" "$mutating"
