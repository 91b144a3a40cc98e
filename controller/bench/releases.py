"""The release benchmark's driver (see releases.sh): runs the controller
binary against a moto server and prints the figures."""

import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

import boto3

binary, endpoint, work, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
region = "us-east-1"
lam = boto3.client("lambda", endpoint_url=endpoint, region_name=region)
cloudwatch = boto3.client("cloudwatch", endpoint_url=endpoint, region_name=region)
DETECTION = "anomaly-local-detection"
ALARM = "anomaly-local-detection-errors"
plain = open(os.path.join(work, "plain.toml")).read()


def config(name, text):
    path = os.path.join(work, name)
    with open(path, "w") as file:
        file.write(text)
    return path


def released(strategy, image="v1", check=1):
    return plain.replace("detection:v1", f"detection:{image}") + (
        f"\n[functions.detection.release]\n{strategy}\nalarm_check_seconds = {check}\n"
        "\n[functions.training.release]\n"
    )


def reset():
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"))
    iam = boto3.client("iam", endpoint_url=endpoint, region_name=region)
    apigateway = boto3.client("apigateway", endpoint_url=endpoint, region_name=region)
    trust = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"apigateway.amazonaws.com"},"Action":"sts:AssumeRole"}]}'
    arn = iam.create_role(RoleName="apigateway-cloudwatch-logs", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    apigateway.update_account(patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": arn}])


def run(*args, check=True):
    result = subprocess.run([binary, *args], capture_output=True, text=True)
    if check and result.returncode not in (0, 2):
        sys.exit(f"{args}: exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def noop_apply(path):
    run("apply", path, "--yes")
    start = time.monotonic()
    report = json.loads(run("apply", path, "--yes", "--output", "json").stdout)
    wall = time.monotonic() - start
    assert report["changed"] is False, report
    return wall, report["calls"]["total"], report["calls"]["mutating"]


def alias():
    answer = lam.get_alias(FunctionName=DETECTION, Name="live")
    return answer["FunctionVersion"], answer.get("RoutingConfig", {}).get("AdditionalVersionWeights", {})


def wait(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        time.sleep(0.02)
    sys.exit(f"timed out waiting for {what}: alias {alias()}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alarm_to_rollback(interval):
    """Seconds from SetAlarmState ALARM to the alias back on version 1,
    the shift run by the daemon (interval given) or by apply (None)."""
    reset()
    canary = 'strategy = "canary"\ncanary = { percent = 10, minutes = 10 }'
    run("apply", config("v1.toml", released(canary)), "--yes")
    path = config("v2.toml", released(canary, image="v2"))
    if interval is None:
        process = subprocess.Popen([binary, "apply", path, "--yes"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    else:
        process = subprocess.Popen(
            [binary, "run", path, "--mode", "enforce", "--interval", interval, "--listen", f"127.0.0.1:{free_port()}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait(lambda: "2" in alias()[1], 120, "the canary step")
        time.sleep(0.5)
        start = time.monotonic()
        cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="ALARM", StateReason="benchmark")
        end = wait(lambda: alias() == ("1", {}), 120, "the rollback")
        return end - start
    finally:
        process.terminate()
        process.wait()


print(f"releases against moto, {runs} runs each (median; {os.path.basename(binary)})")
print()
rows = {}
for _ in range(runs):
    for name, text in [
        ("without releases", plain),
        ("with releases", released('strategy = "canary"')),
    ]:
        reset()
        rows.setdefault(name, []).append(noop_apply(config("noop.toml", text)))
print(f"{'no-op apply':<20}{'wall s':>9}{'API calls':>11}{'mutating':>10}")
medians = {}
for name, values in rows.items():
    medians[name] = [statistics.median(v[i] for v in values) for i in range(3)]
    wall, calls, mutating = medians[name]
    print(f"{name:<20}{wall:>9.3f}{calls:>11.0f}{mutating:>10.0f}")
ratio_wall = medians["with releases"][0] / medians["without releases"][0]
ratio_calls = medians["with releases"][1] / medians["without releases"][1]
print(f"{'ratio':<20}{ratio_wall:>9.2f}{ratio_calls:>11.2f}")
print()
print(f"{'alarm to rollback':<34}{'median s':>9}{'max s':>8}")
for label, interval in [("daemon, --interval 10s", "10s"), ("daemon, --interval 60s", "60s"), ("apply, alarm_check_seconds = 1", None)]:
    times = [alarm_to_rollback(interval) for _ in range(runs)]
    print(f"{label:<34}{statistics.median(times):>9.2f}{max(times):>8.2f}")
