//! Benchmark: single-event scoring latency of a model file.
//!
//! `score_latency MODEL_FILE EVENTS_JSONL ITERATIONS` reads, scores and explains one
//! event at a time as `/detect` does (the event read from its JSON text, the answer
//! written as JSON) and prints JSON with percentiles in microseconds, in all and for
//! each step.

use anomaly::{Event, Model};
use std::time::Instant;

/// Percentiles of microsecond samples.
fn summary(mut times: Vec<f64>) -> serde_json::Value {
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| times[((times.len() - 1) as f64 * p) as usize];
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    serde_json::json!({"mean_us": mean, "p50_us": pct(0.5), "p99_us": pct(0.99)})
}

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
    let (mut total, mut read, mut score, mut write) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let mut anomalies = 0usize;
    let micros = |from: Instant, to: Instant| (to - from).as_nanos() as f64 / 1000.0;
    for i in 0..n {
        let line = &lines[i % lines.len()];
        let started = Instant::now();
        let event = Event::from_slice(line.as_bytes()).expect("event");
        let parsed = Instant::now();
        let detection = model.detect(&event);
        let scored = Instant::now();
        let out = serde_json::to_vec(&detection).expect("JSON");
        let written = Instant::now();
        total.push(micros(started, written));
        read.push(micros(started, parsed));
        score.push(micros(parsed, scored));
        write.push(micros(scored, written));
        anomalies += detection.is_anomaly as usize + (out.is_empty() as usize);
    }
    let mut result = summary(total);
    result["iterations"] = n.into();
    result["anomalies"] = anomalies.into();
    result["read"] = summary(read);
    result["score_and_explain"] = summary(score);
    result["write"] = summary(write);
    println!("{result}");
}
