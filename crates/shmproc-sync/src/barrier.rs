//! `Barrier`: n processes wait for each other, round after round.

use std::fmt;
use std::mem::offset_of;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shmproc_shm::{sys, AtomicShareable, Kind, Roster, Seat, SegmentError, SharedRef};

use crate::wait::{deadline_in, sleep, wake, Slept, SyncError};
use crate::{shared, LIVENESS_POLL};

/// `broken` value after [`Barrier::abort`] (any other non-zero value is a dead pid).
const ABORTED: u32 = u32::MAX;

#[repr(C)]
#[derive(Debug, Default)]
struct State {
    /// Round (high 32 bits) and arrivals in it (low 32 bits), changed together by one CAS.
    phase: AtomicU64,
    /// The round number alone: the futex word waiters sleep on.
    round: AtomicU32,
    parties: AtomicU32,
    /// 0, the pid of a participant seen dead, or [`ABORTED`].
    broken: AtomicU32,
    /// Waiters asleep on `round`: the leader makes the wake syscall only when there are some.
    sleepers: AtomicU32,
    /// Every process that has waited here.
    roster: Roster,
}

// SAFETY: only atomics (and a Roster, itself only atomics); all zero is a fresh barrier.
unsafe impl AtomicShareable for State {}

const TYPE_NAME: &str = "shmproc::Barrier";

impl shared::State for State {
    const KIND: Kind = Kind::Barrier;
    const TYPE_NAME: &'static str = TYPE_NAME;
}

/// What [`Barrier::wait`] tells each participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarrierWaitResult {
    leader: bool,
}

impl BarrierWaitResult {
    /// True for exactly one participant of each round (the last to arrive).
    pub fn is_leader(&self) -> bool {
        self.leader
    }
}

/// A reusable process-shared barrier (Python's `multiprocessing.Barrier`): `wait` returns once
/// `parties` processes (or threads) have called it, then the next round starts.
///
/// # Examples
/// ```
/// use shmproc_sync::Barrier;
/// let barrier = Barrier::new(1)?;
/// for _ in 0..3 {
///     assert!(barrier.wait()?.is_leader()); // one party: every round completes at once
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # When a process leaves or dies
/// Every process that waits on the barrier joins its roster (up to
/// [`ROSTER_SLOTS`](shmproc_shm::ROSTER_SLOTS) live processes; one more gets
/// [`SyncError::TooManyProcesses`]). A process *leaves* when its last handle drops, when it
/// returns from a `Process::fork` closure or a spawned entry, or exits through `exit`: the
/// barrier carries on without it. If a member *dies* (killed, or gone without leaving),
/// waiters notice within about [`LIVENESS_POLL`] and get [`SyncError::ParticipantDied`]; the
/// barrier is then broken ([`SyncError::Broken`] for later waits) until
/// [`reset`](Barrier::reset).
#[derive(Clone)]
pub struct Barrier {
    state: SharedRef<State>,
    /// This process's membership of the roster, shared by the handle's clones.
    seat: Arc<Seat>,
}

impl Barrier {
    /// A new anonymous barrier for `parties` participants.
    ///
    /// # Errors
    /// `Io(InvalidInput)` if `parties` is 0; [`SegmentError::Io`] when the OS refuses memory.
    pub fn new(parties: u32) -> Result<Barrier, SegmentError> {
        Barrier::make(None, parties)
    }

    /// A new named barrier.
    ///
    /// # Errors
    /// As [`new`](Barrier::new), plus [`SegmentError::AlreadyExists`] and invalid names.
    pub fn create(name: &str, parties: u32) -> Result<Barrier, SegmentError> {
        Barrier::make(Some(name), parties)
    }

    /// Opens a named barrier.
    ///
    /// # Errors
    /// Any [`SegmentError`].
    pub fn open(name: &str) -> Result<Barrier, SegmentError> {
        Barrier::from(shared::open(Kind::Barrier, TYPE_NAME, name)?)
    }

