//! The anomaly model: training, scoring, explanation and its file format.
//!
//! The score of an event combines two pieces of evidence, both in `[0, 1]`:
//! - the isolation forest's score over the feature vector (see [`crate::features`]);
//! - the rarity score: the largest normalised surprise of any categorical field, which is
//!   1 when some value was never seen in training.
//!
//! `anomaly_score = forest_weight * forest_score + (1 - forest_weight) * rarity_score`.
//! The threshold is the `1 - contamination` quantile of the training events' scores.
//! Per-field value counts are kept in the model, so each answer explains itself.

use crate::event::Event;
use crate::features::{self, CATEGORICAL_FIELDS, Frequencies, N_FEATURES};
use crate::forest::{ForestError, IsolationForest, IsolationForestParams};
use chrono::{DateTime, Utc};
use linfa::dataset::DatasetBase;
use linfa::traits::Fit;
use ndarray::{Array2, ArrayView1};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The version of the model file format this code reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// Errors of training and loading models.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Nothing to train on.
    #[error("cannot train on an empty set of events")]
    NoEvents,
    /// Parameters out of range.
    #[error("invalid training parameter: {0}")]
    Params(String),
    /// The forest could not be fitted.
    #[error("fitting the isolation forest failed: {0}")]
    Forest(#[from] ForestError),
    /// The model file is not JSON or not a model.
    #[error("the model file is not a valid model: {0}")]
    Parse(String),
    /// The model file has another format version.
    #[error(
        "model file format version {found} is not supported (this build reads version {expected}); retrain the model with this build"
    )]
    FormatVersion {
        /// Version in the file (0 when absent).
        found: u32,
        /// Version this build reads.
        expected: u32,
    },
}

/// Training parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainParams {
    /// Forest hyper-parameters.
    pub forest: IsolationForestParams,
    /// Expected share of anomalies among training events; sets the threshold.
    pub contamination: f64,
    /// Weight of the forest score in the combined score (the rest is the rarity score).
    pub forest_weight: f64,
    /// At most this many training events are scored to place the threshold.
    pub threshold_sample: usize,
}

impl Default for TrainParams {
    fn default() -> Self {
        TrainParams {
            forest: IsolationForestParams::default(),
            contamination: 0.01,
            forest_weight: 0.5,
            threshold_sample: 200_000,
        }
    }
}

/// A trained model, as stored in a model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// File format version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// Model version (also its key in the store).
    pub version: String,
    /// When training finished.
    pub trained_at: DateTime<Utc>,
    /// Number of events the model was trained on.
    pub training_samples: u64,
    /// Feature names in vector order.
    pub features: Vec<String>,
    /// Score at or above which an event is an anomaly.
    pub threshold: f64,
    /// Parameters used for training.
    pub params: TrainParams,
    /// Per-field value counts, keyed by field name.
    pub frequencies: BTreeMap<String, Frequencies>,
    /// The fitted forest.
    pub forest: IsolationForest,
    /// Tables in [`CATEGORICAL_FIELDS`] order (rebuilt on load).
    #[serde(skip)]
    tables: Vec<Frequencies>,
}

/// Rarity level of a value by its training frequency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Rarity {
    /// Never seen in training.
    Unseen,
    /// Seen, in less than 0.1% of training events.
    VeryRare,
    /// In 0.1% to 1%.
    Rare,
    /// In 1% to 5%.
    Uncommon,
    /// In 5% or more.
    Common,
}

impl Rarity {
    /// Level for a count out of `total`.
    pub fn of(count: u64, total: u64) -> Rarity {
        if count == 0 || total == 0 {
            return Rarity::Unseen;
        }
        let f = count as f64 / total as f64;
        if f < 0.001 {
            Rarity::VeryRare
        } else if f < 0.01 {
            Rarity::Rare
        } else if f < 0.05 {
            Rarity::Uncommon
        } else {
            Rarity::Common
        }
    }
}

/// The explanation of one field of a scored event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldRarity {
    /// The event's value (`<missing>` when absent or malformed).
    pub value: String,
    /// Training events with this value.
    pub frequency: u64,
    /// Share of training events with this value, in percent.
    pub rarity: f64,
    /// The level.
    pub level: Rarity,
}

