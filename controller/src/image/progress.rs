//! What the image steps show while they run: progress bars and spinners
//! (indicatif) on a terminal, plain log lines otherwise.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

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

    /// Progress bars on standard error.
    pub fn bars() -> Progress {
        Progress {
            bars: Some(MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
        }
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
    /// A status line (a build step, a layer's state); repeated lines are shown once.
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
            None => tracing::info!(function = %self.function, "{line}"),
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
