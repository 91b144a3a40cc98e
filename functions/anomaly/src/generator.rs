//! A seeded simulation of an organisation's normal CloudTrail activity, with labelled
//! anomalies for evaluation.
//!
//! The organisation has people and machines ("principals"), each with its own habits:
//! the calls it makes (with skewed weights), its regions, its source addresses, its user
//! agent, its working hours and days. Three accounts carry the traffic; a fourth, the
//! audit account, is touched only by a rare break-glass role. Events are full CloudTrail
//! records (nested `userIdentity`, RFC 3339 `eventTime`, string account id).
//!
//! Injected anomalies are a principal's otherwise ordinary event with one thing changed:
//! a never-seen event name, a never-used region, an unknown source address, an hour when
//! that principal never works, or the rarely-used audit account.

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value as Json, json};

/// The kinds of injected anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnomalyKind {
    /// An event name the organisation never calls.
    UnseenEventName,
    /// A region the organisation never uses.
    NewRegion,
    /// A source address never seen.
    UnknownSourceAddress,
    /// An hour when the principal never works.
    OddHour,
    /// The audit account, which ordinary principals never touch.
    RareAccount,
}

impl AnomalyKind {
    /// All kinds.
    pub const ALL: [AnomalyKind; 5] = [
        AnomalyKind::UnseenEventName,
        AnomalyKind::NewRegion,
        AnomalyKind::UnknownSourceAddress,
        AnomalyKind::OddHour,
        AnomalyKind::RareAccount,
    ];
}

/// A generated event with its label (`None` for normal activity).
#[derive(Debug, Clone)]
pub struct Labelled {
    /// The CloudTrail record.
    pub record: Json,
    /// The injected anomaly, if any.
    pub anomaly: Option<AnomalyKind>,
}

struct Principal {
    name: &'static str,
    identity_type: &'static str,
    /// (eventSource prefix, eventName, weight)
    calls: &'static [(&'static str, &'static str, u32)],
    regions: &'static [(&'static str, u32)],
    addresses: Vec<String>,
    user_agent: &'static str,
    /// Hours (UTC) in which it works, inclusive start, exclusive end; may wrap midnight.
    hours: (u32, u32),
    weekends: bool,
    /// Share of the organisation's events.
    weight: u32,
    account: usize,
}

const ACCOUNTS: [&str; 4] = [
    "111122223333",
    "444455556666",
    "777788889999",
    "210987654321",
];
const AUDIT_ACCOUNT: usize = 3;

const CONSOLE_UA: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36";

/// The simulated organisation.
pub struct Generator {
    rng: StdRng,
    principals: Vec<Principal>,
    start: DateTime<Utc>,
    days: i64,
    counter: u64,
}

