//! A realistic simulated organisation, day by day over weeks, with labelled
//! anomalies: the data the model is evaluated on (`examples/evaluate.rs`).
//!
//! What makes it realistic, and hard for a model that only counts values:
//! - **People** sign in through SSO (a session key a day) or as IAM users, each with
//!   their own repertoire of calls (a role's calls, Zipf-weighted, a few of their
//!   own), accounts, regions, office network (and a home network that changes
//!   monthly), tools, and working hours in their own time zone; some work a weekend
//!   now and then, everyone takes days off.
//! - **Workloads** (instance and function roles) poll around the clock from fresh
//!   addresses of AWS's ranges every day, with SDK versions that move weekly.
//! - **CI runners** deploy in bursts from fresh addresses of a CI provider's ranges.
//! - **AWS services** call on the account's behalf (`AWSService`, the service's name as
//!   the source address).
//! - **A break-glass role** touches the rarely used account about once a week.
//! - Tools upgrade: console browsers, the CLI, SDKs and Terraform carry version numbers
//!   that change over the weeks, so next week's exact user agent is often new.
//!
//! Anomalies ([`Kind`]) are a known principal's ordinary event with one thing
//! changed, placed in the days asked for: the obvious ones (an API nobody calls, a
//! foreign network, a tool family the person never uses) and the subtle ones a
//! security team cares about (a call this person never makes though others do, this
//! person at 03:00 their time, an admin action in the rarely used account, a first
//! call in a region the account never used).

use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value as Json, json};

/// The kinds of injected anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// An API nobody in the organisation calls (`StopLogging`, `DeleteDetector`).
    UnseenApi,
    /// A call others make but this person never has (`DeleteConfigurationRecorder` by
    /// a developer), from their usual office, at their usual hours, in their account.
    NewCallForPrincipal,
    /// This person's usual call at night in their own time zone.
    OddHourForPrincipal,
    /// An administrator's own admin action (`CreateUser`, `AttachRolePolicy`) in the
    /// rarely used account.
    AdminInRareAccount,
    /// A first call in a region the account never used.
    NewRegionForAccount,
    /// A known person from a network never seen (stolen credentials).
    ForeignNetwork,
    /// A known person through a tool family they never use (`curl`, `python-requests`).
    NewToolForPrincipal,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 7] = [
        Kind::UnseenApi,
        Kind::NewCallForPrincipal,
        Kind::OddHourForPrincipal,
        Kind::AdminInRareAccount,
        Kind::NewRegionForAccount,
        Kind::ForeignNetwork,
        Kind::NewToolForPrincipal,
    ];

    /// The kinds that change a single field a count of values alone barely notices.
    pub const SUBTLE: [Kind; 4] = [
        Kind::NewCallForPrincipal,
        Kind::OddHourForPrincipal,
        Kind::AdminInRareAccount,
        Kind::NewRegionForAccount,
    ];

    /// The field (or principal-field pair) the injection changed, as the model's
    /// explanations name it.
    pub fn field(self) -> &'static str {
        match self {
            Kind::UnseenApi | Kind::NewCallForPrincipal => "eventName",
            Kind::OddHourForPrincipal => "hour",
            Kind::AdminInRareAccount => "recipientAccountId",
            Kind::NewRegionForAccount => "awsRegion",
            Kind::ForeignNetwork => "sourceNetwork",
            Kind::NewToolForPrincipal => "userAgentFamily",
        }
    }
}

/// A generated event with its label (`None` for normal activity).
#[derive(Debug, Clone, PartialEq)]
pub struct Labelled {
    /// The CloudTrail record.
    pub record: Json,
    /// The injected anomaly, if any.
    pub anomaly: Option<Kind>,
}

/// The first simulated day, a Monday.
pub fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 6, 3, 0, 0, 0).unwrap()
}

/// Accounts: production, staging, development, security, logging, and the rarely
/// used one (an old sandbox only a break-glass role touches).
const ACCOUNTS: [&str; 6] = [
    "304958172634",
    "518273649105",
    "629384756102",
    "741852963074",
    "852963741085",
    "963741852096",
];
const RARE_ACCOUNT: usize = 5;
/// People in the organisation.
const PEOPLE: usize = 200;

const HOME_REGIONS: [&str; 3] = ["us-east-1", "us-west-2", "eu-west-1"];
/// Regions no account of the organisation uses.
const UNUSED_REGIONS: [&str; 8] = [
    "ap-southeast-3",
    "me-central-1",
    "af-south-1",
    "sa-east-1",
    "ap-northeast-3",
    "eu-south-2",
    "il-central-1",
    "ca-west-1",
];

