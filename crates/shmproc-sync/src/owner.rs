//! Who holds a lock: a 64-bit identity of the calling thread, cached per thread.
//!
//! Identity = thread id (low 30 bits) | the thread's start time tag (high 32 bits). The tag lets
//! a waiter tell a dead owner whose id was recycled from a live one (pid reuse).

use std::cell::Cell;
use std::sync::Once;

use shmproc_shm::sys;

/// Bits of the lock word that hold the owner's thread id (pid_max is at most 2^22).
pub(crate) const TID_MASK: u64 = (1 << 30) - 1;

thread_local! {
    static CACHED: Cell<u64> = const { Cell::new(0) };
}

static AT_FORK: Once = Once::new();

extern "C" fn forget_after_fork() {
    // The child's only thread is a copy of the forking one: its cached id is the parent's.
    CACHED.with(|c| c.set(0));
}

/// The calling thread's owner identity (never 0).
#[inline]
pub(crate) fn current() -> u64 {
    let id = CACHED.with(Cell::get);
    if id != 0 {
        return id;
    }
    compute()
}

#[cold]
fn compute() -> u64 {
    AT_FORK.call_once(|| {
        // Without the hook a forked child would believe it is its parent; if registration
        // fails (only on unsupported targets) there is no fork to worry about either.
        let _ = sys::at_fork_child(forget_after_fork);
    });
    let tid = u64::from(sys::gettid()) & TID_MASK;
    let tag = u64::from(sys::start_tag(tid as u32));
    let id = tid | (tag << 32);
    CACHED.with(|c| c.set(id));
    id
}

/// Whether the owner encoded in `word` (identity bits only) still runs.
pub(crate) fn is_alive(word: u64) -> bool {
    sys::is_alive((word & TID_MASK) as u32, (word >> 32) as u32)
}

/// Just the thread id of an identity, for messages.
pub(crate) fn tid_of(word: u64) -> u32 {
    (word & TID_MASK) as u32
}
