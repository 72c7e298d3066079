//! A pipe end's sleepers in this process, for the watcher (see [`shmproc_shm::watcher`]).
//!
//! A blocked pipe side must notice a dead peer within a bound without arming a timer for every
//! sleep, so a blocking call without a deadline sleeps untimed and the process's watcher thread,
//! every [`LIVENESS_POLL`](shmproc_shm::watcher::LIVENESS_POLL) while anyone sleeps, runs
//! `crate::end::check_sleeping_ends`: it checks the peers of the ends that have sleepers, and
//! where one is gone raises that end's alarm and wakes the pipe's rings. The woken sleeper sees
//! the alarm and runs its own check (which reports the ending).

use std::sync::atomic::{AtomicU32, Ordering};

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
    /// Announces an untimed sleep.
    pub fn begin_sleep(&self) -> Ticket {
        // SeqCst: the watcher's round reads `sleepers` after our board entry is published.
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        Ticket(self.alarms.load(Ordering::SeqCst))
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