/// Calls by job; every person's repertoire is drawn from their job's list.
const READ_CALLS: [(&str, &str); 14] = [
    ("ec2", "DescribeInstances"),
    ("ec2", "DescribeSecurityGroups"),
    ("s3", "ListBuckets"),
    ("s3", "GetBucketLocation"),
    ("cloudwatch", "GetMetricData"),
    ("logs", "FilterLogEvents"),
    ("logs", "DescribeLogGroups"),
    ("lambda", "ListFunctions20150331"),
    ("lambda", "GetFunction20150331v2"),
    ("iam", "ListRoles"),
    ("sts", "GetCallerIdentity"),
    ("cloudformation", "DescribeStacks"),
    ("dynamodb", "DescribeTable"),
    ("ecr", "DescribeRepositories"),
];
const DEVELOPER_CALLS: [(&str, &str); 10] = [
    ("lambda", "UpdateFunctionCode20150331v2"),
    ("lambda", "Invoke"),
    ("s3", "PutObject"),
    ("s3", "GetObject"),
    ("dynamodb", "Query"),
    ("cloudformation", "CreateChangeSet"),
    ("cloudformation", "ExecuteChangeSet"),
    ("ecr", "GetAuthorizationToken"),
    ("sqs", "SendMessage"),
    ("ssm", "GetParameter"),
];
const DATA_CALLS: [(&str, &str); 7] = [
    ("athena", "StartQueryExecution"),
    ("athena", "GetQueryResults"),
    ("glue", "GetTables"),
    ("glue", "StartJobRun"),
    ("s3", "GetObject"),
    ("s3", "ListObjects"),
    ("redshift-data", "ExecuteStatement"),
];
const SECURITY_CALLS: [(&str, &str); 10] = [
    ("config", "DescribeConfigRules"),
    ("config", "GetComplianceDetailsByConfigRule"),
    ("config", "DescribeConfigurationRecorders"),
    ("guardduty", "ListFindings"),
    ("guardduty", "GetFindings"),
    ("securityhub", "GetFindings"),
    ("cloudtrail", "LookupEvents"),
    ("access-analyzer", "ListFindings"),
    ("iam", "GetAccountAuthorizationDetails"),
    ("kms", "ListKeys"),
];
/// Administrators' calls: seen in the organisation, but only from them.
const ADMIN_CALLS: [(&str, &str); 10] = [
    ("iam", "CreateRole"),
    ("iam", "AttachRolePolicy"),
    ("iam", "PutRolePolicy"),
    ("iam", "CreateUser"),
    ("iam", "CreateAccessKey"),
    ("iam", "UpdateAssumeRolePolicy"),
    ("config", "DeleteConfigurationRecorder"),
    ("config", "StopConfigurationRecorder"),
    ("s3", "PutBucketPolicy"),
    ("ec2", "AuthorizeSecurityGroupIngress"),
];
/// Calls nobody in the organisation makes.
const UNSEEN_CALLS: [(&str, &str); 8] = [
    ("cloudtrail", "StopLogging"),
    ("cloudtrail", "DeleteTrail"),
    ("guardduty", "DeleteDetector"),
    ("securityhub", "DisableSecurityHub"),
    ("ec2", "DeleteFlowLogs"),
    ("organizations", "LeaveOrganization"),
    ("iam", "CreateLoginProfile"),
    ("secretsmanager", "BatchGetSecretValue"),
];
const WORKLOAD_CALLS: [(&str, &str); 9] = [
    ("s3", "GetObject"),
    ("s3", "PutObject"),
    ("kms", "Decrypt"),
    ("kms", "GenerateDataKey"),
    ("sqs", "ReceiveMessage"),
    ("sqs", "DeleteMessage"),
    ("dynamodb", "PutItem"),
    ("sts", "AssumeRole"),
    ("secretsmanager", "GetSecretValue"),
];
const CI_CALLS: [(&str, &str); 8] = [
    ("sts", "AssumeRoleWithWebIdentity"),
    ("ecr", "GetAuthorizationToken"),
    ("ecr", "PutImage"),
    ("ecr", "InitiateLayerUpload"),
    ("lambda", "UpdateFunctionCode20150331v2"),
    ("cloudformation", "CreateChangeSet"),
    ("cloudformation", "ExecuteChangeSet"),
    ("s3", "PutObject"),
];
const SERVICE_CALLS: [(&str, &str, &str); 6] = [
    ("config.amazonaws.com", "ec2", "DescribeInstances"),
    ("config.amazonaws.com", "iam", "ListAttachedRolePolicies"),
    ("cloudtrail.amazonaws.com", "kms", "GenerateDataKey"),
    ("guardduty.amazonaws.com", "ec2", "DescribeVpcs"),
    ("autoscaling.amazonaws.com", "ec2", "DescribeInstanceStatus"),
    ("access-analyzer.amazonaws.com", "iam", "GetRole"),
];

/// A tool family and how its version moves with the weeks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Console,
    Cli,
    Boto3,
    JavaSdk,
    GoSdk,
    Terraform,
}

