//! What the image steps show while they run: progress bars and spinners
//! (indicatif) on a terminal, plain log lines otherwise.

use std::io::{IsTerminal, Write};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The bars of this process, once a terminal shows them.
static BARS: OnceLock<MultiProgress> = OnceLock::new();

/// Standard error for log lines: while bars are drawn, each line is
/// written with the bars lifted (indicatif's `suspend`) and drawn again
/// after, so that a log line never breaks a bar nor a bar a line.
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match BARS.get() {
            Some(bars) => bars.suspend(|| std::io::stderr().write_all(buf).map(|()| buf.len())),
            None => std::io::stderr().write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match BARS.get() {
            Some(bars) => bars.suspend(|| std::io::stderr().write_all(buf)),
            None => std::io::stderr().write_all(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Where progress goes.
#[derive(Debug, Clone)]
pub struct Progress {
    bars: Option<MultiProgress>,
}

impl Progress {
    /// Bars when standard error is a terminal, log lines otherwise.
    pub fn detect() -> Progress {
        if std::io::stderr().is_terminal() {
            Progress::bars()
        } else {
            Progress::lines()
        }
    }

    /// Progress bars on standard error: the process's one set of bars,
    /// which log lines ([`LogWriter`]) lift before they are written.
    pub fn bars() -> Progress {
        Progress {
            bars: Some(
                BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
                    .clone(),
            ),
        }
    }

    /// Adds `bar` to the bars (on a terminal); `None` otherwise.
    pub fn add(&self, bar: ProgressBar) -> Option<ProgressBar> {
        self.bars.as_ref().map(|bars| bars.add(bar))
    }

    /// Log lines only (`tracing`, at info).
    pub fn lines() -> Progress {
        Progress { bars: None }
    }

    /// A one-off note about a function's image.
    pub fn note(&self, function: &str, message: &str) {
        match &self.bars {
            Some(bars) => {
                let _ = bars.println(format!("{function}: {message}"));
            }
            None => tracing::info!(function, "{message}"),
        }
    }

    /// Starts a task (a build or a push) of one function.
    pub fn task(&self, function: &str, what: &str) -> Task {
        let bar = self.bars.as_ref().map(|bars| {
            let bar = bars.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix}: {wide_msg}")
                    .expect("a valid template"),
            );
            bar.set_prefix(format!("{function} {what}"));
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        if bar.is_none() {
            tracing::info!(function, "{what}");
        }
        Task {
            function: function.to_string(),
            bar,
            last: Mutex::new(String::new()),
        }
    }
}

/// One running build or push.
#[derive(Debug)]
pub struct Task {
    function: String,
    bar: Option<ProgressBar>,
    last: Mutex<String>,
}

impl Task {
    /// A status line (a build step, a layer's state); repeated lines are
    /// shown once, on a terminal only (at debug level otherwise).
    pub fn line(&self, line: &str) {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if *last == line {
            return;
        }
        line.clone_into(&mut last);
        match &self.bar {
            Some(bar) => bar.set_message(line.to_string()),
            // Without a terminal a task is one line when it starts and one
            // when it ends; its steps (each crate cargo compiles, each
            // layer pushed) only at debug level, and in the error if it fails.
            None => tracing::debug!(function = %self.function, "{line}"),
        }
    }

    /// Bytes pushed so far, out of a total (shown on a terminal only).
    pub fn bytes(&self, current: u64, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!(
                "{:.1} / {:.1} MB",
                current as f64 / 1e6,
                total as f64 / 1e6
            ));
        }
    }

    /// The task ended well.
    pub fn finish(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.finish_with_message(message.to_string()),
            None => tracing::info!(function = %self.function, "{message}"),
        }
    }

    /// The task failed (the error itself is reported by the caller).
    pub fn fail(&self, message: &str) {
        if let Some(bar) = &self.bar {
            bar.abandon_with_message(message.to_string());
        }
    }
}
