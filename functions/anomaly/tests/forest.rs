//! The isolation forest on its own, through linfa's traits: isolated points score
//! above every point of a dense cluster, the forest is a function of its seed, every
//! tree respects the subsample size and the depth limit `ceil(log2 ψ)`, and a
//! corrupted stored forest is refused.

use anomaly::forest::{IsolationForest, IsolationForestParams, Tree, average_path_length};
use linfa::DatasetBase;
use linfa::traits::{Fit, Predict};
use ndarray::{Array1, Array2, array};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// `n` points of a dense cluster around the origin, in `dims` dimensions.
fn cluster(n: usize, dims: usize, seed: u64) -> Array2<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    Array2::from_shape_fn((n, dims), |_| rng.gen_range(-0.5..0.5))
}

fn depth(tree: &Tree, node: usize) -> usize {
    if tree.feature[node] < 0 {
        0
    } else {
        1 + depth(tree, tree.left[node] as usize).max(depth(tree, tree.right[node] as usize))
    }
}

fn leaf_rows(tree: &Tree) -> u32 {
    (0..tree.feature.len())
        .filter(|&i| tree.feature[i] < 0)
        .map(|i| tree.size[i])
        .sum()
}

/// The cluster's rows followed by five isolated points, far from the cluster and
/// from each other.
fn cluster_and_outliers(n: usize, seed: u64) -> Array2<f64> {
    let mut x = cluster(n, 3, seed);
    let outliers = array![
        [6.0, 0.0, 0.0],
        [0.0, -7.0, 0.0],
        [0.0, 0.0, 9.0],
        [5.0, 5.0, -5.0],
        [-4.0, 3.0, 6.0]
    ];
    for row in outliers.rows() {
        x.push_row(row).unwrap();
    }
    x
}

fn sorted(scores: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut v: Vec<f64> = scores.collect();
    v.sort_by(f64::total_cmp);
    v
}

#[test]
fn isolated_points_score_above_every_point_of_a_dense_cluster() {
    // Every tree sees every row (ψ = all 505 rows): the isolated points are
    // split off near the root of every tree.
    let x = cluster_and_outliers(500, 11);
    let forest = IsolationForestParams {
        n_trees: 100,
        max_samples: 1_000,
        seed: 42,
    }
    .fit(&DatasetBase::from(x.clone()))
    .unwrap();
    assert_eq!(forest.sample_size, 505);
    let scores: Array1<f64> = forest.predict(&x);
    let inliers = sorted(scores.iter().take(500).cloned());
    let outliers = sorted(scores.iter().skip(500).cloned());
    assert!(
        outliers[0] > inliers[499],
        "isolated points {outliers:?} should outscore the cluster's highest {}",
        inliers[499]
    );
    // The cluster's typical point is ordinary (below 0.5), the isolated ones are not.
    assert!(inliers[250] < 0.5, "median inlier {}", inliers[250]);
    assert!(outliers[0] > 0.6, "{outliers:?}");
    // Scores are in (0, 1).
    assert!(scores.iter().all(|&s| s > 0.0 && s < 1.0));
}

#[test]
fn with_subsampling_points_off_in_every_coordinate_rank_at_the_top() {
    // ψ = 256 of 2,005 rows: most trees never see a given outlier, which then
    // falls into the cluster's outermost leaf on each axis it leaves. A point off
    // in every coordinate still ranks above the cluster's 99th percentile; a point
    // off in one coordinate only (e.g. (0, -7, 0)) scores like the cluster's faces,
    // a known limit of axis-parallel splits that the model's rarity evidence covers.
    let x = cluster_and_outliers(2_000, 12);
    let forest = IsolationForestParams::default().fit_records(&x).unwrap();
    assert_eq!(forest.sample_size, 256);
    let scores: Array1<f64> = forest.predict(&x);
    let inliers = sorted(scores.iter().take(2_000).cloned());
    let p99 = inliers[1_980];
    for point in [
        array![5.0, 5.0, -5.0],
        array![-4.0, 3.0, 6.0],
        array![3.0, -3.0, 3.0],
    ] {
        let s = forest.score(point.view());
        assert!(
            s > p99,
            "{point} scores {s}, the cluster's 99th percentile {p99}"
        );
    }
    // Every outlier is above the cluster's median, and farther is never less anomalous.
    for (i, s) in scores.iter().skip(2_000).enumerate() {
        assert!(*s > inliers[1_000], "outlier {i} scores {s}");
    }
    let near = forest.score(array![0.3, 0.3, 0.3].view());
    let far = forest.score(array![20.0, 20.0, 20.0].view());
    assert!(far > near, "{near} then {far}");
}

