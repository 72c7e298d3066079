//! Progress on stderr: one `indicatif` line, hidden with `--quiet` or when stderr is not a
//! terminal. It never draws from a thread of its own (the benchmarks fork, and a forked child
//! must not inherit a lock held by a ticking thread): it redraws when told what is running.

use std::io::IsTerminal;
use std::sync::OnceLock;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

static BAR: OnceLock<ProgressBar> = OnceLock::new();
static QUIET: OnceLock<bool> = OnceLock::new();

/// Sets whether progress is shown at all; call once, before anything else here.
pub fn init(quiet: bool) {
    let _ = QUIET.set(quiet || !std::io::stderr().is_terminal());
}

/// Whether progress is hidden.
pub fn hidden() -> bool {
    *QUIET.get().unwrap_or(&true)
}

fn bar() -> &'static ProgressBar {
    BAR.get_or_init(|| {
        if hidden() {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed}] {msg}").expect("a valid template"),
        );
        bar
    })
}

/// Shows `what` as the step now running.
pub fn step(what: impl Into<String>) {
    let bar = bar();
    bar.set_message(what.into());
    bar.tick();
}

/// Shows `what` with a count of steps done out of `total`.
pub fn counted(done: u64, total: u64, what: &str) {
    step(format!("[{done}/{total}] {what}"));
}

/// Clears the progress line (before printing results, or an error).
pub fn clear() {
    if let Some(bar) = BAR.get() {
        bar.finish_and_clear();
    }
}

/// Runs `f` (which writes to stderr) with the progress line out of the way.
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    match BAR.get() {
        Some(bar) => bar.suspend(f),
        None => f(),
    }
}
