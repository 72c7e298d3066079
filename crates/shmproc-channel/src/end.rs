//! Who holds a pipe end, so the other end can tell when it is gone.
//!
//! Each end has, in shared memory, two [`Roster`]s and a `closed` flag:
//! - `holders`: processes that created/opened the end or have sent/received through it;
//! - `inherited`: forked children that got a copy of the end and have not used it yet;
//! - `transit`: hand-overs to other processes in progress (serialized ends not yet taken; see
//!   `crate::transfer`), each vouched for by a guarantor process.
//!
//! In each process, all clones of a handle share one [`EndLocal`]. When the last one is
//! dropped the process *leaves* both rosters; if then nobody alive holds or inherited the end
//! and no holder died, it sets `closed` and wakes the other side. A process also leaves every
//! end it has when it returns from a `Process::fork` closure, finishes a spawned entry, or
//! exits through `exit` ([`shmproc_shm::leave_all`] runs `leave_all_ends`), although copies of
//! its handles are never dropped there. A holder that dies stays listed.
//!
//! | how a process ends | its peers see |
//! |---|---|
//! | drops its handles, returns from a fork closure, finishes an entry, `exit` | `Disconnected` (once no one else holds the end) |
//! | SIGKILL, abort, `_exit` while holding | `PeerDied` within about 10 ms of the watcher noticing |
//! | a forked child that never used its inherited copy, killed | nothing: it was never a holder (fork children inherit every end, so counting their deaths would make unrelated kills end unrelated pipes); the end ends as its holders leave or die |
//!
//! Each roster tracks up to [`ROSTER_SLOTS`](shmproc_shm::ROSTER_SLOTS) live processes; a
//! process that would be one more fails to create, receive or first use the end with
//! [`RosterFull`]'s message, never silently untracked.
//!
//! The other side considers the end **gone** when it is `closed`, or when no live process is
//! in either roster (itself excepted in `inherited`) or vouches for a hand-over, and someone
//! ever held it: then
//! `PeerDied` if a holder died without leaving, else `Disconnected`. An end nobody has opened
//! yet (a named pipe before `open`) is not gone.
//!
//! # Fork
//! A forked child gets a copy of every end its parent held, like inherited file descriptors.
//! An `at_fork` child handler lists the child in `inherited` before `fork` returns in the
//! parent (the parent's handler waits, bounded, for that), so the parent dropping a handle it
//! moved into the child's closure never looks like "peer gone". The child's first send/receive
//! through an end moves it to `holders`. A child that never uses its copy delays the verdict
//! only while it runs — and never for itself: a child blocked on its end sees the parent drop
//! the other end even though it inherited a copy of that one too.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use shmproc_shm::{sys, RosterFull, SharedRef};

pub(crate) use crate::end_state::{EndState, TRANSIT_SLOTS};
use crate::error::Stop;
use crate::ring::Ring;
use crate::watch::Watch;

/// How long a parent's fork waits for the child to join the rosters of inherited ends. The
/// child acks within microseconds when it gets a CPU; the bound only matters for a child killed
/// at birth, and must cover a loaded machine (at 200 ms, a child not scheduled in time on a
/// busy 2-core CI machine let the parent's drop close an end the child was about to use).
const FORK_JOIN_WAIT: Duration = Duration::from_secs(2);

/// How a process takes hold of an end ([`EndLocal::hold`] or [`EndLocal::adopt`]).
pub(crate) type Hold = fn(SharedRef<EndState>, Vec<Ring>) -> Result<Arc<EndLocal>, RosterFull>;

/// This process's hold on one end, shared by all clones of its handles here.
pub(crate) struct EndLocal {
    state: SharedRef<EndState>,
    /// Every ring of the pipe: woken when this end closes.
    rings: Vec<Ring>,
    /// Whether this process is in `holders` (false in a forked child until first use).
    claimed: AtomicBool,
    /// The other end's state, for the watcher (`None` if it cannot be located, or for a
    /// queue, which is its own peer: see `solo`).
    peer: Option<SharedRef<EndState>>,
    /// A queue's only end: "gone" means no other process holds it any more.
    solo: bool,
    /// A queue closed for this process's puts (`Queue::close`); a forked child starts open.
    puts_closed: AtomicBool,
    /// Records this process took from a queue, and tasks it marked done (`JoinableQueue`).
    tasks: TaskCounts,
    /// Sleepers on this end in this process (see `crate::watch`).
    pub watch: Watch,
}