impl Tool {
    /// Days between releases: the browser every four weeks, the CLI and Terraform
    /// every two, the SDKs every week.
    fn release_days(self) -> i64 {
        match self {
            Tool::Console => 28,
            Tool::Cli | Tool::Terraform => 14,
            Tool::Boto3 | Tool::JavaSdk | Tool::GoSdk => 7,
        }
    }

    /// The user agent on day `day` of someone who upgrades `lag` days after each
    /// release (0-27: upgrades are staggered, so a version is new only until its
    /// first users have had it a while), on one of three platforms.
    fn user_agent(self, day: i64, lag: u32) -> String {
        let period = self.release_days();
        let v = ((day + 56 - (lag as i64 % period)).max(0) / period) as u32;
        let platform = lag % 3;
        match self {
            Tool::Console => format!(
                "Mozilla/5.0 ({}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{}.0.{}.{} Safari/537.36",
                [
                    "Macintosh; Intel Mac OS X 10_15_7",
                    "Windows NT 10.0; Win64; x64",
                    "X11; Linux x86_64"
                ][platform as usize],
                122 + v,
                6261 + v * 67,
                57 + v * 3
            ),
            Tool::Cli => format!(
                "aws-cli/2.{}.{} md/awscrt#0.19.19 ua/2.0 os/{} md/arch#x86_64 lang/python#3.11.8 md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe",
                15 + v / 4,
                (v * 9) % 40,
                ["linux#6.5.0", "macos#23.4.0", "windows#10"][platform as usize]
            ),
            Tool::Boto3 => format!(
                "Boto3/1.34.{v} md/Botocore#1.34.{v} ua/2.0 os/linux#5.10.219 md/arch#x86_64 lang/python#3.12.3 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.{v}",
                v = 100 + v * 2
            ),
            Tool::JavaSdk => format!(
                "aws-sdk-java/2.25.{} Linux/5.10.219 OpenJDK_64-Bit_Server_VM/21.0.3+9-LTS Java/21.0.3 vendor/Amazon.com_Inc. io/sync http/Apache cfg/retry-mode/standard",
                30 + v
            ),
            Tool::GoSdk => format!(
                "aws-sdk-go-v2/1.30.{v} os/linux lang/go#1.22.5 md/GOOS#linux md/GOARCH#amd64 api/s3#1.58.{v}",
            ),
            Tool::Terraform => format!(
                "APN/1.0 HashiCorp/1.0 Terraform/1.8.{} (+https://www.terraform.io) terraform-provider-aws/5.{}.0 (+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go-v2/1.30.{} os/linux lang/go#1.22.5",
                v / 2,
                50 + v,
                v * 2
            ),
        }
    }
}

/// User agents of tools nobody in the organisation uses.
const FOREIGN_TOOLS: [&str; 5] = [
    "curl/8.4.0",
    "python-requests/2.31.0",
    "Go-http-client/1.1",
    "aws-sdk-nodejs/2.1550.0 linux/v18.19.0 exec-env/AWS_ECS_FARGATE",
    "Cloud9-Runtime/1.0 aws-sdk-js/2.1400.0",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    Developer,
    Data,
    Security,
    Admin,
}

#[derive(Debug, Clone)]
enum Actor {
    Person(Person),
    Workload(Workload),
    Ci { name: String, account: usize },
    Service { account: usize },
    BreakGlass,
}

#[derive(Debug, Clone)]
struct Person {
    name: String,
    job: Job,
    sso: bool,
    /// (account, weight).
    accounts: Vec<(usize, u32)>,
    regions: Vec<(&'static str, u32)>,
    calls: Vec<((&'static str, &'static str), u32)>,
    /// The office's /24, as `a.b.c.`.
    office: String,
    /// The first two octets of the home ISP's range.
    home_isp: (u8, u8),
    tools: Vec<(Tool, u32)>,
    minor: u32,
    /// Working hours in UTC, start and length.
    start_hour: u32,
    hours: u32,
    weekend_rate: f64,
    events_per_day: f64,
}

#[derive(Debug, Clone)]
struct Workload {
    name: String,
    account: usize,
    region: &'static str,
    calls: Vec<((&'static str, &'static str), u32)>,
    tool: Tool,
    lag: u32,
    /// Calls through a NAT gateway (a few fixed addresses) or, like Lambda functions,
    /// from a fresh address of AWS's ranges every day.
    nat: Option<Vec<String>>,
    events_per_day: f64,
}

/// Offices: (the /24 as `a.b.c.`, its UTC offset in hours).
const OFFICES: [(&str, i32); 4] = [
    ("203.0.113.", -5),
    ("198.51.100.", 0),
    ("192.0.2.", 1),
    ("100.64.12.", 5),
];
/// Home ISPs: first two octets.
const HOME_ISPS: [(u8, u8); 6] = [(73, 162), (86, 14), (81, 101), (24, 5), (49, 36), (98, 207)];
/// AWS address ranges workloads call from (first two octets): a fresh address each day.
const AWS_RANGES: [(u8, u8); 8] = [
    (3, 80),
    (3, 236),
    (18, 204),
    (34, 228),
    (44, 192),
    (52, 23),
    (54, 86),
    (35, 170),
];
/// CI provider ranges (first two octets).
const CI_RANGES: [(u8, u8); 3] = [(140, 82), (185, 199), (4, 175)];
/// Networks never seen in the organisation's traffic.
const FOREIGN_RANGES: [(u8, u8); 5] = [(185, 220), (45, 155), (91, 219), (103, 75), (5, 188)];

/// The simulated organisation; everything it generates depends on its seed only.
#[derive(Debug, Clone)]
pub struct Organisation {
    seed: u64,
    actors: Vec<Actor>,
}

/// Zipf-like weights: the k-th of n gets `1000 / (k + 1)`.
fn zipf<T: Clone>(items: &[T]) -> Vec<(T, u32)> {
    items
        .iter()
        .enumerate()
        .map(|(k, item)| (item.clone(), 1000 / (k as u32 + 1)))
        .collect()
}

fn weighted<T: Clone>(rng: &mut StdRng, items: &[(T, u32)]) -> T {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut pick = rng.gen_range(0..total.max(1));
    for (item, w) in items {
        if pick < *w {
            return item.clone();
        }
        pick -= w;
    }
    items[items.len() - 1].0.clone()
}

fn hex(rng: &mut StdRng, n: usize) -> String {
    (0..n)
        .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap())
        .collect()
}

