//! A fixed table of function pointers registered once each, readable without a lock (and so
//! from a fork child or an `atexit` handler), and [`register_once`] for installing handlers.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

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

/// `flag` once `register` has succeeded in this program.
const REGISTERED: u32 = u32::MAX;

/// Runs `register` (which installs fork or exit handlers) once per program, fork-safely, and
/// returns whether it succeeded. `flag` starts at 0; it holds `u32::MAX` once done, or the
/// pid of the process one of whose threads is registering right now. Other threads of that
/// process wait for it (so nobody goes on before the handlers exist); a value left by another
/// process (a parent forked mid-registration, whose registering thread does not exist in the
/// child) is taken over. Not a `Once`: a child forked while another thread was inside a `Once`
/// would wait on it forever.
pub fn register_once(flag: &AtomicU32, register: impl FnOnce() -> bool) -> bool {
    let mut register = Some(register);
    loop {
        let state = flag.load(Ordering::Acquire);
        if state == REGISTERED {
            return true;
        }
        let pid = crate::sys::getpid();
        if state == pid {
            std::thread::yield_now();
            continue;
        }
        if flag
            .compare_exchange(state, pid, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            let ok = register.take().is_some_and(|f| f());
            flag.store(if ok { REGISTERED } else { 0 }, Ordering::Release);
            return ok;
        }
    }
}
