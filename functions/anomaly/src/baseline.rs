//! The first model, kept as the baseline the evaluation and the benchmarks compare
//! the current one against: an isolation forest over rarity-encoded fields
//! ([`crate::features`]) combined with the largest normalised rarity of any field,
//! `anomaly_score = forest_weight * forest_score + (1 - forest_weight) * rarity_score`,
//! and a threshold at the `1 - contamination` quantile of the training events' own
//! scores.

use crate::event::Event;
use crate::features::{self, Frequencies, N_FEATURES};
use crate::forest::{ForestError, IsolationForest, IsolationForestParams};
use linfa::dataset::DatasetBase;
use linfa::traits::Fit;
use ndarray::{Array2, ArrayView1};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

/// Training parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BaselineParams {
    /// Forest hyper-parameters.
    pub forest: IsolationForestParams,
    /// Expected share of anomalies among training events; sets the threshold.
    pub contamination: f64,
    /// Weight of the forest score in the combined score (the rest is the rarity score).
    pub forest_weight: f64,
    /// At most this many training events are scored to place the threshold.
    pub threshold_sample: usize,
}

impl Default for BaselineParams {
    fn default() -> Self {
        BaselineParams {
            forest: IsolationForestParams::default(),
            contamination: 0.01,
            forest_weight: 0.5,
            threshold_sample: 200_000,
        }
    }
}

/// Why a baseline model could not be trained.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// Nothing to train on.
    #[error("cannot train on an empty set of events")]
    NoEvents,
    /// Parameters out of range.
    #[error("invalid training parameter: {0}")]
    Params(String),
    /// The forest could not be fitted.
    #[error("fitting the isolation forest failed: {0}")]
    Forest(#[from] ForestError),
}

/// A trained baseline model.
#[derive(Debug, Clone)]
pub struct BaselineModel {
    /// Score at or above which an event is an anomaly.
    pub threshold: f64,
    params: BaselineParams,
    forest: IsolationForest,
    /// Tables in [`CATEGORICAL_FIELDS`] order.
    tables: Vec<Frequencies>,
}

impl BaselineModel {
    /// Trains a model on parsed events.
    pub fn train(events: &[Event], params: BaselineParams) -> Result<BaselineModel, BaselineError> {
        if events.is_empty() {
            return Err(BaselineError::NoEvents);
        }
        if !(0.0..0.5).contains(&params.contamination) {
            return Err(BaselineError::Params(format!(
                "contamination must be in [0, 0.5), got {}",
                params.contamination
            )));
        }
        if !(0.0..=1.0).contains(&params.forest_weight) {
            return Err(BaselineError::Params(format!(
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
        let mut model = BaselineModel {
            threshold: 1.0,
            params,
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_unseen_value_scores_above_a_common_event() {
        let names = ["DescribeConfigRules", "PutEvaluations"];
        let events: Vec<Event> = (0..400)
            .map(|i| {
                Event::from_json(&json!({
                    "eventName": names[i % 2],
                    "awsRegion": "us-east-1",
                    "eventTime": format!("2024-06-{:02}T{:02}:00:00Z", 3 + i % 5, 9 + i % 8),
                }))
                .unwrap()
            })
            .collect();
        let model = BaselineModel::train(&events, BaselineParams::default()).unwrap();
        let odd = Event::from_json(
            &json!({"eventName": "StopLogging", "awsRegion": "us-east-1",
            "eventTime": "2024-06-04T10:00:00Z"}),
        )
        .unwrap();
        assert!(model.anomaly_score(&odd) >= model.threshold);
        assert!(model.anomaly_score(&events[0]) < model.anomaly_score(&odd));
        assert!(matches!(
            BaselineModel::train(&[], BaselineParams::default()),
            Err(BaselineError::NoEvents)
        ));
    }
}