fn upper_id(rng: &mut StdRng, prefix: &str) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let rest: String = (0..16)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect();
    format!("{prefix}{rest}")
}

impl Organisation {
    /// The organisation of `seed`: 200 people, 14 workloads, 3 CI pipelines, the AWS
    /// services of every account and a break-glass role.
    pub fn new(seed: u64) -> Organisation {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x0a9a_2024);
        let mut actors = Vec::new();
        for i in 0..PEOPLE {
            let job = match i % 8 {
                0..=3 => Job::Developer,
                4 | 5 => Job::Data,
                6 => Job::Security,
                _ => Job::Admin,
            };
            let (office, offset) = OFFICES[rng.gen_range(0..OFFICES.len())];
            let local_start = rng.gen_range(7..11);
            let start_hour = ((local_start - offset).rem_euclid(24)) as u32;
            let home_account = rng.gen_range(0..3);
            let mut accounts = vec![(home_account, 10)];
            if rng.gen_bool(0.5) {
                accounts.push(((home_account + 1) % 3, 3));
            }
            if matches!(job, Job::Security | Job::Admin) {
                accounts.push((3, 6));
                accounts.push((4, 2));
            }
            let home_region = HOME_REGIONS[rng.gen_range(0..HOME_REGIONS.len())];
            let mut regions = vec![(home_region, 20)];
            if rng.gen_bool(0.4) {
                let other = HOME_REGIONS[rng.gen_range(0..HOME_REGIONS.len())];
                if other != home_region {
                    regions.push((other, 3));
                }
            }
            let mut pool: Vec<(&str, &str)> = READ_CALLS.to_vec();
            pool.extend(match job {
                Job::Developer => DEVELOPER_CALLS.to_vec(),
                Job::Data => DATA_CALLS.to_vec(),
                Job::Security => SECURITY_CALLS.to_vec(),
                Job::Admin => {
                    let mut calls = ADMIN_CALLS.to_vec();
                    calls.extend(SECURITY_CALLS.iter().take(4));
                    calls
                }
            });
            pool.shuffle(&mut rng);
            let size = rng.gen_range(8..=pool.len().min(18));
            let calls = zipf(&pool[..size]);
            let tools = match job {
                Job::Developer => vec![(Tool::Console, 4), (Tool::Cli, 5), (Tool::Terraform, 2)],
                Job::Data => vec![(Tool::Console, 5), (Tool::Boto3, 5)],
                Job::Security => vec![(Tool::Console, 8), (Tool::Cli, 2)],
                Job::Admin => vec![(Tool::Console, 5), (Tool::Cli, 3), (Tool::Terraform, 3)],
            };
            let tools: Vec<(Tool, u32)> = tools
                .into_iter()
                .filter(|_| rng.gen_bool(0.8))
                .collect::<Vec<_>>();
            let tools = if tools.is_empty() {
                vec![(Tool::Console, 1)]
            } else {
                tools
            };
            actors.push(Actor::Person(Person {
                name: format!("user{:03}", i + 1),
                job,
                sso: rng.gen_bool(0.8),
                accounts,
                regions,
                calls,
                office: office.to_string(),
                home_isp: HOME_ISPS[rng.gen_range(0..HOME_ISPS.len())],
                tools,
                minor: rng.gen_range(0..28),
                start_hour,
                hours: rng.gen_range(7..11),
                weekend_rate: if rng.gen_bool(0.2) { 0.3 } else { 0.02 },
                events_per_day: rng.gen_range(15.0..80.0),
            }));
        }
        let workloads = [
            "ingest", "api", "billing", "search", "reports", "etl", "notifier",
        ];
        for (i, name) in workloads.iter().enumerate() {
            for account in [0usize, 1] {
                let mut pool = WORKLOAD_CALLS.to_vec();
                pool.shuffle(&mut rng);
                let size = rng.gen_range(3..=6);
                actors.push(Actor::Workload(Workload {
                    name: format!("{name}-role"),
                    account,
                    region: HOME_REGIONS[i % 2],
                    calls: zipf(&pool[..size]),
                    tool: [Tool::JavaSdk, Tool::GoSdk, Tool::Boto3][i % 3],
                    lag: rng.gen_range(0..28),
                    nat: (i % 3 != 2).then(|| {
                        (0..2)
                            .map(|_| fresh_address(&mut rng, &AWS_RANGES))
                            .collect()
                    }),
                    events_per_day: if account == 0 {
                        rng.gen_range(60.0..200.0)
                    } else {
                        rng.gen_range(20.0..60.0)
                    },
                }));
            }
        }
        for (name, account) in [("deploy-prod", 0), ("deploy-staging", 1), ("deploy-dev", 2)] {
            actors.push(Actor::Ci {
                name: name.into(),
                account,
            });
        }
        for account in 0..5 {
            actors.push(Actor::Service { account });
        }
        actors.push(Actor::BreakGlass);
        Organisation { seed, actors }
    }

    /// Every normal event of the days `from..to` (day 0 is [`start`]), in time order.
    pub fn normal_events(&self, from: i64, to: i64) -> Vec<Json> {
        let mut timed: Vec<(DateTime<Utc>, Json)> = Vec::new();
        for day in from..to {
            let mut rng = StdRng::seed_from_u64(self.seed ^ (day as u64).wrapping_mul(0x9e37));
            for (index, actor) in self.actors.iter().enumerate() {
                self.day_of(&mut rng, actor, index, day, &mut timed);
            }
        }
        timed.sort_by_key(|(time, _)| *time);
        timed.into_iter().map(|(_, record)| record).collect()
    }

    fn day_of(
        &self,
        rng: &mut StdRng,
        actor: &Actor,
        index: usize,
        day: i64,
        out: &mut Vec<(DateTime<Utc>, Json)>,
    ) {
        let date = start() + Duration::days(day);
        let weekend = date.weekday().number_from_monday() >= 6;
        match actor {
            Actor::Person(person) => {
                let works = if weekend {
                    rng.gen_bool(person.weekend_rate)
                } else {
                    rng.gen_bool(0.92)
                };
                if !works {
                    return;
                }
                let at_home = rng.gen_bool(0.2);
                let session = session_key(self.seed, index, day);
                let count = (person.events_per_day * rng.gen_range(0.5..1.5)) as usize;
                for _ in 0..count {
                    let time = date
                        + Duration::hours(person.start_hour as i64)
                        + Duration::seconds(rng.gen_range(0..person.hours as i64 * 3600));
                    let call = weighted(rng, &person.calls);
                    let record = self.person_record(rng, person, &session, time, call, at_home);
                    out.push((time, record));
                }
            }
            Actor::Workload(workload) => {
                let fresh = fresh_address(rng, &AWS_RANGES);
                let instance = format!("i-0{}", hex(rng, 16));
                let count = (workload.events_per_day * rng.gen_range(0.8..1.2)) as usize;
                for _ in 0..count {
                    let time = date + Duration::seconds(rng.gen_range(0..86_400));
                    let (service, name) = weighted(rng, &workload.calls);
                    let address = match &workload.nat {
                        Some(nat) => nat[rng.gen_range(0..nat.len())].clone(),
                        None => fresh.clone(),
                    };
                    let account = ACCOUNTS[workload.account];
                    let role = &workload.name;
                    let record = record(
                        time,
                        service,
                        name,
                        workload.region,
                        &address,
                        &workload.tool.user_agent(day, workload.lag),
                        json!({
                            "type": "AssumedRole",
                            "principalId": format!("AROA{}:{instance}", stable_id(role)),
                            "arn": format!("arn:aws:sts::{account}:assumed-role/{role}/{instance}"),
                            "accountId": account,
                            "accessKeyId": format!("ASIA{}", &session_key(self.seed, index, day)[4..]),
                        }),
                        account,
                        rng,
                    );
                    out.push((time, record));
                }
            }
            Actor::Ci { name, account } => {
                if weekend {
                    return;
                }
                let runs = rng.gen_range(2..9);
                for _ in 0..runs {
                    let address = fresh_address(rng, &CI_RANGES);
                    let run = rng.gen_range(1_000_000u64..9_999_999);
                    let begin = date + Duration::seconds(rng.gen_range(13 * 3600..23 * 3600));
                    let account_id = ACCOUNTS[*account];
                    for (step, (service, call)) in CI_CALLS.iter().enumerate() {
                        let time = begin + Duration::seconds(step as i64 * rng.gen_range(5..40));
                        let record = record(
                            time,
                            service,
                            call,
                            "us-east-1",
                            &address,
                            &format!("{} exec-env/GitHubActions", Tool::Cli.user_agent(day, 3)),
                            json!({
                                "type": "AssumedRole",
                                "principalId": format!("AROA{}:GitHubActions-{run}", stable_id(name)),
                                "arn": format!("arn:aws:sts::{account_id}:assumed-role/{name}/GitHubActions-{run}"),
                                "accountId": account_id,
                                "accessKeyId": format!("ASIA{}", hex(rng, 16).to_uppercase()),
                            }),
                            account_id,
                            rng,
                        );
                        out.push((time, record));
                    }
                }
            }
            Actor::Service { account } => {
                let account_id = ACCOUNTS[*account];
                for _ in 0..rng.gen_range(60..140) {
                    let time = date + Duration::seconds(rng.gen_range(0..86_400));
                    let (invoker, service, call) =
                        SERVICE_CALLS[rng.gen_range(0..SERVICE_CALLS.len())];
                    let record = record(
                        time,
                        service,
                        call,
                        HOME_REGIONS[rng.gen_range(0..2)],
                        invoker,
                        invoker,
                        json!({"type": "AWSService", "invokedBy": invoker}),
                        account_id,
                        rng,
                    );
                    out.push((time, record));
                }
            }
            Actor::BreakGlass => {
                if date.weekday().number_from_monday() != 3 || !rng.gen_bool(0.8) {
                    return;
                }
                let account_id = ACCOUNTS[RARE_ACCOUNT];
                let begin = date + Duration::hours(rng.gen_range(14..20));
                for (step, call) in ["DescribeInstances", "ListBuckets", "GetCallerIdentity"]
                    .iter()
                    .enumerate()
                {
                    let service = match *call {
                        "ListBuckets" => "s3",
                        "GetCallerIdentity" => "sts",
                        _ => "ec2",
                    };
                    let time = begin + Duration::minutes(step as i64 * 3);
                    let record = record(
                        time,
                        service,
                        call,
                        "us-east-1",
                        &format!("198.51.100.{}", 10 + step),
                        &Tool::Console.user_agent(day, 9),
                        json!({
                            "type": "AssumedRole",
                            "principalId": format!("AROA{}:breakglass", stable_id("BreakGlass")),
                            "arn": format!("arn:aws:sts::{account_id}:assumed-role/BreakGlass/breakglass"),
                            "accountId": account_id,
                            "accessKeyId": format!("ASIA{}", hex(rng, 16).to_uppercase()),
                        }),
                        account_id,
                        rng,
                    );
                    out.push((time, record));
                }
            }
        }
    }

    fn person_record(
        &self,
        rng: &mut StdRng,
        person: &Person,
        session: &str,
        time: DateTime<Utc>,
        (service, name): (&str, &str),
        at_home: bool,
    ) -> Json {
        let account = ACCOUNTS[weighted(rng, &person.accounts)];
        let region = weighted(rng, &person.regions);
        let day = (time - start()).num_days();
        let address = if at_home {
            let (a, b) = person.home_isp;
            // The home address changes monthly, on the person's own day.
            let month = (day + person.minor as i64) / 30;
            format!(
                "{a}.{b}.{}.{}",
                (month * 31 + person.minor as i64 * 7) % 250,
                2 + person.minor * 7
            )
        } else {
            format!("{}{}", person.office, rng.gen_range(10..60))
        };
        let tool = weighted(rng, &person.tools);
        let identity = person_identity(person, account, session);
        record(
            time,
            service,
            name,
            region,
            &address,
            &tool.user_agent(day, person.minor),
            identity,
            account,
            rng,
        )
    }

    fn people(&self) -> Vec<(usize, &Person)> {
        self.actors
            .iter()
            .enumerate()
            .filter_map(|(index, actor)| match actor {
                Actor::Person(person) => Some((index, person)),
                _ => None,
            })
            .collect()
    }

    /// `per_kind` anomalies of each kind on the days `from..to`, and then the normal
    /// events of those days, shuffled into time order.
    pub fn labelled(&self, from: i64, to: i64, per_kind: usize) -> Vec<Labelled> {
        let mut out: Vec<(DateTime<Utc>, Labelled)> = self
            .normal_events(from, to)
            .into_iter()
            .map(|record| {
                (
                    event_time(&record),
                    Labelled {
                        record,
                        anomaly: None,
                    },
                )
            })
            .collect();
        let mut rng = StdRng::seed_from_u64(self.seed ^ 0xa0_a1_1e);
        for kind in Kind::ALL {
            for _ in 0..per_kind {
                let record = self.anomaly(&mut rng, kind, from, to);
                out.push((
                    event_time(&record),
                    Labelled {
                        record,
                        anomaly: Some(kind),
                    },
                ));
            }
        }
        out.sort_by_key(|(time, _)| *time);
        out.into_iter().map(|(_, labelled)| labelled).collect()
    }

    /// One anomaly of `kind` on a working day in `from..to`.
    pub fn anomaly(&self, rng: &mut StdRng, kind: Kind, from: i64, to: i64) -> Json {
        let people = self.people();
        let (index, person) = loop {
            let (index, person) = people[rng.gen_range(0..people.len())];
            let knows_admin = person
                .calls
                .iter()
                .any(|((_, call), _)| ADMIN_CALLS.iter().any(|(_, admin)| admin == call));
            // Someone who never makes admin calls, for a new call to stand out; an
            // administrator for an admin action in the rare account.
            let fits = match kind {
                Kind::NewCallForPrincipal => !knows_admin,
                Kind::AdminInRareAccount => knows_admin,
                _ => true,
            };
            if fits {
                break (index, person);
            }
        };
        let day = loop {
            let day = rng.gen_range(from..to);
            if (start() + Duration::days(day))
                .weekday()
                .number_from_monday()
                <= 5
            {
                break day;
            }
        };
        let date = start() + Duration::days(day);
        let mut time = date
            + Duration::hours(person.start_hour as i64)
            + Duration::seconds(rng.gen_range(0..person.hours as i64 * 3600));
        if kind == Kind::OddHourForPrincipal {
            // 02:00-04:59 in the person's own time zone: their start is 07-10 local.
            let night = rng.gen_range(5..8) as i64;
            time = date + Duration::hours(person.start_hour as i64) - Duration::hours(night)
                + Duration::minutes(rng.gen_range(0..60));
        }
        let call = weighted(rng, &person.calls);
        let session = session_key(self.seed, index, day);
        let mut record = self.person_record(rng, person, &session, time, call, false);
        match kind {
            Kind::UnseenApi => {
                let (service, name) = UNSEEN_CALLS[rng.gen_range(0..UNSEEN_CALLS.len())];
                set_call(&mut record, service, name);
            }
            Kind::NewCallForPrincipal => {
                let (service, name) = ADMIN_CALLS[rng.gen_range(0..ADMIN_CALLS.len())];
                set_call(&mut record, service, name);
            }
            Kind::OddHourForPrincipal => {}
            Kind::AdminInRareAccount => {
                // One of the administrator's own admin calls: only the account is new.
                let own: Vec<(&str, &str)> = person
                    .calls
                    .iter()
                    .map(|(call, _)| *call)
                    .filter(|(_, call)| ADMIN_CALLS.iter().any(|(_, admin)| admin == call))
                    .collect();
                let (service, name) = own[rng.gen_range(0..own.len())];
                set_call(&mut record, service, name);
                let account = ACCOUNTS[RARE_ACCOUNT];
                record["recipientAccountId"] = json!(account);
                record["userIdentity"] = person_identity(person, account, &session);
            }
            Kind::NewRegionForAccount => {
                record["awsRegion"] = json!(UNUSED_REGIONS[rng.gen_range(0..UNUSED_REGIONS.len())]);
            }
            Kind::ForeignNetwork => {
                record["sourceIPAddress"] = json!(fresh_address(rng, &FOREIGN_RANGES));
            }
            Kind::NewToolForPrincipal => {
                record["userAgent"] = json!(FOREIGN_TOOLS[rng.gen_range(0..FOREIGN_TOOLS.len())]);
            }
        }
        record
    }
}

