//! Training from CloudTrail logs in S3 (moto) and from a local file; promotion is
//! atomic (a reader polling `latest` never sees a missing or partial model) and a
//! too-small training set keeps the previous model.

use anomaly::generator::Generator;
use anomaly::store::{ModelStore, s3_client};
use aws_sdk_s3::primitives::ByteStream;
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use training::sources::Source;
use training::{Job, PantherSettings};

fn job(source: Source, bucket: Option<&str>, min_events: usize) -> Job {
    Job {
        source,
        bucket: bucket.map(str::to_string),
        prefix: "models/".into(),
        min_events,
        out: None,
        params: anomaly::TrainParams::default(),
        panther: PantherSettings {
            url: None,
            secret_arn: None,
            token: None,
            sql: String::new(),
            deadline: Duration::from_secs(1),
            initial_backoff: Duration::from_millis(10),
        },
    }
}

fn gz(v: &Value) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(&serde_json::to_vec(v).unwrap()).unwrap();
    e.finish().unwrap()
}

#[tokio::test]
async fn trains_from_cloudtrail_logs_in_s3() {
    let aws = test_harness::LocalAws::start().await;
    let conf = aws.sdk_config().await;
    let s3 = s3_client(&conf);
    for b in ["trail", "models"] {
        s3.create_bucket().bucket(b).send().await.unwrap();
    }
    let mut g = Generator::new(11);
    let prefix = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/06/";
    for (i, n) in [300usize, 250, 150].iter().enumerate() {
        let doc = json!({"Records": g.normal_events(*n)});
        let key = format!(
            "{prefix}{:02}/111122223333_CloudTrail_us-east-1_20240603T0000Z_{i}.json.gz",
            i + 3
        );
        s3.put_object()
            .bucket("trail")
            .key(key)
            .body(ByteStream::from(gz(&doc)))
            .send()
            .await
            .unwrap();
    }
    // A digest file and a file outside the prefix are not training data.
    let digest = json!({"digestStartTime": "2024-06-03T00:00:00Z", "logFiles": []});
    s3.put_object()
        .bucket("trail")
        .key("AWSLogs/111122223333/CloudTrail-Digest/us-east-1/d.json.gz")
        .body(ByteStream::from(gz(&digest)))
        .send()
        .await
        .unwrap();
    s3.put_object()
        .bucket("trail")
        .key("elsewhere/x.json.gz")
        .body(ByteStream::from(gz(
            &json!({"Records": g.normal_events(99)}),
        )))
        .send()
        .await
        .unwrap();

    let source: Source = "s3://trail/AWSLogs/111122223333/CloudTrail/"
        .parse()
        .unwrap();
    let outcome = training::run_with(&job(source, Some("models"), 500), &conf)
        .await
        .unwrap();
    assert!(outcome.promoted, "{outcome:?}");
    assert_eq!((outcome.events, outcome.skipped), (700, 0));
    let store = ModelStore::new(s3, "models", "models/");
    let (pointer, model) = store.load_latest().await.unwrap().unwrap();
    assert_eq!(model.training_samples, 700);
    assert_eq!(pointer.key, format!("models/{}.json", model.version));
    assert_eq!(outcome.model_key.as_deref(), Some(pointer.key.as_str()));
}

#[tokio::test]
async fn trains_from_a_local_file_with_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("events.jsonl");
    let out = dir.path().join("model.json");
    let gen_status = std::process::Command::new(env!("CARGO_BIN_EXE_training"))
        .args(["generate", "--count", "1500", "--seed", "5", "--out"])
        .arg(&data)
        .status()
        .unwrap();
    assert!(gen_status.success());
    // One unreadable line is counted, not fatal.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&data)
        .unwrap()
        .write_all(b"this is not json\n")
        .unwrap();
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_training"))
        .args(["train", "--min-events", "1000", "--source"])
        .arg(format!("file:{}", data.display()))
        .arg("--out")
        .arg(&out)
        .env_remove("MODEL_BUCKET")
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let outcome: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(outcome["status"], "written");
    assert_eq!(outcome["events"], 1500);
    assert_eq!(outcome["skipped"], 1);
    let model = anomaly::Model::from_json(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(model.training_samples, 1500);
    assert_eq!(outcome["version"], json!(model.version));

    // Too few events: nothing is written, and the outcome says so.
    let small = dir.path().join("small.jsonl");
    std::fs::write(&small, "{\"eventName\": \"A\"}\n").unwrap();
    let out2 = dir.path().join("model2.json");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_training"))
        .args(["train", "--min-events", "10", "--source"])
        .arg(format!("file:{}", small.display()))
        .arg("--out")
        .arg(&out2)
        .output()
        .unwrap();
    assert!(run.status.success());
    let outcome: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(outcome["status"], "not_promoted");
    assert!(!out2.exists());
}

