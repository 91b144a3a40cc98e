"""The old detector's pipeline, re-created for comparison (scikit-learn).

As published: IsolationForest(n_estimators=100, contamination=0.1, random_state=42)
over eventName, awsRegion, sourceIPAddress, userAgent (each label-encoded),
recipientAccountId (as a number), hour_of_day and day_of_week (from p_event_time),
all standard-scaled. Its defects are kept on purpose (unseen values map to a known
class, missing values become 0 / noon / Tuesday), since this is the baseline.

  old_pipeline.py train EVENTS_JSONL MODEL_PICKLE
  old_pipeline.py latency MODEL_PICKLE EVENTS_JSONL ITERATIONS
  old_pipeline.py serve MODEL_PICKLE|s3://bucket/key PORT
"""
import io
import json
import pickle
import sys
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest
from sklearn.preprocessing import LabelEncoder, StandardScaler

CATEGORICAL = ["eventName", "awsRegion", "sourceIPAddress", "userAgent"]
FEATURES = CATEGORICAL + ["recipientAccountId", "hour_of_day", "day_of_week"]


def flatten(obj):
    rec = obj.get("record", obj) if "eventName" not in obj else obj
    out = {k: rec.get(k) for k in CATEGORICAL}
    out["recipientAccountId"] = rec.get("recipientAccountId")
    out["p_event_time"] = rec.get("p_event_time") or rec.get("eventTime")
    return out


def frame(rows):
    df = pd.DataFrame(rows)
    t = pd.to_datetime(df["p_event_time"], errors="coerce", utc=True, format="mixed")
    df["hour_of_day"] = t.dt.hour.fillna(12)
    df["day_of_week"] = t.dt.day_of_week.fillna(1)
    df["recipientAccountId"] = pd.to_numeric(df["recipientAccountId"], errors="coerce").fillna(0)
    return df


def train(events_path, model_path):
    with open(events_path) as f:
        rows = [flatten(json.loads(line)) for line in f if line.strip()]
    df = frame(rows)
    encoders = {}
    for c in CATEGORICAL:
        enc = LabelEncoder()
        df[c] = enc.fit_transform(df[c].fillna("unknown").astype(str))
        encoders[c] = enc
    scaler = StandardScaler()
    x = scaler.fit_transform(df[FEATURES].astype(float))
    model = IsolationForest(n_estimators=100, contamination=0.1, random_state=42)
    model.fit(x)
    with open(model_path, "wb") as f:
        pickle.dump({"model": model, "scaler": scaler, "encoders": encoders, "n": len(df)}, f)
    print(json.dumps({"events": len(df)}))


def transform(bundle, event):
    df = frame([flatten(event)])
    for c in CATEGORICAL:
        enc = bundle["encoders"][c]
        v = str(df.at[0, c]) if df.at[0, c] is not None else "unknown"
        # The old defect: an unseen value becomes an arbitrary known class.
        df[c] = enc.transform([v])[0] if v in enc.classes_ else 0
    return bundle["scaler"].transform(df[FEATURES].astype(float))


def detect(bundle, event):
    x = transform(bundle, event)
    score = float(bundle["model"].decision_function(x)[0])
    pred = int(bundle["model"].predict(x)[0])
    return {
        "is_anomaly": pred == -1,
        "anomaly_score": score,
        "confidence": min(abs(score) * 2, 1.0),
        "prediction": pred,
        "score_range": "negative values indicate anomalies",
        "model_info": {"features_used": FEATURES, "training_samples": bundle["n"], "expected_anomaly_rate": 0.1},
        "rarity_analysis": {},
        "suspicious_features": [],
        "timestamp": datetime.now(timezone.utc).isoformat(),
    }


def load(src):
    if src.startswith("s3://"):
        import boto3

        bucket, key = src[5:].split("/", 1)
        body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        return pickle.loads(body)
    with open(src, "rb") as f:
        return pickle.load(f)


def latency(model_path, events_path, iterations):
    bundle = load(model_path)
    with open(events_path) as f:
        lines = [line for _, line in zip(range(1000), f)]
    times = []
    for i in range(iterations):
        line = lines[i % len(lines)]
        t = time.perf_counter()
        json.dumps(detect(bundle, json.loads(line)))
        times.append((time.perf_counter() - t) * 1e6)
    times.sort()
    print(json.dumps({"iterations": iterations, "mean_us": sum(times) / len(times),
                      "p50_us": times[len(times) // 2], "p99_us": times[int((len(times) - 1) * 0.99)]}))


def serve(src, port):
    bundle = load(src)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, status, obj):
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/health":
                self.reply(200, {"status": "healthy", "service": "anomaly-detection",
                                 "timestamp": datetime.now(timezone.utc).isoformat()})
            else:
                self.reply(404, {"error": "not found"})

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path != "/detect":
                return self.reply(404, {"error": "not found"})
            try:
                self.reply(200, detect(bundle, json.loads(body)))
            except Exception as e:  # the old handler answered 500 on any error
                self.reply(500, {"error": str(e)})

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "train":
        train(sys.argv[2], sys.argv[3])
    elif cmd == "latency":
        latency(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif cmd == "serve":
        serve(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(f"unknown command {cmd}")