fn set_call(record: &mut Json, service: &str, name: &str) {
    record["eventSource"] = json!(format!("{service}.amazonaws.com"));
    record["eventName"] = json!(name);
    record["readOnly"] = json!(is_read_only(name));
}

fn is_read_only(name: &str) -> bool {
    ["Describe", "List", "Get", "Lookup", "Filter"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
}

fn event_time(record: &Json) -> DateTime<Utc> {
    record["eventTime"]
        .as_str()
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .map(|time| time.with_timezone(&Utc))
        .unwrap_or_else(start)
}

/// A person's identity in `account`: an SSO session (assumed role) or an IAM user.
fn person_identity(person: &Person, account: &str, session: &str) -> Json {
    let email = format!("{}@example.com", person.name);
    if person.sso {
        let set = match person.job {
            Job::Developer => "Developer",
            Job::Data => "DataAnalyst",
            Job::Security => "SecurityAudit",
            Job::Admin => "AdministratorAccess",
        };
        let role = format!(
            "AWSReservedSSO_{set}_{}",
            &stable_id(set).to_lowercase()[..16]
        );
        json!({
            "type": "AssumedRole",
            "principalId": format!("AROA{}:{email}", stable_id(&role)),
            "arn": format!("arn:aws:sts::{account}:assumed-role/{role}/{email}"),
            "accountId": account,
            "accessKeyId": session,
            "sessionContext": {"sessionIssuer": {"type": "Role", "userName": role}},
        })
    } else {
        json!({
            "type": "IAMUser",
            "principalId": format!("AIDA{}", stable_id(&person.name)),
            "arn": format!("arn:aws:iam::{account}:user/{}", person.name),
            "accountId": account,
            "userName": person.name,
            "accessKeyId": format!("AKIA{}", stable_id(&format!("{}-key", person.name))),
        })
    }
}

/// A deterministic 16-character id for a name.
fn stable_id(name: &str) -> String {
    let mut rng = StdRng::seed_from_u64(name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    }));
    upper_id(&mut rng, "")
}

