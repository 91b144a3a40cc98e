//! Reading an event straight from JSON text: only the keys the model reads are
//! kept (any case, and the `record` wrapper), everything else is skipped as it is
//! read, and the same rules as [`Event::from_json`] apply to what is kept. A
//! CloudTrail record has dozens of keys the model never reads (request and
//! response elements, TLS details); not building a `serde_json::Value` for them is
//! most of the cost of reading a training file.

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value as Json};
use std::borrow::Cow;
use std::fmt;

use crate::event::{Event, EventError, IDENTITY_KEYS, Interner, KEYS, Raw};
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};

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

/// One of [`KEYS`] as found in an object: under its exact spelling (the last one
/// wins, as when a parsed object keeps the last of duplicate keys) or, failing
/// that, under another case (the first in byte order, as a parsed object's
/// case-insensitive search finds it).
#[derive(Default)]
struct Slot<'de> {
    exact: Option<Held<'de>>,
    other_case: Option<(String, Held<'de>)>,
}

/// A value as read: a string borrowed from the text where it can be (no escapes),
/// anything else as a JSON value.
enum Held<'de> {
    Str(Cow<'de, str>),
    Json(Json),
}

impl<'de> Held<'de> {
    fn raw(&self) -> Option<Raw<'_>> {
        match self {
            Held::Str(text) => Some(Raw::Str(text)),
            Held::Json(Json::Null) => None,
            Held::Json(other) => Some(Raw::Json(other)),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Held<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Held<'de>, D::Error> {
        deserializer.deserialize_any(HeldVisitor)
    }
}

struct HeldVisitor;

impl<'de> Visitor<'de> for HeldVisitor {
    type Value = Held<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Held<'de>, E> {
        Ok(Held::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Held<'de>, E> {
        Ok(Held::Str(Cow::Owned(v.to_string())))
    }

