//! Detection quality on the realistic simulated organisation (`organisation.rs`):
//! trained on four weeks, tested on the fifth with 100 injected anomalies of each
//! kind, and on the real attack records. The figures `functions/README.md` quotes
//! ("Evaluation") come from `examples/evaluate.rs` on the same data.

use anomaly::evaluation::{Report, auc_against, evaluate_explained, real_attack_records};
use anomaly::organisation::{Kind, Labelled, Organisation};
use anomaly::{Event, Model, TrainParams};

struct Trial {
    train: Vec<Event>,
    test: Vec<Labelled>,
    model: Model,
    report: Report,
}

fn trial() -> &'static Trial {
    static TRIAL: std::sync::OnceLock<Trial> = std::sync::OnceLock::new();
    TRIAL.get_or_init(|| {
        let organisation = Organisation::new(1);
        let train: Vec<Event> = organisation
            .normal_events(0, 28)
            .iter()
            .map(|record| Event::from_json(record).unwrap())
            .collect();
        let test = organisation.labelled(28, 35, 100);
        let model = Model::train(&train, TrainParams::default()).unwrap();
        let report = evaluate_explained(&test, model.threshold(), |event| {
            let detection = model.detect(event);
            let first = detection.reasons.first().map(|reason| reason.field.clone());
            (detection.anomaly_score, first)
        });
        Trial {
            train,
            test,
            model,
            report,
        }
    })
}

#[test]
fn anomalies_rank_above_the_next_weeks_normal_events_kind_by_kind() {
    let report = &trial().report;
    assert_eq!(report.anomalies, 100 * Kind::ALL.len());
    assert!(report.auc >= 0.99, "{report:#?}");
    assert!(report.recall_at_1pct >= 0.90, "{report:#?}");
    for (kind, (_, recall)) in &report.per_kind {
        assert!(*recall >= 0.5, "{kind:?}: {recall} ({report:#?})");
    }
    for kind in Kind::SUBTLE {
        assert!(report.per_kind[&kind].1 >= 0.5, "{kind:?}");
    }
}

#[test]
fn the_alert_rate_on_the_next_week_keeps_the_promise_at_one_percent() {
    let report = &trial().report;
    assert!(
        (0.005..=0.02).contains(&report.alert_rate),
        "{:.3} % of the normal events are alerts",
        100.0 * report.alert_rate
    );
    let calibration = &trial().model.calibration;
    assert!(calibration.scored > 0 && calibration.fitted_on > calibration.scored);
}

#[test]
fn the_alert_rate_on_the_next_week_keeps_the_promise_at_one_in_a_thousand() {
    let trial = trial();
    let params = TrainParams {
        contamination: 0.001,
        ..TrainParams::default()
    };
    let model = Model::train(&trial.train, params).unwrap();
    let report = evaluate_explained(&trial.test, model.threshold(), |event| {
        (model.anomaly_score(event), None)
    });
    assert!(
        (0.0005..=0.003).contains(&report.alert_rate),
        "{:.3} % of the normal events are alerts",
        100.0 * report.alert_rate
    );
}

#[test]
fn the_first_reason_names_what_was_injected() {
    let report = &trial().report;
    assert!(
        report.first_reason_right.unwrap() >= 0.9,
        "{:?}",
        report.first_reason_per_kind
    );
    // And in words a responder can act on.
    let trial = trial();
    let said = |kind: Kind| {
        let labelled = trial
            .test
            .iter()
            .find(|labelled| labelled.anomaly == Some(kind))
            .unwrap();
        let detection = trial
            .model
            .detect(&Event::from_json(&labelled.record).unwrap());
        assert!(detection.is_anomaly, "{detection:#?}");
        detection.reasons[0].text.clone()
    };
    let text = said(Kind::NewCallForPrincipal);
    assert!(text.contains("has never called"), "{text}");
    assert!(text.contains(" events)"), "{text}");
    let text = said(Kind::OddHourForPrincipal);
    assert!(text.contains("UTC; this call is at"), "{text}");
    let text = said(Kind::NewRegionForAccount);
    assert!(
        [
            "has never worked in",
            "first call in",
            "no one has made calls in"
        ]
        .iter()
        .any(|said| text.contains(said)),
        "{text}"
    );
}

#[test]
fn real_attack_records_rank_above_normal_events() {
    let trial = trial();
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cloudtrail/");
    let read = |file: &str| std::fs::read_to_string(format!("{fixtures}{file}")).unwrap();
    let real: Vec<f64> = real_attack_records(
        &read("stratus_detonations.jsonl"),
        &read("panther_rule_tests.jsonl"),
    )
    .iter()
    .filter_map(|record| Event::from_json(record).ok())
    .map(|event| trial.model.anomaly_score(&event))
    .collect();
    assert!(real.len() > 500, "{}", real.len());
    let normals: Vec<f64> = trial
        .test
        .iter()
        .filter(|labelled| labelled.anomaly.is_none())
        .map(|labelled| {
            trial
                .model
                .anomaly_score(&Event::from_json(&labelled.record).unwrap())
        })
        .collect();
    let auc = auc_against(&real, &normals);
    assert!(auc >= 0.95, "{auc}");
}
