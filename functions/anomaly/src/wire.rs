//! Reading an event straight from JSON text: only the keys the model reads are
//! kept (any case, and the `record` wrapper), everything else is skipped as it is
//! read, and the same rules as [`Event::from_json`] apply to what is kept. A
//! CloudTrail record has dozens of keys the model never reads (request and
//! response elements, TLS details); not building a `serde_json::Value` for them is
//! most of the cost of reading a training file.

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value as Json};
use std::fmt;

use crate::event::{Event, EventError};

/// Why a line could not be read as an event.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Not JSON.
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// JSON, but not an event.
    #[error(transparent)]
    Event(#[from] EventError),
}

/// Keys the model reads, compared ignoring ASCII case (as [`Event::from_json`]
/// finds them).
const KEPT: [&str; 11] = [
    "eventName",
    "eventSource",
    "awsRegion",
    "sourceIPAddress",
    "userAgent",
    "recipientAccountId",
    "userIdentity",
    "userIdentityType",
    "eventTime",
    "p_event_time",
    "record",
];

fn kept(key: &str) -> bool {
    KEPT.iter().any(|known| known.eq_ignore_ascii_case(key))
}

/// The top-level value with only the kept keys (objects), or what it was instead.
enum Reduced {
    Object(Map<String, Json>),
    Other(Json),
}

struct ReducedVisitor;

impl<'de> Visitor<'de> for ReducedVisitor {
    type Value = Reduced;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Reduced, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<std::borrow::Cow<'de, str>>()? {
            if key.eq_ignore_ascii_case("record") {
                // The wrapper's content, itself reduced.
                let inner = access.next_value_seed(ReducedSeed)?;
                map.insert(
                    key.into_owned(),
                    match inner {
                        Reduced::Object(inner) => Json::Object(inner),
                        Reduced::Other(other) => other,
                    },
                );
            } else if kept(&key) {
                let value: Json = access.next_value()?;
                map.insert(key.into_owned(), value);
            } else {
                access.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Reduced::Object(map))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Reduced, E> {
        Ok(Reduced::Other(Json::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Reduced, E> {
        Ok(Reduced::Other(Json::from(v)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Reduced, E> {
        Ok(Reduced::Other(Json::from(v)))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Reduced, E> {
        Ok(Reduced::Other(Json::from(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Reduced, E> {
        Ok(Reduced::Other(Json::String(v.to_string())))
    }

    fn visit_unit<E>(self) -> Result<Reduced, E> {
        Ok(Reduced::Other(Json::Null))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut access: A) -> Result<Reduced, A::Error> {
        while access.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Reduced::Other(Json::Array(Vec::new())))
    }
}

struct ReducedSeed;

impl<'de> DeserializeSeed<'de> for ReducedSeed {
    type Value = Reduced;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Reduced, D::Error> {
        deserializer.deserialize_any(ReducedVisitor)
    }
}

impl Event {
    /// Reads one event (a CloudTrail record, a flat event, or a record wrapped as
    /// `{"record": {...}}`) straight from JSON text: the same event as
    /// [`Event::from_json_unwrapping`] on the parsed value, without building it.
    pub fn from_slice(bytes: &[u8]) -> Result<Event, WireError> {
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let reduced = ReducedSeed.deserialize(&mut deserializer)?;
        deserializer.end()?;
        let value = match reduced {
            Reduced::Object(map) => Json::Object(map),
            Reduced::Other(other) => other,
        };
        Ok(Event::from_json_unwrapping(&value)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn both(value: Json) {
        let text = serde_json::to_vec(&value).unwrap();
        let fast = Event::from_slice(&text);
        let slow = Event::from_json_unwrapping(&value);
        match (fast, slow) {
            (Ok(fast), Ok(slow)) => assert_eq!(fast, slow, "{value}"),
            (Err(WireError::Event(fast)), Err(slow)) => assert_eq!(fast, slow, "{value}"),
            (fast, slow) => panic!("{value}: {fast:?} against {slow:?}"),
        }
    }

    #[test]
    fn the_same_event_as_through_a_value() {
        for value in [
            json!({"eventName": "A", "awsRegion": "us-east-1", "requestParameters": {"x": [1, 2, {"y": null}]},
                "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::1:user/bo"}, "eventTime": "2024-06-03T10:00:00Z"}),
            json!({"eventname": "lower", "EVENTNAME": "upper", "recipientAccountId": 12345678901u64}),
            json!({"eventName": null, "eventname": "fallback is not taken"}),
            json!({"record": {"eventName": "Wrapped", "tlsDetails": {"a": 1}}, "source": "x"}),
            json!({"record": {"eventName": "Inner"}, "eventName": "Outer"}),
            json!({"record": "not an object", "eventName": "X"}),
            json!({"p_event_time": "2024-06-27 03:15:22", "userIdentityType": "Root"}),
            json!({"foo": 1}),
            json!([1, 2]),
            json!("text"),
            json!(null),
            json!(1.5),
        ] {
            both(value);
        }
    }

    #[test]
    fn syntax_errors_are_json_errors() {
        assert!(matches!(
            Event::from_slice(b"{\"eventName\": "),
            Err(WireError::Json(_))
        ));
        assert!(matches!(
            Event::from_slice(b"{\"eventName\": \"A\"} trailing"),
            Err(WireError::Json(_))
        ));
    }

    #[test]
    fn real_and_simulated_records_read_the_same() {
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
        for file in [
            "cloudtrail_sample.jsonl",
            "cloudtrail/stratus_detonations.jsonl",
            "cloudtrail/panther_rule_tests.jsonl",
        ] {
            let text = std::fs::read_to_string(format!("{fixtures}{file}")).unwrap();
            for line in text.lines().filter(|line| !line.trim().is_empty()) {
                both(serde_json::from_str(line).unwrap());
            }
        }
        for record in crate::organisation::Organisation::new(9).normal_events(0, 1) {
            both(record);
        }
    }
}
