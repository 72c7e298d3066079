//! Facts about the calling process: its pid and name, and the machine's CPU count.

use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

/// Name given to this process by `Process::fork`; null in the main process. An atomic pointer
/// (not a Mutex) so a forked child never waits on a lock another thread held at fork time.
static NAME: AtomicPtr<String> = AtomicPtr::new(std::ptr::null_mut());

#[allow(clippy::box_collection)] // a thin pointer, for the AtomicPtr
pub(crate) fn set_current_name(name: Box<String>) {
    // Leaked on purpose: one small string per process, read for the process's lifetime.
    NAME.store(Box::into_raw(name), Ordering::Release);
}

/// In a child of `Process::fork`: the pid of the process that forked it (0 elsewhere).
static FORKED_FROM: AtomicU32 = AtomicU32::new(0);

/// Records, in a fork child, which process forked it.
pub(crate) fn set_forked_from(parent: u32) {
    FORKED_FROM.store(parent, Ordering::Relaxed);
}

/// The process that forked this one, if this is a child of `Process::fork`.
pub(crate) fn forked_from() -> Option<u32> {
    match FORKED_FROM.load(Ordering::Relaxed) {
        0 => None,
        pid => Some(pid),
    }
}

/// Who the calling process is (Python's `multiprocessing.current_process()`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Process id.
    pub pid: u32,
    /// `MainProcess`, or the name of the `Process` that started this one.
    pub name: String,
}

/// The calling process's pid and name.
///
/// # Examples
/// ```
/// let me = shmproc_process::current_process();
/// assert_eq!(me.pid, std::process::id());
/// assert_eq!(me.name, "MainProcess");
/// ```
pub fn current_process() -> ProcessInfo {
    let ptr = NAME.load(Ordering::Acquire);
    let name = if ptr.is_null() {
        "MainProcess".to_owned()
    } else {
        // SAFETY: a non-null pointer came from Box::into_raw above and is never freed.
        unsafe { (*ptr).clone() }
    };
    ProcessInfo {
        pid: std::process::id(),
        name,
    }
}

/// Number of CPUs this process may run on (Python's `cpu_count()`); at least 1.
///
/// # Examples
/// ```
/// assert!(shmproc_process::cpu_count() >= 1);
/// ```
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