/// A day's temporary session key for an actor.
fn session_key(seed: u64, index: usize, day: i64) -> String {
    let mut rng = StdRng::seed_from_u64(seed ^ ((index as u64) << 20) ^ day as u64);
    upper_id(&mut rng, "ASIA")
}

fn fresh_address(rng: &mut StdRng, ranges: &[(u8, u8)]) -> String {
    let (a, b) = ranges[rng.gen_range(0..ranges.len())];
    format!(
        "{a}.{b}.{}.{}",
        rng.gen_range(0..=255),
        rng.gen_range(1..=254)
    )
}

#[allow(clippy::too_many_arguments)]
fn record(
    time: DateTime<Utc>,
    service: &str,
    name: &str,
    region: &str,
    address: &str,
    user_agent: &str,
    identity: Json,
    account: &str,
    rng: &mut StdRng,
) -> Json {
    json!({
        "eventVersion": "1.09",
        "userIdentity": identity,
        "eventTime": time.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "eventSource": format!("{service}.amazonaws.com"),
        "eventName": name,
        "awsRegion": region,
        "sourceIPAddress": address,
        "userAgent": user_agent,
        "requestID": format!("{}-{}-{}", hex(rng, 8), hex(rng, 4), hex(rng, 12)),
        "eventID": format!("{}-{}-4{}-{}", hex(rng, 8), hex(rng, 4), hex(rng, 3), hex(rng, 12)),
        "readOnly": is_read_only(name),
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": account,
        "eventCategory": "Management",
    })
}

