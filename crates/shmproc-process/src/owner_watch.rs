//! Pool workers die with their owner: the process that started them (its pid is the worker's
//! parent pid at start).
//!
//! An idle worker notices its owner's death as end-of-stream on its channel (only the owner
//! holds the other end: see `owner_ends`). A busy one is running an entry, so a small thread
//! watches a pidfd of the owner and SIGKILLs the worker when it becomes readable — at once,
//! whatever the entry is doing.
//!
//! Why not `PR_SET_PDEATHSIG`: the kernel sends that signal when the *thread* that started the
//! worker exits, not the process, so a pool created by a thread that then ends (a scoped
//! thread, a lazily initialised global) would lose the workers it started. It is used only
//! where the watcher cannot be set up (kernels before 5.3, no thread).
//!
//! The pidfd is opened first and the parent checked after: if the owner died before, the
//! worker was re-parented (the pid it knows may already name another process) and ends at once.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use crate::sys;

/// Arranges for this process to be killed when `owner`, its parent, dies. `false` if the owner
/// is gone already (the caller then exits).
pub(crate) fn die_with(owner: u32) -> bool {
    if let Some(pidfd) = sys::pidfd_open(owner) {
        // Still our parent now, so the pidfd names the owner and not a later user of its pid.
        if sys::parent_pid() != Some(owner) {
            return false;
        }
        let watcher = std::thread::Builder::new()
            .name("shmproc-owner-watch".into())
            .stack_size(64 * 1024)
            .spawn(move || watch(pidfd));
        if watcher.is_ok() {
            return true;
        }
    }
    // An error (no prctl) leaves end-of-stream as the only way to notice the owner's death.
    sys::die_with_parent(owner).unwrap_or(true)
}

/// Waits for the owner's exit, then kills this process.
fn watch(owner: OwnedFd) {
    loop {
        match sys::poll_fds(&[Some(owner.as_fd())], None) {
            Ok(ready) if ready[0] => break,
            Ok(_) => {} // interrupted
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    let _ = sys::kill(std::process::id(), sys::SIGKILL);
    sys::exit_now(1)
}
