//! The children this process started (`Process::fork`, `Process::spawn`, pool workers): the
//! state a [`Process`](crate::Process) handle shares with this process's list of children, for
//! [`active_children`] and for stopping daemon children when their parent exits.
//!
//! A [`Child`] caches its exit status once reaped, whoever reaps it first (the handle's `join`,
//! `exit_code`, `active_children`, the daemon stopper), so every one of them sees the status.
//!
//! | a daemon child is stopped when …             | by                                          |
//! |----------------------------------------------|---------------------------------------------|
//! | its `Process` handle drops                   | the handle's `Drop` ([`stop`])              |
//! | its parent returns from `main` or calls      | [`stop_daemons`], run by                    |
//! | `std::process::exit`                         | [`shmproc_shm::leave_all`] at exit          |
//! | its parent (a fork child, a spawned entry)   | [`stop_daemons`], run by `leave_all` before |
//! | finishes                                     | the parent's `_exit`                        |
//! | its parent dies any other way (a signal)     | the child itself: it watches its parent     |
//! |                                              | (`owner_watch`) and dies with it (SIGKILL)  |
//!
//! Stopping is SIGTERM, up to [`GRACE`] to exit, then SIGKILL, then a bounded wait to reap it.
//!
//! The list is owned by one process: a fork child inherits a copy of it, which it drops unused
//! the first time it looks (so it never stops or lists its parent's children). Its lock is a
//! [`ForkLock`], not a `Mutex`, which another thread could hold at the moment of a fork,
//! leaving it locked forever in the child. Nobody blocks while holding it.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use shmproc_shm::{ForkLock, ForkLockGuard};

use crate::current::ProcessInfo;
use crate::sys;

/// How long a daemon child has to exit after SIGTERM before it gets SIGKILL.
pub(crate) const GRACE: Duration = Duration::from_millis(500);

/// How long to wait for a SIGKILLed child to be reapable (it normally takes microseconds).
const KILL_WAIT: Duration = Duration::from_secs(2);

/// Longest sleep between checks when the kernel has no pidfd to wait on.
const NAP: Duration = Duration::from_millis(1);

/// One child process, shared by its `Process` handle and this process's list of children.
#[derive(Debug)]
pub(crate) struct Child {
    pid: u32,
    name: String,
    daemon: bool,
    /// The process that started it: the only one that may reap or stop it.
    parent: u32,
    pidfd: Option<OwnedFd>,
    /// Set once the child has been reaped; also serialises reaping and signalling, so that
    /// without a pidfd a signal by pid never reaches a recycled pid.
    status: Mutex<Option<ExitStatus>>,
    /// `status` is set (readable without the lock, for pruning the list).
    reaped: AtomicBool,
}

