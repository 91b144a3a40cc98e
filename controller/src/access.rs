//! The IAM policy the controller itself needs to manage one deployment:
//! `controller policy` prints it, so that the credentials that run
//! `apply`, `diff`, `destroy` and `run` can be given exactly this and no
//! more.
//!
//! Every statement names the actions of one kind of resource and scopes them
//! to the names the file gives (bucket, repositories, roles, functions, log
//! groups, rule, secret). Where AWS has no narrower resource for an action
//! (`s3:ListAllMyBuckets`, `ecr:GetAuthorizationToken`,
//! `logs:DescribeLogGroups`, `sts:GetCallerIdentity`) the resource is `*`; API Gateway's resources are
//! paths whose API id AWS chooses, so the REST API statement covers
//! `/restapis/*` of the Region. Action names follow the Service
//! Authorization Reference (for S3, for example, `HeadBucket` needs
//! `s3:ListBucket` and `PutBucketEncryption` needs
//! `s3:PutEncryptionConfiguration`).

use serde_json::{Value, json};

use crate::spec::Spec;

/// The least-privilege identity policy for managing the deployment `spec`
/// describes in `account` and `spec.deployment.region`.
pub fn controller_policy(spec: &Spec, partition: &str, account: &str) -> Value {
    let region = &spec.deployment.region;
    let arn = |service: &str, resource: &str| {
        format!("arn:{partition}:{service}:{region}:{account}:{resource}")
    };
    let bucket = format!("arn:{partition}:s3:::{}", spec.bucket.name);
    let mut statements = vec![
        json!({
            "Sid": "ReadCallerIdentity",
            "Effect": "Allow",
            "Action": ["sts:GetCallerIdentity"],
            "Resource": "*"
        }),
        json!({
            "Sid": "ModelBucket",
            "Effect": "Allow",
            "Action": [
                "s3:CreateBucket", "s3:DeleteBucket", "s3:ListBucket", "s3:ListBucketVersions",
                "s3:GetBucketVersioning", "s3:PutBucketVersioning",
                "s3:GetEncryptionConfiguration", "s3:PutEncryptionConfiguration",
                "s3:GetBucketPublicAccessBlock", "s3:PutBucketPublicAccessBlock",
                "s3:GetLifecycleConfiguration", "s3:PutLifecycleConfiguration",
                "s3:GetBucketTagging", "s3:PutBucketTagging"
            ],
            "Resource": bucket
        }),
        // The writers' lease object, and every object version when the
        // bucket itself is destroyed.
        json!({
            "Sid": "ModelBucketObjects",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"],
            "Resource": format!("{bucket}/*")
        }),
        // ListBuckets tells an interrupted create of the bucket (its
        // creation date) from a foreign bucket of the same name.
        json!({
            "Sid": "FindBucketCreationDate",
            "Effect": "Allow",
            "Action": ["s3:ListAllMyBuckets"],
            "Resource": "*"
        }),
    ];

    let repositories: Vec<String> = spec
        .functions
        .iter()
        .map(|function| arn("ecr", &format!("repository/{}", function.repository.name)))
        .collect();
    let roles: Vec<String> = spec
        .functions
        .iter()
        .map(|function| {
            format!(
                "arn:{partition}:iam::{account}:role{}{}",
                function.role.path, function.role.name
            )
        })
        .collect();
    // A function's versions and aliases have qualified ARNs of their own.
    let functions: Vec<String> = spec
        .functions
        .iter()
        .flat_map(|function| {
            [
                arn("lambda", &format!("function:{}", function.name)),
                arn("lambda", &format!("function:{}:*", function.name)),
            ]
        })
        .collect();
    let alarms: Vec<String> = spec
        .functions
        .iter()
        .flat_map(|function| function.release.iter())
        .flat_map(|release| release.alarms.iter())
        .map(|alarm| arn("cloudwatch", &format!("alarm:{}", alarm.name)))
        .collect();
    let mut log_groups: Vec<String> = spec
        .functions
        .iter()
        .flat_map(|function| {
            [
                arn("logs", &format!("log-group:{}", function.logs.name)),
                arn("logs", &format!("log-group:{}:*", function.logs.name)),
            ]
        })
        .collect();
    if let Some(api) = spec.api.as_ref().filter(|api| api.access_logging) {
        let name = crate::desired::access_log_group_name(&api.name);
        log_groups.push(arn("logs", &format!("log-group:{name}")));
        log_groups.push(arn("logs", &format!("log-group:{name}:*")));
    }
    if !repositories.is_empty() {
        statements.push(json!({
            "Sid": "FunctionRepositories",
            "Effect": "Allow",
            "Action": [
                "ecr:CreateRepository", "ecr:DescribeRepositories", "ecr:DeleteRepository",
                "ecr:GetLifecyclePolicy", "ecr:PutLifecyclePolicy",
                "ecr:PutImageScanningConfiguration", "ecr:PutImageTagMutability",
                "ecr:ListTagsForResource", "ecr:TagResource", "ecr:UntagResource",
                "ecr:ListImages", "ecr:DescribeImages", "ecr:BatchDeleteImage",
                "ecr:BatchCheckLayerAvailability", "ecr:InitiateLayerUpload",
                "ecr:UploadLayerPart", "ecr:CompleteLayerUpload", "ecr:PutImage",
                "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"
            ],
            "Resource": repositories
        }));
        statements.push(json!({
            "Sid": "RegistryLogin",
            "Effect": "Allow",
            "Action": ["ecr:GetAuthorizationToken"],
            "Resource": "*"
        }));
        statements.push(json!({
            "Sid": "ExecutionRoles",
            "Effect": "Allow",
            "Action": [
                "iam:CreateRole", "iam:GetRole", "iam:DeleteRole", "iam:UpdateAssumeRolePolicy",
                "iam:TagRole", "iam:UntagRole", "iam:ListRoleTags",
                "iam:PutRolePolicy", "iam:GetRolePolicy", "iam:DeleteRolePolicy",
                "iam:ListRolePolicies", "iam:ListAttachedRolePolicies", "iam:DetachRolePolicy"
            ],
            "Resource": roles.clone()
        }));
        statements.push(json!({
            "Sid": "PassExecutionRolesToLambda",
            "Effect": "Allow",
            "Action": ["iam:PassRole"],
            "Resource": roles,
            "Condition": {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}
        }));
        statements.push(json!({
            "Sid": "Functions",
            "Effect": "Allow",
            "Action": [
                "lambda:CreateFunction", "lambda:GetFunction", "lambda:GetFunctionConfiguration",
                "lambda:UpdateFunctionConfiguration", "lambda:UpdateFunctionCode",
                "lambda:DeleteFunction", "lambda:ListTags", "lambda:TagResource",
                "lambda:UntagResource", "lambda:PutFunctionConcurrency",
                "lambda:DeleteFunctionConcurrency", "lambda:GetFunctionConcurrency",
                "lambda:AddPermission", "lambda:RemovePermission", "lambda:GetPolicy",
                "lambda:ListVersionsByFunction", "lambda:ListAliases",
                "lambda:PublishVersion", "lambda:GetAlias", "lambda:CreateAlias",
                "lambda:UpdateAlias", "lambda:DeleteAlias"
            ],
            "Resource": functions
        }));
    }
    if !log_groups.is_empty() {
        statements.push(json!({
            "Sid": "LogGroups",
            "Effect": "Allow",
            "Action": [
                "logs:CreateLogGroup", "logs:DeleteLogGroup",
                "logs:PutRetentionPolicy", "logs:DeleteRetentionPolicy",
                "logs:ListTagsForResource", "logs:TagResource", "logs:UntagResource"
            ],
            "Resource": log_groups
        }));
        statements.push(json!({
            "Sid": "FindLogGroups",
            "Effect": "Allow",
            "Action": ["logs:DescribeLogGroups"],
            "Resource": "*"
        }));
    }
    if !alarms.is_empty() {
        statements.push(json!({
            "Sid": "ReleaseAlarms",
            "Effect": "Allow",
            "Action": [
                "cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms",
                "cloudwatch:TagResource", "cloudwatch:UntagResource",
                "cloudwatch:ListTagsForResource"
            ],
            "Resource": alarms
        }));
    }
    let topics: Vec<&str> = spec
        .notify
        .iter()
        .filter_map(|notify| match &notify.target {
            crate::spec::NotifyTarget::Sns { topic_arn } => Some(topic_arn.as_str()),
            _ => None,
        })
        .collect();
    if !topics.is_empty() {
        statements.push(json!({
            "Sid": "Notifications",
            "Effect": "Allow",
            "Action": ["sns:Publish"],
            "Resource": topics
        }));
    }
    // Releases read their alarms' states; pruning finds the deployment's alarms.
    statements.push(json!({
        "Sid": "ReadAlarms",
        "Effect": "Allow",
        "Action": ["cloudwatch:DescribeAlarms"],
        "Resource": arn("cloudwatch", "alarm:*")
    }));
    if let Some(schedule) = &spec.schedule {
        statements.push(json!({
            "Sid": "Schedule",
            "Effect": "Allow",
            "Action": [
                "events:PutRule", "events:DescribeRule", "events:DeleteRule",
                "events:EnableRule", "events:DisableRule",
                "events:PutTargets", "events:RemoveTargets", "events:ListTargetsByRule",
                "events:ListTagsForResource", "events:TagResource", "events:UntagResource"
            ],
            "Resource": arn("events", &format!("rule/{}", schedule.name))
        }));
    }
    if let Some(secret) = &spec.panther_secret {
        // Secrets Manager adds six random characters to the name in the ARN.
        statements.push(json!({
            "Sid": "PantherTokenSecret",
            "Effect": "Allow",
            "Action": [
                "secretsmanager:CreateSecret", "secretsmanager:DescribeSecret",
                "secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue",
                "secretsmanager:UpdateSecret", "secretsmanager:DeleteSecret",
                "secretsmanager:RestoreSecret", "secretsmanager:TagResource",
                "secretsmanager:UntagResource"
            ],
            "Resource": arn("secretsmanager", &format!("secret:{}-??????", secret.name))
        }));
    }
    // Pruning: finding what carries the deployment's tags, and deleting
    // what an earlier version of the file named, only where the resource
    // carries this deployment's tag (a read or delete of anyone else's is
    // refused, and the controller takes that refusal for "not ours").
    statements.push(json!({
        "Sid": "FindOwnedResources",
        "Effect": "Allow",
        "Action": ["tag:GetResources", "iam:ListRoles"],
        "Resource": "*"
    }));
    statements.push(json!({
        "Sid": "PruneOwnedResources",
        "Effect": "Allow",
        "Action": [
            "lambda:GetFunction", "lambda:DeleteFunction",
            "lambda:ListAliases", "lambda:DeleteAlias",
            "logs:ListTagsForResource", "logs:DeleteLogGroup",
            "cloudwatch:ListTagsForResource", "cloudwatch:DeleteAlarms",
            "ecr:DescribeRepositories", "ecr:ListTagsForResource", "ecr:DeleteRepository",
            "events:DescribeRule", "events:ListTagsForResource", "events:ListTargetsByRule",
            "events:RemoveTargets", "events:DeleteRule",
            "secretsmanager:DescribeSecret", "secretsmanager:DeleteSecret",
            "iam:ListRoleTags", "iam:ListRolePolicies", "iam:DeleteRolePolicy",
            "iam:ListAttachedRolePolicies", "iam:DetachRolePolicy", "iam:DeleteRole"
        ],
        "Resource": [
            arn("lambda", "function:*"),
            arn("logs", "log-group:*"),
            arn("cloudwatch", "alarm:*"),
            arn("ecr", "repository/*"),
            arn("events", "rule/*"),
            arn("secretsmanager", "secret:*"),
            format!("arn:{partition}:iam::{account}:role/*")
        ],
        "Condition": {"StringEquals": {
            format!("aws:ResourceTag/{}", crate::ownership::DEPLOYMENT_TAG): spec.deployment.name
        }}
    }));
    // The REST API's paths: needed without an `[api]` section too, to find
    // and delete an API an earlier version of the file named.
    let path = |path: &str| format!("arn:{partition}:apigateway:{region}::{path}");
    {
        statements.push(json!({
            "Sid": "RestApi",
            "Effect": "Allow",
            "Action": [
                "apigateway:GET", "apigateway:POST", "apigateway:PUT",
                "apigateway:PATCH", "apigateway:DELETE"
            ],
            "Resource": [
                path("/restapis"), path("/restapis/*"),
                path("/usageplans"), path("/usageplans/*"),
                path("/apikeys"), path("/apikeys/*"),
                path("/tags/*")
            ]
        }));
    }
    if spec.api.as_ref().is_some_and(|api| api.access_logging) {
        // The account's CloudWatch role is read, never changed.
        statements.push(json!({
            "Sid": "ReadApiGatewayAccount",
            "Effect": "Allow",
            "Action": ["apigateway:GET"],
            "Resource": path("/account")
        }));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}