/// How many tasks a process took from a queue and marked done: those it may still finish.
/// Written by every `get`, so on a cache line of its own, away from the flags every `put`
/// reads. A forked child starts at zero.
#[repr(align(64))]
#[derive(Default)]
struct TaskCounts {
    taken: AtomicU64,
    done: AtomicU64,
}

impl EndLocal {
    /// Takes hold of a pipe end: joins its holders and registers for fork and for leaving.
    ///
    /// # Errors
    /// [`RosterFull`] when the end's holders are full.
    pub fn hold(state: SharedRef<EndState>, rings: Vec<Ring>) -> Result<Arc<EndLocal>, RosterFull> {
        EndLocal::make(state, rings, false)
    }

    /// Takes hold of a queue (an end that is its own peer), as [`hold`](EndLocal::hold).
    ///
    /// # Errors
    /// [`RosterFull`] when the queue's holders are full.
    pub fn hold_solo(
        state: SharedRef<EndState>,
        rings: Vec<Ring>,
    ) -> Result<Arc<EndLocal>, RosterFull> {
        EndLocal::make(state, rings, true)
    }

    fn make(
        state: SharedRef<EndState>,
        rings: Vec<Ring>,
        solo: bool,
    ) -> Result<Arc<EndLocal>, RosterFull> {
        ensure_fork_handlers();
        shmproc_shm::on_leave(leave_all_ends);
        shmproc_shm::watcher::on_round(check_sleeping_ends);
        state.hold()?;
        let peer = end_index(&state).filter(|_| !solo).and_then(|me| {
            let off = (1 - me) * std::mem::size_of::<EndState>();
            SharedRef::new(Arc::clone(state.segment()), off).ok()
        });
        let local = Arc::new(EndLocal {
            state,
            rings,
            claimed: AtomicBool::new(true),
            peer,
            solo,
            puts_closed: AtomicBool::new(false),
            tasks: TaskCounts::default(),
            watch: Watch::default(),
        });
        with_registry(|r| {
            r.ends.retain(|w| w.strong_count() > 0);
            r.ends.push(Arc::downgrade(&local));
        });
        Ok(local)
    }

    /// Takes hold of an end received from another process (see `crate::transfer`): shares
    /// this process's existing hold on the same end if there is one (roster membership is per
    /// process, so two independent holds would let the first drop un-register the second),
    /// else joins its holders like [`hold`](EndLocal::hold).
    ///
    /// # Errors
    /// [`RosterFull`] when the end's holders are full.
    pub fn adopt(
        state: SharedRef<EndState>,
        rings: Vec<Ring>,
    ) -> Result<Arc<EndLocal>, RosterFull> {
        EndLocal::adopt_as(state, rings, false)
    }

    /// Takes hold of a queue received from another process, as [`adopt`](EndLocal::adopt).
    ///
    /// # Errors
    /// [`RosterFull`] when the queue's holders are full.
    pub fn adopt_solo(
        state: SharedRef<EndState>,
        rings: Vec<Ring>,
    ) -> Result<Arc<EndLocal>, RosterFull> {
        EndLocal::adopt_as(state, rings, true)
    }

    fn adopt_as(
        state: SharedRef<EndState>,
        rings: Vec<Ring>,
        solo: bool,
    ) -> Result<Arc<EndLocal>, RosterFull> {
        let key = end_key(&state);
        // Collected under the registry lock, compared (and dropped) after it: see
        // `with_registry`.
        let live: Vec<Arc<EndLocal>> =
            with_registry(|r| r.ends.iter().filter_map(Weak::upgrade).collect());
        let same = key.and_then(|key| live.into_iter().find(|e| end_key(&e.state) == Some(key)));
        match same {
            Some(local) => {
                local.claim()?;
                Ok(local)
            }
            None => EndLocal::make(state, rings, solo),
        }
    }

    /// The end's shared state.
    pub fn state(&self) -> &SharedRef<EndState> {
        &self.state
    }

    /// Marks the end as used by this process (one relaxed load when already claimed).
    ///
    /// # Errors
    /// [`RosterFull`] when the end's holders are full (this process may not use it).
    #[inline]
    pub fn claim(&self) -> Result<(), RosterFull> {
        if !self.claimed.load(Ordering::Relaxed) {
            self.claim_slow()?;
        }
        Ok(())
    }

