//! Who holds a lock: a 64-bit identity of the calling thread, cached per thread.
//!
//! Identity = the process's liveness token (low 31 bits; see [`shmproc_shm::liveness`]) | the
//! thread id (high 32 bits). The token is what the futex half of a lock word holds, and what
//! tells a dead owner from a live one without looking up pids — so it holds across PID
//! namespaces. The thread id tells threads of one process apart (deadlock detection, and a
//! thread of *this* process that exited holding a lock).

use std::cell::Cell;
use std::sync::atomic::AtomicU32;

use shmproc_shm::{liveness, sys};

/// Bits of the lock word that hold the owner's process token.
pub(crate) const TOKEN_MASK: u64 = (1 << 31) - 1;

thread_local! {
    static CACHED: Cell<u64> = const { Cell::new(0) };
}

/// Whether the after-fork hook is registered (see [`shmproc_shm::register_once`]).
static AT_FORK: AtomicU32 = AtomicU32::new(0);

extern "C" fn forget_after_fork() {
    // The child's only thread is a copy of the forking one: its cached identity is the parent's.
    CACHED.with(|c| c.set(0));
}

/// The calling process's identity (see [`shmproc_shm::liveness::current_identity`]).
pub fn current_process() -> u64 {
    liveness::current_identity()
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
    // The token first: taking it registers the liveness fork hook before ours.
    let token = u64::from(liveness::current_token()) & TOKEN_MASK;
    let id = token | u64::from(sys::gettid()) << 32;
    // Cache only once the hook that forgets the cache in a forked child is in place.
    if hook_registered() {
        CACHED.with(|c| c.set(id));
    }
    id
}

fn hook_registered() -> bool {
    shmproc_shm::register_once(&AT_FORK, || sys::at_fork_child(forget_after_fork).is_ok())
}

/// The identity of process `pid` of this PID namespace, from its pid and start time (for a
/// process whose own identity we cannot ask for, e.g. a child about to receive something).
pub fn process_identity_of(pid: u32) -> u64 {
    liveness::identity_of_pid(pid)
}

/// Whether the process identity `identity` (from [`current_process`] or
/// [`process_identity_of`]) belongs to a live process.
pub fn is_alive(identity: u64) -> bool {
    liveness::identity_alive(identity)
}

/// Whether the thread that owns lock word `word` still runs: its process is alive and, when
/// that is this process, the thread still exists here.
pub(crate) fn owner_alive(word: u64) -> bool {
    let token = (word & TOKEN_MASK) as u32;
    if token == liveness::current_token() {
        return sys::thread_exists(tid_of(word));
    }
    liveness::token_alive(token)
}

/// Just the thread id of a lock owner identity, for messages (in the owner's PID namespace).
pub(crate) fn tid_of(word: u64) -> u32 {
    (word >> 32) as u32
}
