#!/usr/bin/env bash
# Benchmark of the controller against moto: wall time and API calls of a
# full apply from empty, a no-op diff and a no-op apply.
#
#   controller/bench/run.sh [RUNS] [BASELINE]   (default 5 runs of each)
#
# With BASELINE (another build of the controller binary, e.g. of an earlier
# commit), both binaries run each scenario in turn against the same moto
# server and the table gains the baseline's figures and the ratio.
# It starts its own moto server on a free loopback port and stops it after.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs="${1:-5}"
baseline="${2:-}"

scripts/local-cloud.sh install
cargo build --quiet -p controller
bin="${CARGO_TARGET_DIR:-target}/debug/controller"

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

# The account's API Gateway CloudWatch Logs role (account-wide; access logs
# need it), set after each reset of moto.
account_role() {
    python3 - "http://127.0.0.1:$port" <<'PY'
import sys, boto3
endpoint = sys.argv[1]
iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1")
apigateway = boto3.client("apigateway", endpoint_url=endpoint, region_name="us-east-1")
trust = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"apigateway.amazonaws.com"},"Action":"sts:AssumeRole"}]}'
arn = iam.create_role(RoleName="apigateway-cloudwatch-logs", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
apigateway.update_account(patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": arn}])
PY
}

# Runs one command of binary $1, prints "<seconds> <total calls> <mutating calls>".
measure() {
    local start end program="$1"
    shift
    start=$(date +%s%N)
    "$program" "$@" "$work/bench.toml" --output json >"$work/out.json" || [ $? -eq 2 ]
    end=$(date +%s%N)
    python3 - "$work/out.json" "$start" "$end" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
calls = report.get("calls") or report.get("outcome", {}).get("calls", {})
print((int(sys.argv[3]) - int(sys.argv[2])) / 1e9, calls.get("total", 0), calls.get("mutating", 0))
PY
}

declare -A results
programs=(current)
[ -n "$baseline" ] && programs+=(baseline)
for _ in $(seq 1 "$runs"); do
    for program in "${programs[@]}"; do
        binary="$bin"
        [ "$program" = baseline ] && binary="$baseline"
        curl -fsS -X POST "http://127.0.0.1:$port/moto-api/reset" >/dev/null
        account_role
        results[$program.full]+="$(measure "$binary" apply)"$'\n'
        results[$program.diff]+="$(measure "$binary" diff)"$'\n'
        results[$program.noop]+="$(measure "$binary" apply)"$'\n'
    done
done

python3 - "$runs" "${programs[*]}" <<PY
import statistics, sys
programs = sys.argv[2].split()
texts = {
    "current": {"apply from empty": """${results[current.full]}""", "no-op diff": """${results[current.diff]}""", "no-op apply": """${results[current.noop]}"""},
    "baseline": {"apply from empty": """${results[baseline.full]:-}""", "no-op diff": """${results[baseline.diff]:-}""", "no-op apply": """${results[baseline.noop]:-}"""},
}
def medians(text):
    values = [list(map(float, line.split())) for line in text.strip().splitlines()]
    return [statistics.median(v[i] for v in values) for i in range(3)]
print(f"controller against moto, {sys.argv[1]} runs each (median; debug build)")
header = f"{'scenario':<18}{'wall s':>9}{'API calls':>11}{'mutating':>10}"
if "baseline" in programs:
    header += f"{'base s':>9}{'base calls':>12}{'base mut':>10}{'wall ratio':>12}"
print(header)
for name in texts["current"]:
    wall, calls, mutating = medians(texts["current"][name])
    line = f"{name:<18}{wall:>9.3f}{calls:>11.0f}{mutating:>10.0f}"
    if "baseline" in programs:
        base_wall, base_calls, base_mutating = medians(texts["baseline"][name])
        line += f"{base_wall:>9.3f}{base_calls:>12.0f}{base_mutating:>10.0f}{wall / base_wall:>12.2f}"
    print(line)
PY
