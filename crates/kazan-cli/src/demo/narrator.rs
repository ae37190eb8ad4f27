//! The demo's voice: one line per happening, stamped with the time since the start and who speaks
//! (the workload, the consumer, a watcher, the server), and short notes that explain.

use std::{fmt::Display, io::Write, sync::Arc, time::Instant};

/// Prints the demo's lines. Cheap to clone; clones share the start time.
#[derive(Clone)]
pub struct Narrator {
    start: Arc<Instant>,
}

/// Width of the speaker column.
const WHO: usize = 9;

impl Narrator {
    /// Starts the clock.
    pub fn new() -> Self {
        Narrator {
            start: Arc::new(Instant::now()),
        }
    }

    fn print(text: &str) {
        // A closed stdout must not stop the demo half-way (its exit status still tells the result).
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{text}");
        let _ = stdout.flush();
    }

    /// `[ 3.2s] who       text`.
    pub fn say(&self, who: &str, text: impl Display) {
        let elapsed = self.start.elapsed().as_secs_f64();
        Self::print(&format!("[{elapsed:>4.1}s] {who:<WHO$} {text}"));
    }

    /// An explanation under the lines it belongs to, aligned with their text.
    pub fn note(&self, text: impl Display) {
        Self::print(&format!("{:width$}{text}", "", width = 8 + WHO + 1));
    }

    /// A blank line and a numbered heading.
    pub fn section(&self, title: impl Display) {
        let title = format!("── {title} ");
        let rule = 78usize.saturating_sub(title.chars().count());
        Self::print(&format!("\n{title}{}", "─".repeat(rule)));
    }

    /// A line without a stamp.
    pub fn plain(&self, text: impl Display) {
        Self::print(&text.to_string());
    }
}
