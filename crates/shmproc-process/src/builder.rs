//! `Process::builder()`: a child with a chosen name, or a daemon (Python's
//! `Process(name=..., daemon=True)`).

use std::io;

use crate::entry::Entry;
use crate::process::next_name;
use crate::{Process, ProcessError};

/// Options for starting a child process, then [`fork`](ProcessBuilder::fork) or
/// [`spawn`](ProcessBuilder::spawn) (Python's `Process(name=..., daemon=...)`). Made by
/// [`Process::builder`].
///
/// # Examples
/// ```
/// use shmproc_process::{current_process, Process};
///
/// let p = Process::builder()
///     .name("worker-1")
///     .fork(|| assert_eq!(current_process().name, "worker-1"))?;
/// assert_eq!(p.name(), "worker-1");
/// assert!(p.join()?.success());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
#[must_use = "a builder starts nothing until `fork` or `spawn` is called"]
pub struct ProcessBuilder {
    name: Option<String>,
    daemon: bool,
}

impl Process<()> {
    /// Options for a child process: a name, whether it is a daemon (see [`ProcessBuilder`]).
    ///
    /// # Examples
    /// ```
    /// use shmproc_process::Process;
    ///
    /// let p = Process::builder().daemon(true).fork(|| {})?;
    /// assert!(p.is_daemon());
    /// assert!(p.join()?.success());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn builder() -> ProcessBuilder {
        ProcessBuilder::default()
    }
}

impl ProcessBuilder {
    /// The child's name, seen as [`Process::name`] and, in the child, as
    /// [`current_process`](crate::current_process)`().name` (default: `Process-N`).
    ///
    /// # Examples
    /// ```
    /// let p = shmproc_process::Process::builder().name("saver").fork(|| {})?;
    /// assert_eq!(p.name(), "saver");
    /// # p.join()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> ProcessBuilder {
        self.name = Some(name.into());
        self
    }

    /// Whether the child is a daemon (default: no). A daemon child is stopped — SIGTERM, then
    /// SIGKILL if it still runs after half a second, then reaped — when its [`Process`] handle
    /// drops, and when this process exits normally (returns from `main`, calls
    /// `std::process::exit`, returns from a `Process::fork` closure or finishes a spawned
    /// entry). If this process dies any other way (a signal), the daemon notices and kills
    /// itself, as pool workers do. Dropping the handle may thus wait up to a few seconds (and
    /// moving it into a [`Process::fork`] closure drops it here: the daemon is stopped).
    ///
    /// Unlike Python, a daemon may start children of its own: its daemons and pool workers die
    /// with it, however it ends; its other children live on, as any process's do.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use shmproc_process::Process;
    ///
    /// let p = Process::builder()
    ///     .daemon(true)
    ///     .fork(|| std::thread::sleep(Duration::from_secs(60)))?;
    /// let pid = p.pid();
    /// drop(p); // stopped and reaped
    /// assert!(!shmproc_process::active_children().iter().any(|c| c.pid == pid));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn daemon(mut self, daemon: bool) -> ProcessBuilder {
        self.daemon = daemon;
        self
    }

    /// Forks with these options: as [`Process::fork`].
    ///
    /// # Errors
    /// As [`Process::fork`].
    ///
    /// # Examples
    /// ```
    /// let p = shmproc_process::Process::builder().name("one").fork(|| println!("hi"))?;
    /// assert!(p.join()?.success());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn fork<F: FnOnce() + Send + 'static>(self, f: F) -> io::Result<Process> {
        let name = self.name.unwrap_or_else(next_name);
        Process::fork_as(name, self.daemon, f)
    }

    /// Spawns the registered entry `entry` with these options: as [`Process::spawn`].
    ///
    /// # Errors
    /// As [`Process::spawn`].
    ///
    /// # Examples
    /// ```
    /// #[shmproc::entry]
    /// fn my_name(_: ()) -> String {
    ///     shmproc::current_process().name
    /// }
    ///
    /// let p = shmproc::Process::builder().name("namer").spawn(my_name, ())?;
    /// assert_eq!(p.join_result()?, "namer");
    /// # Ok::<(), shmproc::ProcessError>(())
    /// ```
    pub fn spawn<E: Entry>(self, entry: E, arg: E::Arg) -> Result<Process<E::Ret>, ProcessError> {
        let name = self.name.unwrap_or_else(next_name);
        Process::spawn_as(name, self.daemon, entry, arg)
    }
}