impl Child {
    /// A child this process just started; listed for [`active_children`] (and, if `daemon`,
    /// to be stopped when this process exits).
    pub(crate) fn started(pid: u32, name: String, daemon: bool) -> Arc<Child> {
        let child = Arc::new(Child {
            pid,
            name,
            daemon,
            parent: std::process::id(),
            pidfd: sys::pidfd_open(pid),
            status: Mutex::new(None),
            reaped: AtomicBool::new(false),
        });
        let orphans = with_list(|children| {
            let (gone, orphans) = prune(children);
            children.push(child.clone());
            (orphans, gone)
        });
        // Reap children whose handles were dropped while they ran, as Python does on `start`.
        orphans.iter().for_each(|c| drop(c.poll_status()));
        if daemon {
            shmproc_shm::on_leave(stop_daemons);
        }
        child
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn is_daemon(&self) -> bool {
        self.daemon
    }

    /// The pidfd (readable once the child exited), if the kernel has them.
    pub(crate) fn pidfd_raw(&self) -> Option<RawFd> {
        self.pidfd.as_ref().map(std::os::fd::AsRawFd::as_raw_fd)
    }

    /// The status if already reaped (no system call).
    pub(crate) fn cached_status(&self) -> Option<ExitStatus> {
        *lock(&self.status)
    }

    /// Reaps the child if it has exited, without waiting; the status once reaped.
    pub(crate) fn poll_status(&self) -> io::Result<Option<ExitStatus>> {
        let mut status = lock(&self.status);
        if status.is_none() {
            *status = sys::try_reap(self.pid, self.pidfd.as_ref().map(AsFd::as_fd))?;
            if status.is_some() {
                self.reaped.store(true, Ordering::Release);
            }
        }
        Ok(*status)
    }

    /// Sends `signal` unless the child has been reaped.
    pub(crate) fn signal(&self, signal: i32) -> io::Result<()> {
        let status = lock(&self.status);
        if status.is_some() {
            return Ok(());
        }
        match &self.pidfd {
            // The pidfd names this very process, even once it is gone and its pid reused.
            Some(pidfd) => sys::pidfd_kill(pidfd.as_fd(), signal),
            // Not reaped yet (and we hold the reaping lock), so the pid cannot have been
            // recycled — unless someone else reaps our children (SIGCHLD ignored).
            None => sys::kill(self.pid, signal),
        }
    }

    /// Sleeps at most `left`, waking early when the child exits (where there are pidfds) or
    /// `also` becomes readable.
    pub(crate) fn nap(&self, left: Duration, also: Option<BorrowedFd<'_>>) -> io::Result<()> {
        match (&self.pidfd, also) {
            (Some(pidfd), also) => {
                sys::poll_fds(&[Some(pidfd.as_fd()), also], Some(left))?;
            }
            (None, Some(also)) => {
                sys::poll_fds(&[Some(also)], Some(left.min(NAP)))?;
            }
            (None, None) => std::thread::sleep(left.min(NAP)),
        }
        Ok(())
    }

    /// Waits until the child exits (and reaps it) or `deadline` passes.
    fn wait_exit(&self, deadline: Instant) -> io::Result<Option<ExitStatus>> {
        loop {
            if let Some(status) = self.poll_status()? {
                return Ok(Some(status));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.nap(left, None)?;
        }
    }

    /// Whether the child may still run: not reaped, or unknown (someone else reaps our
    /// children: SIGCHLD ignored) but then only with a pidfd, which is safe to signal.
    fn may_run(&self) -> bool {
        match self.poll_status() {
            Ok(status) => status.is_none(),
            Err(_) => self.pidfd.is_some(),
        }
    }

    fn is_ours(&self) -> bool {
        self.parent == std::process::id()
    }

    fn info(&self) -> ProcessInfo {
        ProcessInfo::new(self.pid, self.name.clone())
    }
}

/// Stops `children` (SIGTERM; SIGKILL for those still running after [`GRACE`]) and reaps them,
/// waiting a bounded time. Children of another process (copies a fork child inherited) and
/// children already reaped are left alone; errors are ignored (this runs in `Drop` and at exit).
pub(crate) fn stop(children: &[Arc<Child>]) {
    let ours: Vec<&Arc<Child>> = children.iter().filter(|c| c.is_ours()).collect();
    for (signal, wait) in [(sys::SIGTERM, GRACE), (sys::SIGKILL, KILL_WAIT)] {
        let running: Vec<_> = ours
            .iter()
            .filter(|c| c.may_run() && c.signal(signal).is_ok())
            .collect();
        let deadline = Instant::now() + wait;
        running.iter().for_each(|c| drop(c.wait_exit(deadline)));
    }
}

/// Stops this process's running daemon children: registered with [`shmproc_shm::on_leave`], so
/// it runs at a normal exit and before a fork child or spawned child `_exit`s.
fn stop_daemons() {
    // Bounded: at exit another thread may hold the lock for a moment; never hang the exit.
    let Some(daemons) = try_with_list(1000, |children| {
        let daemons = children
            .iter()
            .filter(|c| c.daemon && !c.reaped.load(Ordering::Acquire))
            .cloned()
            .collect::<Vec<_>>();
        (daemons, Vec::new())
    }) else {
        return;
    };
    stop(&daemons);
}

/// The children this process started through shmproc that are still running (Python's
/// `multiprocessing.active_children()`): forked and spawned processes, daemon or not, and pool
/// workers, whether or not their [`Process`](crate::Process) handle still exists. Like Python,
/// it reaps the children that have exited (their handles still report the exit status).
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use shmproc_process::{active_children, Process};
///
/// let p = Process::fork(|| std::thread::sleep(Duration::from_secs(30)))?;
/// assert!(active_children().iter().any(|c| c.pid == p.pid()));
/// p.kill()?;
/// p.join()?;
/// assert!(!active_children().iter().any(|c| c.pid == p.pid()));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn active_children() -> Vec<ProcessInfo> {
    let children = with_list(|children| {
        let (gone, _) = prune(children);
        (children.clone(), gone)
    });
    children
        .iter()
        .filter(|c| matches!(c.poll_status(), Ok(None)))
        .map(|c| c.info())
        .collect()
}

/// Removes the reaped children from the list; returns them (to be dropped after the lock is
/// released) and the running ones nobody else holds (whose handles were dropped).
fn prune(children: &mut Vec<Arc<Child>>) -> (Vec<Arc<Child>>, Vec<Arc<Child>>) {
    let (gone, kept) = std::mem::take(children)
        .into_iter()
        .partition(|c| c.reaped.load(Ordering::Acquire));
    *children = kept;
    let orphans = children
        .iter()
        .filter(|c| Arc::strong_count(c) == 1)
        .cloned()
        .collect();
    (gone, orphans)
}

/// This process's children, and the pid they belong to (see the module docs).
static LIST: ForkLock<(u32, Vec<Arc<Child>>)> = ForkLock::new((0, Vec::new()));

/// Runs `f` on this process's list under its lock, waiting for the lock as long as it takes
/// (nobody holds it for long); `f` returns a result and children to drop after unlocking.
fn with_list<R>(f: impl FnOnce(&mut Vec<Arc<Child>>) -> (R, Vec<Arc<Child>>)) -> R {
    run_locked(LIST.lock(), f)
}

/// Like [`with_list`], giving up (`None`) after `tries` attempts at the lock.
fn try_with_list<R>(
    tries: u32,
    f: impl FnOnce(&mut Vec<Arc<Child>>) -> (R, Vec<Arc<Child>>),
) -> Option<R> {
    LIST.lock_within(tries).map(|list| run_locked(list, f))
}

/// Adopts the list if it is a copy inherited from a parent (see the module docs), runs `f`,
/// unlocks, then drops what `f` handed back.
fn run_locked<R>(
    mut list: ForkLockGuard<(u32, Vec<Arc<Child>>)>,
    f: impl FnOnce(&mut Vec<Arc<Child>>) -> (R, Vec<Arc<Child>>),
) -> R {
    let (owner, children) = &mut *list;
    let me = std::process::id();
    // A fork child's copy of its parent's list: not ours to list or stop.
    let inherited = if *owner == me {
        Vec::new()
    } else {
        *owner = me;
        std::mem::take(children)
    };
    let (result, to_drop) = f(children);
    drop(list);
    drop((inherited, to_drop));
    result
}

/// Locks `mutex`, ignoring poisoning (what it guards stays consistent across a panic).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