    #[cold]
    fn claim_slow(&self) -> Result<(), RosterFull> {
        self.state.hold()?;
        self.state.inherited.leave();
        self.claimed.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Closes the queue for this process's puts (every handle sharing this hold).
    pub fn close_puts(&self) {
        self.puts_closed.store(true, Ordering::Release);
    }

    /// Whether this process closed the queue for its puts.
    #[inline]
    pub fn puts_closed(&self) -> bool {
        self.puts_closed.load(Ordering::Acquire)
    }

    /// Counts a record this process took from a queue. Called under the consumer lock, which
    /// serialises it with every other taker (so a plain load and store: no atomic add on the
    /// hot path).
    #[inline]
    pub fn note_taken(&self) {
        let n = self.tasks.taken.load(Ordering::Relaxed);
        self.tasks.taken.store(n.wrapping_add(1), Ordering::Relaxed);
    }

    /// Counts a task this process marked done.
    pub fn note_done(&self) {
        self.tasks.done.fetch_add(1, Ordering::Relaxed);
    }

    /// Tasks this process took and has not marked done (0 if it marked more done).
    pub fn tasks_in_hand(&self) -> u64 {
        let taken = self.tasks.taken.load(Ordering::Relaxed);
        taken.saturating_sub(self.tasks.done.load(Ordering::Relaxed))
    }

    /// What a sleeper on this end should stop with, if anything: the peer end gone (pipes), or
    /// every other process gone (queues).
    pub fn gone(&self) -> Option<Stop> {
        if self.solo {
            self.state.abandoned()
        } else {
            self.peer.as_deref().and_then(EndState::gone_as_peer)
        }
    }
}

impl EndLocal {
    /// This process leaves the end (both rosters); the last to leave closes it.
    fn leave(&self) {
        let state = &self.state;
        state.holders.leave();
        state.inherited.leave();
        // In the order of `peer_gone` (see there): a forked child claiming its inherited copy
        // right now is seen in one roster or the other.
        let nobody = !state.inherited.any_live_member()
            && !state.in_transit()
            && !state.holders.any_live_member()
            && state.holders.dead_member().is_none();
        if nobody {
            state.closed.store(1, Ordering::Release);
        }
        self.rings.iter().for_each(Ring::wake_all);
    }
}

impl Drop for EndLocal {
    fn drop(&mut self) {
        with_registry(|r| r.ends.retain(|w| w.strong_count() > 0));
        self.leave();
    }
}

/// Leaves every end this process holds or inherited, without dropping anything (see
/// [`shmproc_shm::leave_all`]): a fork child's copies of its parent's handles are never dropped.
fn leave_all_ends() {
    // Collected under the registry lock, left (and dropped) after it: see `with_registry`.
    let live: Vec<Arc<EndLocal>> =
        with_registry(|r| r.ends.iter().filter_map(Weak::upgrade).collect());
    live.iter().for_each(|end| end.leave());
}

/// The watcher's round (see `crate::watch`): checks the peer of every end of this process that
/// has a sleeper, raising the alarm and waking the pipe where it is gone. Whether any end had a
/// sleeper.
pub(crate) fn check_sleeping_ends() -> bool {
    // Collected under the registry lock, checked (and dropped) after it: see `with_registry`.
    let live: Vec<Arc<EndLocal>> =
        with_registry(|r| r.ends.iter().filter_map(Weak::upgrade).collect());
    let mut any = false;
    for end in live.iter().filter(|e| e.watch.has_sleepers()) {
        any = true;
        if end.gone().is_some() {
            end.watch.raise();
            end.rings.iter().for_each(Ring::wake_all);
        }
    }
    any
}

/// Which end `state` is, independent of where it is mapped: the segment file's device and
/// inode, and the end's index. `None` if the file cannot be inspected.
fn end_key(state: &SharedRef<EndState>) -> Option<(u64, u64, usize)> {
    use std::os::unix::fs::MetadataExt;
    let meta = state.segment().file().metadata().ok()?;
    Some((meta.dev(), meta.ino(), end_index(state)?))
}

/// Which end of its pipe `state` is (0 or 1): the ends' states open the segment, in order.
pub(crate) fn end_index(state: &SharedRef<EndState>) -> Option<usize> {
    let here = std::ptr::NonNull::from(&**state);
    (0..2).find(|&i| {
        state
            .segment()
            .ptr::<EndState>(i * std::mem::size_of::<EndState>(), 1)
            .is_ok_and(|p| p == here)
    })
}

/// Live ends of this process, for the fork handlers.
struct Registry {
    ends: Vec<Weak<EndLocal>>,
    /// Ends being handed to a child by a fork in progress, with their `acks` before it.
    forking: Vec<(Arc<EndLocal>, u32)>,
}

/// A spin lock rather than a `Mutex`: the fork handlers hold it across `fork`, and the child
/// releases it (its only thread is the one that took it).
struct RegistryCell {
    locked: AtomicBool,
    inner: UnsafeCell<Registry>,
}

// SAFETY: `inner` is only touched by the thread that holds `locked` (acquire/release pairs).
unsafe impl Sync for RegistryCell {}

static REGISTRY: RegistryCell = RegistryCell {
    locked: AtomicBool::new(false),
    inner: UnsafeCell::new(Registry {
        ends: Vec::new(),
        forking: Vec::new(),
    }),
};

fn lock_registry() {
    while REGISTRY
        .locked
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        std::thread::yield_now();
    }
}

