//! How well a scorer separates anomalies from normal events, measured the way the
//! model will be used: trained on four weeks of the simulated organisation
//! ([`crate::organisation`]), tested on the following week, and on real attack
//! records.
//!
//! The figures: ROC AUC; recall at a 1 % false-positive rate (the threshold is the
//! 99th percentile of the test week's normal scores), overall and per kind; the alert
//! rate of the model's own threshold on the test week's normal events (what the
//! `contamination` promise is about); the AUC of the real records against the test
//! week's normal events.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use crate::event::Event;
use crate::generator::roc_auc;
use crate::organisation::{Kind, Labelled};

/// The figures of one scorer on one test set.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// All anomalies against the normal events.
    pub auc: f64,
    /// Share of anomalies above the 1 %-false-positive threshold.
    pub recall_at_1pct: f64,
    /// Per kind: (AUC, recall at 1 % false positives).
    pub per_kind: BTreeMap<Kind, (f64, f64)>,
    /// Share of the normal events at or above `threshold`.
    pub alert_rate: f64,
    /// Share of anomalies whose first reason names the field the injection changed
    /// (`None` for a scorer without reasons).
    pub first_reason_right: Option<f64>,
    /// Per kind: that share.
    pub first_reason_per_kind: BTreeMap<Kind, f64>,
    /// Normal events scored.
    pub normals: usize,
    /// Anomalies scored.
    pub anomalies: usize,
}

/// The score at or above which `fpr` of `normals` lie.
pub fn threshold_at_fpr(normals: &[f64], fpr: f64) -> f64 {
    let mut sorted = normals.to_vec();
    sorted.sort_by(f64::total_cmp);
    let index = (((1.0 - fpr) * sorted.len() as f64).ceil() as usize).min(sorted.len() - 1);
    // Strictly above the (1 - fpr) quantile: ties at the cut count as false positives.
    sorted[index]
}

/// Share of `scores` strictly above `cut`.
fn share_above(scores: &[f64], cut: f64) -> f64 {
    if scores.is_empty() {
        return f64::NAN;
    }
    scores.iter().filter(|&&s| s > cut).count() as f64 / scores.len() as f64
}

/// Scores a labelled test set with `score` and the model threshold `threshold`.
pub fn evaluate(test: &[Labelled], threshold: f64, score: impl Fn(&Event) -> f64) -> Report {
    evaluate_explained(test, threshold, |event| (score(event), None))
}

/// Like [`evaluate`], for a scorer that also names the field of its first reason.
pub fn evaluate_explained(
    test: &[Labelled],
    threshold: f64,
    score: impl Fn(&Event) -> (f64, Option<String>),
) -> Report {
    let mut first_reasons: Vec<(Kind, bool)> = Vec::new();
    let mut explained = false;
    let scored: Vec<(f64, Option<Kind>)> = test
        .iter()
        .map(|labelled| {
            let event = Event::from_json(&labelled.record).expect("generated records parse");
            let (value, first) = score(&event);
            if let Some(kind) = labelled.anomaly {
                explained |= first.is_some();
                first_reasons.push((kind, first.as_deref() == Some(kind.field())));
            }
            (value, labelled.anomaly)
        })
        .collect();
    let share = |rows: Vec<bool>| {
        rows.iter().filter(|&&right| right).count() as f64 / rows.len().max(1) as f64
    };
    let first_reason_right =
        explained.then(|| share(first_reasons.iter().map(|(_, right)| *right).collect()));
    let first_reason_per_kind = if explained {
        Kind::ALL
            .iter()
            .map(|&kind| {
                (
                    kind,
                    share(
                        first_reasons
                            .iter()
                            .filter(|(k, _)| *k == kind)
                            .map(|(_, right)| *right)
                            .collect(),
                    ),
                )
            })
            .collect()
    } else {
        BTreeMap::new()
    };
    let normals: Vec<f64> = scored
        .iter()
        .filter(|(_, kind)| kind.is_none())
        .map(|(s, _)| *s)
        .collect();
    let anomalies: Vec<f64> = scored
        .iter()
        .filter(|(_, kind)| kind.is_some())
        .map(|(s, _)| *s)
        .collect();
    let cut = threshold_at_fpr(&normals, 0.01);
    let per_kind = Kind::ALL
        .iter()
        .map(|&kind| {
            let of_kind: Vec<f64> = scored
                .iter()
                .filter(|(_, k)| *k == Some(kind))
                .map(|(s, _)| *s)
                .collect();
            (
                kind,
                (auc_against(&of_kind, &normals), share_above(&of_kind, cut)),
            )
        })
        .collect();
    Report {
        auc: auc_against(&anomalies, &normals),
        recall_at_1pct: share_above(&anomalies, cut),
        per_kind,
        alert_rate: normals.iter().filter(|&&s| s >= threshold).count() as f64
            / normals.len().max(1) as f64,
        first_reason_right,
        first_reason_per_kind,
        normals: normals.len(),
        anomalies: anomalies.len(),
    }
}

/// ROC AUC of `positives` against `negatives`.
pub fn auc_against(positives: &[f64], negatives: &[f64]) -> f64 {
    let scores: Vec<f64> = positives.iter().chain(negatives).copied().collect();
    let labels: Vec<bool> = positives
        .iter()
        .map(|_| true)
        .chain(negatives.iter().map(|_| false))
        .collect();
    roc_auc(&scores, &labels)
}

/// The real attack records kept with the tests (`tests/fixtures/cloudtrail/`): the
/// Stratus Red Team detonations and the Panther rule tests that expect an alert.
/// The attack tool's name is taken out of user agents and ARNs first
/// (`stratus-red-team_<uuid>`, `grimoire_<uuid>`), as the records' README asks: a
/// detector must not find attacks by the tool's name.
pub fn real_attack_records(stratus: &str, panther: &str) -> Vec<Json> {
    let mut records = Vec::new();
    for line in stratus.lines().filter(|line| !line.trim().is_empty()) {
        let Ok(mut wrapper) = serde_json::from_str::<Json>(line) else {
            continue;
        };
        let mut record = wrapper["record"].take();
        if let Some(agent) = record["userAgent"].as_str() {
            record["userAgent"] = Json::String(without_tool_name(agent));
        }
        records.push(record);
    }
    for line in panther.lines().filter(|line| !line.trim().is_empty()) {
        let Ok(mut wrapper) = serde_json::from_str::<Json>(line) else {
            continue;
        };
        if wrapper["expected_alert"] == Json::Bool(true) {
            records.push(wrapper["record"].take());
        }
    }
    records
}

/// A user agent without the attack tool's own tokens.
fn without_tool_name(agent: &str) -> String {
    agent
        .split(' ')
        .filter(|token| !token.starts_with("stratus-red-team_") && !token.contains("grimoire_"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cut_leaves_the_asked_share_of_normals_above_it() {
        let normals: Vec<f64> = (0..1000).map(|i| i as f64).collect();
        let cut = threshold_at_fpr(&normals, 0.01);
        assert_eq!(share_above(&normals, cut), 0.009);
        assert_eq!(auc_against(&[2000.0], &normals), 1.0);
    }

    #[test]
    fn tool_names_are_taken_out_of_user_agents() {
        assert_eq!(
            without_tool_name("stratus-red-team_1b2c aws-sdk-go-v2/1.30.3 os/linux"),
            "aws-sdk-go-v2/1.30.3 os/linux"
        );
    }
}
