//! Facts about the calling process: its pid and name, its parent (if shmproc started it), and
//! the machine's CPU count.
//!
//! | this process was started by …       | its parent is recorded by                         |
//! |-------------------------------------|---------------------------------------------------|
//! | `Process::fork` (also pool workers) | the fork child, before the closure runs           |
//! | `Process::spawn` (also pool workers)| the child, before `main` (pid: the channel's      |
//! |                                     | creator, checked to be its parent; name: from     |
//! |                                     | [`PARENT_NAME_ENV`])                              |
//! | anything else                       | nobody: [`parent_process`] is `None`              |

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, Ordering};

/// Name given to this process by `Process::fork`; null in the main process. An atomic pointer
/// (not a Mutex) so a forked child never waits on a lock another thread held at fork time.
static NAME: AtomicPtr<String> = AtomicPtr::new(std::ptr::null_mut());

#[allow(clippy::box_collection)] // a thin pointer, for the AtomicPtr
pub(crate) fn set_current_name(name: Box<String>) {
    // Leaked on purpose: one small string per process, read for the process's lifetime.
    NAME.store(Box::into_raw(name), Ordering::Release);
}

/// Environment variable with which a spawned child learns its parent's name.
pub(crate) const PARENT_NAME_ENV: &str = "SHMPROC_PARENT_NAME";

/// The pid of the process that started this one through shmproc (0: none).
static PARENT: AtomicU32 = AtomicU32::new(0);
/// Whether [`PARENT`] forked this process (rather than spawned it).
static FORKED: AtomicBool = AtomicBool::new(false);
/// The name of [`PARENT`]; null if none. An atomic pointer, as [`NAME`].
static PARENT_NAME: AtomicPtr<String> = AtomicPtr::new(std::ptr::null_mut());

#[allow(clippy::box_collection)] // a thin pointer, for the AtomicPtr
fn set_parent(pid: u32, name: Box<String>, forked: bool) {
    // Leaked on purpose, as in `set_current_name`.
    PARENT_NAME.store(Box::into_raw(name), Ordering::Release);
    FORKED.store(forked, Ordering::Relaxed);
    PARENT.store(pid, Ordering::Release);
}

/// Records, in a fork child, which process forked it: its pid and name (boxed before the
/// fork, so the child allocates nothing here).
#[allow(clippy::box_collection)] // see `set_parent`
pub(crate) fn set_forked_from(parent: u32, name: Box<String>) {
    set_parent(parent, name, true);
}

/// Records, in a spawned child before `main`, that `parent` started it; takes the parent's name
/// from [`PARENT_NAME_ENV`] and removes it from the environment (not inherited further).
pub(crate) fn set_spawned_by(parent: u32) {
    let name = std::env::var(PARENT_NAME_ENV).unwrap_or_else(|_| "MainProcess".to_owned());
    std::env::remove_var(PARENT_NAME_ENV);
    set_parent(parent, Box::new(name), false);
}

/// The process that forked this one, if this is a child of `Process::fork`.
pub(crate) fn forked_from() -> Option<u32> {
    match PARENT.load(Ordering::Acquire) {
        0 => None,
        pid => FORKED.load(Ordering::Relaxed).then_some(pid),
    }
}

/// Reads a name stored by `set_current_name` or `set_parent`.
fn read_name(name: &AtomicPtr<String>) -> Option<String> {
    let ptr = name.load(Ordering::Acquire);
    // SAFETY: a non-null pointer came from Box::into_raw and is never freed.
    (!ptr.is_null()).then(|| unsafe { (*ptr).clone() })
}

/// A process's pid and name: who the calling process is ([`current_process`]), its parent
/// ([`parent_process`]), its children ([`active_children`](crate::active_children)).
///
/// Non-exhaustive: more fields may come, so it is read, not built, outside this crate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessInfo {
    /// Process id.
    pub pid: u32,
    /// `MainProcess` for a process shmproc did not start; otherwise the name of the `Process`
    /// that started it (`Process-N` unless chosen).
    pub name: String,
}

impl ProcessInfo {
    pub(crate) fn new(pid: u32, name: String) -> ProcessInfo {
        ProcessInfo { pid, name }
    }
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
    let name = read_name(&NAME).unwrap_or_else(|| "MainProcess".to_owned());
    ProcessInfo::new(std::process::id(), name)
}

/// The process that started this one through shmproc — with [`Process::fork`](crate::Process),
/// [`Process::spawn`](crate::Process::spawn) or as a pool worker — as it was then (Python's
/// `multiprocessing.parent_process()`); `None` in a process shmproc did not start. The parent
/// may have exited since.
///
/// # Examples
/// ```
/// use shmproc_process::{current_process, parent_process, Process};
///
/// assert_eq!(parent_process(), None); // not started by shmproc
/// let me = current_process().pid;
/// let p = Process::fork(move || {
///     let parent = parent_process().expect("forked by shmproc");
///     assert_eq!((parent.pid, parent.name.as_str()), (me, "MainProcess"));
/// })?;
/// assert!(p.join()?.success());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn parent_process() -> Option<ProcessInfo> {
    match PARENT.load(Ordering::Acquire) {
        0 => None,
        pid => Some(ProcessInfo::new(pid, read_name(&PARENT_NAME)?)),
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
