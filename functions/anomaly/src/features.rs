//! Feature extraction: from an [`Event`] to the model's numeric vector.
//!
//! Every categorical field is encoded by its rarity in the training data,
//! `ln((n + 1) / (count + 1))`, where `n` is the number of training events. A value seen
//! in every event encodes as 0; a value never seen encodes as `ln(n + 1)`, the largest
//! possible value, so an unseen value is always maximally rare. A missing value is the
//! category `<missing>` with its own count. The account id is such a category, not a
//! number. Hour of day and day of week are also encoded cyclically (sin, cos); a missing
//! time encodes as (0, 0), the centre of the circle, which no real time takes.

use crate::event::{Event, Value};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::f64::consts::TAU;

/// The categorical fields, in the order of the feature vector.
pub const CATEGORICAL_FIELDS: [&str; 10] = [
    "eventName",
    "eventSource",
    "awsRegion",
    "sourceIPAddress",
    "userAgent",
    "recipientAccountId",
    "userIdentity.type",
    "hour_of_day",
    "day_of_week",
    "userAgent@hour",
];

/// The cyclic features that follow the categorical ones.
pub const CYCLIC_FEATURES: [&str; 4] =
    ["hour_sin", "hour_cos", "day_of_week_sin", "day_of_week_cos"];

/// Number of features in a vector.
pub const N_FEATURES: usize = CATEGORICAL_FIELDS.len() + CYCLIC_FEATURES.len();

/// Names of all features, in vector order.
pub fn feature_names() -> Vec<String> {
    CATEGORICAL_FIELDS
        .iter()
        .map(|f| format!("rarity({f})"))
        .chain(CYCLIC_FEATURES.iter().map(|f| f.to_string()))
        .collect()
}

/// Day names for `day_of_week` values (0 = Monday).
pub const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// The categorical values of an event, in [`CATEGORICAL_FIELDS`] order.
pub fn categorical_values(e: &Event) -> [Value; 10] {
    let hour = match e.hour() {
        Some(h) => Value::Present(format!("{h:02}").into()),
        None => Value::Missing,
    };
    let day = match e.weekday() {
        Some(d) => Value::Present(DAYS[d as usize].into()),
        None => Value::Missing,
    };
    let ua_hour = Value::Present(format!("{}@{}", e.user_agent.key(), hour.key()).into());
    [
        e.event_name.clone(),
        e.event_source.clone(),
        e.aws_region.clone(),
        e.source_ip.clone(),
        e.user_agent.clone(),
        e.account_id.clone(),
        e.identity_type.clone(),
        hour,
        day,
        ua_hour,
    ]
}

/// The cyclic encoding of an event's time.
pub fn cyclic_values(e: &Event) -> [f64; 4] {
    match (e.hour(), e.weekday(), e.time()) {
        (Some(h), Some(d), Some(t)) => {
            let minutes = h as f64 * 60.0 + chrono::Timelike::minute(&t) as f64;
            let hf = minutes / (24.0 * 60.0);
            let df = d as f64 / 7.0;
            [
                (TAU * hf).sin(),
                (TAU * hf).cos(),
                (TAU * df).sin(),
                (TAU * df).cos(),
            ]
        }
        _ => [0.0; 4],
    }
}

/// How often each value of one field occurred in the training data.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Frequencies {
    /// Number of training events.
    pub total: u64,
    /// Count per value (`<missing>` included).
    #[serde(serialize_with = "sorted")]
    pub counts: HashMap<String, u64>,
}

fn sorted<S: serde::Serializer>(m: &HashMap<String, u64>, s: S) -> Result<S::Ok, S::Error> {
    let ordered: BTreeMap<&String, &u64> = m.iter().collect();
    serde::Serialize::serialize(&ordered, s)
}

impl Frequencies {
    /// Count of a value (0 when unseen).
    pub fn count(&self, value: &str) -> u64 {
        self.counts.get(value).copied().unwrap_or(0)
    }

