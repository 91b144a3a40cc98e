//! Where a release stands, written in the alias's own description: the
//! controller keeps no state file, so a shift interrupted by a crash is
//! continued from what the alias says (its target, its routing weights and
//! this line), and a release rolled back is not tried again.
//!
//! Lambda's alias `Description` is 0 to 256 characters (Lambda API
//! reference, UpdateAlias,
//! <https://docs.aws.amazon.com/lambda/latest/api/API_UpdateAlias.html>);
//! [`Journal::render`] never writes more.

use chrono::{DateTime, SecondsFormat, Utc};

/// Every alias description the controller writes starts with this.
pub const PREFIX: &str = "anomaly-controller:";
/// The longest alias description Lambda accepts.
pub const MAX_DESCRIPTION: usize = 256;

/// The last thing a release did to the alias.
#[derive(Clone, Debug, PartialEq)]
pub enum Journal {
    /// The alias routes all traffic to `version`, which replaced `from`.
    Released {
        version: String,
        from: Option<String>,
        at: DateTime<Utc>,
    },
    /// Traffic is shifting from `from` to `version` (release `release`);
    /// the current step began at `step_since`.
    Releasing {
        version: String,
        from: String,
        release: String,
        started: DateTime<Utc>,
        step_since: DateTime<Utc>,
    },
    /// `version` (release `release`) was taken out of service and the alias
    /// sent back to `to`; the same release is not tried again.
    RolledBack {
        version: String,
        release: String,
        to: String,
        at: DateTime<Utc>,
        reason: String,
    },
}

fn time(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl Journal {
    /// The alias description that records this.
    pub fn render(&self) -> String {
        let text = match self {
            Journal::Released { version, from, at } => format!(
                "{PREFIX} released version={version} from={} at={}",
                from.as_deref().unwrap_or("none"),
                time(at)
            ),
            Journal::Releasing {
                version,
                from,
                release,
                started,
                step_since,
            } => format!(
                "{PREFIX} releasing version={version} from={from} release={release} started={} step={}",
                time(started),
                time(step_since)
            ),
            Journal::RolledBack {
                version,
                release,
                to,
                at,
                reason,
            } => format!(
                "{PREFIX} rolled-back version={version} release={release} to={to} at={} reason={reason}",
                time(at)
            ),
        };
        truncate(text, MAX_DESCRIPTION)
    }

    /// Reads a description the controller wrote; `None` for any other.
    pub fn parse(text: &str) -> Option<Journal> {
        let rest = text.strip_prefix(PREFIX)?.trim_start();
        let (state, rest) = rest.split_once(' ')?;
        let (fields, reason) = match rest.split_once(" reason=") {
            Some((fields, reason)) => (fields, Some(reason.to_string())),
            None => (rest, None),
        };
        let value = |key: &str| {
            fields
                .split(' ')
                .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
                .map(str::to_string)
        };
        let when = |key: &str| {
            value(key)
                .and_then(|text| DateTime::parse_from_rfc3339(&text).ok())
                .map(|at| at.with_timezone(&Utc))
        };
        Some(match state {
            "released" => Journal::Released {
                version: value("version")?,
                from: value("from").filter(|from| from != "none"),
                at: when("at")?,
            },
            "releasing" => Journal::Releasing {
                version: value("version")?,
                from: value("from")?,
                release: value("release")?,
                started: when("started")?,
                step_since: when("step")?,
            },
            "rolled-back" => Journal::RolledBack {
                version: value("version")?,
                release: value("release")?,
                to: value("to")?,
                at: when("at")?,
                reason: reason.unwrap_or_default(),
            },
            _ => return None,
        })
    }
}

/// At most `limit` bytes, cut at a character boundary.
fn truncate(mut text: String, limit: usize) -> String {
    if text.len() > limit {
        let mut end = limit;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn every_state_reads_back_as_written() {
        let states = [
            Journal::Released {
                version: "7".into(),
                from: Some("6".into()),
                at: at("2026-12-01T17:00:00Z"),
            },
            Journal::Released {
                version: "1".into(),
                from: None,
                at: at("2026-12-01T17:00:00Z"),
            },
            Journal::Releasing {
                version: "7".into(),
                from: "6".into(),
                release: "0123456789ab".into(),
                started: at("2026-12-01T17:00:00Z"),
                step_since: at("2026-12-01T17:10:00Z"),
            },
            Journal::RolledBack {
                version: "7".into(),
                release: "0123456789ab".into(),
                to: "6".into(),
                at: at("2026-12-01T17:03:00Z"),
                reason: "alarm detect-errors in ALARM: Threshold Crossed".into(),
            },
        ];
        for state in states {
            let text = state.render();
            assert!(text.len() <= MAX_DESCRIPTION, "{text}");
            assert_eq!(Journal::parse(&text), Some(state), "{text}");
        }
    }

    #[test]
    fn a_long_reason_is_cut_to_lambdas_limit_and_still_reads() {
        let state = Journal::RolledBack {
            version: "12".into(),
            release: "0123456789ab".into(),
            to: "11".into(),
            at: at("2026-12-01T17:03:00Z"),
            reason: "é".repeat(300),
        };
        let text = state.render();
        assert!(text.len() <= MAX_DESCRIPTION);
        let Some(Journal::RolledBack { version, to, .. }) = Journal::parse(&text) else {
            panic!("{text}");
        };
        assert_eq!((version.as_str(), to.as_str()), ("12", "11"));
    }

    #[test]
    fn descriptions_written_by_others_are_not_read() {
        for text in [
            "",
            "live traffic",
            "anomaly-controller: unknown version=1",
            "anomaly-controller: released from=6",
            "anomaly-controller: released version=7 at=yesterday",
        ] {
            assert_eq!(Journal::parse(text), None, "{text}");
        }
    }
}
