//! Evaluates the model beside the baseline (the first model) on the realistic
//! simulated organisation: trained on four weeks, tested on the fifth (with
//! `--per-kind` injected anomalies of each kind), and on the real attack records
//! kept with the tests.
//!
//! `cargo run --release -p anomaly --example evaluate -- [--seed N] [--per-kind N]`

use anomaly::baseline::{BaselineModel, BaselineParams};
use anomaly::evaluation::{Report, auc_against, evaluate, evaluate_explained, real_attack_records};
use anomaly::organisation::{Kind, Labelled, Organisation};
use anomaly::{Event, Model, TrainParams};

fn argument(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|arg| arg == name)
        .and_then(|index| args.get(index + 1))
        .map(|value| {
            value
                .parse()
                .unwrap_or_else(|_| panic!("{name} takes a number, not {value:?}"))
        })
        .unwrap_or(default)
}

fn print(name: &str, report: &Report) {
    println!(
        "{name}: AUC {:.4}, recall at 1 % FP {:.3}, alert rate at its threshold {:.2} % ({} normal, {} anomalies){}",
        report.auc,
        report.recall_at_1pct,
        100.0 * report.alert_rate,
        report.normals,
        report.anomalies,
        report
            .first_reason_right
            .map(|share| format!(", first reason right {:.1} %", 100.0 * share))
            .unwrap_or_default()
    );
    for (kind, (auc, recall)) in &report.per_kind {
        let subtle = if Kind::SUBTLE.contains(kind) {
            " (subtle)"
        } else {
            ""
        };
        let reason = report
            .first_reason_per_kind
            .get(kind)
            .map(|share| format!(", first reason right {:.1} %", 100.0 * share))
            .unwrap_or_default();
        println!("  {kind:?}{subtle}: AUC {auc:.4}, recall at 1 % FP {recall:.3}{reason}");
    }
}

/// The real records' AUC against the test week's normal events.
fn real_records(test: &[Labelled], score: impl Fn(&Event) -> f64) -> (usize, f64) {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cloudtrail/");
    let read = |file: &str| {
        std::fs::read_to_string(format!("{fixtures}{file}"))
            .unwrap_or_else(|error| panic!("{fixtures}{file}: {error}"))
    };
    let real: Vec<f64> = real_attack_records(
        &read("stratus_detonations.jsonl"),
        &read("panther_rule_tests.jsonl"),
    )
    .iter()
    .filter_map(|record| Event::from_json(record).ok())
    .map(|event| score(&event))
    .collect();
    let normals: Vec<f64> = test
        .iter()
        .filter(|labelled| labelled.anomaly.is_none())
        .map(|labelled| score(&Event::from_json(&labelled.record).unwrap()))
        .collect();
    (real.len(), auc_against(&real, &normals))
}

fn main() {
    let seed = argument("--seed", 1);
    let per_kind = argument("--per-kind", 200) as usize;
    let organisation = Organisation::new(seed);
    let started = std::time::Instant::now();
    let train: Vec<Event> = organisation
        .normal_events(0, 28)
        .iter()
        .map(|record| Event::from_json(record).expect("generated records parse"))
        .collect();
    let test = organisation.labelled(28, 35, per_kind);
    println!(
        "organisation {seed}: {} training events (4 weeks), {} test events (week 5), generated in {:.1} s",
        train.len(),
        test.len(),
        started.elapsed().as_secs_f64()
    );
    for contamination in [0.01, 0.001] {
        let started = std::time::Instant::now();
        let params = TrainParams {
            contamination,
            ..TrainParams::default()
        };
        let model = Model::train(&train, params).expect("the model trains");
        let trained = started.elapsed().as_secs_f64();
        let report = evaluate_explained(&test, model.threshold(), |event| {
            let detection = model.detect(event);
            let first = detection.reasons.first().map(|reason| reason.field.clone());
            (detection.anomaly_score, first)
        });
        print(
            &format!("model, contamination {contamination} (trained in {trained:.1} s)"),
            &report,
        );
        if contamination == 0.01 {
            let (count, auc) = real_records(&test, |event| model.anomaly_score(event));
            println!(
                "  real attack records ({count}): AUC {auc:.4} against week 5's normal events"
            );
        }
    }
    let started = std::time::Instant::now();
    let baseline =
        BaselineModel::train(&train, BaselineParams::default()).expect("the baseline trains");
    let trained = started.elapsed().as_secs_f64();
    let report = evaluate(&test, baseline.threshold, |event| {
        baseline.anomaly_score(event)
    });
    print(
        &format!("baseline (first model), contamination 0.01 (trained in {trained:.1} s)"),
        &report,
    );
    let (count, auc) = real_records(&test, |event| baseline.anomaly_score(event));
    println!("  real attack records ({count}): AUC {auc:.4} against week 5's normal events");
}
