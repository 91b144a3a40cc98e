//! Both event shapes parse: the old system's flat events and real CloudTrail records
//! (a sample of public rule-test and attack-simulation records, with tool markers
//! masked), including records with absent or odd fields, which become `Missing`.

use anomaly::Event;
use anomaly::Value;
use serde_json::{Value as Json, json};

fn sample() -> Vec<Json> {
    include_str!("fixtures/cloudtrail_sample.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn every_sample_record_parses_and_keeps_what_it_has() {
    let lines = sample();
    assert!(lines.len() >= 40);
    let (mut timed, mut untimed, mut missing_identity) = (0, 0, 0);
    for line in &lines {
        let r = &line["record"];
        let e = Event::from_json(r).unwrap_or_else(|err| panic!("{err}: {r}"));
        // What is there is kept, verbatim.
        assert_eq!(
            e.event_name,
            Value::Present(r["eventName"].as_str().unwrap().into())
        );
        match r.get("awsRegion").and_then(Json::as_str) {
            Some(region) => assert_eq!(e.aws_region, Value::Present(region.into())),
            None => assert!(e.aws_region.is_missing()),
        }
        match r.get("userAgent").and_then(Json::as_str) {
            Some(ua) if !ua.trim().is_empty() => assert_eq!(e.user_agent.key(), ua.trim()),
            _ => assert!(e.user_agent.is_missing()),
        }
        match r.pointer("/userIdentity/type").and_then(Json::as_str) {
            Some(t) => assert_eq!(e.identity_type, Value::Present(t.into())),
            None => {
                missing_identity += 1;
                assert!(e.identity_type.is_missing())
            }
        }
        if let Some(acct) = r.get("recipientAccountId") {
            match acct {
                Json::String(s)
                    if !s.is_empty() && s.len() <= 12 && s.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    assert_eq!(e.account_id, Value::Present(format!("{s:0>12}").into()))
                }
                Json::Number(n) => assert_eq!(
                    e.account_id,
                    Value::Present(format!("{:012}", n.as_f64().unwrap() as u64).into())
                ),
                // "redacted" and other non-numbers are malformed: missing.
                _ => assert!(e.account_id.is_missing(), "{acct}"),
            }
        } else {
            assert!(e.account_id.is_missing());
        }
        // A time that is absent or unreadable ("redacted") is missing, never a default.
        if e.time().is_some() {
            timed += 1;
        } else {
            untimed += 1;
            for key in ["eventTime", "p_event_time"] {
                let t = r.get(key).and_then(Json::as_str).unwrap_or("");
                assert!(t.is_empty() || t == "redacted", "{r}");
            }
        }
    }
    assert!(
        timed > 30 && untimed >= 3 && missing_identity >= 1,
        "{timed} {untimed} {missing_identity}"
    );
}

#[test]
fn a_wrapped_line_unwraps() {
    let line = &sample()[0];
    assert_eq!(
        Event::from_json_unwrapping(line).unwrap(),
        Event::from_json(&line["record"]).unwrap()
    );
}

#[test]
fn the_old_flat_event_and_its_cloudtrail_twin_agree() {
    let flat = Event::from_json(
        &json!({"eventName": "DeleteConfigRule", "awsRegion": "us-east-1",
        "sourceIPAddress": "192.168.1.100", "userAgent": "curl/7.68.0",
        "recipientAccountId": 999999999999u64, "p_event_time": "2024-06-27 03:15:22"}),
    )
    .unwrap();
    let nested = Event::from_json(&json!({"eventName": "DeleteConfigRule", "awsRegion": "us-east-1",
        "sourceIPAddress": "192.168.1.100", "userAgent": "curl/7.68.0",
        "recipientAccountId": "999999999999", "eventTime": "2024-06-27T03:15:22Z",
        "eventSource": "config.amazonaws.com", "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::999999999999:user/x"}}))
    .unwrap();
    assert_eq!(flat.event_name, nested.event_name);
    assert_eq!(flat.account_id, nested.account_id);
    assert_eq!(flat.time(), nested.time());
    assert!(flat.event_source.is_missing() && !nested.event_source.is_missing());
    assert!(flat.identity_type.is_missing());
}
