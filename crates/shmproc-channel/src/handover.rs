//! The hand-overs of pipe ends begun on this thread, so that a send that fails after
//! serializing ends can revoke them. `transfer` records each hand-over here when it serializes
//! an end; `codec` compares [`begun_count`] around an encoding and calls [`settle`] once the
//! send is over. Only end state (`end`) lies below this module.

use std::cell::{Cell, RefCell};
use std::sync::{Arc, Weak};

use shmproc_shm::{Segment, SharedRef};

use crate::end::EndState;

thread_local! {
    /// Hand-overs begun on this thread so far (a sequence number).
    static BEGUN_COUNT: Cell<u64> = const { Cell::new(0) };
    /// The most recent of them, to revoke when the send that serialized them fails.
    static BEGUN: RefCell<Vec<Begun>> = const { RefCell::new(Vec::new()) };
}

/// How many recent hand-overs a thread remembers (a failed message carrying more pipe ends
/// than this revokes only the last ones; the others stay until their guarantor exits).
const REMEMBERED: usize = 64;

/// One recorded hand-over: its sequence number, the pipe's segment (weak: a record must not
/// keep a named segment from being unlinked), the end, its slot and guarantor.
type Begun = (u64, Weak<Segment>, usize, usize, u64);

/// The sequence number of the last hand-over begun on this thread (two of these around an
/// encoding tell, for free, whether it serialized any pipe end).
#[inline]
pub(crate) fn begun_count() -> u64 {
    BEGUN_COUNT.with(Cell::get)
}

/// Remembers a hand-over just begun on this thread: end `me` of the pipe in `seg`, in transit
/// in `slot` vouched for by `guarantor`.
pub(crate) fn remember(seg: &Arc<Segment>, me: usize, slot: usize, guarantor: u64) {
    let seq = BEGUN_COUNT.with(|c| {
        c.set(c.get() + 1);
        c.get()
    });
    BEGUN.with(|b| {
        let mut b = b.borrow_mut();
        if b.len() == REMEMBERED {
            b.remove(0); // from an encoding outside a channel send: nobody settles those
        }
        b.push((seq, Arc::downgrade(seg), me, slot, guarantor));
    });
}

/// After a send that serialized pipe ends (hand-overs after `mark`): forgets them, and revokes
/// them if the send `failed` — the message was not delivered, so nobody will take them.
#[cold]
pub(crate) fn settle(mark: u64, failed: bool) {
    let begun: Vec<Begun> = BEGUN.with(|b| {
        let mut b = b.borrow_mut();
        let first = b.iter().position(|e| e.0 > mark).unwrap_or(b.len());
        b.drain(first..).collect()
    });
    if failed {
        for (_, seg, me, slot, guarantor) in begun {
            let state = seg
                .upgrade()
                .map(|seg| SharedRef::<EndState>::new(seg, me * std::mem::size_of::<EndState>()));
            if let Some(Ok(state)) = state {
                state.end_transit(slot, guarantor);
            }
        }
    }
}
