//! Leaving: a process that is done with the shared objects it is a member of says so, so its
//! peers see an ending (`Disconnected`, a barrier that carries on) rather than a death.
//!
//! | how the process ends | leaves? |
//! |---|---|
//! | drops its last handle | yes (the handle's `Drop`) |
//! | returns (or panics) from a `Process::fork` closure | yes: the fork child calls [`leave_all`] before `_exit` |
//! | finishes a spawned entry / pool worker exits | yes: [`leave_all`] before `_exit` |
//! | returns from `main`, `std::process::exit` | yes: [`leave_all`] runs as an `atexit` handler |
//! | SIGKILL, abort, any other signal, `libc::_exit` | no: it is *dead* to its peers |
//! | `exec` without dropping its handles first | no: its liveness slot is released at `exec` (close-on-exec), so it is dead to its peers |
//! | runs in another PID namespace | makes no difference (liveness needs no pids) |
//!
//! Locks are not memberships: a lock still held at exit is reported to its next acquirer as
//! owner-died, whichever way the process ended.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use crate::hooks::Hooks;
use crate::liveness::current_identity;
use crate::ForkLock;
use crate::{Roster, RosterFull, SharedRef};

static HOOKS: Hooks<16> = Hooks::new();
/// 1 once the `atexit` handler is registered.
static AT_EXIT: AtomicU32 = AtomicU32::new(0);

/// Registers `hook` to run in [`leave_all`] (once per hook, however often registered). Hooks
/// must be idempotent: `leave_all` may run more than once.
pub fn on_leave(hook: fn()) {
    if AT_EXIT.swap(1, Ordering::AcqRel) == 0 {
        // Unsupported targets only: leaving at `exit` is then up to the handles' `Drop`s.
        let _ = crate::sys::at_exit(leave_all_at_exit);
    }
    HOOKS.add(hook as usize);
}

extern "C" fn leave_all_at_exit() {
    leave_all();
}

/// Leaves every shared object this process is a member of, without running any other
/// destructor: what a fork child or a spawned worker calls right before `_exit`.
pub fn leave_all() {
    for addr in HOOKS.each() {
        // SAFETY: only `on_leave` adds to HOOKS, and it adds `fn()` pointers.
        let hook: fn() = unsafe { std::mem::transmute::<usize, fn()>(addr) };
        hook();
    }
}

/// This process's membership of one [`Roster`], shared by all clones of a handle in the
/// process: taken on demand, left when the last clone drops or by [`leave_all`].
///
/// # Examples
/// ```
/// use std::sync::Arc;
/// use shmproc_shm::{Kind, Roster, Seat, Segment, SharedRef, Spec, TypeInfo};
///
/// let spec = Spec { kind: Kind::Raw, elem: TypeInfo::none(), payload_len: size_of::<Roster>() };
/// let seg = Arc::new(Segment::create_anonymous(&spec, |_| Ok(()))?);
/// let roster: SharedRef<Roster> = SharedRef::new(seg, 0)?;
/// let seat = Seat::new(roster.clone());
/// seat.take()?;
/// assert!(roster.is_member());
/// drop(seat);
/// assert!(!roster.is_member());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Seat {
    roster: SharedRef<Roster>,
    /// The identity that joined through this seat (0: none). In a forked child it names the
    /// parent, so the child joins (and leaves) on its own.
    joined: AtomicU64,
}

/// Every seat of this process, for [`leave_all`]. A [`ForkLock`], not a `Mutex`: a `Mutex`
/// that another thread held at the moment of a fork stays locked forever in the child, which
/// then hangs creating a barrier and cannot leave the ones it used (its peers would see it die).
static SEATS: ForkLock<Vec<Weak<Seat>>> = ForkLock::new(Vec::new());

impl Seat {
    /// A seat in `roster`, not taken yet.
    pub fn new(roster: SharedRef<Roster>) -> Arc<Seat> {
        let seat = Arc::new(Seat {
            roster,
            joined: AtomicU64::new(0),
        });
        {
            let mut seats = SEATS.lock();
            seats.retain(|w| w.strong_count() > 0);
            seats.push(Arc::downgrade(&seat));
        }
        on_leave(leave_seats);
        seat
    }

    /// Joins the roster if this process has not yet (one relaxed load when it has).
    ///
    /// # Errors
    /// [`RosterFull`] if the roster has no room.
    #[inline]
    pub fn take(&self) -> Result<(), RosterFull> {
        let me = current_identity();
        if self.joined.load(Ordering::Relaxed) == me {
            return Ok(());
        }
        let _newly = self.roster.join()?;
        self.joined.store(me, Ordering::Relaxed);
        Ok(())
    }

    /// Leaves the roster if this process joined through this seat.
    pub fn leave(&self) {
        let me = current_identity();
        if self.joined.load(Ordering::Relaxed) == me {
            self.roster.leave();
            self.joined.store(0, Ordering::Relaxed);
        }
    }

    /// The roster.
    pub fn roster(&self) -> &SharedRef<Roster> {
        &self.roster
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.leave();
    }
}

fn leave_seats() {
    // Bounded: `exit` may run this while another thread of ours holds the lock for a moment;
    // a fork child never finds it held (see `ForkLock`) where the at-fork handlers exist.
    let Some(seats) = SEATS.lock_within(1000) else {
        return;
    };
    // Collected under the lock, left (and the `Arc`s dropped) after it.
    let live: Vec<Arc<Seat>> = seats.iter().filter_map(Weak::upgrade).collect();
    drop(seats);
    live.iter().for_each(|s| s.leave());
}
