//! Parsing of incoming events into a typed [`Event`].
//!
//! Two shapes are accepted: the flat events of the old detector (`eventName`,
//! `awsRegion`, `sourceIPAddress`, `userAgent`, `recipientAccountId` as a number,
//! `p_event_time` in Panther's `YYYY-MM-DD HH:MM:SS` format) and full CloudTrail
//! records (nested `userIdentity`, `eventTime` in RFC 3339, `recipientAccountId` as a
//! string). Keys are matched exactly first and then case-insensitively, so the
//! lower-cased column names of Panther's data lake are understood too.
//!
//! A field that is absent, empty, null or malformed becomes [`Value::Missing`]: a value
//! of its own, never a silent default.

use arcstr::ArcStr;
use chrono::{DateTime, Datelike, NaiveDateTime, Timelike, Utc};
use serde_json::{Map, Value as Json};
use std::borrow::Cow;
use std::fmt;

/// The textual token that stands for a missing or malformed value in frequency tables.
pub const MISSING: &str = "<missing>";

/// The keys of an event the model reads (matched exactly, then ignoring ASCII case).
pub const KEYS: [&str; 10] = [
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
];

/// The keys of `userIdentity` the model reads ([`crate::identity::principal_of`]).
pub const IDENTITY_KEYS: [&str; 5] = ["type", "arn", "principalId", "invokedBy", "userName"];

/// A shared string, one pointer wide and one allocation: training holds millions
/// of events, and equal strings are shared between them ([`Interner`]).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Text(ArcStr);

impl Text {
    /// Whether both are the one shared copy.
    pub fn shares(&self, other: &Text) -> bool {
        ArcStr::ptr_eq(&self.0, &other.0)
    }
}

impl std::ops::Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Text {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Text {
    fn from(text: &str) -> Text {
        Text(ArcStr::from(text))
    }
}

impl From<String> for Text {
    fn from(text: String) -> Text {
        Text(ArcStr::from(text))
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// One categorical value of an event: present, or explicitly missing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    /// The field was present and well formed.
    Present(Text),
    /// The field was absent, null, empty or malformed.
    Missing,
}

impl Value {
    /// The key used for this value in frequency tables.
    pub fn key(&self) -> &str {
        match self {
            Value::Present(s) => s,
            Value::Missing => MISSING,
        }
    }

    /// Whether the value is missing.
    pub fn is_missing(&self) -> bool {
        matches!(self, Value::Missing)
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// Why an event object as a whole could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    /// The JSON value is not an object.
    #[error("an event must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    /// The object has none of the fields the model uses.
    #[error(
        "the event has none of the fields the model uses (eventName, eventSource, awsRegion, sourceIPAddress, userAgent, recipientAccountId, userIdentity, eventTime, p_event_time)"
    )]
    NoKnownFields,
}

/// An event reduced to the fields the model uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `eventName`.
    pub event_name: Value,
    /// `eventSource`.
    pub event_source: Value,
    /// `awsRegion`.
    pub aws_region: Value,
    /// `sourceIPAddress`.
    pub source_ip: Value,
    /// `userAgent`.
    pub user_agent: Value,
    /// `recipientAccountId`, normalised to a 12-digit string: a category, not a number.
    pub account_id: Value,
    /// `userIdentity.type`.
    pub identity_type: Value,
    /// Who acted, normalised from `userIdentity` ([`crate::identity::principal_of`]).
    pub principal: Value,
    /// The network of `sourceIPAddress` ([`crate::identity::network_of`]).
    pub network: Value,
    /// The family of `userAgent` ([`crate::identity::agent_family`]).
    pub agent_family: Value,
    /// The event time ([`Event::time`]) in microseconds since 1970-01-01 UTC, or
    /// [`NO_TIME`]: 8 bytes where an `Option<DateTime<Utc>>` takes 16.
    time_micros: i64,
}

/// [`Event`]'s `time_micros` when the time is absent or malformed.
const NO_TIME: i64 = i64::MIN;

impl Event {
    /// The event time from `p_event_time` or `eventTime` (to the microsecond); `None`
    /// when absent or malformed.
    pub fn time(&self) -> Option<DateTime<Utc>> {
        match self.time_micros {
            NO_TIME => None,
            micros => DateTime::from_timestamp_micros(micros),
        }
    }

    /// A key that orders events as [`Event::time`] does (untimed first), without
    /// building the time.
    pub(crate) fn time_order(&self) -> i64 {
        self.time_micros
    }

    /// Hour of day (0–23) in UTC, or `None` when the time is missing.
    pub fn hour(&self) -> Option<u32> {
        self.time().map(|t| t.hour())
    }

