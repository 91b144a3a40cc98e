//! Evaluates the model on the realistic simulated organisation: trained on four
//! weeks, tested on the fifth (with `--per-kind` injected anomalies of each kind),
//! and on the real attack records kept with the tests.
//!
//! `cargo run --release -p anomaly --example evaluate -- [--seed N] [--per-kind N]`

use anomaly::evaluation::{Report, auc_against, evaluate, real_attack_records};
use anomaly::organisation::{Kind, Organisation};
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
        "{name}: AUC {:.4}, recall at 1 % FP {:.3}, alert rate at its threshold {:.2} % ({} normal, {} anomalies)",
        report.auc,
        report.recall_at_1pct,
        100.0 * report.alert_rate,
        report.normals,
        report.anomalies
    );
    for (kind, (auc, recall)) in &report.per_kind {
        let subtle = if Kind::SUBTLE.contains(kind) {
            " (subtle)"
        } else {
            ""
        };
        println!("  {kind:?}{subtle}: AUC {auc:.4}, recall at 1 % FP {recall:.3}");
    }
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
        let model = Model::train(
            &train,
            TrainParams {
                contamination,
                ..TrainParams::default()
            },
        )
        .expect("the model trains");
        let trained = started.elapsed().as_secs_f64();
        let report = evaluate(&test, model.threshold, |event| model.anomaly_score(event));
        print(
            &format!("model, contamination {contamination} (trained in {trained:.1} s)"),
            &report,
        );
        if contamination == 0.01 {
            let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cloudtrail/");
            let read = |file: &str| {
                std::fs::read_to_string(format!("{fixtures}{file}"))
                    .unwrap_or_else(|error| panic!("{fixtures}{file}: {error}"))
            };
            let real = real_attack_records(
                &read("stratus_detonations.jsonl"),
                &read("panther_rule_tests.jsonl"),
            );
            let real_scores: Vec<f64> = real
                .iter()
                .filter_map(|record| Event::from_json(record).ok())
                .map(|event| model.anomaly_score(&event))
                .collect();
            let normal_scores: Vec<f64> = test
                .iter()
                .filter(|labelled| labelled.anomaly.is_none())
                .map(|labelled| model.anomaly_score(&Event::from_json(&labelled.record).unwrap()))
                .collect();
            println!(
                "  real attack records ({}): AUC {:.4} against week 5's normal events",
                real_scores.len(),
                auc_against(&real_scores, &normal_scores)
            );
        }
    }
}
