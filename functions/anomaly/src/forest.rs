//! An isolation forest (Liu, Ting & Zhou, 2008) over `ndarray`, implementing linfa's
//! traits: [`IsolationForestParams`] implements [`linfa::traits::Fit`] and the fitted
//! [`IsolationForest`] implements [`linfa::traits::PredictInplace`], so
//! `params.fit(&dataset)?.predict(&records)` gives one anomaly score per row.
//!
//! Scores follow scikit-learn's convention `s(x) = 2^(-E[h(x)] / c(ψ))` in `(0, 1)`:
//! close to 1 is isolated quickly (anomalous), below 0.5 is ordinary.
//! linfa 0.8 has no isolation forest, hence this module.

use linfa::dataset::DatasetBase;
use linfa::traits::{Fit, PredictInplace};
use ndarray::{Array1, Array2, ArrayView1};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Errors from fitting a forest.
#[derive(Debug, thiserror::Error)]
pub enum ForestError {
    /// No rows or no columns to fit on.
    #[error("cannot fit an isolation forest on {rows} rows and {cols} columns")]
    Empty {
        /// Row count.
        rows: usize,
        /// Column count.
        cols: usize,
    },
    /// A parameter is out of range.
    #[error("invalid isolation forest parameter: {0}")]
    Params(String),
    /// A record is not finite.
    #[error("record {row} has a non-finite value in column {col}")]
    NonFinite {
        /// Row index.
        row: usize,
        /// Column index.
        col: usize,
    },
    /// An error reported by linfa.
    #[error(transparent)]
    Linfa(#[from] linfa::Error),
}

/// Hyper-parameters, as in scikit-learn's `IsolationForest`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct IsolationForestParams {
    /// Number of trees (`n_estimators`).
    pub n_trees: usize,
    /// Rows drawn without replacement for each tree (`max_samples`, capped at the row count).
    pub max_samples: usize,
    /// Seed of the `StdRng` that draws samples, features and split points.
    pub seed: u64,
}

impl Default for IsolationForestParams {
    fn default() -> Self {
        IsolationForestParams {
            n_trees: 100,
            max_samples: 256,
            seed: 42,
        }
    }
}

/// One isolation tree, stored flat. `feature[i] < 0` marks a leaf holding `size[i]` rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    /// Split feature per node, or -1 for a leaf.
    pub feature: Vec<i32>,
    /// Split threshold per node (`x[feature] < threshold` goes left).
    pub threshold: Vec<f64>,
    /// Left child per node (0 for leaves).
    pub left: Vec<u32>,
    /// Right child per node (0 for leaves).
    pub right: Vec<u32>,
    /// Rows that reached the node during fitting (used at leaves).
    pub size: Vec<u32>,
}

/// A fitted isolation forest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IsolationForest {
    /// Number of columns the forest was fitted on.
    pub n_features: usize,
    /// Subsample size ψ actually used per tree.
    pub sample_size: usize,
    /// The trees.
    pub trees: Vec<Tree>,
}

/// Average path length of an unsuccessful search in a binary search tree of `n` nodes.
pub fn average_path_length(n: f64) -> f64 {
    if n <= 1.0 {
        0.0
    } else if n <= 2.0 {
        1.0
    } else {
        2.0 * ((n - 1.0).ln() + 0.577_215_664_901_532_9) - 2.0 * (n - 1.0) / n
    }
}

impl IsolationForestParams {
    fn check(&self) -> Result<(), ForestError> {
        if self.n_trees == 0 {
            return Err(ForestError::Params("n_trees must be at least 1".into()));
        }
        if self.max_samples < 2 {
            return Err(ForestError::Params("max_samples must be at least 2".into()));
        }
        Ok(())
    }