    /// Days since 1970-01-01 (UTC), or `None` when the time is missing.
    pub fn day(&self) -> Option<i64> {
        (self.time_micros != NO_TIME).then(|| self.time_micros.div_euclid(86_400_000_000))
    }

    /// Day of week (0 = Monday … 6 = Sunday), or `None` when the time is missing.
    pub fn weekday(&self) -> Option<u32> {
        self.time().map(|t| t.weekday().num_days_from_monday())
    }

    /// Parses one event object of either shape.
    pub fn from_json(value: &Json) -> Result<Event, EventError> {
        let obj = match value {
            Json::Object(m) => m,
            Json::Null => return Err(EventError::NotAnObject("null")),
            Json::Bool(_) => return Err(EventError::NotAnObject("a boolean")),
            Json::Number(_) => return Err(EventError::NotAnObject("a number")),
            Json::String(_) => return Err(EventError::NotAnObject("a string")),
            Json::Array(_) => return Err(EventError::NotAnObject("an array")),
        };
        Event::from_fields(|key| lookup(obj, key).map(Raw::of), None)
    }

    /// An event from the values of its [`KEYS`] (`field` gives each one found,
    /// not null, as [`Event::from_json`] finds them), its strings shared through
    /// `interner` when there is one.
    pub(crate) fn from_fields<'a>(
        field: impl Fn(&str) -> Option<Raw<'a>>,
        mut interner: Option<&mut Interner>,
    ) -> Result<Event, EventError> {
        if !KEYS.iter().any(|key| field(key).is_some()) {
            return Err(EventError::NoKnownFields);
        }
        let mut value = |found: Option<&str>| match found {
            Some(found) => Value::Present(match interner.as_deref_mut() {
                Some(interner) => interner.text(found),
                None => found.into(),
            }),
            None => Value::Missing,
        };
        let identity_field = field("userIdentity");
        let identity: Option<&dyn Fields> = match &identity_field {
            Some(Raw::Json(Json::Object(identity))) => Some(identity),
            Some(Raw::Object(identity)) => Some(*identity),
            _ => None,
        };
        let identity_type = match identity.and_then(|fields| fields.any_case("type")) {
            Some(found) => value(text(found)),
            None => value(field("userIdentityType").and_then(text)),
        };
        let time_of = |raw: Raw<'_>| match raw {
            Raw::Str(s) => parse_time_text(s),
            _ => None,
        };
        let time = field("p_event_time")
            .and_then(time_of)
            .or_else(|| field("eventTime").and_then(time_of));
        let source_ip = field("sourceIPAddress").and_then(text);
        let user_agent = field("userAgent").and_then(text);
        let principal = identity.and_then(|fields| {
            crate::identity::principal_of(|key| match fields.exact(key) {
                Some(Raw::Str(found)) => Some(found),
                _ => None,
            })
        });
        let account = field("recipientAccountId").and_then(account_digits);
        Ok(Event {
            event_name: value(field("eventName").and_then(text)),
            event_source: value(field("eventSource").and_then(text)),
            aws_region: value(field("awsRegion").and_then(text)),
            network: value(source_ip.map(crate::identity::network_of).as_deref()),
            agent_family: value(user_agent.map(crate::identity::agent_family).as_deref()),
            source_ip: value(source_ip),
            user_agent: value(user_agent),
            account_id: value(account.as_deref()),
            identity_type,
            principal: value(principal.as_deref()),
            time_micros: time.map_or(NO_TIME, |t| t.timestamp_micros()),
        })
    }

    /// Parses one line of JSON (a CloudTrail record, a flat event, or a record
    /// wrapped as `{"record": {...}}`).
    pub fn from_json_unwrapping(value: &Json) -> Result<Event, EventError> {
        match value.get("record") {
            Some(inner @ Json::Object(_)) if value.get("eventName").is_none() => {
                Event::from_json(inner)
            }
            _ => Event::from_json(value),
        }
    }
}

/// Shares equal strings between events, so that a large training set holds each
/// distinct value once.
#[derive(Debug, Default)]
pub struct Interner {
    seen: std::collections::HashSet<Text, foldhash::fast::RandomState>,
}

impl Interner {
    /// The shared copy of `text`.
    pub fn text(&mut self, text: &str) -> Text {
        match self.seen.get(text) {
            Some(shared) => shared.clone(),
            None => {
                let shared = Text::from(text);
                self.seen.insert(shared.clone());
                shared
            }
        }
    }