/// The score of one event and its explanation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// `anomaly_score >= threshold`.
    pub is_anomaly: bool,
    /// Combined score in `[0, 1]`.
    pub anomaly_score: f64,
    /// The model's threshold.
    pub threshold: f64,
    /// How far the score is from the threshold, scaled to `[0, 1]`.
    pub confidence: f64,
    /// -1 for an anomaly, +1 for a normal event (scikit-learn's convention).
    pub prediction: i8,
    /// The isolation forest's score.
    pub forest_score: f64,
    /// The largest normalised surprise of a categorical field.
    pub rarity_score: f64,
    /// Per field: value, count, share and level.
    pub rarity_analysis: BTreeMap<String, FieldRarity>,
    /// Fields whose value is UNSEEN or VERY_RARE.
    pub suspicious_features: Vec<String>,
    /// Version of the model that scored the event.
    pub model_version: String,
}

impl Model {
    /// Trains a model on parsed events.
    pub fn train(events: &[Event], params: TrainParams) -> Result<Model, ModelError> {
        if events.is_empty() {
            return Err(ModelError::NoEvents);
        }
        if !(0.0..0.5).contains(&params.contamination) {
            return Err(ModelError::Params(format!(
                "contamination must be in [0, 0.5), got {}",
                params.contamination
            )));
        }
        if !(0.0..=1.0).contains(&params.forest_weight) {
            return Err(ModelError::Params(format!(
                "forest_weight must be in [0, 1], got {}",
                params.forest_weight
            )));
        }
        let tables = features::count_values(events);
        // The forest only ever sees `max_samples` rows per tree: encode a random subset
        // large enough for every tree rather than the whole training set.
        let mut rng = StdRng::seed_from_u64(params.forest.seed ^ 0x5eed);
        let fit_rows = events.len().min(params.forest.max_samples.max(2) * 64);
        let fit_idx = rand::seq::index::sample(&mut rng, events.len(), fit_rows).into_vec();
        let mut x = Array2::zeros((fit_rows, N_FEATURES));
        for (r, &i) in fit_idx.iter().enumerate() {
            let v = features::encode(&events[i], &tables);
            x.row_mut(r).assign(&ArrayView1::from(&v[..]));
        }
        let forest = params.forest.fit(&DatasetBase::from(x))?;
        let trained_at = Utc::now();
        let mut model = Model {
            format_version: FORMAT_VERSION,
            version: trained_at.format("%Y%m%dT%H%M%S%.3fZ").to_string(),
            trained_at,
            training_samples: events.len() as u64,
            features: features::feature_names(),
            threshold: 1.0,
            params,
            frequencies: CATEGORICAL_FIELDS
                .iter()
                .map(|f| f.to_string())
                .zip(tables.iter().cloned())
                .collect(),
            forest,
            tables,
        };
        let n = events.len().min(params.threshold_sample.max(1));
        let idx = rand::seq::index::sample(&mut rng, events.len(), n).into_vec();
        let mut scores: Vec<f64> = idx.iter().map(|&i| model.raw_score(&events[i]).0).collect();
        scores.sort_by(f64::total_cmp);
        let q = ((1.0 - params.contamination) * n as f64).ceil() as usize;
        model.threshold = if q >= n {
            // No contamination: just above the highest training score.
            scores[n - 1] + 1e-9
        } else {
            scores[q]
        };
        Ok(model)
    }

    /// (combined, forest, rarity) scores.
    fn raw_score(&self, e: &Event) -> (f64, f64, f64) {
        let v = features::encode(e, &self.tables);
        let forest = self.forest.score(ArrayView1::from(&v[..]));
        let rarity = features::categorical_values(e)
            .iter()
            .zip(&self.tables)
            .map(|(val, t)| t.normalised_surprise(val.key()))
            .fold(0.0, f64::max);
        let w = self.params.forest_weight;
        (w * forest + (1.0 - w) * rarity, forest, rarity)
    }