    /// Fits on a plain matrix (one row per record).
    pub fn fit_records(&self, x: &Array2<f64>) -> Result<IsolationForest, ForestError> {
        self.check()?;
        let (rows, cols) = x.dim();
        if rows == 0 || cols == 0 {
            return Err(ForestError::Empty { rows, cols });
        }
        if let Some(((row, col), _)) = x.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(ForestError::NonFinite { row, col });
        }
        let psi = self.max_samples.min(rows);
        let max_depth = (psi as f64).log2().ceil() as usize;
        let mut rng = StdRng::seed_from_u64(self.seed);
        let mut trees = Vec::with_capacity(self.n_trees);
        for _ in 0..self.n_trees {
            let mut idx = rand::seq::index::sample(&mut rng, rows, psi).into_vec();
            let mut tree = Tree {
                feature: Vec::new(),
                threshold: Vec::new(),
                left: Vec::new(),
                right: Vec::new(),
                size: Vec::new(),
            };
            build(&mut tree, x, &mut idx, 0, max_depth, &mut rng);
            trees.push(tree);
        }
        Ok(IsolationForest {
            n_features: cols,
            sample_size: psi,
            trees,
        })
    }
}

/// Grows a node over `idx` and returns its index in `tree`.
fn build(
    tree: &mut Tree,
    x: &Array2<f64>,
    idx: &mut [usize],
    depth: usize,
    max_depth: usize,
    rng: &mut StdRng,
) -> u32 {
    let node = tree.feature.len() as u32;
    tree.feature.push(-1);
    tree.threshold.push(0.0);
    tree.left.push(0);
    tree.right.push(0);
    tree.size.push(idx.len() as u32);
    if depth >= max_depth || idx.len() <= 1 {
        return node;
    }
    // Features that are not constant on this node, as scikit-learn's splitter does.
    let cols = x.ncols();
    let mut candidates: Vec<(usize, f64, f64)> = Vec::with_capacity(cols);
    for c in 0..cols {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for &i in idx.iter() {
            let v = x[[i, c]];
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if hi > lo {
            candidates.push((c, lo, hi));
        }
    }
    if candidates.is_empty() {
        return node;
    }
    let (col, lo, hi) = candidates[rng.gen_range(0..candidates.len())];
    let mut t = rng.gen_range(lo..hi);
    if t <= lo {
        t = (lo + hi) / 2.0;
    }
    // Partition: rows with x < t first.
    let mut split = 0;
    for k in 0..idx.len() {
        if x[[idx[k], col]] < t {
            idx.swap(k, split);
            split += 1;
        }
    }
    let (l, r) = idx.split_at_mut(split);
    tree.feature[node as usize] = col as i32;
    tree.threshold[node as usize] = t;
    let li = build(tree, x, l, depth + 1, max_depth, rng);
    let ri = build(tree, x, r, depth + 1, max_depth, rng);
    tree.left[node as usize] = li;
    tree.right[node as usize] = ri;
    node
}

impl Tree {
    /// Path length of `x`: edges walked plus `c(size)` at the leaf.
    pub fn path_length(&self, x: ArrayView1<'_, f64>) -> f64 {
        let mut n = 0usize;
        let mut depth = 0.0;
        loop {
            let f = self.feature[n];
            if f < 0 {
                return depth + average_path_length(self.size[n] as f64);
            }
            n = if x[f as usize] < self.threshold[n] {
                self.left[n] as usize
            } else {
                self.right[n] as usize
            };
            depth += 1.0;
        }
    }
}

impl IsolationForest {
    /// The anomaly score of one record, in `(0, 1)`.
    pub fn score(&self, x: ArrayView1<'_, f64>) -> f64 {
        if self.trees.is_empty() {
            return 0.5;
        }
        let mean =
            self.trees.iter().map(|t| t.path_length(x)).sum::<f64>() / self.trees.len() as f64;
        let c = average_path_length(self.sample_size as f64).max(f64::MIN_POSITIVE);
        2f64.powf(-mean / c)
    }

    /// Checks that the stored trees are consistent (used after deserialising).
    pub fn validate(&self) -> Result<(), String> {
        for (ti, t) in self.trees.iter().enumerate() {
            let n = t.feature.len();
            if [t.threshold.len(), t.left.len(), t.right.len(), t.size.len()]
                .iter()
                .any(|&l| l != n)
                || n == 0
            {
                return Err(format!("tree {ti} has arrays of different lengths"));
            }
            for i in 0..n {
                let f = t.feature[i];
                if f >= 0 {
                    if f as usize >= self.n_features {
                        return Err(format!("tree {ti} node {i} splits on feature {f}"));
                    }
                    let (l, r) = (t.left[i] as usize, t.right[i] as usize);
                    // Children come after their parent, so walks always terminate.
                    if l <= i || r <= i || l >= n || r >= n {
                        return Err(format!("tree {ti} node {i} has invalid children"));
                    }
                }
            }
        }
        Ok(())
    }
}

impl<T> Fit<Array2<f64>, T, ForestError> for IsolationForestParams {
    type Object = IsolationForest;

    fn fit(&self, dataset: &DatasetBase<Array2<f64>, T>) -> Result<IsolationForest, ForestError> {
        self.fit_records(&dataset.records)
    }
}

impl PredictInplace<Array2<f64>, Array1<f64>> for IsolationForest {
    fn predict_inplace<'a>(&'a self, x: &'a Array2<f64>, y: &mut Array1<f64>) {
        assert_eq!(
            x.ncols(),
            self.n_features,
            "the records have {} columns, the forest was fitted on {}",
            x.ncols(),
            self.n_features
        );
        for (row, out) in x.rows().into_iter().zip(y.iter_mut()) {
            *out = self.score(row);
        }
    }

    fn default_target(&self, x: &Array2<f64>) -> Array1<f64> {
        Array1::zeros(x.nrows())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linfa::traits::Predict;
    use ndarray::array;

    fn cluster(n: usize, seed: u64) -> Array2<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        Array2::from_shape_fn((n, 2), |_| rng.gen_range(-1.0..1.0))
    }

    #[test]
    fn outlier_scores_higher_than_inliers() {
        let data = DatasetBase::from(cluster(1000, 1));
        let forest = IsolationForestParams::default().fit(&data).unwrap();
        let probe = array![[0.0, 0.0], [0.5, -0.5], [8.0, 8.0], [-6.0, 0.0]];
        let s: Array1<f64> = forest.predict(&probe);
        assert!(s[2] > 0.6 && s[3] > 0.55, "{s}");
        assert!(s[0] < 0.5 && s[1] < 0.55, "{s}");
        assert!(s[2] > s[0] + 0.15);
    }

    #[test]
    fn same_seed_same_forest_and_validates() {
        let x = cluster(300, 2);
        let a = IsolationForestParams::default().fit_records(&x).unwrap();
        let b = IsolationForestParams::default().fit_records(&x).unwrap();
        assert_eq!(a, b);
        a.validate().unwrap();
        assert_eq!(a.sample_size, 256);
        let c = IsolationForestParams {
            seed: 7,
            ..Default::default()
        }
        .fit_records(&x)
        .unwrap();
        assert_ne!(a, c);
    }

    #[test]
    fn refuses_bad_input() {
        let p = IsolationForestParams::default();
        assert!(matches!(
            p.fit_records(&Array2::zeros((0, 3))),
            Err(ForestError::Empty { .. })
        ));
        let mut x = cluster(10, 3);
        x[[4, 1]] = f64::NAN;
        assert!(matches!(
            p.fit_records(&x),
            Err(ForestError::NonFinite { row: 4, col: 1 })
        ));
        let p0 = IsolationForestParams { n_trees: 0, ..p };
        assert!(matches!(
            p0.fit_records(&cluster(10, 3)),
            Err(ForestError::Params(_))
        ));
    }

    #[test]
    fn constant_data_gives_neutral_scores() {
        let x = Array2::from_elem((50, 3), 1.0);
        let f = IsolationForestParams::default().fit_records(&x).unwrap();
        let s = f.score(x.row(0));
        assert!((s - 0.5).abs() < 0.01, "{s}");
    }

    #[test]
    fn path_length_constants() {
        assert_eq!(average_path_length(1.0), 0.0);
        assert_eq!(average_path_length(2.0), 1.0);
        assert!((average_path_length(256.0) - 10.2448).abs() < 1e-3);
    }
}