fn unlock_registry() {
    REGISTRY.locked.store(false, Ordering::Release);
}

/// Runs `f` on the registry under its lock. `f` must not drop an `Arc<EndLocal>` that could be
/// the last one (its `Drop` takes the lock).
fn with_registry<R>(f: impl FnOnce(&mut Registry) -> R) -> R {
    lock_registry();
    // SAFETY: we hold the lock, so no other thread touches the registry until we release it.
    let r = f(unsafe { &mut *REGISTRY.inner.get() });
    unlock_registry();
    r
}

/// Takes the ends of a fork in progress out of the registry (lock held since `prepare`), then
/// releases the lock.
fn take_forking() -> Vec<(Arc<EndLocal>, u32)> {
    // SAFETY: the lock is held since `before_fork` by this very thread (in the child: by its
    // only thread, the copy of the forking one).
    let taken = std::mem::take(unsafe { &mut (*REGISTRY.inner.get()).forking });
    unlock_registry();
    taken
}

extern "C" fn before_fork() {
    lock_registry();
    // SAFETY: lock held (released in `after_fork_*`).
    let r = unsafe { &mut *REGISTRY.inner.get() };
    let live: Vec<_> = r.ends.iter().filter_map(Weak::upgrade).collect();
    r.forking = live
        .into_iter()
        .map(|e| {
            let acks = e.state.acks.load(Ordering::Acquire);
            (e, acks)
        })
        .collect();
}

extern "C" fn after_fork_parent() {
    let forking = take_forking();
    let deadline = Instant::now() + FORK_JOIN_WAIT;
    for (end, acks) in &forking {
        // The child bumps `acks` once joined; a failed fork (or a child killed at birth) is
        // waited out only up to the deadline.
        while end.state.acks.load(Ordering::Acquire) == *acks && Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(20));
        }
    }
}

extern "C" fn after_fork_child() {
    for (end, _) in take_forking() {
        // A full `inherited` leaves the child out: its copy then counts for nothing until its
        // first use, which joins `holders` (or fails, if those are full too).
        let _ = end.state.inherit();
        end.claimed.store(false, Ordering::Relaxed);
        // Closing is per process (Python's queue resets it after fork too).
        end.puts_closed.store(false, Ordering::Relaxed);
        end.tasks.taken.store(0, Ordering::Relaxed);
        end.tasks.done.store(0, Ordering::Relaxed);
        end.state.acks.fetch_add(1, Ordering::AcqRel);
    }
}

/// 0: not registered; `u32::MAX`: registered; otherwise the pid registering right now.
static HANDLERS: AtomicU32 = AtomicU32::new(0);

fn ensure_fork_handlers() {
    // The identity cache's own fork handler must run before ours in a child (handlers run in
    // registration order), so that joining there records the child, not the parent.
    shmproc_sync::process_identity();
    shmproc_shm::register_once(&HANDLERS, || {
        sys::at_fork(before_fork, after_fork_parent, after_fork_child).is_ok()
    });
}
