//! Fault injection for tests: make this process die at a chosen step inside a mutation (every
//! store between publishing the journal record and committing it is a step). Not a public API;
//! one relaxed load where no test is running.

use std::sync::atomic::{AtomicU32, Ordering};

static DIE_AT: AtomicU32 = AtomicU32::new(0);
static STEPS: AtomicU32 = AtomicU32::new(0);

/// From now on, this process aborts when it reaches its `step`-th step (1-based) inside
/// mutations (`u32::MAX`: only count steps); 0 turns the hook off. Resets the step count.
pub fn die_at_step(step: u32) {
    STEPS.store(0, Ordering::Relaxed);
    DIE_AT.store(step, Ordering::Relaxed);
}

/// Steps taken since the last [`die_at_step`] (to learn how many steps an operation has).
pub fn steps_taken() -> u32 {
    STEPS.load(Ordering::Relaxed)
}

/// Called between the stores of a mutation.
#[inline(always)]
pub(crate) fn step() {
    let target = DIE_AT.load(Ordering::Relaxed);
    if target != 0 && STEPS.fetch_add(1, Ordering::Relaxed) + 1 == target {
        std::process::abort();
    }
}