#[test]
fn the_forest_is_a_function_of_its_seed() {
    let x = cluster(1_000, 4, 12);
    let params = IsolationForestParams {
        n_trees: 30,
        max_samples: 128,
        seed: 42,
    };
    let a = params.fit_records(&x).unwrap();
    let b = params.fit_records(&x).unwrap();
    assert_eq!(a, b, "same data, same seed: the same trees");
    let probe = cluster(50, 4, 13);
    let sa: Array1<f64> = a.predict(&probe);
    let sb: Array1<f64> = b.predict(&probe);
    assert_eq!(sa, sb);
    let c = IsolationForestParams { seed: 43, ..params }
        .fit_records(&x)
        .unwrap();
    assert_ne!(a, c, "another seed grows other trees");
    // The serialised forest scores exactly as the fitted one.
    let copy: IsolationForest = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
    copy.validate().unwrap();
    assert_eq!(copy.predict(&probe), sa);
}

#[test]
fn trees_respect_the_subsample_size_and_the_depth_limit() {
    for (rows, max_samples, n_trees) in [(5_000, 256, 40), (1_000, 64, 25), (100, 256, 10)] {
        let x = cluster(rows, 3, rows as u64);
        let forest = IsolationForestParams {
            n_trees,
            max_samples,
            seed: 1,
        }
        .fit_records(&x)
        .unwrap();
        let psi = max_samples.min(rows);
        assert_eq!(
            forest.sample_size, psi,
            "ψ is max_samples capped at the rows"
        );
        assert_eq!(forest.trees.len(), n_trees);
        assert_eq!(forest.n_features, 3);
        let limit = (psi as f64).log2().ceil() as usize;
        for tree in &forest.trees {
            assert_eq!(tree.size[0] as usize, psi, "each tree sees ψ rows");
            assert_eq!(leaf_rows(tree) as usize, psi, "every row ends in one leaf");
            let d = depth(tree, 0);
            assert!(d <= limit, "depth {d} over the limit {limit} (ψ = {psi})");
        }
        // With ψ = 256 the limit is 8, as the README says.
        if psi == 256 {
            assert_eq!(limit, 8);
            assert!(forest.trees.iter().any(|t| depth(t, 0) == 8));
        }
    }
    // The normalisation c(ψ) of the score.
    assert!((average_path_length(256.0) - 10.2448).abs() < 1e-3);
}

#[test]
fn a_corrupted_stored_forest_is_refused() {
    let good = IsolationForestParams {
        n_trees: 3,
        max_samples: 32,
        seed: 5,
    }
    .fit_records(&cluster(100, 2, 14))
    .unwrap();
    good.validate().unwrap();

    let mut lengths = good.clone();
    lengths.trees[0].threshold.pop();
    assert!(
        lengths
            .validate()
            .unwrap_err()
            .contains("different lengths")
    );

    let mut feature = good.clone();
    let split = feature.trees[1]
        .feature
        .iter()
        .position(|&f| f >= 0)
        .unwrap();
    feature.trees[1].feature[split] = 2;
    assert!(feature.validate().unwrap_err().contains("feature 2"));

    let mut cycle = good.clone();
    let split = cycle.trees[2].feature.iter().position(|&f| f >= 0).unwrap();
    cycle.trees[2].left[split] = split as u32;
    assert!(cycle.validate().unwrap_err().contains("invalid children"));
}
