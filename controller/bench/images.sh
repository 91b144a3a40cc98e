#!/usr/bin/env bash
# Benchmark of apply with built images against moto, a local registry and
# the Docker daemon: an apply from empty (binaries built if needed, both
# images built and pushed) and no-op applies (a cargo no-op build, the
# content hash looked up in the registry, nothing built, pushed or changed).
#
#   controller/bench/images.sh [RUNS]     (default 5 no-op applies)
#
# It starts its own moto server and registry on free loopback ports and
# stops them after. The Docker daemon must answer (scripts/local-cloud.sh engine).
set -euo pipefail
cd "$(dirname "$0")/../.."
runs="${1:-5}"

scripts/local-cloud.sh install
docker info >/dev/null 2>&1 || { echo "the Docker daemon does not answer: scripts/local-cloud.sh engine" >&2; exit 1; }
cargo build --quiet -p controller
bin="${CARGO_TARGET_DIR:-target}/debug/controller"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
moto_port=$(free_port)
registry_port=$(free_port)
work=$(mktemp -d)
moto_server -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
moto_pid=$!
cat >"$work/registry.yml" <<EOT
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$registry_port
EOT
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
trap 'kill $moto_pid $registry_pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://127.0.0.1:$moto_port/moto-api/" 2>/dev/null && break; sleep 0.1; done
for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://127.0.0.1:$registry_port/v2/" 2>/dev/null && break; sleep 0.1; done

sed -e "s|^endpoint_url = .*|endpoint_url = \"http://127.0.0.1:$moto_port\"|" \
    -e "s|^endpoint = \"127.0.0.1:5000\"|endpoint = \"127.0.0.1:$registry_port\"|" \
    -e "s|\"\.\./docker/|\"$PWD/docker/|g" config/local.toml >"$work/bench.toml"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing CONTROLLER_LOG=warn PANTHER_API_TOKEN=bench-token

# Runs one apply, prints "<seconds> <built> <pushed> <mutating calls>".
measure() {
    local start end
    start=$(date +%s%N)
    "$bin" apply "$work/bench.toml" --output json >"$work/out.json" 2>"$work/err.log" || { cat "$work/err.log" >&2; exit 1; }
    end=$(date +%s%N)
    python3 - "$work/out.json" "$start" "$end" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
calls = report.get("calls") or report.get("outcome", {}).get("calls", {})
images = report.get("images", {})
print((int(sys.argv[3]) - int(sys.argv[2])) / 1e9, len(images.get("built", [])),
      len(images.get("pushed", [])), calls.get("mutating", 0))
PY
}

echo "apply from empty (wall s, built, pushed, mutating calls): $(measure)"
results=""
for _ in $(seq 1 "$runs"); do results+="$(measure)"$'\n'; done
python3 - "$runs" <<PY
import statistics, sys
values = [list(map(float, line.split())) for line in """$results""".strip().splitlines()]
print(f"no-op apply with images, {sys.argv[1]} runs: median {statistics.median(v[0] for v in values):.3f} s, "
      f"min {min(v[0] for v in values):.3f} s, max {max(v[0] for v in values):.3f} s; "
      f"built {max(v[1] for v in values):.0f}, pushed {max(v[2] for v in values):.0f}, mutating calls {max(v[3] for v in values):.0f}")
PY
