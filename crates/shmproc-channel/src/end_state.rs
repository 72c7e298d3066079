//! One end's shared state (the bottom of membership): who holds the end, who inherited it,
//! which hand-overs are in progress, and whether it is gone. A queue is an end of its own.
//!
//! - `holders`: processes that created/opened the end or have sent/received through it;
//! - `inherited`: forked children that got a copy of the end and have not used it yet;
//! - `transit`: hand-overs to other processes in progress (serialized ends not yet taken; see
//!   `crate::transfer`), each vouched for by a guarantor process.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use shmproc_shm::{AtomicShareable, Roster, RosterFull};

use crate::error::Stop;

/// One end's shared state.
#[repr(C, align(64))]
#[derive(Debug, Default)]
pub(crate) struct EndState {
    pub(crate) holders: Roster,
    pub(crate) inherited: Roster,
    /// Set by the last holder to leave when nobody else has it.
    pub(crate) closed: AtomicU32,
    /// Set once anyone has held the end.
    ever_held: AtomicU32,
    /// Bumped by every forked child once it has joined `inherited`.
    pub(crate) acks: AtomicU32,
    /// Joins that added a process to `holders` (wrapping): a queue knows from it whether any
    /// process besides its first ever used it. Inheriting a copy through `fork` does not
    /// count: a child forked for something else, which never touches the queue, must not turn
    /// its exit into an ending.
    joins: AtomicU32,
    /// Hand-overs in progress (see `crate::transfer`): each non-zero slot is the identity of
    /// the process vouching for one; the end counts as held while that process lives.
    transit: [AtomicU64; TRANSIT_SLOTS],
}

/// How many hand-overs of one end can be in progress at once.
pub(crate) const TRANSIT_SLOTS: usize = 8;

// SAFETY: only atomics (Roster is AtomicShareable); all zeroes is an open end nobody holds yet.
unsafe impl AtomicShareable for EndState {}

impl EndState {
    /// Whether the end was closed by its last holder.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire) != 0
    }

    pub(crate) fn hold(&self) -> Result<(), RosterFull> {
        if self.holders.join()? {
            self.joins.fetch_add(1, Ordering::AcqRel);
        }
        self.ever_held.store(1, Ordering::Release);
        Ok(())
    }

    pub(crate) fn inherit(&self) -> Result<(), RosterFull> {
        self.inherited.join().map(drop)
    }

    /// Records a hand-over vouched for by process identity `guarantor`; the slot index, `None`
    /// if all are taken by live guarantors.
    pub fn begin_transit(&self, guarantor: u64) -> Option<usize> {
        let take = || {
            self.transit.iter().position(|slot| {
                slot.compare_exchange(0, guarantor, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            })
        };
        take().or_else(|| {
            for slot in &self.transit {
                let id = slot.load(Ordering::Acquire);
                if id != 0 && !shmproc_sync::identity_alive(id) {
                    let _ = slot.compare_exchange(id, 0, Ordering::AcqRel, Ordering::Relaxed);
                }
            }
            take()
        })
    }

    /// Ends hand-over `slot` vouched for by `guarantor` (the receiver holds the end by now). A
    /// slot out of range or already reused is left alone.
    pub fn end_transit(&self, slot: usize, guarantor: u64) {
        if let Some(s) = self.transit.get(slot) {
            let _ = s.compare_exchange(guarantor, 0, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    /// Whether a hand-over whose guarantor still runs is in progress (liveness checks).
    pub(crate) fn in_transit(&self) -> bool {
        self.transit.iter().any(|slot| {
            let id = slot.load(Ordering::Acquire);
            id != 0 && shmproc_sync::identity_alive(id)
        })
    }
    /// Whether this end, seen from the other one, is gone for good (see `crate::end`). Checks liveness: only
    /// for callers that have already waited a while.
    pub fn gone_as_peer(&self) -> Option<Stop> {
        let peer = self;
        if peer.is_closed() {
            return Some(Stop::Closed);
        }
        // `inherited` and `transit` before `holders`: a process moves into `holders` before it
        // leaves the other two, so reading in this order it cannot slip between them unseen.
        if peer.inherited.has_live_member_besides_me()
            || peer.in_transit()
            || peer.holders.any_live_member()
        {
            return None;
        }
        if let Some(pid) = peer.holders.dead_member() {
            return Some(Stop::PeerDied(pid));
        }
        (peer.ever_held.load(Ordering::Acquire) != 0).then_some(Stop::Closed)
    }

    /// Whether a queue is abandoned: no process besides this one holds, inherited or is being
    /// handed it, although some other process once did. `PeerDied` if one of them died without
    /// leaving, else `Closed`. Checks liveness: only after waiting a while.
    pub fn abandoned(&self) -> Option<Stop> {
        let state = self;
        if state.inherited.has_live_member_besides_me()
            || state.in_transit()
            || state.holders.has_live_member_besides_me()
            || state.joins.load(Ordering::Acquire) < 2
        {
            return None;
        }
        Some(
            state
                .holders
                .dead_member()
                .map_or(Stop::Closed, Stop::PeerDied),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transit_slots_fill_up_free_by_guarantor_and_recycle_dead_ones() {
        let state = EndState::default();
        let me = shmproc_sync::process_identity();
        let slots: Vec<usize> = (0..TRANSIT_SLOTS)
            .map(|_| state.begin_transit(me).unwrap())
            .collect();
        assert!(state.in_transit());
        assert_eq!(
            state.begin_transit(me),
            None,
            "all taken by a live guarantor"
        );
        state.end_transit(slots[3], me ^ 1); // someone else's record: left alone
        assert_eq!(state.begin_transit(me), None);
        state.end_transit(slots[3], me);
        assert_eq!(state.begin_transit(me), Some(slots[3]));
        state.end_transit(TRANSIT_SLOTS + 5, me); // out of range: ignored
                                                  // A slot whose guarantor is dead is reused when all are taken.
        let dead = shmproc_sync::process_identity_of(u32::MAX >> 10);
        state.end_transit(slots[0], me);
        assert_eq!(state.begin_transit(dead), Some(slots[0]));
        assert_eq!(state.begin_transit(me), Some(slots[0]));
        for slot in slots {
            state.end_transit(slot, me);
        }
        assert!(!state.in_transit());
    }
}
