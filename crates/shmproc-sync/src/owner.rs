//! Who holds a lock: a 64-bit identity of the calling thread, cached per thread.
//!
//! Identity = thread id (low 30 bits) | the thread's start time tag (high 32 bits). The tag lets
//! a waiter tell a dead owner whose id was recycled from a live one (pid reuse).

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use shmproc_shm::sys;

/// Bits of the lock word that hold the owner's thread id (pid_max is at most 2^22).
pub(crate) const TID_MASK: u64 = (1 << 30) - 1;

thread_local! {
    static CACHED: Cell<u64> = const { Cell::new(0) };
}

/// Whether the after-fork hook is registered: 0 no, [`REGISTERED`] yes, otherwise the pid of the
/// process registering it right now. Not a `Once`: a child forked while another thread was
/// inside a `Once` would wait on it forever.
static AT_FORK: AtomicU32 = AtomicU32::new(0);
const REGISTERED: u32 = u32::MAX;

/// The calling process's identity (pid | start tag << 32), 0 until computed.
static PROCESS: AtomicU64 = AtomicU64::new(0);

extern "C" fn forget_after_fork() {
    // The child's only thread is a copy of the forking one: its cached ids are the parent's.
    CACHED.with(|c| c.set(0));
    PROCESS.store(0, Ordering::Relaxed);
}

/// The calling process's identity: its pid (low bits) and start-time tag (high 32 bits), the
/// same encoding as a thread identity, so [`is_alive`] checks both.
pub fn current_process() -> u64 {
    let id = PROCESS.load(Ordering::Relaxed);
    if id != 0 {
        return id;
    }
    let id = process_identity_of(sys::getpid());
    if hook_registered() {
        PROCESS.store(id, Ordering::Relaxed);
    }
    id
}

/// The calling thread's owner identity (never 0).
#[inline]
pub(crate) fn current() -> u64 {
    let id = CACHED.with(Cell::get);
    if id != 0 {
        return id;
    }
    compute()
}

#[cold]
fn compute() -> u64 {
    let tid = u64::from(sys::gettid()) & TID_MASK;
    let tag = u64::from(sys::start_tag(tid as u32));
    let id = tid | (tag << 32);
    // Cache only once the hook that forgets the cache in a forked child is in place.
    if hook_registered() {
        CACHED.with(|c| c.set(id));
    }
    id
}

fn hook_registered() -> bool {
    let pid = sys::getpid();
    let state = AT_FORK.load(Ordering::Acquire);
    if state == REGISTERED {
        return true;
    }
    if state == pid {
        return false; // another thread of this process is registering it right now
    }
    // Nobody, or a registration orphaned by fork (its thread does not exist here): take over.
    if AT_FORK
        .compare_exchange(state, pid, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return false;
    }
    if sys::at_fork_child(forget_after_fork).is_ok() {
        AT_FORK.store(REGISTERED, Ordering::Release);
        true
    } else {
        // Only unsupported targets fail here, and they cannot fork either.
        AT_FORK.store(0, Ordering::Release);
        false
    }
}

/// The identity of process `pid` as [`current_process`] would compute it there. For a process
/// that no longer runs the start tag is 0, so the identity does not outlive that pid's reuse
/// (a zombie or a missing pid is dead to [`is_alive`]).
pub fn process_identity_of(pid: u32) -> u64 {
    let pid = u64::from(pid) & TID_MASK;
    pid | (u64::from(sys::start_tag(pid as u32)) << 32)
}

/// Whether the thread or process encoded in `identity` still runs (a recycled id or a zombie
/// counts as dead).
pub fn is_alive(identity: u64) -> bool {
    let word = identity;
    sys::is_alive((word & TID_MASK) as u32, (word >> 32) as u32)
}

/// Just the thread id of an identity, for messages.
pub(crate) fn tid_of(word: u64) -> u32 {
    (word & TID_MASK) as u32
}
