//! How long an operation may wait (the bottom of the crate: imports nothing from it).

use std::time::{Duration, Instant};

/// How long an operation may wait.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Deadline {
    /// `try_`: not at all.
    Now,
    /// Blocking.
    Never,
    /// `_timeout`.
    At(Instant),
}

impl Deadline {
    pub fn after(timeout: Duration) -> Deadline {
        Instant::now()
            .checked_add(timeout)
            .map_or(Deadline::Never, Deadline::At)
    }

    /// How long to sleep next: a `nap`, cut short by the deadline; `None` once it has passed.
    pub fn next_nap(self, nap: Duration) -> Option<Duration> {
        match self {
            Deadline::Now => None,
            Deadline::Never => Some(nap),
            Deadline::At(at) => {
                let left = at.saturating_duration_since(Instant::now());
                (!left.is_zero()).then(|| left.min(nap))
            }
        }
    }
}
