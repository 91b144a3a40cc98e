//! Checks EventBridge schedule expressions, `rate(...)` and `cron(...)`, as
//! EventBridge reads them, so that a malformed schedule is a config error
//! with its line and column rather than an API error at apply time.
//!
//! The rules are those of the Amazon EventBridge User Guide, "Cron
//! expressions reference"
//! (<https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-cron-expressions.html>)
//! and "Rate expressions reference"
//! (<https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rate-expressions.html>),
//! both part of "Using cron and rate expressions to schedule rules"
//! (<https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-scheduled-rule-pattern.html>):
//!
//! | field | values | wildcards |
//! | --- | --- | --- |
//! | minutes | 0-59 | `, - * /` |
//! | hours | 0-23 | `, - * /` |
//! | day-of-month | 1-31 | `, - * ? / L W` |
//! | month | 1-12 or JAN-DEC | `, - * /` |
//! | day-of-week | 1-7 or SUN-SAT | `, - * ? L #` |
//! | year | 1970-2199 | `, - * /` |
//!
//! Six fields, separated by white space; day-of-month and day-of-week cannot
//! both be given: exactly one of them is `?`. `#` defines one expression
//! only (`3#1,6#3` is refused, as the page says); `L` and `W` likewise stand
//! alone in their field (`L`, `LW`, `15W` in day-of-month; `L`, `6L`,
//! `FRI#2` in day-of-week). A rate is `rate(<value> <unit>)` with a positive
//! whole value and the unit `minute`, `hour` or `day`, singular for a value
//! of 1 and plural otherwise.
//!
//! Where the pages are silent, the stricter reading is taken: a range ends
//! at or after its start (`20-23`, not `22-2`); an increment is 1 to the
//! number of values of its field. Some translated and older versions of the
//! page list `/` for day-of-week too; the English reference does not, and
//! this follows it.

/// Why an expression is not one EventBridge accepts.
pub fn check_expression(expression: &str) -> Result<(), String> {
    if let Some(body) = expression
        .strip_prefix("rate(")
        .and_then(|rest| rest.strip_suffix(')'))
    {
        return check_rate(body);
    }
    if let Some(body) = expression
        .strip_prefix("cron(")
        .and_then(|rest| rest.strip_suffix(')'))
    {
        return check_cron(body);
    }
    Err("it must be rate(<value> <unit>) or cron(<minutes> <hours> <day-of-month> <month> <day-of-week> <year>)".into())
}

fn check_rate(body: &str) -> Result<(), String> {
    let parts: Vec<&str> = body.split_whitespace().collect();
    let [value, unit] = parts[..] else {
        return Err("a rate is rate(<value> <unit>), like rate(5 minutes)".into());
    };
    let value: u64 =
        number(value).ok_or_else(|| format!("{value:?} is not a positive whole number"))?;
    if value == 0 {
        return Err("the rate value must be at least 1".into());
    }
    let singular = ["minute", "hour", "day"];
    let plural = ["minutes", "hours", "days"];
    match (value, singular.contains(&unit), plural.contains(&unit)) {
        (1, true, _) => Ok(()),
        (1, _, true) => Err(format!(
            "a value of 1 takes the singular unit ({})",
            unit.trim_end_matches('s')
        )),
        (_, _, true) => Ok(()),
        (_, true, _) => Err(format!("a value above 1 takes the plural unit ({unit}s)")),
        _ => Err(format!(
            "{unit:?} is not a unit (minute(s), hour(s), day(s))"
        )),
    }
}

/// A whole number written with ASCII digits only (no sign, no space).
fn number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// One field of a cron expression: its values and the wildcards it allows.
struct CronField {
    name: &'static str,
    min: u32,
    max: u32,
    /// Names standing for `min`, `min + 1`, ... (months, days of the week).
    names: &'static [&'static str],
    /// `/` (increments).
    slash: bool,
    /// `?` (any; day-of-month and day-of-week only).
    question: bool,
    /// `L` (last).
    last: bool,
    /// `W` (nearest weekday; day-of-month only).
    weekday: bool,
    /// `#` (the n-th such day of the month; day-of-week only).
    nth: bool,
}

const MONTHS: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const fn plain(
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
) -> CronField {
    CronField {
        name,
        min,
        max,
        names,
        slash: true,
        question: false,
        last: false,
        weekday: false,
        nth: false,
    }
}