impl Generator {
    /// A generator whose output depends only on `seed`.
    pub fn new(seed: u64) -> Generator {
        let office: Vec<String> = (10..18).map(|i| format!("203.0.113.{i}")).collect();
        let eu_office: Vec<String> = (40..44).map(|i| format!("198.51.100.{i}")).collect();
        let principals = vec![
            Principal {
                name: "user/alice",
                identity_type: "IAMUser",
                calls: &[
                    ("signin", "ConsoleLogin", 4),
                    ("ec2", "DescribeInstances", 20),
                    ("s3", "ListBuckets", 8),
                    ("config", "DescribeConfigRules", 10),
                    ("config", "GetComplianceDetailsByConfigRule", 6),
                    ("cloudtrail", "LookupEvents", 3),
                    ("iam", "ListRoles", 2),
                ],
                regions: &[("us-east-1", 9), ("us-west-2", 1)],
                addresses: office.clone(),
                user_agent: CONSOLE_UA,
                hours: (13, 22),
                weekends: false,
                weight: 12,
                account: 0,
            },
            Principal {
                name: "user/bob",
                identity_type: "IAMUser",
                calls: &[
                    ("ec2", "DescribeInstances", 10),
                    ("ec2", "RunInstances", 2),
                    ("ec2", "TerminateInstances", 1),
                    ("s3", "PutObject", 6),
                    ("s3", "GetObject", 12),
                    ("lambda", "UpdateFunctionCode", 2),
                    ("logs", "FilterLogEvents", 5),
                ],
                regions: &[("us-east-1", 6), ("us-east-2", 3)],
                addresses: office[..4]
                    .iter()
                    .cloned()
                    .chain(["100.24.7.19".to_string()])
                    .collect(),
                user_agent: "aws-cli/2.15.30 Python/3.11.8 Linux/6.5.0 exe/x86_64.ubuntu.22 prompt/off",
                hours: (14, 23),
                weekends: false,
                weight: 10,
                account: 1,
            },
            Principal {
                name: "assumed-role/eu-ops/carol",
                identity_type: "AssumedRole",
                calls: &[
                    ("config", "DescribeConfigRules", 8),
                    ("config", "PutConfigRule", 2),
                    ("config", "DescribeComplianceByConfigRule", 8),
                    ("ssm", "GetParameter", 6),
                    ("kms", "Decrypt", 4),
                ],
                regions: &[("eu-west-1", 7), ("eu-central-1", 3)],
                addresses: eu_office,
                user_agent: "Boto3/1.34.84 md/Botocore#1.34.84 ua/2.0 os/linux lang/python#3.12.2",
                hours: (7, 16),
                weekends: false,
                weight: 10,
                account: 1,
            },
            Principal {
                name: "assumed-role/ci-deployer/gha",
                identity_type: "AssumedRole",
                calls: &[
                    ("cloudformation", "DescribeStacks", 12),
                    ("cloudformation", "UpdateStack", 2),
                    ("cloudformation", "CreateChangeSet", 2),
                    ("s3", "PutObject", 6),
                    ("ecr", "PutImage", 2),
                    ("sts", "GetCallerIdentity", 4),
                ],
                regions: &[("us-east-1", 1)],
                addresses: vec!["52.94.133.7".into(), "52.94.133.8".into()],
                user_agent: "aws-sdk-go-v2/1.30.3 os/linux lang/go#1.22.5 md/GOOS#linux api/cloudformation#1.53.3",
                hours: (12, 24),
                weekends: false,
                weight: 14,
                account: 2,
            },
            Principal {
                name: "assumed-role/AWSServiceRoleForConfig/config",
                identity_type: "AssumedRole",
                calls: &[
                    ("config", "PutEvaluations", 10),
                    ("ec2", "DescribeSecurityGroups", 6),
                    ("iam", "GetRole", 4),
                    ("s3", "GetBucketAcl", 4),
                    ("config", "PutConfigurationAggregator", 1),
                ],
                regions: &[("us-east-1", 5), ("eu-west-1", 3), ("us-west-2", 2)],
                addresses: vec!["config.amazonaws.com".into()],
                user_agent: "config.amazonaws.com",
                hours: (0, 24),
                weekends: true,
                weight: 30,
                account: 0,
            },
            Principal {
                name: "assumed-role/security-scanner/scan",
                identity_type: "AssumedRole",
                calls: &[
                    ("iam", "ListUsers", 4),
                    ("iam", "GetAccountPasswordPolicy", 1),
                    ("s3", "GetBucketPolicy", 4),
                    ("ec2", "DescribeVpcs", 3),
                    ("guardduty", "ListFindings", 2),
                ],
                regions: &[("us-east-1", 3), ("eu-west-1", 2), ("us-west-2", 1)],
                addresses: vec!["10.20.30.40".into()],
                user_agent: "Boto3/1.28.0 Python/3.10.12 Linux/5.10 Botocore/1.31.0 scanner/3.2",
                hours: (0, 24),
                weekends: true,
                weight: 12,
                account: 2,
            },
            Principal {
                name: "assumed-role/backup/nightly",
                identity_type: "AssumedRole",
                calls: &[
                    ("backup", "StartBackupJob", 3),
                    ("rds", "CreateDBSnapshot", 2),
                    ("ec2", "CreateSnapshot", 3),
                    ("rds", "DescribeDBSnapshots", 2),
                ],
                regions: &[("us-east-1", 1)],
                addresses: vec!["backup.amazonaws.com".into()],
                user_agent: "backup.amazonaws.com",
                hours: (2, 4),
                weekends: true,
                weight: 4,
                account: 0,
            },
            Principal {
                name: "assumed-role/break-glass/admin",
                identity_type: "AssumedRole",
                calls: &[("iam", "ListRoles", 2), ("sts", "GetCallerIdentity", 1)],
                regions: &[("us-east-1", 1)],
                addresses: office[..2].to_vec(),
                user_agent: CONSOLE_UA,
                hours: (14, 20),
                weekends: false,
                // About 4 in 10,000 events.
                weight: 0,
                account: AUDIT_ACCOUNT,
            },
        ];
        Generator {
            rng: StdRng::seed_from_u64(seed),
            principals,
            start: Utc.with_ymd_and_hms(2024, 6, 3, 0, 0, 0).unwrap(),
            days: 28,
            counter: 0,
        }
    }

