"""Runs the functions side by side with the first model's functions (the revision
run.sh builds into $CARGO_TARGET_DIR/bench-baseline) and the old scikit-learn pipeline.

Measures training time and peak memory per data size (end to end: reading the JSON
Lines file, training, writing the model), single-event scoring latency in process
(read from JSON text, score, explain, write the answer), /detect throughput over HTTP
(one event per request, and batches of 100), and cold start (process start to first
/detect answer with the model loaded from S3, served by a local moto_server). Prints a
table with ratios (above 1 means the new functions are faster or smaller).
"""
import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
REL = os.path.join(TARGET, "release")
TRAINING = os.path.join(REL, "training")
DETECTION = os.path.join(REL, "detection")
SCORE = os.path.join(REL, "examples", "score_latency")
LOAD = os.path.join(REL, "examples", "http_load")
FIRST = os.path.join(TARGET, "bench-baseline")
FIRST_TRAINING = os.path.join(FIRST, "training")
FIRST_DETECTION = os.path.join(FIRST, "detection")
FIRST_SCORE = os.path.join(FIRST, "score_latency")
OLD = [sys.executable, os.path.join(HERE, "old_pipeline.py")]
BATCH = 100
OLD_EVENT = {"eventName": "DeleteConfigRule", "awsRegion": "us-east-1", "sourceIPAddress": "192.168.1.100",
             "userAgent": "curl/7.68.0", "recipientAccountId": 999999999999, "p_event_time": "2024-06-27 03:15:22"}