/// The six fields, in order, with the wildcards the EventBridge table allows.
const CRON_FIELDS: [CronField; 6] = [
    plain("minutes", 0, 59, &[]),
    plain("hours", 0, 23, &[]),
    CronField {
        question: true,
        last: true,
        weekday: true,
        ..plain("day-of-month", 1, 31, &[])
    },
    plain("month", 1, 12, MONTHS),
    CronField {
        slash: false,
        question: true,
        last: true,
        nth: true,
        ..plain("day-of-week", 1, 7, DAYS)
    },
    plain("year", 1970, 2199, &[]),
];

fn check_cron(body: &str) -> Result<(), String> {
    let fields: Vec<&str> = body.split_whitespace().collect();
    if fields.len() != 6 {
        return Err(format!(
            "a cron expression has 6 fields (minutes hours day-of-month month day-of-week year), this one has {}",
            fields.len()
        ));
    }
    for (text, field) in fields.iter().zip(&CRON_FIELDS) {
        field.check(text)?;
    }
    let (day_of_month, day_of_week) = (fields[2], fields[4]);
    if (day_of_month == "?") == (day_of_week == "?") {
        return Err(
            "exactly one of day-of-month and day-of-week must be '?' (a value or '*' in one, '?' in the other)"
                .into(),
        );
    }
    Ok(())
}

impl CronField {
    fn check(&self, text: &str) -> Result<(), String> {
        let name = self.name;
        if text == "?" {
            return if self.question {
                Ok(())
            } else {
                Err(format!(
                    "{name}: '?' is allowed only in day-of-month and day-of-week"
                ))
            };
        }
        if text.contains('?') {
            return Err(format!("{name}: '?' stands alone in its field"));
        }
        let upper = text.to_ascii_uppercase();
        if let Some(special) = self.special(&upper) {
            return special;
        }
        for item in upper.split(',') {
            self.check_item(item)?;
        }
        Ok(())
    }

    /// `L`, `LW`, `15W` (day-of-month); `L`, `6L`, `FRI#2` (day-of-week):
    /// each a whole field, never in a list, a range or an increment.
    /// `None` when `text` uses none of `L`, `W`, `#`.
    fn special(&self, text: &str) -> Option<Result<(), String>> {
        let name = self.name;
        let uses_nth = text.contains('#');
        // Names (`JUL`, `WED`) contain L and W; only what is left once they
        // are removed counts.
        let without_names = self
            .names
            .iter()
            .fold(text.to_string(), |rest, known| rest.replace(known, ""));
        let uses_last = without_names.contains('L');
        let uses_weekday = without_names.contains('W');
        if !uses_nth && !uses_last && !uses_weekday {
            return None;
        }
        let refuse = |wildcard: char, only: &str| {
            Some(Err(format!(
                "{name}: '{wildcard}' is allowed only in {only}"
            )))
        };
        if uses_nth && !self.nth {
            return refuse('#', "day-of-week");
        }
        if uses_weekday && !self.weekday {
            return refuse('W', "day-of-month");
        }
        if uses_last && !self.last {
            return refuse('L', "day-of-month and day-of-week");
        }
        if text.contains([',', '-', '/', '*']) {
            return Some(Err(format!(
                "{name}: {text:?}: 'L', 'W' and '#' define one expression only, not in a list, range or increment"
            )));
        }
        let result = if self.weekday {
            // Day-of-month: L, LW or <day>W.
            match text {
                "L" | "LW" => Ok(()),
                _ => match text.strip_suffix('W') {
                    Some(day) if !day.contains(['L', 'W']) => self.value(day).map(drop),
                    _ => Err(format!(
                        "{name}: {text:?} is not L, LW or <day>W (like 15W)"
                    )),
                },
            }
        } else if let Some((day, nth)) = text.split_once('#') {
            // Day-of-week: <day>#<1-5>.
            self.value(day).and_then(|_| match number(nth) {
                Some(1..=5) => Ok(()),
                _ => Err(format!(
                    "{name}: in {text:?} the week of the month after '#' must be 1 to 5"
                )),
            })
        } else {
            // Day-of-week: L or <day>L.
            match text {
                "L" => Ok(()),
                _ => match text.strip_suffix('L') {
                    Some(day) if !day.contains('L') => self.value(day).map(drop),
                    _ => Err(format!(
                        "{name}: {text:?} is not L or <day>L (like 6L or FRIL)"
                    )),
                },
            }
        };
        Some(result)
    }

