//! Fault injection for tests: make this process die at a chosen point of the protocol. Not a
//! public API; a relaxed load of a flag where no test is running.

use std::sync::atomic::{AtomicBool, Ordering};

static DIE_AFTER_PUBLISH: AtomicBool = AtomicBool::new(false);

/// From now on, this process aborts right after its next ring publication (the index store)
/// and before it wakes any sleeper: the lost-wake-up case a SIGKILL at that point produces.
pub fn die_between_publish_and_wake() {
    DIE_AFTER_PUBLISH.store(true, Ordering::Relaxed);
}

/// Called between a publication and its wake-up.
#[inline(always)]
pub(crate) fn after_publish() {
    if DIE_AFTER_PUBLISH.load(Ordering::Relaxed) {
        std::process::abort();
    }
}
