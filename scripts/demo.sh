#!/usr/bin/env bash
# The whole system on this machine: starts the local cloud, converges
# config/local.toml, trains a model from a simulated organisation's events,
# serves the detection function and asks it about a normal and an
# anomalous event.
set -euo pipefail
cd "$(dirname "$0")/.."
state=.local-cloud
endpoint=http://127.0.0.1:4566
port="${DETECTION_PORT:-8080}"
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "Starting the local cloud (moto on $endpoint)"
scripts/local-cloud.sh start

step "Building the controller and the functions"
cargo build --quiet -p controller -p training -p detection
bin=target/debug

# The local cloud accepts any credentials; real AWS uses your own chain.
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-local}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-local}"
export AWS_REGION=us-east-1

step "controller apply config/local.toml"
"$bin/controller" apply config/local.toml

step "controller diff config/local.toml (exit 0: in sync)"
"$bin/controller" diff config/local.toml

step "Training a model on 20,000 simulated events and publishing it to the model bucket"
mkdir -p "$state"
"$bin/training" generate --count 20000 --seed 7 --out "$state/events.jsonl"
AWS_ENDPOINT_URL="$endpoint" "$bin/training" train --source "file:$state/events.jsonl" \
    --bucket anomaly-local-models --prefix models/ --min-events 1000

step "Serving the detection function on http://127.0.0.1:$port"
if [ -f "$state/detection.pid" ] && kill -0 "$(cat "$state/detection.pid")" 2>/dev/null; then
    kill "$(cat "$state/detection.pid")"; sleep 0.5
fi
AWS_ENDPOINT_URL="$endpoint" MODEL_BUCKET=anomaly-local-models MODEL_PREFIX=models/ \
    nohup "$bin/detection" serve --port "$port" >"$state/detection.log" 2>&1 &
echo $! >"$state/detection.pid"
for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null && break; sleep 0.1; done

step "curl http://127.0.0.1:$port/health"
curl -sS "http://127.0.0.1:$port/health"; echo

normal=$(head -n 1 "$state/events.jsonl")
step "curl -X POST /detect with a normal event from the organisation"
echo "$normal"
curl -sS -X POST "http://127.0.0.1:$port/detect" -H 'Content-Type: application/json' -d "$normal" \
    | python3 -c 'import json,sys; r=json.load(sys.stdin); print(json.dumps({k: r[k] for k in ("is_anomaly","anomaly_score","threshold","suspicious_features")}, indent=2))'

anomalous='{"eventName": "DeleteConfigRule", "awsRegion": "us-east-1", "sourceIPAddress": "192.168.1.100", "userAgent": "curl/7.68.0", "recipientAccountId": 999999999999, "p_event_time": "2024-06-27 03:15:22"}'
step "curl -X POST /detect with an anomalous event"
echo "$anomalous"
curl -sS -X POST "http://127.0.0.1:$port/detect" -H 'Content-Type: application/json' -d "$anomalous" | python3 -m json.tool

cat <<EOT

The deployment runs against the local cloud; detection answers on http://127.0.0.1:$port.
Next:
  $bin/controller diff config/local.toml                     # drift, field by field
  $bin/controller destroy config/local.toml --yes            # keeps the model bucket
  $bin/controller destroy config/local.toml --yes --delete-bucket
  kill \$(cat $state/detection.pid); scripts/local-cloud.sh stop
EOT