#[tokio::test]
async fn a_reader_never_sees_a_missing_or_partial_model_and_small_sets_are_not_promoted() {
    let aws = test_harness::LocalAws::start().await;
    let conf = aws.sdk_config().await;
    let s3 = s3_client(&conf);
    s3.create_bucket().bucket("models").send().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("events.jsonl");
    let mut f = std::fs::File::create(&data).unwrap();
    for r in Generator::new(21).normal_events(4000) {
        writeln!(f, "{r}").unwrap();
    }
    let file_source = Source::File(data.clone());
    let first = training::run_with(&job(file_source.clone(), Some("models"), 1000), &conf)
        .await
        .unwrap();
    assert!(first.promoted);

    // A reader polls `latest` and loads what it names, while training runs again and again.
    let store = ModelStore::new(s3.clone(), "models", "models/");
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let versions = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let reader = {
        let (store, stop, reads, versions) =
            (store.clone(), stop.clone(), reads.clone(), versions.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match store.load_latest().await {
                    Ok(Some((p, m))) => {
                        assert_eq!(p.version, m.version);
                        assert_eq!(m.training_samples, 4000);
                        versions.lock().unwrap().insert(m.version);
                    }
                    Ok(None) => panic!("the latest pointer disappeared"),
                    Err(e) => panic!("a reader saw a broken model: {e}"),
                }
                reads.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let mut promoted = vec![first.version.clone().unwrap()];
    for _ in 0..3 {
        let o = training::run_with(&job(file_source.clone(), Some("models"), 1000), &conf)
            .await
            .unwrap();
        assert!(o.promoted);
        assert_eq!(
            o.previous_version.as_deref(),
            promoted.last().map(String::as_str)
        );
        promoted.push(o.version.unwrap());
    }
    stop.store(true, Ordering::Relaxed);
    reader.await.expect("the reader saw only complete models");
    assert!(reads.load(Ordering::Relaxed) > 3);
    let seen = versions.lock().unwrap().clone();
    assert!(
        seen.len() >= 2,
        "the reader followed the pointer across versions: {seen:?}"
    );
    assert!(seen.iter().all(|v| promoted.contains(v)));

    // Too few events: not promoted, the previous model stays.
    let small = dir.path().join("small.jsonl");
    let mut f = std::fs::File::create(&small).unwrap();
    for r in Generator::new(22).normal_events(50) {
        writeln!(f, "{r}").unwrap();
    }
    let before = store.latest_pointer().await.unwrap().unwrap();
    let o = training::run_with(&job(Source::File(small), Some("models"), 1000), &conf)
        .await
        .unwrap();
    assert!(!o.promoted);
    assert_eq!(o.status, "not_promoted");
    assert_eq!(o.events, 50);
    assert_eq!(o.previous_version.as_deref(), Some(before.version.as_str()));
    assert!(
        o.message.contains("fewer than the minimum of 1000") && o.message.contains(&before.version),
        "{}",
        o.message
    );
    assert_eq!(store.latest_pointer().await.unwrap().unwrap(), before);
    let listed = s3
        .list_objects_v2()
        .bucket("models")
        .prefix("models/")
        .send()
        .await
        .unwrap();
    assert_eq!(
        listed.contents().len(),
        promoted.len() + 1,
        "every promoted version plus the pointer, nothing else"
    );
}