    fn value(&mut self, v: &mut Value) {
        if let Value::Present(s) = v {
            match self.seen.get(s) {
                Some(shared) => *s = shared.clone(),
                None => {
                    self.seen.insert(s.clone());
                }
            }
        }
    }

    /// Replaces the event's strings with shared copies.
    pub fn intern(&mut self, mut e: Event) -> Event {
        for v in [
            &mut e.event_name,
            &mut e.event_source,
            &mut e.aws_region,
            &mut e.source_ip,
            &mut e.user_agent,
            &mut e.account_id,
            &mut e.identity_type,
            &mut e.principal,
            &mut e.network,
            &mut e.agent_family,
        ] {
            self.value(v);
        }
        e
    }

    /// Number of distinct strings held.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no string is held.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// Finds a key exactly, then ignoring ASCII case.
fn lookup<'a>(obj: &'a Map<String, Json>, key: &str) -> Option<&'a Json> {
    obj.get(key)
        .or_else(|| {
            obj.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
        })
        .filter(|v| !v.is_null())
}

/// A value of one of an event's [`KEYS`]: a string (as most are), an object read
/// in part (`userIdentity`), or any other JSON value.
#[derive(Clone, Copy)]
pub(crate) enum Raw<'a> {
    Str(&'a str),
    Object(&'a dyn Fields),
    Json(&'a Json),
}

/// An object's fields as an event is read from them: null is absent.
pub(crate) trait Fields {
    /// The value under exactly `key`.
    fn exact(&self, key: &str) -> Option<Raw<'_>>;
    /// The value under `key` or, failing that, under another case ([`lookup`]).
    fn any_case(&self, key: &str) -> Option<Raw<'_>>;
}

impl Fields for Map<String, Json> {
    fn exact(&self, key: &str) -> Option<Raw<'_>> {
        self.get(key).filter(|v| !v.is_null()).map(Raw::of)
    }

    fn any_case(&self, key: &str) -> Option<Raw<'_>> {
        lookup(self, key).map(Raw::of)
    }
}