    fn pick_principal(&mut self) -> usize {
        if self.rng.gen_bool(0.0004) {
            return self.principals.len() - 1;
        }
        let total: u32 = self.principals.iter().map(|p| p.weight).sum();
        let mut r = self.rng.gen_range(0..total);
        for (i, p) in self.principals.iter().enumerate() {
            if r < p.weight {
                return i;
            }
            r -= p.weight;
        }
        0
    }

    fn weighted<T: Copy>(rng: &mut StdRng, items: &[(T, u32)]) -> T {
        let total: u32 = items.iter().map(|(_, w)| w).sum();
        let mut r = rng.gen_range(0..total);
        for &(v, w) in items {
            if r < w {
                return v;
            }
            r -= w;
        }
        items[0].0
    }

    fn time(&mut self, p: usize, hour: Option<u32>) -> DateTime<Utc> {
        let pr = &self.principals[p];
        let day = loop {
            let d = self.rng.gen_range(0..self.days);
            // 2024-06-03 is a Monday.
            if pr.weekends || d % 7 < 5 {
                break d;
            }
        };
        let (a, b) = pr.hours;
        let h = hour.unwrap_or_else(|| self.rng.gen_range(a..b) % 24);
        self.start
            + Duration::days(day)
            + Duration::hours(h as i64)
            + Duration::minutes(self.rng.gen_range(0..60))
            + Duration::seconds(self.rng.gen_range(0..60))
    }

    fn record(&mut self, p: usize, hour: Option<u32>) -> Json {
        let t = self.time(p, hour);
        let pr = &self.principals[p];
        let calls: Vec<((&str, &str), u32)> =
            pr.calls.iter().map(|&(s, n, w)| ((s, n), w)).collect();
        let (service, name) = Self::weighted(&mut self.rng, &calls);
        let region = Self::weighted(&mut self.rng, pr.regions);
        let ip = pr.addresses[self.rng.gen_range(0..pr.addresses.len())].clone();
        let account = ACCOUNTS[pr.account];
        self.counter += 1;
        let arn = if pr.identity_type == "AssumedRole" {
            format!("arn:aws:sts::{account}:{}", pr.name)
        } else {
            format!("arn:aws:iam::{account}:{}", pr.name)
        };
        json!({
            "eventVersion": "1.09",
            "eventTime": t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "eventSource": format!("{service}.amazonaws.com"),
            "eventName": name,
            "awsRegion": region,
            "sourceIPAddress": ip,
            "userAgent": pr.user_agent,
            "userIdentity": {"type": pr.identity_type, "arn": arn, "accountId": account},
            "recipientAccountId": account,
            "eventID": format!("{:08x}-0000-4000-8000-{:012x}", self.counter, self.counter),
            "eventType": "AwsApiCall",
        })
    }

    /// One event of normal activity.
    pub fn normal(&mut self) -> Json {
        let p = self.pick_principal();
        self.record(p, None)
    }

    /// `n` events of normal activity.
    pub fn normal_events(&mut self, n: usize) -> Vec<Json> {
        (0..n).map(|_| self.normal()).collect()
    }

