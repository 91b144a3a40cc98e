//! Trained on the synthetic organisation's normal activity, the model must rank the
//! injected anomalies above held-out normal events, flag them with its threshold, keep
//! most normal events below it, and explain unseen values.
//!
//! The figures `functions/README.md` quotes ("Evaluation") are asserted here, each
//! within the rounding of the quoted value: overall ROC AUC 1.000, 0.9998 for the rare
//! account, every injected anomaly above the threshold, 0.9 % of held-out normal events
//! above it, the rarity score alone 0.9999, the forest score alone 0.70.

use anomaly::generator::{AnomalyKind, Generator, roc_auc};
use anomaly::{Event, Model, Rarity, TrainParams};

fn trained() -> Model {
    static MODEL: std::sync::OnceLock<Model> = std::sync::OnceLock::new();
    MODEL.get_or_init(train).clone()
}

fn train() -> Model {
    let train: Vec<Event> = Generator::new(7)
        .normal_events(20_000)
        .iter()
        .map(|r| Event::from_json(r).unwrap())
        .collect();
    Model::train(&train, TrainParams::default()).unwrap()
}

#[test]
fn injected_anomalies_rank_above_held_out_normal_events() {
    let model = trained();
    let holdout = Generator::new(8).labelled_holdout(5_000, 100);
    let scored: Vec<(f64, bool, Option<AnomalyKind>)> = holdout
        .iter()
        .map(|l| {
            let e = Event::from_json(&l.record).unwrap();
            (model.anomaly_score(&e), l.anomaly.is_some(), l.anomaly)
        })
        .collect();
    let scores: Vec<f64> = scored.iter().map(|s| s.0).collect();
    let labels: Vec<bool> = scored.iter().map(|s| s.1).collect();
    let auc = roc_auc(&scores, &labels);
    let normals: Vec<f64> = scored.iter().filter(|s| !s.1).map(|s| s.0).collect();
    assert_eq!(normals.len(), 5_000, "5,000 held-out normal events");
    assert_eq!(scored.len() - normals.len(), 500, "500 injected anomalies");
    let normal_flagged =
        normals.iter().filter(|&&s| s >= model.threshold).count() as f64 / normals.len() as f64;
    // Each piece of evidence on its own, for the record.
    let parts: Vec<(f64, f64)> = holdout
        .iter()
        .map(|l| {
            let d = model.detect(&Event::from_json(&l.record).unwrap());
            (d.forest_score, d.rarity_score)
        })
        .collect();
    let forest_auc = roc_auc(&parts.iter().map(|p| p.0).collect::<Vec<_>>(), &labels);
    let rarity_auc = roc_auc(&parts.iter().map(|p| p.1).collect::<Vec<_>>(), &labels);
    let mut report = format!(
        "forest score alone: AUC {forest_auc:.4}; rarity score alone: AUC {rarity_auc:.4}\n"
    );
    report.push_str(&format!(
        "overall AUC {auc:.4}, threshold {:.4}, normal events flagged {:.2}%\n",
        model.threshold,
        100.0 * normal_flagged
    ));
    let mut kinds = Vec::new();
    for kind in AnomalyKind::ALL {
        let ks: Vec<f64> = scored
            .iter()
            .filter(|s| s.2 == Some(kind))
            .map(|s| s.0)
            .collect();
        let mut s = ks.clone();
        s.extend(&normals);
        let mut l = vec![true; ks.len()];
        l.extend(vec![false; normals.len()]);
        let caught = ks.iter().filter(|&&x| x >= model.threshold).count() as f64 / ks.len() as f64;
        let kind_auc = roc_auc(&s, &l);
        report.push_str(&format!(
            "{kind:?}: AUC {kind_auc:.4}, above threshold {:.1}%\n",
            100.0 * caught
        ));
        kinds.push((kind, kind_auc, caught));
    }
    println!("{report}");
    // The README's figures, each within its rounding.
    assert!(auc >= 0.9995, "overall AUC 1.000\n{report}");
    for (kind, kind_auc, caught) in kinds {
        assert_eq!(
            caught, 1.0,
            "every {kind:?} anomaly above the threshold\n{report}"
        );
        assert!(
            kind_auc >= 0.99975,
            "{kind:?}: AUC at least 0.9998\n{report}"
        );
    }
    assert!(
        (0.0085..0.0095).contains(&normal_flagged),
        "0.9 % of held-out normal events above the threshold\n{report}"
    );
    assert!(rarity_auc >= 0.99985, "rarity score alone 0.9999\n{report}");
    assert!(
        (0.695..0.705).contains(&forest_auc),
        "forest score alone 0.70\n{report}"
    );
}

#[test]
fn a_never_seen_event_name_is_explained_as_unseen() {
    let model = trained();
    let mut g = Generator::new(9);
    let record = g.anomaly(AnomalyKind::UnseenEventName);
    let d = model.detect(&Event::from_json(&record).unwrap());
    let name = &d.rarity_analysis["eventName"];
    assert_eq!(name.value, record["eventName"].as_str().unwrap());
    assert_eq!(name.frequency, 0);
    assert_eq!(name.level, Rarity::Unseen);
    assert!(d.suspicious_features.iter().any(|f| f == "eventName"));
    assert!(d.is_anomaly, "{d:?}");
    // Its other fields are ordinary.
    assert_ne!(d.rarity_analysis["awsRegion"].level, Rarity::Unseen);
}

#[test]
fn training_is_deterministic_for_a_seed() {
    let a = trained();
    let b = train();
    assert_eq!(a.threshold, b.threshold);
    assert_eq!(a.forest, b.forest);
}
