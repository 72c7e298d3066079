//! Who reads a broker pool's reply stream (leader/follower). A thread waiting for a task
//! (`Task::wait`) reads it itself while it waits, landing every reply it reads, so its own
//! reply wakes it directly rather than through a second thread; waiters that find another
//! reading sleep until their outcome lands or the reader leaves. The pool's reader thread
//! reads only while tasks are pending and no thread waits (tasks nobody waits for,
//! `as_completed`, and noticing an outage), after giving a waiter that is about to come
//! [`GRACE`] to take over.

use std::time::{Duration, Instant};

use shmproc_process::remote::Outcome;

use crate::reader::BLOCK;
use crate::shared::{Shared, State};

/// How long the reader thread leaves pending tasks to a waiter that may come (one usually
/// does within microseconds of `submit`) before it reads them itself.
const GRACE: Duration = Duration::from_millis(1);

/// A thread waiting at most `nap` for `outcome`: reads the replies while nobody else does,
/// until its own outcome landed.
pub(crate) fn wait_reply(shared: &Shared, outcome: &Outcome, nap: Duration) {
    let deadline = Instant::now() + nap;
    let mut state = shared.lock();
    state.waiters += 1;
    state.arrivals = state.arrivals.wrapping_add(1);
    // Checked under the lock: replies land under it, so no outcome lands unseen.
    while !outcome.is_done() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        // A stopped pool failed its tasks already; its reader removes the stream.
        let replies = if state.stopped {
            None
        } else {
            shared.try_replies()
        };
        if let Some(mut replies) = replies {
            drop(state);
            replies.read_once(shared, left);
            drop(replies);
            state = shared.lock();
            // Another waiter may take over.
            shared.changed.notify_all();
        } else {
            state = wait(&shared.changed, state, left);
        }
    }
    state.waiters -= 1;
    shared.wake_reader(&state);
}

/// The reader thread's body: reads while it should, then removes the reply stream.
pub(crate) fn run_reader(shared: &Shared) {
    let mut leading = false;
    while take_turn(shared, leading) {
        let Some(mut replies) = shared.try_replies() else {
            leading = false;
            continue;
        };
        replies.read_once(shared, BLOCK);
        drop(replies);
        let state = shared.lock();
        // A waiter that found us reading may take over.
        shared.changed.notify_all();
        leading = state.waiters == 0;
    }
    let mut replies = shared.replies.lock().unwrap_or_else(|e| e.into_inner());
    replies.delete_stream(shared);
}

/// Waits until the reader thread should read: tasks are pending and no thread has come to
/// wait for [`GRACE`] (at once if it was `leading` and none came). `false` once stopped.
fn take_turn(shared: &Shared, leading: bool) -> bool {
    let mut state = shared.lock();
    let mut seen = state.arrivals;
    let mut grace = if leading { Duration::ZERO } else { GRACE };
    let mut since = Instant::now();
    loop {
        if state.stopped {
            return false;
        }
        if state.waiters > 0 || state.pending.is_empty() {
            // Woken when the last waiter leaves, a task is sent, or the pool stops.
            state.reader_idle = true;
            state = shared
                .reader_wake
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
            state.reader_idle = false;
            (seen, grace, since) = (state.arrivals, GRACE, Instant::now());
            continue;
        }
        if state.arrivals != seen {
            // A waiter came and went: it may come back for the next task.
            (seen, grace, since) = (state.arrivals, GRACE, Instant::now());
        }
        let left = grace.saturating_sub(since.elapsed());
        if left.is_zero() {
            return true;
        }
        state = wait(&shared.reader_wake, state, left);
    }
}

/// Sleeps on `on` (`changed` or `reader_wake`, both paired with the state lock) for at most
/// `left`.
fn wait<'a>(
    on: &std::sync::Condvar,
    state: std::sync::MutexGuard<'a, State>,
    left: Duration,
) -> std::sync::MutexGuard<'a, State> {
    on.wait_timeout(state, left)
        .unwrap_or_else(|e| e.into_inner())
        .0
}