impl<'a> Raw<'a> {
    pub(crate) fn of(value: &'a Json) -> Raw<'a> {
        match value {
            Json::String(s) => Raw::Str(s),
            other => Raw::Json(other),
        }
    }
}

/// A string field: a non-empty string after trimming. Anything else is malformed.
fn text(v: Raw<'_>) -> Option<&str> {
    match v {
        Raw::Str(s) if !s.trim().is_empty() => Some(s.trim()),
        _ => None,
    }
}

/// An AWS account id: 1–12 digits as a string or a non-negative integral number,
/// normalised to 12 digits with leading zeros.
#[cfg(test)]
fn account(v: &Json) -> Value {
    account_digits(Raw::of(v)).map_or(Value::Missing, |digits| Value::Present((*digits).into()))
}

/// The 12 digits of an account id ([`account`]'s rules), `None` when malformed.
fn account_digits(v: Raw<'_>) -> Option<Cow<'_, str>> {
    let digits = match v {
        Raw::Str(s) => {
            let s = s.trim();
            if s.is_empty() || s.len() > 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            if s.len() == 12 {
                return Some(Cow::Borrowed(s));
            }
            s.to_string()
        }
        Raw::Json(Json::Number(n)) => {
            if let Some(u) = n.as_u64() {
                u.to_string()
            } else if let Some(f) = n.as_f64() {
                if f >= 0.0 && f.fract() == 0.0 && f < 1e12 {
                    format!("{}", f as u64)
                } else {
                    return None;
                }
            } else {
                return None;
            }
        }
        _ => return None,
    };
    if digits.len() > 12 {
        return None;
    }
    Some(Cow::Owned(format!("{digits:0>12}")))
}

/// Parses Panther's `YYYY-MM-DD HH:MM:SS[.fff]` (UTC) or RFC 3339.
pub fn parse_time(v: &Json) -> Option<DateTime<Utc>> {
    parse_time_text(v.as_str()?)
}

/// [`parse_time`] of a string.
fn parse_time_text(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let s = s.strip_suffix('Z').unwrap_or(s);
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Training holds every event in memory: ten one-pointer strings and the time.
    #[test]
    fn an_event_is_88_bytes_and_keeps_its_time_to_the_microsecond() {
        assert_eq!(std::mem::size_of::<Event>(), 88);
        let e = Event::from_json(&json!({"p_event_time": "2024-06-27 03:15:22.123456"})).unwrap();
        let t = e.time().unwrap();
        assert_eq!(t.to_rfc3339(), "2024-06-27T03:15:22.123456+00:00");
        assert_eq!(e.day(), Some(t.timestamp().div_euclid(86_400)));
        assert_eq!((e.hour(), e.weekday()), (Some(3), Some(3)));
        let before = Event::from_json(&json!({"eventTime": "1969-12-31T23:59:59Z"})).unwrap();
        assert_eq!(before.day(), Some(-1));
    }

    #[test]
    fn flat_event_of_the_old_system() {
        let e = Event::from_json(
            &json!({"eventName": "DeleteConfigRule", "awsRegion": "us-east-1",
            "sourceIPAddress": "192.168.1.100", "userAgent": "curl/7.68.0",
            "recipientAccountId": 999999999999u64, "p_event_time": "2024-06-27 03:15:22"}),
        )
        .unwrap();
        assert_eq!(e.event_name, Value::Present("DeleteConfigRule".into()));
        assert_eq!(e.account_id, Value::Present("999999999999".into()));
        assert_eq!(e.hour(), Some(3));
        assert_eq!(e.weekday(), Some(3)); // Thursday
        assert_eq!(e.event_source, Value::Missing);
        assert_eq!(e.identity_type, Value::Missing);
    }

    #[test]
    fn cloudtrail_record() {
        let e = Event::from_json(&json!({"eventName": "PutConfigRule", "eventSource": "config.amazonaws.com",
            "awsRegion": "eu-west-1", "sourceIPAddress": "10.0.0.1", "userAgent": "aws-cli/2",
            "recipientAccountId": "012345678901", "eventTime": "2024-06-29T23:59:59Z",
            "userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::012345678901:assumed-role/x/y"}}))
        .unwrap();
        assert_eq!(e.account_id, Value::Present("012345678901".into()));
        assert_eq!(e.identity_type, Value::Present("AssumedRole".into()));
        assert_eq!(e.hour(), Some(23));
        assert_eq!(e.weekday(), Some(5));
    }

    #[test]
    fn malformed_fields_are_missing_not_defaults() {
        let e = Event::from_json(
            &json!({"eventName": "", "awsRegion": 5, "sourceIPAddress": null,
            "recipientAccountId": "12ab", "p_event_time": "yesterday", "eventTime": "also bad",
            "userIdentity": "root"}),
        )
        .unwrap();
        assert!(e.event_name.is_missing());
        assert!(e.aws_region.is_missing());
        assert!(e.source_ip.is_missing());
        assert!(e.account_id.is_missing());
        assert!(e.identity_type.is_missing());
        assert_eq!(e.time(), None);
        assert_eq!(e.hour(), None);
    }

    #[test]
    fn account_numbers() {
        assert_eq!(
            account(&json!(12345678901u64)),
            Value::Present("012345678901".into())
        );
        assert_eq!(
            account(&json!(1.23123123123e11)),
            Value::Present("123123123123".into())
        );
        assert_eq!(account(&json!(-1)), Value::Missing);
        assert_eq!(account(&json!(1.5)), Value::Missing);
        assert_eq!(account(&json!(1234567890123u64)), Value::Missing);
        assert_eq!(account(&json!(true)), Value::Missing);
    }

    #[test]
    fn time_formats() {
        for s in [
            "2024-06-27 03:15:22",
            "2024-06-27 03:15:22.123",
            "2024-06-27T03:15:22Z",
            "2024-06-27T05:15:22+02:00",
            "2024-06-27T03:15:22.5Z",
            "2024-06-27 03:15:22.000000Z",
        ] {
            let t = parse_time(&json!(s)).unwrap_or_else(|| panic!("{s}"));
            assert_eq!(t.hour(), 3, "{s}");
        }
        assert_eq!(parse_time(&json!("2024-13-01 00:00:00")), None);
        assert_eq!(parse_time(&json!(1719458122)), None);
    }

    #[test]
    fn lower_case_keys_and_wrapping() {
        let e = Event::from_json_unwrapping(
            &json!({"record": {"eventname": "X", "awsregion": "us-east-1"}}),
        )
        .unwrap();
        assert_eq!(e.event_name, Value::Present("X".into()));
        assert_eq!(e.aws_region, Value::Present("us-east-1".into()));
    }

    #[test]
    fn not_objects_are_refused() {
        assert_eq!(
            Event::from_json(&json!([1])),
            Err(EventError::NotAnObject("an array"))
        );
        assert_eq!(
            Event::from_json(&json!("x")),
            Err(EventError::NotAnObject("a string"))
        );
        assert_eq!(
            Event::from_json(&json!({"foo": 1})),
            Err(EventError::NoKnownFields)
        );
    }
}
