//! Destroy: removes what the deployment owns in reverse order, keeps the
//! bucket and its models unless told otherwise, never touches what it does
//! not own, and asks before acting.

mod common;

use aws_sdk_s3::primitives::ByteStream;
use common::*;
use controller::reconcile::BucketOnDestroy;

const BUCKET: &str = "anomaly-local-models";

async fn put_model(sdk: &Sdk, body: &str) {
    sdk.s3
        .put_object()
        .bucket(BUCKET)
        .key("models/latest.json")
        .body(ByteStream::from(body.as_bytes().to_vec()))
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_keeps_the_bucket_and_its_models_by_default() {
    let aws = common::account().await;
    local_controller(&aws).await.apply().await.expect("apply");
    let sdk = sdk(&aws).await;
    put_model(&sdk, "model v1").await;

    let config = write_config(&local_config(aws.endpoint_url()));
    let output = run_controller(&["destroy", config.path.to_str().unwrap(), "--yes"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    assert!(stdout(&output).contains("retain"), "{}", stdout(&output));
    let left = inventory(&sdk).await;
    assert_eq!(left, ONLY_BUCKET);
    let model = sdk
        .s3
        .get_object()
        .bucket(BUCKET)
        .key("models/latest.json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        model.body.collect().await.unwrap().into_bytes().as_ref(),
        b"model v1"
    );

    // A second destroy has nothing left to delete; apply brings it all back.
    let output = run_controller(&["destroy", config.path.to_str().unwrap(), "--yes"]);
    assert_eq!(output.status.code(), Some(0));
    local_controller(&aws)
        .await
        .apply()
        .await
        .expect("apply again");
    assert_eq!(inventory(&sdk).await, FULL);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_bucket_removes_every_version_then_the_bucket() {
    let aws = common::account().await;
    local_controller(&aws).await.apply().await.expect("apply");
    let sdk = sdk(&aws).await;
    put_model(&sdk, "model v1").await;
    put_model(&sdk, "model v2").await;
    sdk.s3
        .delete_object()
        .bucket(BUCKET)
        .key("models/latest.json")
        .send()
        .await
        .unwrap();
    let versions = sdk
        .s3
        .list_object_versions()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    assert_eq!(
        versions.versions().len() + versions.delete_markers().len(),
        3
    );

    let controller = local_controller(&aws).await;
    controller
        .destroy(BucketOnDestroy::Delete)
        .await
        .expect("destroy");
    assert_eq!(
        inventory(&sdk).await,
        Inventory {
            buckets: 0,
            ..ONLY_BUCKET
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_bucket_of_the_same_name_is_left_untouched() {
    let aws = common::account().await;
    let sdk = sdk(&aws).await;
    sdk.s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    put_model(&sdk, "someone else's").await;

    let config = write_config(&local_config(aws.endpoint_url()));
    let path = config.path.to_str().unwrap();
    let output = run_controller(&["apply", path]);
    assert_eq!(output.status.code(), Some(1));
    let error = stderr(&output);
    assert!(error.contains("bucket anomaly-local-models"), "{error}");
    assert!(error.contains("without the ownership tags"), "{error}");
    assert_eq!(inventory(&sdk).await.functions, 0, "apply changed nothing");

    let output = run_controller(&["destroy", path, "--yes", "--delete-bucket"]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert!(stderr(&output).contains("bucket anomaly-local-models"));
    let model = sdk
        .s3
        .get_object()
        .bucket(BUCKET)
        .key("models/latest.json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        model.body.collect().await.unwrap().into_bytes().as_ref(),
        b"someone else's"
    );
    let tags = sdk.s3.get_bucket_tagging().bucket(BUCKET).send().await;
    assert!(tags.is_err(), "no tag was added to the foreign bucket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_without_a_terminal_and_without_yes_refuses() {
    let aws = common::account().await;
    local_controller(&aws).await.apply().await.expect("apply");
    let config = write_config(&local_config(aws.endpoint_url()));
    let output = run_controller(&["destroy", config.path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("--yes"), "{}", stderr(&output));
    assert_eq!(
        inventory(&sdk(&aws).await).await,
        FULL,
        "nothing was deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_left_untagged_by_an_interrupted_create_is_claimed() {
    let aws = common::account().await;
    let sdk = sdk(&aws).await;
    // What an apply killed between CreateBucket and PutBucketTagging leaves.
    sdk.s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let controller = local_controller(&aws).await;
    let plan = controller.plan().await.unwrap();
    let bucket = plan
        .changes
        .iter()
        .find(|change| change.resource.name == BUCKET)
        .unwrap();
    assert_eq!(bucket.action, controller::plan::Action::Update, "{plan}");
    controller
        .apply_plan(plan)
        .await
        .expect("apply claims the bucket");
    let tags = sdk
        .s3
        .get_bucket_tagging()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    assert!(
        tags.tag_set()
            .iter()
            .any(|tag| tag.key() == "anomaly-controller:deployment"
                && tag.value() == "anomaly-local")
    );
}
