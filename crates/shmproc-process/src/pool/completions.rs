//! `Completions`: the list a task's slot adds its index to when it finishes, so waiting for
//! the first of many tasks costs O(1) per finished task, not a scan.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Indices of finished tasks, in the order they finished, filled by the tasks' slots.
#[derive(Debug, Default)]
pub(crate) struct Completions {
    ready: Mutex<VecDeque<usize>>,
    changed: Condvar,
}

impl Completions {
    /// Notes that task `index` finished (called by its slot).
    pub(crate) fn push(&self, index: usize) {
        self.ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(index);
        self.changed.notify_one();
    }

    /// The index of the next finished task, waiting until `deadline` (`None`: no bound).
    /// `None` if the deadline passed first.
    pub(crate) fn next(&self, deadline: Option<Instant>) -> Option<usize> {
        let mut ready = self.ready.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(index) = ready.pop_front() {
                return Some(index);
            }
            let wait = match deadline {
                None => Duration::from_secs(3600),
                Some(d) => d
                    .checked_duration_since(Instant::now())
                    .filter(|l| !l.is_zero())?,
            };
            ready = self
                .changed
                .wait_timeout(ready, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}
