//! `Roster`: which processes take part in a shared object, so the others can tell when one died.

use std::sync::atomic::{AtomicU64, Ordering};

use shmproc_shm::AtomicShareable;

use crate::owner;

/// How many processes a roster can hold.
pub const ROSTER_SLOTS: usize = 16;

/// A fixed table of process identities (pid + start time) in shared memory: the members of a
/// barrier, the holders of a pipe end, … A member that dies without leaving stays listed, and
/// [`dead_member`](Roster::dead_member) finds it. All zeroes is an empty roster.
///
/// # Examples
/// ```
/// use shmproc_sync::Roster;
/// let roster = Roster::default();
/// assert!(roster.join());            // this process is a member now
/// assert!(roster.join());            // joining twice is harmless
/// assert_eq!(roster.live_members(), 1);
/// assert_eq!(roster.dead_member(), None);
/// roster.leave();
/// assert_eq!(roster.live_members(), 0);
/// ```
#[repr(C)]
#[derive(Debug, Default)]
pub struct Roster {
    slots: [AtomicU64; ROSTER_SLOTS],
}

// SAFETY: only AtomicU64s; zero is an empty slot and any other value is an identity that is
// merely checked for liveness.
unsafe impl AtomicShareable for Roster {}

impl Roster {
    /// Adds the calling process (once); `false` if the roster is full.
    pub fn join(&self) -> bool {
        let me = owner::current_process();
        if self.contains(me) {
            return true;
        }
        self.slots.iter().any(|slot| {
            slot.compare_exchange(0, me, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        })
    }

    /// Removes the calling process.
    pub fn leave(&self) {
        let me = owner::current_process();
        for slot in &self.slots {
            let _ = slot.compare_exchange(me, 0, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    /// Whether the calling process is a member.
    pub fn is_member(&self) -> bool {
        self.contains(owner::current_process())
    }

    fn contains(&self, id: u64) -> bool {
        self.slots.iter().any(|s| s.load(Ordering::Acquire) == id)
    }

    /// The pid of a member that died without leaving, if any (reads `/proc`: not for hot paths).
    pub fn dead_member(&self) -> Option<u32> {
        self.members()
            .find(|id| !owner::is_alive(*id))
            .map(owner::tid_of)
    }

    /// How many members still run (reads `/proc`).
    pub fn live_members(&self) -> usize {
        self.members().filter(|id| owner::is_alive(*id)).count()
    }

    /// Whether a member other than the calling process still runs (reads `/proc`).
    pub fn has_live_member_besides_me(&self) -> bool {
        let me = owner::current_process();
        self.members().any(|id| id != me && owner::is_alive(id))
    }

    /// Removes members that died; returns how many.
    pub fn purge_dead(&self) -> usize {
        self.slots
            .iter()
            .filter(|slot| {
                let id = slot.load(Ordering::Acquire);
                id != 0
                    && !owner::is_alive(id)
                    && slot
                        .compare_exchange(id, 0, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
            })
            .count()
    }

    fn members(&self) -> impl Iterator<Item = u64> + '_ {
        self.slots
            .iter()
            .map(|s| s.load(Ordering::Acquire))
            .filter(|id| *id != 0)
    }
}
