//! Reading an event straight from JSON text: only the keys the model reads are
//! kept (any case, and the `record` wrapper), everything else is skipped as it is
//! read, and the same rules as [`Event::from_json`] apply to what is kept. A
//! CloudTrail record has dozens of keys the model never reads (request and
//! response elements, TLS details); not building a `serde_json::Value` for them is
//! most of the cost of reading a training file.

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value as Json;
use std::borrow::Cow;
use std::fmt;

use crate::event::{Event, EventError, Fields, IDENTITY_KEYS, Interner, KEYS, Raw};
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
    other_case: Option<(Key<'de>, Held<'de>)>,
}

/// A key as read, unchecked bytes: it is only compared with the known keys.
type Key<'de> = Cow<'de, [u8]>;

/// A value as read: a string borrowed from the text where it can be (no escapes),
/// `userIdentity` as its slots, anything else as a JSON value.
enum Held<'de> {
    Str(Cow<'de, str>),
    Identity(Box<IdentitySlots<'de>>),
    Json(Json),
}

impl<'de> Held<'de> {
    fn raw(&self) -> Option<Raw<'_>> {
        match self {
            Held::Str(text) => Some(Raw::Str(text)),
            Held::Identity(slots) => Some(Raw::Object(&**slots)),
            Held::Json(Json::Null) => None,
            Held::Json(other) => Some(Raw::Json(other)),
        }
    }
}

/// Reads a key as bytes, without checking them as text.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Key<'de>, D::Error> {
        deserializer.deserialize_bytes(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_bytes<E>(self, v: &'de [u8]) -> Result<Key<'de>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_bytes<E>(self, v: &[u8]) -> Result<Key<'de>, E> {
        Ok(Cow::Owned(v.to_vec()))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Cow::Borrowed(v.as_bytes()))
    }

    fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Cow::Owned(v.as_bytes().to_vec()))
    }
}

/// Which of `known` a key is, ignoring ASCII case.
fn position_of(known: &[&str], key: &[u8]) -> Option<usize> {
    known
        .iter()
        .position(|known| known.as_bytes().eq_ignore_ascii_case(key))
}

impl<'de> serde::Deserialize<'de> for Held<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Held<'de>, D::Error> {
        HeldVisitor { identity: false }.deserialize(deserializer)
    }
}

/// Reads a value as [`Held`]; as `userIdentity` (`identity`), an object keeps only
/// [`IDENTITY_KEYS`] (in any case).
struct HeldVisitor {
    identity: bool,
}

impl<'de> DeserializeSeed<'de> for HeldVisitor {
    type Value = Held<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Held<'de>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

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

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Held<'de>, A::Error> {
        if !self.identity {
            let value = serde::Deserialize::deserialize(MapAccessDeserializer::new(access))?;
            return Ok(Held::Json(value));
        }
        let mut identity = Box::<IdentitySlots>::default();
        while let Some(key) = access.next_key_seed(KeySeed)? {
            match position_of(&IDENTITY_KEYS, &key) {
                Some(index) => {
                    let value = access.next_value::<Held<'de>>()?;
                    identity.slots[index].put(key, IDENTITY_KEYS[index], value);
                }
                None => {
                    access.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Held::Identity(identity))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, access: A) -> Result<Held<'de>, A::Error> {
        let value = serde::Deserialize::deserialize(SeqAccessDeserializer::new(access))?;
        Ok(Held::Json(value))
    }
}

impl<'de> Slot<'de> {
    fn put(&mut self, key: Key<'de>, canonical: &str, value: Held<'de>) {
        if *key == *canonical.as_bytes() {
            self.exact = Some(value);
        } else if self
            .other_case
            .as_ref()
            .is_none_or(|(first, _)| key <= *first)
        {
            self.other_case = Some((key, value));
        }
    }

    /// The value, as [`Event::from_json`]'s lookup finds it: null is absent.
    fn value(&self) -> Option<Raw<'_>> {
        match &self.exact {
            Some(exact) => exact.raw(),
            None => self.other_case.as_ref().and_then(|(_, value)| value.raw()),
        }
    }

    /// The value under the exact key only: null is absent.
    fn exact(&self) -> Option<Raw<'_>> {
        self.exact.as_ref().and_then(Held::raw)
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
        while let Some(key) = access.next_key_seed(KeySeed)? {
            if let Some(index) = position_of(&KEYS, &key) {
                if index == 0 && *key == *b"eventName" {
                    slots.event_name_key = true;
                }
                let value = if KEYS[index] == "userIdentity" {
                    access.next_value_seed(HeldVisitor { identity: true })?
                } else {
                    access.next_value::<Held<'de>>()?
                };
                slots.slots[index].put(key, KEYS[index], value);
            } else if self.top && *key == *b"record" {
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

/// `userIdentity` as read: its [`IDENTITY_KEYS`] (in any case).
#[derive(Default)]
struct IdentitySlots<'de> {
    slots: [Slot<'de>; IDENTITY_KEYS.len()],
}

impl IdentitySlots<'_> {
    fn slot(&self, key: &str) -> Option<&Slot<'_>> {
        position_of(&IDENTITY_KEYS, key.as_bytes()).map(|index| &self.slots[index])
    }
}

impl Fields for IdentitySlots<'_> {
    fn exact(&self, key: &str) -> Option<Raw<'_>> {
        self.slot(key).and_then(Slot::exact)
    }

    fn any_case(&self, key: &str) -> Option<Raw<'_>> {
        self.slot(key).and_then(Slot::value)
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

/// The error for text that is not UTF-8, with the position of the first bad byte
/// as serde_json reports it: a parse that reads every string finds it.
fn not_utf8(bytes: &[u8]) -> serde_json::Error {
    match serde_json::from_slice::<Json>(bytes) {
        Err(error) => error,
        Ok(_) => serde::de::Error::custom("the text is not UTF-8"),
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
        // JSON text is UTF-8 (RFC 8259, section 8.1): checked once for the whole
        // text, skipped values included, rather than string by string.
        let Ok(text) = std::str::from_utf8(bytes) else {
            return Err(WireError::Json(not_utf8(bytes)));
        };
        let mut deserializer = serde_json::Deserializer::from_str(text);
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
    fn text_that_is_not_utf8_is_refused_wherever_it_is() {
        for text in [
            &b"{\"eventName\": \"\xff\"}"[..],
            b"{\"eventName\": \"A\", \"requestParameters\": {\"x\": \"\xc3\x28\"}}",
            b"{\"\xfe\": 1, \"eventName\": \"A\"}",
        ] {
            let error = Event::from_slice(text).unwrap_err().to_string();
            assert!(error.contains("line 1 column"), "{error}");
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
