//! `Roster`: which processes take part in a shared object, so the others can tell a process
//! that left from one that died.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::liveness::{current_identity, identity_alive, pid_of};
use crate::AtomicShareable;

/// How many processes one roster can hold.
pub const ROSTER_SLOTS: usize = 1024;

/// A table of process identities in shared memory: the members of a barrier, the holders of a
/// pipe end, … A member [`leave`](Roster::leave)s when done (dropping its handles, returning from
/// a fork closure, finishing a spawned entry, `exit`); a member that is gone without leaving
/// stays listed and [`dead_member`](Roster::dead_member) finds it. Liveness comes from
/// [`crate::liveness`] (kernel-held locks, no pid lookups), so it holds across PID namespaces.
/// All zeroes is an empty roster.
///
/// # Examples
/// ```
/// use shmproc_shm::Roster;
/// let roster = Roster::default();
/// assert!(roster.join()?);           // this process is a member now
/// assert!(!roster.join()?);          // joining twice is harmless
/// assert_eq!(roster.live_members(), 1);
/// assert_eq!(roster.dead_member(), None);
/// roster.leave();
/// assert_eq!(roster.live_members(), 0);
/// # Ok::<(), shmproc_shm::RosterFull>(())
/// ```
#[repr(C)]
pub struct Roster {
    slots: [AtomicU64; ROSTER_SLOTS],
}

impl Default for Roster {
    fn default() -> Self {
        Roster {
            slots: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl fmt::Debug for Roster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Roster")
            .field("members", &self.members().count())
            .finish()
    }
}

// SAFETY: only AtomicU64s; zero is an empty slot and any other value is an identity that is
// merely checked for liveness.
unsafe impl AtomicShareable for Roster {}

/// A roster had no free slot, even after forgetting dead members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterFull;

impl fmt::Display for RosterFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "too many processes use this object: at most {ROSTER_SLOTS} live processes can be \
             members at once (let some drop their handles first)"
        )
    }
}

impl std::error::Error for RosterFull {}

impl Roster {
    /// Adds the calling process (once); whether it was not a member before. A full roster
    /// first forgets members that died.
    ///
    /// # Errors
    /// [`RosterFull`] if [`ROSTER_SLOTS`] live processes are members already.
    pub fn join(&self) -> Result<bool, RosterFull> {
        let me = current_identity();
        if self.contains(me) {
            return Ok(false);
        }
        let take = || {
            self.slots.iter().any(|slot| {
                slot.compare_exchange(0, me, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            })
        };
        if take() || (self.purge_dead() > 0 && take()) {
            Ok(true)
        } else {
            Err(RosterFull)
        }
    }

    /// Removes the calling process (no effect if it is not a member).
    pub fn leave(&self) {
        let me = current_identity();
        for slot in &self.slots {
            let _ = slot.compare_exchange(me, 0, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    /// Whether the calling process is a member.
    pub fn is_member(&self) -> bool {
        self.contains(current_identity())
    }

    fn contains(&self, id: u64) -> bool {
        self.slots.iter().any(|s| s.load(Ordering::Acquire) == id)
    }

    /// The pid of a member that is gone without leaving, if any (not for hot paths).
    pub fn dead_member(&self) -> Option<u32> {
        self.members().find(|id| !identity_alive(*id)).map(pid_of)
    }

    /// How many members are alive.
    pub fn live_members(&self) -> usize {
        self.members().filter(|id| identity_alive(*id)).count()
    }

    /// Whether any member is alive.
    pub fn any_live_member(&self) -> bool {
        self.members().any(identity_alive)
    }

    /// Whether a member other than the calling process is alive.
    pub fn has_live_member_besides_me(&self) -> bool {
        let me = current_identity();
        self.members().any(|id| id != me && identity_alive(id))
    }

    /// Removes members that died; returns how many.
    pub fn purge_dead(&self) -> usize {
        self.slots
            .iter()
            .filter(|slot| {
                let id = slot.load(Ordering::Acquire);
                id != 0
                    && !identity_alive(id)
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