    /// The anomaly score of an event, without the explanation.
    pub fn anomaly_score(&self, e: &Event) -> f64 {
        self.raw_score(e).0
    }

    /// Scores and explains an event.
    pub fn detect(&self, e: &Event) -> Detection {
        let (score, forest_score, rarity_score) = self.raw_score(e);
        let is_anomaly = score >= self.threshold;
        let span = if is_anomaly {
            1.0 - self.threshold
        } else {
            self.threshold
        };
        let confidence = if span > 0.0 {
            ((score - self.threshold).abs() / span).min(1.0)
        } else {
            1.0
        };
        let mut rarity_analysis = BTreeMap::new();
        let mut suspicious_features = Vec::new();
        for ((name, val), t) in CATEGORICAL_FIELDS
            .iter()
            .zip(features::categorical_values(e))
            .zip(&self.tables)
        {
            let count = t.count(val.key());
            let level = Rarity::of(count, t.total);
            if matches!(level, Rarity::Unseen | Rarity::VeryRare) {
                suspicious_features.push(name.to_string());
            }
            rarity_analysis.insert(
                name.to_string(),
                FieldRarity {
                    value: val.key().to_string(),
                    frequency: count,
                    rarity: round(100.0 * t.frequency(val.key()), 4),
                    level,
                },
            );
        }
        Detection {
            is_anomaly,
            anomaly_score: round(score, 6),
            threshold: round(self.threshold, 6),
            confidence: round(confidence, 4),
            prediction: if is_anomaly { -1 } else { 1 },
            forest_score: round(forest_score, 6),
            rarity_score: round(rarity_score, 6),
            rarity_analysis,
            suspicious_features,
            model_version: self.version.clone(),
        }
    }

