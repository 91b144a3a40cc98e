#!/usr/bin/env bash
# The whole system on this machine: starts the local cloud (moto, the Docker
# engine, a registry), converges config/local.toml (images built, pushed and
# pinned by digest; every resource created), trains a model on the sample
# events, runs the detection image as a local container serving HTTP, and
# asks it about a normal and an anomalous event.
set -euo pipefail
cd "$(dirname "$0")/.."
state=.local-cloud
endpoint=http://127.0.0.1:4566
port="${DETECTION_PORT:-8080}"
container=anomaly-detection-demo
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "Starting the local cloud: moto on $endpoint, the Docker engine, a registry on 127.0.0.1:5000"
scripts/local-cloud.sh start

step "Building the controller and the training CLI"
cargo build --quiet -p controller -p training
bin="${CARGO_TARGET_DIR:-target}/debug"

# The local cloud accepts any credentials; against AWS your own chain is used.
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-local}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-local}"
export AWS_REGION=us-east-1
# The Panther token goes to Secrets Manager at apply time; this one is a
# placeholder for the local cloud.
export PANTHER_API_TOKEN="${PANTHER_API_TOKEN:-local-demo-placeholder}"

# Access logs need API Gateway's CloudWatch Logs role, an account-wide
# setting an administrator makes once per account and Region (the
# controller checks it and does not own it): set it on the local cloud.
step "Setting the local account's API Gateway CloudWatch Logs role (once per account)"
python3 - "$endpoint" <<'PY'
import sys, boto3
endpoint = sys.argv[1]
iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1")
apigateway = boto3.client("apigateway", endpoint_url=endpoint, region_name="us-east-1")
if apigateway.get_account().get("cloudwatchRoleArn"):
    sys.exit(0)
trust = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"apigateway.amazonaws.com"},"Action":"sts:AssumeRole"}]}'
try:
    arn = iam.create_role(RoleName="apigateway-cloudwatch-logs", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
except iam.exceptions.EntityAlreadyExistsException:
    arn = iam.get_role(RoleName="apigateway-cloudwatch-logs")["Role"]["Arn"]
apigateway.update_account(patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": arn}])
PY

step "controller apply config/local.toml (the first run builds both images: several minutes)"
"$bin/controller" apply config/local.toml

step "controller diff config/local.toml (exit 0: in sync)"
"$bin/controller" diff config/local.toml

step "Training a model on the sample events and publishing it to the model bucket"
AWS_ENDPOINT_URL="$endpoint" "$bin/training" train --source file:functions/samples/events.jsonl.gz \
    --bucket anomaly-local-models --prefix models/ --min-events 1000

image=$(python3 - "$endpoint" <<'PY'
import sys, boto3
client = boto3.client("lambda", endpoint_url=sys.argv[1], region_name="us-east-1")
print(client.get_function(FunctionName="anomaly-local-detection")["Code"]["ImageUri"])
PY
)
step "Running the detection image $image on http://127.0.0.1:$port"
docker rm -f "$container" >/dev/null 2>&1 || true
docker run -d --name "$container" --network host \
    -e AWS_ENDPOINT_URL="$endpoint" -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY -e AWS_REGION \
    -e MODEL_BUCKET=anomaly-local-models -e MODEL_PREFIX=models/ \
    "$image" serve --host 127.0.0.1 --port "$port" >/dev/null
for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null && break; sleep 0.1; done

step "curl http://127.0.0.1:$port/health"
curl -sS "http://127.0.0.1:$port/health" | python3 -m json.tool

normal=$(python3 -c "import gzip; print(gzip.open('functions/samples/events.jsonl.gz', 'rt').readline().strip())")
step "curl -X POST /detect with a normal event of the organisation"
echo "$normal"
curl -sS -X POST "http://127.0.0.1:$port/detect" -H 'Content-Type: application/json' -d "$normal" \
    | python3 -c 'import json,sys; r=json.load(sys.stdin); print(json.dumps({k: r[k] for k in ("is_anomaly","anomaly_score","threshold","suspicious_features")}, indent=2))'

anomalous='{"eventName": "DeleteConfigRule", "awsRegion": "us-east-1", "sourceIPAddress": "192.168.1.100", "userAgent": "curl/7.68.0", "recipientAccountId": 999999999999, "p_event_time": "2024-06-27 03:15:22"}'
step "curl -X POST /detect with an anomalous event"
echo "$anomalous"
curl -sS -X POST "http://127.0.0.1:$port/detect" -H 'Content-Type: application/json' -d "$anomalous" \
    | python3 -c 'import json,sys; r=json.load(sys.stdin); print(json.dumps({k: r[k] for k in ("is_anomaly","anomaly_score","threshold","suspicious_features","rarity_analysis")}, indent=2))'

cat <<EOT

Running: the deployment on the local cloud (moto $endpoint, registry 127.0.0.1:5000),
and the detection image at http://127.0.0.1:$port (container $container).
Next:
  $bin/controller diff config/local.toml                              # drift, field by field (exit 2 when anything differs)
  $bin/controller run config/local.toml --interval 30s               # the reconcile loop (metrics on 127.0.0.1:9090)
  $bin/controller destroy config/local.toml --yes                     # keeps the model bucket
  $bin/controller destroy config/local.toml --yes --delete-bucket     # and the bucket with every model version
  docker rm -f $container; scripts/local-cloud.sh stop
EOT
