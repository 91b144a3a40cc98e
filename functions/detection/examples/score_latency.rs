//! Benchmark: single-event scoring latency of a model file.
//!
//! `score_latency MODEL_FILE EVENTS_JSONL ITERATIONS` parses and scores one event at a
//! time (as `/detect` does, explanation included) and prints JSON with percentiles in
//! microseconds.

use anomaly::{Event, Model};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: score_latency MODEL_FILE EVENTS_JSONL ITERATIONS");
        std::process::exit(2);
    }
    let model = Model::from_json(&std::fs::read(&args[1]).expect("model file")).expect("model");
    let lines: Vec<String> = std::fs::read_to_string(&args[2])
        .expect("events")
        .lines()
        .take(1000)
        .map(str::to_string)
        .collect();
    let n: usize = args[3].parse().expect("iterations");
    let mut times = Vec::with_capacity(n);
    let mut anomalies = 0usize;
    for i in 0..n {
        let line = &lines[i % lines.len()];
        let t = Instant::now();
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON");
        let e = Event::from_json(&v).expect("event");
        let d = model.detect(&e);
        let out = serde_json::to_vec(&d).expect("JSON");
        times.push(t.elapsed().as_nanos() as f64 / 1000.0);
        anomalies += d.is_anomaly as usize + (out.is_empty() as usize);
    }
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| times[((times.len() - 1) as f64 * p) as usize];
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    println!(
        "{}",
        serde_json::json!({"iterations": n, "mean_us": mean, "p50_us": pct(0.5), "p99_us": pct(0.99), "anomalies": anomalies})
    );
}
