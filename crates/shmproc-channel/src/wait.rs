//! Waiting for the other side of a ring: spin briefly, then sleep on a futex event count.
//!
//! A side that must wait polls a few thousand pause hints' worth, then registers as a sleeper,
//! re-checks, and sleeps on the sequence: untimed when it has no deadline, else in bounded naps.
//! An untimed sleep is *watched* ([`shmproc_shm::watcher`]): it names the other side's index
//! as it was before the last check, so a side that published and was killed before waking us
//! still ends our sleep within a watcher round; a pipe's peer is watched too (`crate::watch`). The other side, after publishing,
//! issues one `SeqCst` fence and wakes only if someone is registered — and a wake takes all
//! registrations with it (one CAS bumps the sequence and zeroes the count), so while woken
//! sleepers are still on their way no further publish makes a system call.

use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::time::Duration;

use shmproc_shm::sys::{self, WaitOutcome};
use shmproc_shm::watcher::{sleep_watched, Word};

pub(crate) use crate::deadline::Deadline;
use crate::error::Stop;
use crate::watch::Watch;

/// An event count to sleep on (one cache line): sleepers registered since the last wake in the
/// high half, the wake sequence (the futex) in the low half.
#[repr(C, align(64))]
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    state: AtomicU64,
}

const SLEEPER: u64 = 1 << 32;

impl Waiters {
    /// Bumps the sequence and clears the registrations, if there are any (or `always`), then
    /// wakes every sleeper. Returns without a system call when nobody is registered.
    #[inline]
    pub(crate) fn wake(&self, always: bool) {
        if always || self.state.load(Ordering::SeqCst) >= SLEEPER {
            self.wake_slow(always);
        }
    }

    #[cold]
    #[inline(never)]
    fn wake_slow(&self, always: bool) {
        let mut s = self.state.load(Ordering::SeqCst);
        while always || s >= SLEEPER {
            let next = u64::from((s as u32).wrapping_add(1));
            match self
                .state
                .compare_exchange_weak(s, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    sys::futex_wake_low(&self.state, u32::MAX);
                    return;
                }
                Err(now) => s = now,
            }
        }
    }

    /// Registers a sleeper; returns the sequence to sleep on.
    fn register(&self) -> u32 {
        self.state.fetch_add(SLEEPER, Ordering::SeqCst) as u32
    }

    /// Takes back a registration made at sequence `seq`, unless a wake has taken it already.
    fn unregister(&self, seq: u32) {
        let mut s = self.state.load(Ordering::Relaxed);
        while s as u32 == seq && s >= SLEEPER {
            match self.state.compare_exchange_weak(
                s,
                s - SLEEPER,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => s = now,
            }
        }
    }
}

/// What a side waits for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Event {
    /// Consumers: published bytes (or an ending).
    Data,
    /// Producers: free space (or an ending).
    Space,
}

/// How a waiting side behaves.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WaitPolicy {
    /// Polls before sleeping.
    pub spins: u32,
    /// `spin_loop` hints between two polls (a few: polling flat out steals the cache line the
    /// other side is about to write; many: the waiter notices late).
    pub pause: u32,
    /// Longest single sleep; after a nap that timed out, `on_nap` runs (liveness checks).
    pub nap: Duration,
}

#[inline]
pub(crate) fn wake(w: &Waiters) {
    // Pairs with the fence in `wait`: either the sleeper sees our publication before it sleeps,
    // or we see its registration here.
    fence(Ordering::SeqCst);
    w.wake(false);
}

/// Spin, then sleep on `w` in naps until `ready`, the deadline, or an error from `on_nap`.
pub(crate) fn wait(
    w: &Waiters,
    progress: &AtomicU64,
    policy: WaitPolicy,
    deadline: Deadline,
    watch: Option<&Watch>,
    mut ready: impl FnMut() -> Result<bool, Stop>,
    mut on_nap: impl FnMut() -> Result<(), Stop>,
) -> Result<(), Stop> {
    // The caller has just found it not ready.
    if let Deadline::Now = deadline {
        return Err(Stop::WouldBlock);
    }
    // Pause between polls: polling flat out takes the cache line of the other side's index
    // away from the writer on every poll, slowing the very side we wait for. A rare yield lets
    // a peer sharing our core run (long spins only: the default spin ends before the first).
    for poll in 1..=policy.spins {
        for _ in 0..policy.pause {
            std::hint::spin_loop();
        }
        if poll % 1024 == 0 {
            std::thread::yield_now();
        }
        if ready()? {
            return Ok(());
        }
    }
    loop {
        let seq = w.register();
        fence(Ordering::SeqCst);
        let seen = progress.load(Ordering::SeqCst);
        let outcome = match ready() {
            Ok(false) => sleep(w, (progress, seen), seq, deadline, policy.nap, watch),
            other => {
                w.unregister(seq);
                return other.map(drop);
            }
        };
        w.unregister(seq);
        let outcome = outcome?;
        // Ready first: a peer that published its last message and then went away must not
        // have that message reported as an ending by `on_nap`.
        if ready()? {
            return Ok(());
        }
        if outcome == WaitOutcome::TimedOut {
            on_nap()?;
        }
    }
}

/// One futex sleep while `w`'s sequence is `seq`. Without a deadline it is untimed and watched:
/// the watcher wakes it once `progress` (the other side's index) moved past what it was, and a
/// pipe end's peer is checked on the same rounds (its alarm makes the sleep count as a nap, so
/// `on_nap` checks the peer). With a deadline, or if no watcher runs, it naps at most `nap`,
/// then `on_nap` runs.
fn sleep(
    w: &Waiters,
    progress: (&AtomicU64, u64),
    seq: u32,
    deadline: Deadline,
    nap: Duration,
    watch: Option<&Watch>,
) -> Result<WaitOutcome, Stop> {
    if let Deadline::Never = deadline {
        let ticket = watch.map(|watch| (watch, watch.begin_sleep()));
        let slept = sleep_watched(Word::Low(&w.state), seq, Some(progress));
        let alarmed = ticket.is_some_and(|(watch, t)| watch.end_sleep(t));
        match slept {
            Some(_) if alarmed => return Ok(WaitOutcome::TimedOut),
            Some(slept) => return slept.map_err(Stop::Io),
            None => {} // no watcher here: nap
        }
    }
    match deadline.next_nap(nap) {
        Some(nap) => sys::futex_wait_low(&w.state, seq, Some(nap)).map_err(Stop::Io),
        None => Err(Stop::expired(deadline)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_arrived_during_a_nap_wins_over_the_nap_check() {
        // The other side publishes its last message and goes away while we nap: the nap check
        // would report the ending, but the message must be delivered first.
        let w = Waiters::default();
        let progress = AtomicU64::new(0);
        let policy = WaitPolicy {
            spins: 0,
            pause: 0,
            nap: Duration::from_millis(1),
        };
        let mut looks = 0;
        let ready = || {
            looks += 1;
            Ok(looks > 1) // not before the nap, ready after it
        };
        let deadline = Deadline::after(Duration::from_secs(5));
        let got = wait(&w, &progress, policy, deadline, None, ready, || {
            Err(Stop::Closed)
        });
        assert!(got.is_ok(), "{got:?}");
    }
}
