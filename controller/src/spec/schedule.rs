//! Checks EventBridge schedule expressions, `rate(...)` and `cron(...)`, as
//! EventBridge reads them, so that a malformed schedule is a config error
//! with its line and column rather than an API error at apply time.

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
    let value: u64 = value
        .parse()
        .map_err(|_| format!("{value:?} is not a positive whole number"))?;
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

/// The six fields of an EventBridge cron expression and their ranges.
const CRON_FIELDS: [(&str, u32, u32, &[&str]); 6] = [
    ("minutes", 0, 59, &[]),
    ("hours", 0, 23, &[]),
    ("day-of-month", 1, 31, &[]),
    (
        "month",
        1,
        12,
        &[
            "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
        ],
    ),
    (
        "day-of-week",
        1,
        7,
        &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
    ),
    ("year", 1970, 2199, &[]),
];

fn check_cron(body: &str) -> Result<(), String> {
    let fields: Vec<&str> = body.split_whitespace().collect();
    if fields.len() != 6 {
        return Err(format!(
            "a cron expression has 6 fields (minutes hours day-of-month month day-of-week year), this one has {}",
            fields.len()
        ));
    }
    for (field, (name, min, max, names)) in fields.iter().zip(CRON_FIELDS) {
        check_cron_field(field, name, min, max, names)?;
    }
    let (day_of_month, day_of_week) = (fields[2], fields[4]);
    if (day_of_month == "?") == (day_of_week == "?") {
        return Err("exactly one of day-of-month and day-of-week must be '?'".into());
    }
    Ok(())
}

fn check_cron_field(
    field: &str,
    name: &str,
    min: u32,
    max: u32,
    names: &[&str],
) -> Result<(), String> {
    let day_field = name.starts_with("day-of");
    if field == "*" || (field == "?" && day_field) {
        return Ok(());
    }
    let value = |text: &str| -> Result<u32, String> {
        let upper = text.to_ascii_uppercase();
        if let Some(index) = names.iter().position(|known| *known == upper) {
            return Ok(index as u32 + min);
        }
        let number: u32 = text
            .parse()
            .map_err(|_| format!("{name}: {text:?} is not a number"))?;
        if number < min || number > max {
            return Err(format!("{name}: {number} is out of range {min}-{max}"));
        }
        Ok(number)
    };
    for item in field.split(',') {
        let item = if day_field {
            item.trim_end_matches(['L', 'W'])
                .split('#')
                .next()
                .unwrap_or_default()
        } else {
            item
        };
        if item.is_empty() && day_field {
            continue;
        }
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (item, None),
        };
        if let Some(step) = step {
            let step: u32 = step
                .parse()
                .map_err(|_| format!("{name}: step {step:?} is not a number"))?;
            if step == 0 {
                return Err(format!("{name}: a step must be at least 1"));
            }
        }
        if range == "*" {
            continue;
        }
        match range.split_once('-') {
            Some((low, high)) => {
                value(low)?;
                value(high)?;
            }
            None => {
                value(range)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_expression;

    #[test]
    fn accepts_what_eventbridge_accepts() {
        for good in [
            "cron(0 6 * * ? *)",
            "cron(0/15 9-17 ? * MON-FRI *)",
            "cron(0 12 L * ? 2030)",
            "cron(30 2 ? * 2#1 *)",
            "rate(1 day)",
            "rate(5 minutes)",
        ] {
            assert_eq!(check_expression(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn refuses_the_rest_with_a_reason() {
        for (bad, reason) in [
            ("cron(0 6 * * *)", "6 fields"),
            ("cron(0 6 * * * *)", "exactly one of day-of-month"),
            ("cron(61 6 * * ? *)", "minutes: 61 is out of range"),
            ("cron(0 25 * * ? *)", "hours: 25"),
            ("cron(0 6 * FOO ? *)", "month"),
            ("rate(5 minute)", "plural"),
            ("rate(1 days)", "singular"),
            ("rate(0 minutes)", "at least 1"),
            ("rate(five minutes)", "not a positive whole number"),
            ("every day at 6", "rate(<value> <unit>)"),
        ] {
            let error = check_expression(bad).expect_err(bad);
            assert!(error.contains(reason), "{bad}: {error}");
        }
    }
}