def measured(cmd, env=None):
    """Runs cmd; returns (seconds, peak RSS in MiB, stdout)."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    elapsed = time.perf_counter() - t
    if status != 0:
        sys.exit(f"{cmd} failed with status {status}")
    return elapsed, usage.ru_maxrss / 1024.0, out.decode()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_server(cmd, env=None):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env)
    line = p.stdout.readline().decode().strip()
    if not line.startswith("listening on http://"):
        p.kill()
        sys.exit(f"{cmd} did not start: {line!r}")
    return p, line[len("listening on "):]


def stop(p):
    p.kill()
    p.wait()


def post_ok(port, body):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        c.request("POST", "/detect", body, {"Content-Type": "application/json"})
        ok = c.getresponse().status == 200
        c.close()
        return ok
    except OSError:
        return False


def cold_start(cmd, port, env, runs=3):
    body = json.dumps(OLD_EVENT)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=env)
        while not post_ok(port, body):
            if p.poll() is not None:
                sys.exit(f"{cmd} exited during cold start")
            if time.perf_counter() - t > 120:
                stop(p)
                sys.exit(f"{cmd} did not answer within 120 s")
            time.sleep(0.005)
        times.append(time.perf_counter() - t)
        stop(p)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--runs", type=int, default=3, help="training runs per pipeline and size (median reported)")
    ap.add_argument("--keep", action="store_true", help="keep the generated data and models")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    work = tempfile.mkdtemp(prefix="anomaly-bench-")
    rows = []  # (metric, new, first model, old, unit, lower_is_better)
    models = {}
    for n in sizes:
        data = os.path.join(work, f"events_{n}.jsonl")
        subprocess.run([TRAINING, "generate", "--count", str(n), "--seed", "1", "--out", data], check=True)
        new_model = os.path.join(work, f"model_{n}.json")
        first_model = os.path.join(work, f"first_model_{n}.json")
        old_model = os.path.join(work, f"model_{n}.pkl")
        commands = [
            [TRAINING, "train", "--source", f"file:{data}", "--out", new_model, "--min-events", "1"],
            [FIRST_TRAINING, "train", "--source", f"file:{data}", "--out", first_model, "--min-events", "1"],
            OLD + ["train", data, old_model],
        ]
        # Each pipeline trains --runs times, in turn with the others, so that a
        # slow spell of the machine falls on all three; the medians are reported.
        runs = [[measured(command)[:2] for command in commands] for _ in range(args.runs)]
        (t_new, m_new), (t_first, m_first), (t_old, m_old) = [
            (statistics.median(run[i][0] for run in runs), statistics.median(run[i][1] for run in runs))
            for i in range(len(commands))
        ]
        rows.append((f"training time, {n:,} events", t_new, t_first, t_old, "s", True))
        rows.append((f"training peak memory, {n:,} events", m_new, m_first, m_old, "MiB", True))
        models[n] = (data, new_model, first_model, old_model)
        print(f"trained on {n:,}: new {t_new:.2f}s {m_new:.0f}MiB, first model {t_first:.2f}s {m_first:.0f}MiB, "
              f"old {t_old:.2f}s {m_old:.0f}MiB", flush=True)

    data, new_model, first_model, old_model = models[sizes[0]]
    new_lat = json.loads(subprocess.run([SCORE, new_model, data, "50000"], check=True, capture_output=True).stdout)
    first_lat = json.loads(subprocess.run([FIRST_SCORE, first_model, data, "50000"], check=True,
                                          capture_output=True).stdout)
    old_lat = json.loads(subprocess.run(OLD + ["latency", old_model, data, "2000"], check=True, capture_output=True).stdout)
    print(f"new scoring latency: {new_lat}", flush=True)
    rows.append(("one event read, scored and explained, p50", new_lat["p50_us"] - new_lat["write"]["p50_us"],
                 None, None, "µs", True))
    rows.append(("... and the answer written as JSON, p50", new_lat["p50_us"], first_lat["p50_us"], old_lat["p50_us"],
                 "µs", True))
    rows.append(("... and the answer written as JSON, p99", new_lat["p99_us"], first_lat["p99_us"], old_lat["p99_us"],
                 "µs", True))

    one = os.path.join(work, "event.json")
    with open(one, "w") as f:
        json.dump(OLD_EVENT, f)
    batch = os.path.join(work, "batch.json")
    with open(data) as f, open(batch, "w") as out:
        json.dump([json.loads(next(f)) for _ in range(BATCH)], out)
    results = {}
    servers = [("new", [DETECTION, "serve", "--port", "0", "--model-file", new_model]),
               ("first", [FIRST_DETECTION, "serve", "--port", "0", "--model-file", first_model]),
               ("old", OLD + ["serve", old_model, "0"])]
    for name, cmd in servers:
        p, url = start_server(cmd)
        for body_name, body in [("one", one), ("batch", batch)]:
            if name == "old" and body_name == "batch":
                continue  # the old function takes one event per request
            out = subprocess.run([LOAD, url + "/detect", body, str(args.connections), str(args.seconds)],
                                 check=True, capture_output=True).stdout
            results[(name, body_name)] = json.loads(out)
            print(f"{name} /detect ({body_name}): {results[(name, body_name)]}", flush=True)
        stop(p)
    rows.append(("/detect throughput, one event per request", results[("new", "one")]["rps"],
                 results[("first", "one")]["rps"], results[("old", "one")]["rps"], "req/s", False))
    rows.append((f"/detect throughput, batches of {BATCH} events", results[("new", "batch")]["rps"] * BATCH,
                 results[("first", "batch")]["rps"] * BATCH, None, "events/s", False))
    rows.append(("/detect latency under load, one event, p50", results[("new", "one")]["p50_us"] / 1000,
                 results[("first", "one")]["p50_us"] / 1000, results[("old", "one")]["p50_us"] / 1000, "ms", True))

    # Cold start with the model in S3 (moto).
    moto_port = free_port()
    moto = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(moto_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        endpoint = f"http://127.0.0.1:{moto_port}"
        env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                   AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", moto_port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        import boto3

        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="bench", aws_secret_access_key="bench")
        cold = {}
        for name, training, detection in [("new", TRAINING, DETECTION), ("first", FIRST_TRAINING, FIRST_DETECTION)]:
            bucket = f"bench-{name}"
            s3.create_bucket(Bucket=bucket)
            subprocess.run([training, "train", "--source", f"file:{data}", "--bucket", bucket, "--min-events", "1"],
                           check=True, env=env, stdout=subprocess.DEVNULL)
            port = free_port()
            cold[name] = cold_start([detection, "serve", "--port", str(port)], port, dict(env, MODEL_BUCKET=bucket))
        s3.create_bucket(Bucket="bench-old")
        with open(old_model, "rb") as f:
            s3.put_object(Bucket="bench-old", Key="old/model.pkl", Body=f.read())
        port = free_port()
        cold["old"] = cold_start(OLD + ["serve", "s3://bench-old/old/model.pkl", str(port)], port, env)
        rows.append(("cold start to first /detect answer (model from S3)", cold["new"] * 1000, cold["first"] * 1000,
                     cold["old"] * 1000, "ms", True))
    finally:
        stop(moto)

    def cell(value, unit):
        return "" if value is None else f"{value:,.1f} {unit}"

    def ratio(new, other, lower):
        if other is None:
            return ""
        return f"{(other / new if lower else new / other):,.2f}x"

    print()
    print("| metric | new | first model (Rust) | old (Python, scikit-learn) | first / new | old / new |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for metric, new, first, old, unit, lower in rows:
        print(f"| {metric} | {cell(new, unit)} | {cell(first, unit)} | {cell(old, unit)} | "
              f"{ratio(new, first, lower)} | {ratio(new, old, lower)} |")
    print()
    print("Ratios are the new functions' advantage: other/new for times and memory, new/other for throughput.")
    if args.keep:
        with open(os.path.join(work, "results.json"), "w") as f:
            json.dump(rows, f, indent=1)
        print(f"work files: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
