//! The alert-rate promise over several simulated organisations: for each seed,
//! trained on four weeks and tested on the fifth's normal events, the share of
//! them flagged at `contamination` 0.01 and 0.001, and the mean over seeds.
//!
//! `cargo run --release -p anomaly --example alert_rates -- [FIRST_SEED] [LAST_SEED]`

use anomaly::organisation::Organisation;
use anomaly::{Event, Model, TrainParams};

const CONTAMINATIONS: [f64; 2] = [0.01, 0.001];

fn main() {
    let seed = |index: usize, default: u64| {
        std::env::args()
            .nth(index)
            .map(|value| value.parse().expect("seeds are numbers"))
            .unwrap_or(default)
    };
    let (first, last) = (seed(1, 1), seed(2, 10));
    let read = |records: Vec<serde_json::Value>| -> Vec<Event> {
        records
            .iter()
            .map(|record| Event::from_json(record).expect("generated records parse"))
            .collect()
    };
    let mut sums = [0.0; CONTAMINATIONS.len()];
    for seed in first..=last {
        let organisation = Organisation::new(seed);
        let train = read(organisation.normal_events(0, 28));
        let test = read(organisation.normal_events(28, 35));
        print!("organisation {seed}:");
        for (index, contamination) in CONTAMINATIONS.into_iter().enumerate() {
            let params = TrainParams {
                contamination,
                ..TrainParams::default()
            };
            let model = Model::train(&train, params).expect("the model trains");
            let alerts = test
                .iter()
                .filter(|event| model.anomaly_score(event) >= model.threshold())
                .count();
            let rate = alerts as f64 / test.len() as f64;
            sums[index] += rate;
            print!(
                "  at {contamination}: {:.2} % ({alerts} of {})",
                100.0 * rate,
                test.len()
            );
        }
        println!();
    }
    let seeds = (last + 1 - first) as f64;
    print!("mean over {seeds} organisations:");
    for (index, contamination) in CONTAMINATIONS.into_iter().enumerate() {
        print!("  at {contamination}: {:.3} %", 100.0 * sums[index] / seeds);
    }
    println!();
}
