//! A fixed table of function pointers registered once each, readable without a lock (and so
//! from a fork child or an `atexit` handler).

use std::sync::atomic::{AtomicUsize, Ordering};

/// Up to `N` distinct function addresses (callers transmute them back to their `fn` type).
pub(crate) struct Hooks<const N: usize> {
    slots: [AtomicUsize; N],
}

impl<const N: usize> Hooks<N> {
    pub const fn new() -> Self {
        Hooks {
            slots: [const { AtomicUsize::new(0) }; N],
        }
    }

    /// Adds `addr` (a function's address) unless it is there already.
    pub fn add(&self, addr: usize) {
        for slot in &self.slots {
            match slot.compare_exchange(0, addr, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return,
                Err(existing) if existing == addr => return,
                Err(_) => {}
            }
        }
        debug_assert!(false, "more than {N} hooks");
    }

    /// The registered addresses, in registration order.
    pub fn each(&self) -> impl Iterator<Item = usize> + '_ {
        self.slots
            .iter()
            .map(|s| s.load(Ordering::Acquire))
            .take_while(|a| *a != 0)
    }
}