/// The hour of day in UTC of a record, for tests.
pub fn hour_of(record: &Json) -> u32 {
    event_time(record).hour()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_time_ordered_and_shaped_like_cloudtrail() {
        let organisation = Organisation::new(3);
        let a = organisation.normal_events(0, 2);
        assert_eq!(a, Organisation::new(3).normal_events(0, 2));
        assert_ne!(a, Organisation::new(4).normal_events(0, 2));
        assert!(a.len() > 5_000, "{}", a.len());
        assert!(a.windows(2).all(|w| event_time(&w[0]) <= event_time(&w[1])));
        for record in a.iter().take(500) {
            let event = crate::event::Event::from_json(record).unwrap();
            assert!(!event.event_name.is_missing() && event.time().is_some());
        }
    }

    #[test]
    fn workloads_bring_new_addresses_and_tools_new_versions() {
        let organisation = Organisation::new(3);
        let addresses = |role: &str, day: i64| -> std::collections::HashSet<String> {
            organisation
                .normal_events(day, day + 1)
                .iter()
                .filter(|r| {
                    r["userIdentity"]["arn"]
                        .as_str()
                        .is_some_and(|a| a.contains(role))
                })
                .map(|r| r["sourceIPAddress"].as_str().unwrap().to_string())
                .collect()
        };
        // A function-like workload: a fresh address every day; one behind a NAT
        // gateway: the same two.
        assert!(addresses("billing-role", 0).is_disjoint(&addresses("billing-role", 1)));
        assert_eq!(addresses("ingest-role", 0), addresses("ingest-role", 1));
        assert_ne!(Tool::Cli.user_agent(0, 0), Tool::Cli.user_agent(35, 0));
    }

    #[test]
    fn anomalies_change_one_thing_of_a_known_person() {
        let organisation = Organisation::new(3);
        let labelled = organisation.labelled(28, 29, 3);
        let anomalies: Vec<&Labelled> = labelled.iter().filter(|l| l.anomaly.is_some()).collect();
        assert_eq!(anomalies.len(), 3 * Kind::ALL.len());
        for l in anomalies {
            let arn = l.record["userIdentity"]["arn"].as_str().unwrap();
            assert!(arn.contains("user"), "{arn}");
            if l.anomaly == Some(Kind::AdminInRareAccount) {
                assert_eq!(
                    l.record["recipientAccountId"],
                    json!(ACCOUNTS[RARE_ACCOUNT])
                );
            }
        }
    }
}