    /// Serialises the model file.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a model always serialises")
    }

    /// Reads a model file, refusing other format versions.
    pub fn from_json(bytes: &[u8]) -> Result<Model, ModelError> {
        #[derive(Deserialize)]
        struct Header {
            format_version: Option<u32>,
        }
        let header: Header =
            serde_json::from_slice(bytes).map_err(|e| ModelError::Parse(e.to_string()))?;
        let found = header.format_version.unwrap_or(0);
        if found != FORMAT_VERSION {
            return Err(ModelError::FormatVersion {
                found,
                expected: FORMAT_VERSION,
            });
        }
        let mut model: Model =
            serde_json::from_slice(bytes).map_err(|e| ModelError::Parse(e.to_string()))?;
        model.tables = CATEGORICAL_FIELDS
            .iter()
            .map(|f| {
                model
                    .frequencies
                    .get(*f)
                    .cloned()
                    .ok_or_else(|| ModelError::Parse(format!("no frequencies for field {f}")))
            })
            .collect::<Result<_, _>>()?;
        if model.features != features::feature_names() || model.forest.n_features != N_FEATURES {
            return Err(ModelError::Parse(
                "the feature list differs from this build's".into(),
            ));
        }
        model.forest.validate().map_err(ModelError::Parse)?;
        if !model.threshold.is_finite() {
            return Err(ModelError::Parse("the threshold is not a number".into()));
        }
        Ok(model)
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn small_training_set() -> Vec<Event> {
        let names = [
            "DescribeConfigRules",
            "PutEvaluations",
            "GetComplianceDetailsByConfigRule",
        ];
        (0..400)
            .map(|i| {
                Event::from_json(&json!({
                    "eventName": names[i % 3],
                    "eventSource": "config.amazonaws.com",
                    "awsRegion": if i % 10 == 0 { "eu-west-1" } else { "us-east-1" },
                    "sourceIPAddress": format!("10.0.0.{}", i % 4),
                    "userAgent": "aws-sdk-go",
                    "recipientAccountId": "123456789012",
                    "userIdentity": {"type": "AssumedRole"},
                    "eventTime": format!("2024-06-{:02}T{:02}:{:02}:00Z", 3 + i % 5, 9 + i % 8, i % 60),
                }))
                .unwrap()
            })
            .collect()
    }

    #[test]
    fn unseen_values_are_anomalies_and_explained() {
        let model = Model::train(&small_training_set(), TrainParams::default()).unwrap();
        let normal = Event::from_json(
            &json!({"eventName": "PutEvaluations", "eventSource": "config.amazonaws.com",
            "awsRegion": "us-east-1", "sourceIPAddress": "10.0.0.1", "userAgent": "aws-sdk-go",
            "recipientAccountId": 123456789012u64, "userIdentity": {"type": "AssumedRole"},
            "eventTime": "2024-06-04T10:30:00Z"}),
        )
        .unwrap();
        let d = model.detect(&normal);
        assert!(!d.is_anomaly, "{d:?}");
        assert_eq!(d.prediction, 1);
        assert!(d.suspicious_features.is_empty());
        let odd = Event::from_json(
            &json!({"eventName": "DeleteConfigRule", "awsRegion": "us-east-1",
            "sourceIPAddress": "192.168.1.100", "userAgent": "curl/7.68.0",
            "recipientAccountId": 999999999999u64, "p_event_time": "2024-06-27 03:15:22"}),
        )
        .unwrap();
        let d2 = model.detect(&odd);
        assert!(d2.is_anomaly, "{d2:?}");
        assert!(d2.anomaly_score > d.anomaly_score);
        assert_eq!(d2.prediction, -1);
        let name = &d2.rarity_analysis["eventName"];
        assert_eq!(
            (name.value.as_str(), name.frequency, name.level),
            ("DeleteConfigRule", 0, Rarity::Unseen)
        );
        assert_eq!(d2.rarity_analysis["eventSource"].value, "<missing>");
        assert_eq!(d2.rarity_analysis["eventSource"].level, Rarity::Unseen);
        assert!(d2.suspicious_features.contains(&"eventName".to_string()));
        assert!(
            d2.suspicious_features
                .contains(&"recipientAccountId".to_string())
        );
        assert_eq!(d.rarity_analysis["awsRegion"].level, Rarity::Common);
    }

    #[test]
    fn file_round_trip_and_version_refusal() {
        let model = Model::train(&small_training_set(), TrainParams::default()).unwrap();
        let bytes = model.to_json();
        let back = Model::from_json(&bytes).unwrap();
        assert!(back == model, "the model changed in a round trip");
        let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v["format_version"] = json!(2);
        let err = Model::from_json(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(matches!(
            err,
            ModelError::FormatVersion {
                found: 2,
                expected: 1
            }
        ));
        assert!(
            err.to_string()
                .contains("format version 2 is not supported")
        );
        v.as_object_mut().unwrap().remove("format_version");
        assert!(matches!(
            Model::from_json(&serde_json::to_vec(&v).unwrap()),
            Err(ModelError::FormatVersion { found: 0, .. })
        ));
        assert!(matches!(
            Model::from_json(b"{\"format_version\": 1}"),
            Err(ModelError::Parse(_))
        ));
        assert!(matches!(
            Model::from_json(b"not json"),
            Err(ModelError::Parse(_))
        ));
        for key in [
            "version",
            "trained_at",
            "training_samples",
            "features",
            "threshold",
        ] {
            assert!(v.get(key).is_some(), "model file lacks {key}");
        }
    }

    #[test]
    fn rarity_levels() {
        assert_eq!(Rarity::of(0, 100), Rarity::Unseen);
        assert_eq!(Rarity::of(1, 10_000), Rarity::VeryRare);
        assert_eq!(Rarity::of(10, 10_000), Rarity::Rare);
        assert_eq!(Rarity::of(100, 10_000), Rarity::Uncommon);
        assert_eq!(Rarity::of(500, 10_000), Rarity::Common);
        assert_eq!(
            serde_json::to_value(Rarity::VeryRare).unwrap(),
            json!("VERY_RARE")
        );
    }

    #[test]
    fn refuses_empty_and_bad_params() {
        assert!(matches!(
            Model::train(&[], TrainParams::default()),
            Err(ModelError::NoEvents)
        ));
        let p = TrainParams {
            contamination: 0.7,
            ..Default::default()
        };
        assert!(matches!(
            Model::train(&small_training_set(), p),
            Err(ModelError::Params(_))
        ));
    }
}
