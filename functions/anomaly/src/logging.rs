//! Logging for both functions, on stderr.
//!
//! The filter is `RUST_LOG`, else `LOG_LEVEL` (e.g. `info`), else Lambda's
//! `AWS_LAMBDA_LOG_LEVEL`, else `info`. In Lambda mode (and whenever stderr is
//! not a terminal, or `NO_COLOR` is set) lines carry no ANSI colour codes:
//! CloudWatch shows escape codes raw. With Lambda's JSON log format
//! (`AWS_LAMBDA_LOG_FORMAT=JSON`, or `LOG_FORMAT=json`) every line is one JSON
//! object; otherwise plain text without a timestamp (Lambda adds its own).

use std::io::IsTerminal;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Plain text, with colours only on a terminal outside Lambda.
    Text {
        /// Whether ANSI colour codes are written.
        ansi: bool,
    },
    /// One JSON object per line.
    Json,
}

/// The format for this process: `lambda` says whether it runs as a Lambda
/// function; `stderr_is_terminal` and the environment decide the rest.
pub fn format_for(
    lambda: bool,
    stderr_is_terminal: bool,
    var: impl Fn(&str) -> Option<String>,
) -> LogFormat {
    let json = |name: &str| var(name).is_some_and(|v| v.trim().eq_ignore_ascii_case("json"));
    if json("AWS_LAMBDA_LOG_FORMAT") || json("LOG_FORMAT") {
        return LogFormat::Json;
    }
    let no_color = var("NO_COLOR").is_some_and(|v| !v.is_empty());
    LogFormat::Text {
        ansi: !lambda && stderr_is_terminal && !no_color,
    }
}

/// The log filter: `RUST_LOG`, else `LOG_LEVEL`, else `AWS_LAMBDA_LOG_LEVEL`, else `info`.
pub fn filter() -> tracing_subscriber::EnvFilter {
    if let Ok(f) = tracing_subscriber::EnvFilter::try_from_default_env() {
        return f;
    }
    for name in ["LOG_LEVEL", "AWS_LAMBDA_LOG_LEVEL"] {
        if let Ok(level) = std::env::var(name)
            && !level.trim().is_empty()
        {
            let level = level.trim().to_ascii_lowercase();
            return tracing_subscriber::EnvFilter::try_new(&level)
                .unwrap_or_else(|_| "info".into());
        }
    }
    "info".into()
}

/// Installs the global subscriber; `lambda` is true when the process runs as
/// a Lambda function.
pub fn init(lambda: bool) {
    let format = format_for(lambda, std::io::stderr().is_terminal(), |name| {
        std::env::var(name).ok()
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_ansi(false)
            .init(),
        LogFormat::Text { ansi } => builder.without_time().with_ansi(ansi).init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn no_colours_in_lambda_or_off_a_terminal() {
        assert_eq!(
            format_for(true, true, env(&[])),
            LogFormat::Text { ansi: false }
        );
        assert_eq!(
            format_for(false, false, env(&[])),
            LogFormat::Text { ansi: false }
        );
        assert_eq!(
            format_for(false, true, env(&[])),
            LogFormat::Text { ansi: true }
        );
        assert_eq!(
            format_for(false, true, env(&[("NO_COLOR", "1")])),
            LogFormat::Text { ansi: false }
        );
    }

    #[test]
    fn lambda_json_log_format() {
        assert_eq!(
            format_for(true, false, env(&[("AWS_LAMBDA_LOG_FORMAT", "JSON")])),
            LogFormat::Json
        );
        assert_eq!(
            format_for(false, true, env(&[("LOG_FORMAT", "json")])),
            LogFormat::Json
        );
        assert_eq!(
            format_for(true, false, env(&[("AWS_LAMBDA_LOG_FORMAT", "Text")])),
            LogFormat::Text { ansi: false }
        );
    }
}