    fn make(name: Option<&str>, parties: u32) -> Result<Barrier, SegmentError> {
        if parties == 0 {
            return Err(SegmentError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a barrier needs at least one party",
            )));
        }
        let state = shared::create(Kind::Barrier, TYPE_NAME, name, |s: &State| {
            s.parties.store(parties, Ordering::Relaxed);
        })?;
        Barrier::from(state)
    }

    fn from(state: SharedRef<State>) -> Result<Barrier, SegmentError> {
        let roster: SharedRef<Roster> =
            SharedRef::new(Arc::clone(state.segment()), offset_of!(State, roster))?;
        Ok(Barrier {
            state,
            seat: Seat::new(roster),
        })
    }

    /// Waits until all parties have arrived.
    ///
    /// # Errors
    /// [`SyncError::ParticipantDied`], [`SyncError::Broken`] or
    /// [`SyncError::TooManyProcesses`] (see the type docs).
    pub fn wait(&self) -> Result<BarrierWaitResult, SyncError> {
        self.wait_until(None)
    }

    /// Like [`wait`](Barrier::wait), giving up with [`SyncError::Timeout`] after `timeout`;
    /// a timed-out participant withdraws its arrival, so the round is not miscounted.
    ///
    /// # Errors
    /// As `wait`, plus `Timeout`.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<BarrierWaitResult, SyncError> {
        self.wait_until(deadline_in(timeout))
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Result<BarrierWaitResult, SyncError> {
        let s = &*self.state;
        self.seat.take().map_err(SyncError::TooManyProcesses)?;
        self.check_broken()?;
        let parties = u64::from(s.parties.load(Ordering::Relaxed).max(1));
        let mut phase = s.phase.load(Ordering::Acquire);
        let round = loop {
            let (round, arrived) = (phase >> 32, phase & 0xFFFF_FFFF);
            let (next, leader) = if arrived + 1 >= parties {
                (((round + 1) & 0xFFFF_FFFF) << 32, true)
            } else {
                (phase + 1, false)
            };
            match s
                .phase
                .compare_exchange_weak(phase, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) if leader => {
                    s.round.store((round + 1) as u32, Ordering::SeqCst);
                    wake(&s.round, &s.sleepers, u32::MAX);
                    return Ok(BarrierWaitResult { leader: true });
                }
                Ok(_) => break round as u32,
                Err(now) => phase = now,
            }
        };
        loop {
            if s.round.load(Ordering::Acquire) != round {
                return Ok(BarrierWaitResult { leader: false });
            }
            self.check_broken()?;
            s.sleepers.fetch_add(1, Ordering::SeqCst);
            // SeqCst pairs with the leader's store + `sleepers` load (see `wait::block_on`).
            let slept = if s.round.load(Ordering::SeqCst) == round {
                sleep(&s.round, round, deadline, Some(LIVENESS_POLL))
            } else {
                Ok(Slept::Woken)
            };
            s.sleepers.fetch_sub(1, Ordering::Relaxed);
            match slept? {
                Slept::Woken => {}
                Slept::Nap => {
                    if let Some(pid) = s.roster.dead_member() {
                        self.break_with(pid);
                        return Err(SyncError::ParticipantDied { pid });
                    }
                }
                Slept::Deadline => return self.withdraw(round),
            }
        }
    }

    /// Takes back this participant's arrival in `round` after a timeout.
    fn withdraw(&self, round: u32) -> Result<BarrierWaitResult, SyncError> {
        let s = &*self.state;
        let mut phase = s.phase.load(Ordering::Acquire);
        while (phase >> 32) as u32 == round && phase & 0xFFFF_FFFF > 0 {
            match s.phase.compare_exchange_weak(
                phase,
                phase - 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Err(SyncError::Timeout),
                Err(now) => phase = now,
            }
        }
        // The round completed just as we gave up: we passed the barrier after all.
        Ok(BarrierWaitResult { leader: false })
    }

    fn check_broken(&self) -> Result<(), SyncError> {
        match self.state.broken.load(Ordering::Acquire) {
            0 => Ok(()),
            _ => Err(SyncError::Broken),
        }
    }

    fn break_with(&self, why: u32) {
        self.state.broken.store(why, Ordering::Release);
        sys::futex_wake(&self.state.round, u32::MAX);
    }

    /// Breaks the barrier: current and future waiters get [`SyncError::Broken`] until
    /// [`reset`](Barrier::reset).
    pub fn abort(&self) {
        self.break_with(ABORTED);
    }

    /// Whether the barrier is broken.
    pub fn is_broken(&self) -> bool {
        self.state.broken.load(Ordering::Acquire) != 0
    }

    /// Makes a broken barrier usable again: forgets dead participants and the arrivals of the
    /// broken round. Call it when no process is waiting.
    pub fn reset(&self) {
        let s = &*self.state;
        s.roster.purge_dead();
        let round = (s.phase.load(Ordering::Acquire) >> 32) as u32;
        s.phase.store(u64::from(round) << 32, Ordering::Release);
        s.broken.store(0, Ordering::Release);
    }

    /// Participants per round.
    pub fn parties(&self) -> u32 {
        self.state.parties.load(Ordering::Relaxed)
    }

    /// Participants waiting in the current round (a snapshot).
    pub fn n_waiting(&self) -> u32 {
        self.state.phase.load(Ordering::Relaxed) as u32
    }

    /// The segment's name, `None` when anonymous.
    pub fn name(&self) -> Option<&str> {
        self.state.segment().name()
    }
}

impl serde::Serialize for Barrier {
    fn serialize<Z: serde::Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        serde::Serialize::serialize(&shared::Handle(self.state.clone()), serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Barrier {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let handle: shared::Handle<State> = serde::Deserialize::deserialize(deserializer)?;
        Barrier::from(handle.0).map_err(serde::de::Error::custom)
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("name", &self.name())
            .field("parties", &self.parties())
            .field("n_waiting", &self.n_waiting())
            .field("broken", &self.is_broken())
            .finish()
    }
}