    /// Share of training events with this value.
    pub fn frequency(&self, value: &str) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.count(value) as f64 / self.total as f64
        }
    }

    /// `ln((n + 1) / (count + 1))`: 0 for a value in every event, `ln(n + 1)` when unseen.
    pub fn surprise(&self, value: &str) -> f64 {
        ((self.total as f64 + 1.0) / (self.count(value) as f64 + 1.0)).ln()
    }

    /// Surprise scaled to `[0, 1]` (1 for an unseen value).
    pub fn normalised_surprise(&self, value: &str) -> f64 {
        let max = (self.total as f64 + 1.0).ln();
        if max <= 0.0 {
            1.0
        } else {
            (self.surprise(value) / max).clamp(0.0, 1.0)
        }
    }
}

/// Counts values per categorical field over training events.
pub fn count_values<'a>(events: impl IntoIterator<Item = &'a Event>) -> Vec<Frequencies> {
    let mut tables: Vec<Frequencies> = (0..CATEGORICAL_FIELDS.len())
        .map(|_| Frequencies::default())
        .collect();
    for e in events {
        for (table, v) in tables.iter_mut().zip(categorical_values(e)) {
            table.total += 1;
            let key = v.key();
            match table.counts.get_mut(key) {
                Some(c) => *c += 1,
                None => {
                    table.counts.insert(key.to_string(), 1);
                }
            }
        }
    }
    tables
}

/// The feature vector of an event given the training frequencies.
pub fn encode(e: &Event, tables: &[Frequencies]) -> [f64; N_FEATURES] {
    let mut out = [0.0; N_FEATURES];
    for (i, (table, v)) in tables.iter().zip(categorical_values(e)).enumerate() {
        out[i] = table.surprise(v.key());
    }
    let cyc = cyclic_values(e);
    out[CATEGORICAL_FIELDS.len()..].copy_from_slice(&cyc);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(name: &str, t: &str) -> Event {
        Event::from_json(&json!({"eventName": name, "eventTime": t, "userAgent": "cli"})).unwrap()
    }

    #[test]
    fn unseen_is_maximally_rare_and_missing_is_its_own_value() {
        let train = vec![
            ev("A", "2024-01-01T10:00:00Z"),
            ev("A", "2024-01-01T11:00:00Z"),
            ev("B", "2024-01-02T10:00:00Z"),
        ];
        let t = count_values(&train);
        let f = &t[0];
        assert_eq!(f.total, 3);
        assert_eq!(f.count("A"), 2);
        assert!(f.surprise("Z") > f.surprise("B"));
        assert!(f.surprise("B") > f.surprise("A"));
        assert_eq!(f.normalised_surprise("Z"), 1.0);
        // eventSource was never present: all three are <missing>, a common value.
        assert_eq!(t[1].count("<missing>"), 3);
        assert_eq!(t[1].surprise("<missing>"), 0.0);
        assert_eq!(t[7].count("10"), 2);
        assert_eq!(t[9].count("cli@10"), 2);
    }

    #[test]
    fn cyclic_time_and_missing_time() {
        let e = ev("A", "2024-01-01T00:00:00Z"); // a Monday at midnight
        let c = cyclic_values(&e);
        assert!((c[0]).abs() < 1e-12 && (c[1] - 1.0).abs() < 1e-12);
        assert!((c[2]).abs() < 1e-12 && (c[3] - 1.0).abs() < 1e-12);
        let late = ev("A", "2024-01-07T23:59:00Z");
        let c2 = cyclic_values(&late);
        assert!(c2[1] > 0.99, "23:59 is next to midnight on the circle");
        let none = Event::from_json(&json!({"eventName": "A"})).unwrap();
        assert_eq!(cyclic_values(&none), [0.0; 4]);
        assert_eq!(categorical_values(&none)[7], Value::Missing);
    }

    #[test]
    fn vector_layout() {
        assert_eq!(feature_names().len(), N_FEATURES);
        let train = vec![ev("A", "2024-01-01T10:00:00Z")];
        let t = count_values(&train);
        let v = encode(&ev("A", "2024-01-01T10:00:00Z"), &t);
        assert_eq!(v[0], 0.0);
        assert!((v[N_FEATURES - 1] - 1.0).abs() < 1e-12);
    }
}