    /// One anomaly of the given kind: an ordinary event of a working principal with one
    /// thing changed.
    pub fn anomaly(&mut self, kind: AnomalyKind) -> Json {
        // A principal with habits that the change breaks: not the round-the-clock services
        // for odd hours, and never the break-glass role.
        let human = [0usize, 1, 2, 3];
        let p = human[self.rng.gen_range(0..human.len())];
        let hour = match kind {
            AnomalyKind::OddHour => {
                let (a, b) = self.principals[p].hours;
                // An hour at least three hours away from the working window.
                let off: Vec<u32> = (0..24)
                    .filter(|h| {
                        (0..=3).all(|d| {
                            let x = (h + d) % 24;
                            let y = (h + 24 - d) % 24;
                            !in_window(x, a, b) && !in_window(y, a, b)
                        })
                    })
                    .collect();
                Some(off[self.rng.gen_range(0..off.len())])
            }
            _ => None,
        };
        let mut r = self.record(p, hour);
        let n = self.rng.gen_range(0..1000u32);
        match kind {
            AnomalyKind::UnseenEventName => {
                let names = [
                    "DeleteTrail",
                    "StopLogging",
                    "PutBucketPolicy",
                    "CreateAccessKey",
                    "DeleteConfigRule",
                    "AttachUserPolicy",
                    "GetSecretValue",
                    "DeleteFlowLogs",
                ];
                r["eventName"] = json!(names[n as usize % names.len()]);
            }
            AnomalyKind::NewRegion => {
                let regions = [
                    "ap-southeast-1",
                    "sa-east-1",
                    "me-south-1",
                    "af-south-1",
                    "ap-northeast-3",
                ];
                r["awsRegion"] = json!(regions[n as usize % regions.len()]);
            }
            AnomalyKind::UnknownSourceAddress => {
                r["sourceIPAddress"] =
                    json!(format!("185.{}.{}.{}", 100 + n % 100, n % 256, 1 + n % 250));
            }
            AnomalyKind::OddHour => {}
            AnomalyKind::RareAccount => {
                r["recipientAccountId"] = json!(ACCOUNTS[AUDIT_ACCOUNT]);
                r["userIdentity"]["accountId"] = json!(ACCOUNTS[AUDIT_ACCOUNT]);
            }
        }
        r
    }

    /// A labelled hold-out: `normal` normal events and `per_kind` anomalies of each kind,
    /// shuffled.
    pub fn labelled_holdout(&mut self, normal: usize, per_kind: usize) -> Vec<Labelled> {
        let mut out: Vec<Labelled> = (0..normal)
            .map(|_| Labelled {
                record: self.normal(),
                anomaly: None,
            })
            .collect();
        for kind in AnomalyKind::ALL {
            for _ in 0..per_kind {
                out.push(Labelled {
                    record: self.anomaly(kind),
                    anomaly: Some(kind),
                });
            }
        }
        use rand::seq::SliceRandom;
        out.shuffle(&mut self.rng);
        out
    }
}

fn in_window(h: u32, a: u32, b: u32) -> bool {
    if a <= b {
        h >= a && h < b
    } else {
        h >= a || h < b
    }
}

/// Area under the ROC curve of `scores` for binary `labels` (true = positive), with ties
/// counted as half.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Mann–Whitney U with average ranks for ties.
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if labels[k] {
                rank_sum_pos += avg_rank;
            }
        }
        i = j + 1;
    }
    let pos = labels.iter().filter(|&&l| l).count() as f64;
    let neg = labels.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return f64::NAN;
    }
    (rank_sum_pos - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_and_shaped_like_cloudtrail() {
        let a = Generator::new(1).normal_events(50);
        let b = Generator::new(1).normal_events(50);
        assert_eq!(a, b);
        assert_ne!(a, Generator::new(2).normal_events(50));
        for r in &a {
            let e = crate::event::Event::from_json(r).unwrap();
            assert!(!e.event_name.is_missing() && !e.account_id.is_missing() && e.time().is_some());
        }
    }

    #[test]
    fn auc_of_known_orders() {
        assert_eq!(
            roc_auc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]),
            1.0
        );
        assert_eq!(
            roc_auc(&[0.9, 0.8, 0.2, 0.1], &[false, false, true, true]),
            0.0
        );
        assert_eq!(roc_auc(&[0.5, 0.5], &[false, true]), 0.5);
    }
}
