//! A progress bar on standard error when it is a terminal; silent otherwise.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Reports bytes processed against a total, redrawing at most ten times a second.
#[derive(Debug)]
pub struct Progress {
    enabled: bool,
    total: u64,
    done: u64,
    label: String,
    last_draw: Option<Instant>,
}

impl Progress {
    /// A bar that draws only when standard error is a terminal.
    pub fn for_terminal(total: u64) -> Progress {
        Progress::new(total, std::io::stderr().is_terminal())
    }

    /// A bar that never draws.
    pub fn hidden() -> Progress {
        Progress::new(0, false)
    }

    fn new(total: u64, enabled: bool) -> Progress {
        Progress {
            enabled,
            total,
            done: 0,
            label: String::new(),
            last_draw: None,
        }
    }

    /// Whether the bar draws.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Bytes done so far.
    pub fn done(&self) -> u64 {
        self.done
    }

    /// Sets the total (when it becomes known, e.g. from Content-Length).
    pub fn set_total(&mut self, total: u64) {
        self.total = total;
    }

    /// Says what is being processed.
    pub fn set_label(&mut self, label: &str) {
        label.clone_into(&mut self.label);
        self.draw(false);
    }

    /// Records `n` more bytes done.
    pub fn advance(&mut self, n: u64) {
        self.done += n;
        self.draw(false);
    }

    /// Sets the bytes done.
    pub fn set_done(&mut self, done: u64) {
        self.done = done;
        self.draw(false);
    }

    /// Draws the final state and ends the line.
    pub fn finish(&mut self) {
        if self.enabled {
            self.done = self.done.max(self.total);
            self.draw(true);
            eprintln!();
        }
    }

    fn draw(&mut self, force: bool) {
        if !self.enabled {
            return;
        }
        let now = haven_runtime::clock::instant();
        if !force
            && self
                .last_draw
                .is_some_and(|t| now.duration_since(t) < Duration::from_millis(100))
        {
            return;
        }
        self.last_draw = Some(now);
        const WIDTH: u64 = 30;
        let mb = |b: u64| b as f64 / 1_000_000.0;
        let line = if self.total > 0 {
            let done = self.done.min(self.total);
            let filled = (done * WIDTH / self.total) as usize;
            format!(
                "[{}{}] {:>3}% {:>7.1}/{:.1} MB  {}",
                "#".repeat(filled),
                "-".repeat(WIDTH as usize - filled),
                done * 100 / self.total,
                mb(done),
                mb(self.total),
                self.label
            )
        } else {
            format!("{:>7.1} MB  {}", mb(self.done), self.label)
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{}", truncate(&line, 110));
        let _ = err.flush();
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