    fn visit_string<E>(self, v: String) -> Result<Held<'de>, E> {
        Ok(Held::Str(Cow::Owned(v)))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Held<'de>, E> {
        Ok(Held::Json(Json::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Held<'de>, E> {
        Ok(Held::Json(Json::from(v)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Held<'de>, E> {
        Ok(Held::Json(Json::from(v)))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Held<'de>, E> {
        Ok(Held::Json(Json::from(v)))
    }

    fn visit_unit<E>(self) -> Result<Held<'de>, E> {
        Ok(Held::Json(Json::Null))
    }

    fn visit_map<A: MapAccess<'de>>(self, access: A) -> Result<Held<'de>, A::Error> {
        let value = serde::Deserialize::deserialize(MapAccessDeserializer::new(access))?;
        Ok(Held::Json(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, access: A) -> Result<Held<'de>, A::Error> {
        let value = serde::Deserialize::deserialize(SeqAccessDeserializer::new(access))?;
        Ok(Held::Json(value))
    }
}

impl<'de> Slot<'de> {
    fn put(&mut self, key: &str, canonical: &str, value: Held<'de>) {
        if key == canonical {
            self.exact = Some(value);
        } else if self
            .other_case
            .as_ref()
            .is_none_or(|(first, _)| key <= first.as_str())
        {
            self.other_case = Some((key.to_string(), value));
        }
    }

    /// The value, as [`Event::from_json`]'s lookup finds it: null is absent.
    fn value(&self) -> Option<Raw<'_>> {
        match &self.exact {
            Some(exact) => exact.raw(),
            None => self.other_case.as_ref().and_then(|(_, value)| value.raw()),
        }
    }
}

/// An object's [`KEYS`], and at the top level its `record` wrapper.
#[derive(Default)]
struct Slots<'de> {
    slots: [Slot<'de>; KEYS.len()],
    /// The last `record` key (exact spelling), read the same way.
    record: Option<Box<Reduced<'de>>>,
    /// Whether an exact `eventName` key was there (null or not): a wrapper is only
    /// unwrapped without one.
    event_name_key: bool,
}

/// A top-level value: an object's slots, or what it was instead. One per event
/// read, on the stack: boxing the slots would cost an allocation per event.
#[allow(clippy::large_enum_variant)]
enum Reduced<'de> {
    Object(Slots<'de>),
    Other(Json),
}

/// Reads a value keeping only what an event needs: at the top level (`top`), the
/// `record` wrapper too.
struct ReducedSeed {
    top: bool,
}

impl<'de> DeserializeSeed<'de> for ReducedSeed {
    type Value = Reduced<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Reduced<'de>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ReducedSeed {
    type Value = Reduced<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Reduced<'de>, A::Error> {
        let mut slots = Slots::default();
        while let Some(key) = access.next_key::<Cow<'de, str>>()? {
            if let Some(index) = KEYS
                .iter()
                .position(|known| known.eq_ignore_ascii_case(&key))
            {
                if index == 0 && key == "eventName" {
                    slots.event_name_key = true;
                }
                let value = if KEYS[index] == "userIdentity" {
                    Held::Json(access.next_value_seed(IdentitySeed)?)
                } else {
                    access.next_value::<Held<'de>>()?
                };
                slots.slots[index].put(&key, KEYS[index], value);
            } else if self.top && key == "record" {
                slots.record = Some(Box::new(
                    access.next_value_seed(ReducedSeed { top: false })?,
                ));
            } else {
                access.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Reduced::Object(slots))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Reduced<'de>, E> {
        Ok(Reduced::Other(Json::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Reduced<'de>, E> {
        Ok(Reduced::Other(Json::from(v)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Reduced<'de>, E> {
        Ok(Reduced::Other(Json::from(v)))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Reduced<'de>, E> {
        Ok(Reduced::Other(Json::from(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Reduced<'de>, E> {
        Ok(Reduced::Other(Json::String(v.to_string())))
    }

    fn visit_unit<E>(self) -> Result<Reduced<'de>, E> {
        Ok(Reduced::Other(Json::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Reduced<'de>, A::Error> {
        while access.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Reduced::Other(Json::Array(Vec::new())))
    }
}

/// Reads `userIdentity`: an object keeps only [`IDENTITY_KEYS`] (in any case);
/// anything else is read whole.
struct IdentitySeed;

impl<'de> DeserializeSeed<'de> for IdentitySeed {
    type Value = Json;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for IdentitySeed {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Json, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<Cow<'de, str>>()? {
            if IDENTITY_KEYS
                .iter()
                .any(|known| known.eq_ignore_ascii_case(&key))
            {
                let value: Json = access.next_value()?;
                map.insert(key.into_owned(), value);
            } else {
                access.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Json::Object(map))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
        Ok(Json::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_string()))
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Json, A::Error> {
        while access.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Json::Array(Vec::new()))
    }
}

impl Slots<'_> {
    fn event(&self, interner: Option<&mut Interner>) -> Result<Event, EventError> {
        Event::from_fields(
            |key| {
                KEYS.iter()
                    .position(|known| *known == key)
                    .and_then(|index| self.slots[index].value())
            },
            interner,
        )
    }
}

impl Reduced<'_> {
    fn event(&self, interner: Option<&mut Interner>) -> Result<Event, EventError> {
        match self {
            Reduced::Object(slots) => slots.event(interner),
            Reduced::Other(other) => Event::from_json(other),
        }
    }
}

impl Event {
    /// Reads one event (a CloudTrail record, a flat event, or a record wrapped as
    /// `{"record": {...}}`) straight from JSON text: the same event as
    /// [`Event::from_json_unwrapping`] on the parsed value, without building it.
    pub fn from_slice(bytes: &[u8]) -> Result<Event, WireError> {
        Event::read(bytes, None)
    }

    /// [`Event::from_slice`], with the event's strings shared through `interner`.
    pub fn from_slice_interned(bytes: &[u8], interner: &mut Interner) -> Result<Event, WireError> {
        Event::read(bytes, Some(interner))
    }

    fn read(bytes: &[u8], interner: Option<&mut Interner>) -> Result<Event, WireError> {
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let reduced = ReducedSeed { top: true }.deserialize(&mut deserializer)?;
        deserializer.end()?;
        let event = match &reduced {
            Reduced::Object(slots) => match &slots.record {
                Some(inner) if !slots.event_name_key && matches!(**inner, Reduced::Object(_)) => {
                    inner.event(interner)
                }
                _ => slots.event(interner),
            },
            Reduced::Other(other) => Event::from_json(other),
        };
        Ok(event?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn both(value: Json) {
        let text = serde_json::to_vec(&value).unwrap();
        let mut interner = Interner::default();
        let interned = Event::from_slice_interned(&text, &mut interner);
        let fast = Event::from_slice(&text);
        assert_eq!(format!("{interned:?}"), format!("{fast:?}"));
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
            json!({"EventName": "b", "EVENTNAME": "a", "eventNAME": "c", "eventName": null, "awsregion": null, "AWSREGION": "x"}),
            json!({"userIdentity": {"Type": "IAMUser", "ARN": "arn:aws:iam::1:user/x", "arn": "arn:aws:iam::1:user/y",
                "sessionContext": {"attributes": {"mfaAuthenticated": "false"}}, "accessKeyId": "AKIA"}}),
            json!({"useridentity": "root", "userIdentityType": "Root"}),
            json!({"record": {"eventName": "Inner"}, "eventName": null}),
            json!({"Record": {"eventName": "Inner"}, "awsRegion": "us-east-1"}),
            json!({"record": {"record": {"eventName": "Deeper"}, "awsRegion": "eu-west-1"}}),
            json!({"eventName": 5, "recipientAccountId": 12.0, "eventTime": 17}),
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
        // Duplicate keys: the last one counts, as in a parsed object.
        let event = Event::from_slice(br#"{"eventName": "A", "eventName": "B"}"#).unwrap();
        assert_eq!(event.event_name.key(), "B");
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
