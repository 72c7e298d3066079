//! Timer-free sleeps on pipes: one background thread per process looks after the peers of the
//! pipe ends its threads are asleep on.
//!
//! A blocked pipe side must notice a dead peer within a bound, so it used to sleep in naps of
//! [`LIVENESS_POLL`] and check the peer after each. Arming a timer for every sleep costs about
//! a tenth of a sleeping round trip, so a blocking call without a deadline now sleeps untimed
//! and the *watcher* thread, every [`LIVENESS_POLL`] while anyone sleeps, checks the peers of
//! the ends that have sleepers. When one is gone it raises that end's alarm and wakes the
//! pipe's rings; the woken sleeper sees the alarm and runs its own check (which reports the
//! ending). The watcher parks after [`PARK_AFTER`] idle polls and the next sleeper wakes it; it
//! is started on first use, and again in a forked child (threads do not survive `fork`). If it
//! cannot be started, sleepers fall back to naps.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use shmproc_shm::sys;
use shmproc_sync::LIVENESS_POLL;

/// Idle polls (no sleeper anywhere) before the watcher parks: about a second.
const PARK_AFTER: u32 = 100;

/// One pipe end's sleep bookkeeping in this process (inside its `EndLocal`).
#[derive(Debug, Default)]
pub(crate) struct Watch {
    /// Threads of this process asleep, untimed, on this end's rings.
    sleepers: AtomicU32,
    /// Bumped by the watcher each time it finds the peer gone.
    alarms: AtomicU32,
}

/// What a sleeper needs to tell, after waking, whether the watcher raised the alarm.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket(u32);

impl Watch {
    /// Announces an untimed sleep; `None` if no watcher runs (then nap instead).
    pub fn begin_sleep(&self) -> Option<Ticket> {
        if !ensure_watcher() {
            return None;
        }
        // SeqCst: pairs with the watcher's park (see `park`).
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        unpark_watcher();
        Some(Ticket(self.alarms.load(Ordering::SeqCst)))
    }

    /// Ends a sleep begun with `ticket`; whether the alarm was raised meanwhile.
    pub fn end_sleep(&self, ticket: Ticket) -> bool {
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        self.alarms.load(Ordering::SeqCst) != ticket.0
    }

    /// Whether a thread of this process sleeps on this end right now.
    pub fn has_sleepers(&self) -> bool {
        self.sleepers.load(Ordering::SeqCst) > 0
    }

    /// Tells this end's sleepers to check their peer (the caller wakes them).
    pub fn raise(&self) {
        self.alarms.fetch_add(1, Ordering::SeqCst);
    }
}

/// Identity (`shmproc_sync::process_identity`) of the process whose watcher runs; in a forked
/// child it names the parent, so the child starts its own.
static OWNER: AtomicU64 = AtomicU64::new(0);
/// Identity of the process one of whose threads is starting the watcher right now.
static STARTING: AtomicU64 = AtomicU64::new(0);
/// The watcher's park word: 1 while it is parked (or about to park).
static PARKED: AtomicU64 = AtomicU64::new(0);

/// Whether this process's watcher runs, starting it if nobody here is doing so. A thread that
/// finds another one of its process starting it gets `false` (it naps this once): the watcher
/// is only reported running once it does.
fn ensure_watcher() -> bool {
    let me = shmproc_sync::process_identity();
    if OWNER.load(Ordering::Acquire) == me {
        return true;
    }
    // A value left by another process (a parent forked mid-start) is taken over.
    let starting = STARTING.load(Ordering::Acquire);
    if starting == me
        || STARTING
            .compare_exchange(starting, me, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
    {
        return false;
    }
    PARKED.store(0, Ordering::SeqCst);
    let started = std::thread::Builder::new()
        .name("shmproc-watch".into())
        .stack_size(128 << 10)
        .spawn(run)
        .is_ok();
    if started {
        OWNER.store(me, Ordering::Release);
    }
    STARTING.store(0, Ordering::Release); // on failure the next sleep tries again
    started
}

fn unpark_watcher() {
    if PARKED.load(Ordering::SeqCst) != 0 && PARKED.swap(0, Ordering::SeqCst) != 0 {
        sys::futex_wake_low(&PARKED, 1);
    }
}

/// The watcher: polls while anyone sleeps, parks when nobody has for a while.
fn run() {
    let mut idle = 0;
    loop {
        std::thread::sleep(LIVENESS_POLL);
        if crate::end::check_sleeping_ends() {
            idle = 0;
            continue;
        }
        idle += 1;
        if idle >= PARK_AFTER {
            park();
            idle = 0;
        }
    }
}

/// Sleeps until a sleeper shows up. Store-then-check against the sleeper's count-then-check
/// (both `SeqCst`): either the watcher sees the new sleeper or the sleeper sees it parked.
fn park() {
    PARKED.store(1, Ordering::SeqCst);
    if crate::end::check_sleeping_ends() {
        PARKED.store(0, Ordering::SeqCst);
        return;
    }
    while PARKED.load(Ordering::SeqCst) != 0 {
        // An error (EINTR) just re-checks.
        let _ = sys::futex_wait_low(&PARKED, 1, None::<Duration>);
    }
}