    /// One element of a list: `*`, `v`, `a-b`, each optionally `/step`.
    fn check_item(&self, item: &str) -> Result<(), String> {
        let name = self.name;
        if item.is_empty() {
            return Err(format!("{name}: empty element in a ',' list"));
        }
        let (base, step) = match item.split_once('/') {
            Some(_) if !self.slash => {
                return Err(format!("{name}: '/' is not allowed in this field"));
            }
            Some((base, step)) => (base, Some(step)),
            None => (item, None),
        };
        if let Some(step) = step {
            let span = self.max - self.min + 1;
            match number(step) {
                Some(step) if (1..=u64::from(span)).contains(&step) => {}
                _ => {
                    return Err(format!(
                        "{name}: the increment after '/' in {item:?} must be a number from 1 to {span}"
                    ));
                }
            }
        }
        if base == "*" {
            return Ok(());
        }
        match base.split_once('-') {
            Some((low, high)) => {
                let low_value = self.value(low)?;
                let high_value = self.value(high)?;
                if low_value > high_value {
                    return Err(format!("{name}: the range {base:?} ends before it starts"));
                }
                Ok(())
            }
            None => self.value(base).map(drop),
        }
    }

    /// A number in range, or a name (months, days of the week).
    fn value(&self, text: &str) -> Result<u32, String> {
        let (name, min, max) = (self.name, self.min, self.max);
        if let Some(index) = self.names.iter().position(|known| *known == text) {
            return Ok(min + index as u32);
        }
        let Some(value) = number(text) else {
            let names = match self.names {
                [] => String::new(),
                names => format!(" or {}-{}", names[0], names[names.len() - 1]),
            };
            return Err(format!(
                "{name}: {text:?} is not a value ({min}-{max}{names})"
            ));
        };
        if value < u64::from(min) || value > u64::from(max) {
            return Err(format!("{name}: {value} is out of range {min}-{max}"));
        }
        Ok(value as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::check_expression;

    /// The examples table of the EventBridge "Cron expressions reference"
    /// page, and the expressions its text uses.
    const EVENTBRIDGE_EXAMPLES: [&str; 9] = [
        "cron(0 10 * * ? *)",
        "cron(15 12 * * ? *)",
        "cron(0 18 ? * MON-FRI *)",
        "cron(0 8 1 * ? *)",
        "cron(0/15 * * * ? *)",
        "cron(0/10 * ? * MON-FRI *)",
        "cron(0/5 8-17 ? * MON-FRI *)",
        "cron(0/30 20-23 ? * MON-FRI *)",
        "cron(0 9 ? * 2#1 *)",
    ];

    #[test]
    fn accepts_every_example_of_the_eventbridge_pages() {
        for good in EVENTBRIDGE_EXAMPLES {
            assert_eq!(check_expression(good), Ok(()), "{good}");
        }
        // From the wildcard descriptions: JAN,FEB,MAR; 1-15; 1/10; 3W; 3#2;
        // and the rate page's examples.
        for good in [
            "cron(0 0 ? JAN,FEB,MAR * *)",
            "cron(0 0 1-15 * ? *)",
            "cron(1/10 * * * ? *)",
            "cron(0 0 3W * ? *)",
            "cron(0 0 ? * 3#2 *)",
            "rate(1 minute)",
            "rate(5 minutes)",
            "rate(1 hour)",
            "rate(12 hours)",
            "rate(1 day)",
            "rate(7 days)",
        ] {
            assert_eq!(check_expression(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn accepts_every_wildcard_where_the_table_allows_it() {
        for good in [
            "cron(0 6 * * ? *)",
            "cron(0,30 */2 ? * * *)",
            "cron(5-55/5 0-23/3 1-31/2 1-12/3 ? 2025-2030/5)",
            "cron(0 12 L * ? *)",
            "cron(0 12 LW * ? *)",
            "cron(0 12 ? * L *)",
            "cron(0 12 ? * 6L *)",
            "cron(0 12 ? * FRIL *)",
            "cron(0 12 ? * fri#5 *)",
            "cron(0 12 ? jul,aug SUN,SAT 1970)",
            "cron(59 23 31 DEC ? 2199)",
            "cron(0 0 ? * 1-7 *)",
        ] {
            assert_eq!(check_expression(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn refuses_what_eventbridge_refuses_with_a_reason() {
        for (bad, reason) in [
            // Six fields.
            ("cron(0 6 * * *)", "6 fields"),
            ("cron(0 0 6 * * ? *)", "6 fields"),
            // One of day-of-month and day-of-week is '?', not both, not neither.
            ("cron(0 6 * * * *)", "exactly one of day-of-month"),
            ("cron(0 6 ? * ? *)", "exactly one of day-of-month"),
            ("cron(0 6 1 * MON *)", "exactly one of day-of-month"),
            // The page's own counter-example: '#' defines one expression.
            ("cron(0 0 ? * 3#1,6#3 *)", "one expression only"),
            // Ranges of values.
            ("cron(61 6 * * ? *)", "minutes: 61 is out of range"),
            ("cron(0 24 * * ? *)", "hours: 24 is out of range"),
            ("cron(0 6 0 * ? *)", "day-of-month: 0 is out of range"),
            ("cron(0 6 32 * ? *)", "day-of-month: 32"),
            ("cron(0 6 * 13 ? *)", "month: 13"),
            ("cron(0 6 ? * 0 *)", "day-of-week: 0 is out of range"),
            ("cron(0 6 ? * 8 *)", "day-of-week: 8"),
            ("cron(0 6 * * ? 1969)", "year: 1969"),
            ("cron(0 6 * * ? 2200)", "year: 2200"),
            ("cron(0 6 * FOO ? *)", "month: \"FOO\" is not a value"),
            ("cron(0 6 ? * MON-FOO *)", "day-of-week"),
            ("cron(0 6 * * ? -1)", "year"),
            ("cron(+5 6 * * ? *)", "minutes"),
            ("cron(0 20-2 * * ? *)", "ends before it starts"),
            // Names only where the field has them.
            ("cron(0 6 * MON ? *)", "month"),
            ("cron(0 6 ? * JAN *)", "day-of-week"),
            // '?' only in the day fields, and alone.
            (
                "cron(? 6 * * ? *)",
                "'?' is allowed only in day-of-month and day-of-week",
            ),
            ("cron(0 6 * ? ? *)", "'?' is allowed only"),
            ("cron(0 6 ?,1 * ? *)", "'?' stands alone"),
            // 'L' only in the day fields.
            (
                "cron(L 6 * * ? *)",
                "'L' is allowed only in day-of-month and day-of-week",
            ),
            ("cron(0 6 * L ? *)", "'L' is allowed only"),
            ("cron(0 6 * * ? L)", "'L' is allowed only"),
            // 'W' only in day-of-month.
            ("cron(0 6 ? * 2W *)", "'W' is allowed only in day-of-month"),
            ("cron(0 W * * ? *)", "'W' is allowed only"),
            ("cron(0 6 32W * ? *)", "day-of-month: 32"),
            ("cron(0 6 1-5W * ? *)", "one expression only"),
            // '#' only in day-of-week, with a week of 1 to 5.
            ("cron(0 6 1#2 * ? *)", "'#' is allowed only in day-of-week"),
            ("cron(0 6 ? * 2#6 *)", "must be 1 to 5"),
            ("cron(0 6 ? * 2#0 *)", "must be 1 to 5"),
            ("cron(0 6 ? * 9#1 *)", "day-of-week: 9"),
            // '/' not in day-of-week; increments are whole numbers in range.
            ("cron(0 6 ? * 1/2 *)", "'/' is not allowed"),
            ("cron(0/0 6 * * ? *)", "increment"),
            ("cron(0/61 6 * * ? *)", "increment"),
            ("cron(0/x 6 * * ? *)", "increment"),
            // Empty elements.
            ("cron(0, 6 * * ? *)", "empty element"),
            ("cron(0 6 * * ? 2020,)", "empty element"),
            // Rates.
            ("rate(5 minute)", "plural"),
            ("rate(2 day)", "plural"),
            ("rate(1 days)", "singular"),
            ("rate(1 hours)", "singular"),
            // The rate page's own counter-examples.
            ("rate(5 hour)", "plural"),
            ("rate(0 minutes)", "at least 1"),
            ("rate(-5 minutes)", "not a positive whole number"),
            ("rate(1.5 hours)", "not a positive whole number"),
            ("rate(five minutes)", "not a positive whole number"),
            ("rate(5 seconds)", "not a unit"),
            ("rate(5 weeks)", "not a unit"),
            ("rate(5)", "rate(<value> <unit>)"),
            ("every day at 6", "rate(<value> <unit>)"),
            ("cron(0 6 * * ? *", "rate(<value> <unit>)"),
            ("CRON(0 6 * * ? *)", "rate(<value> <unit>)"),
        ] {
            let error = check_expression(bad).expect_err(bad);
            assert!(error.contains(reason), "{bad}: {error}");
        }
    }
}
