//! The error of spawning processes, collecting their results and running Pool tasks.

use std::{fmt, io};

/// Why a spawned process or a Pool task produced no result. Every variant says what happened
/// and what to do.
#[derive(Debug)]
#[non_exhaustive]
pub enum ProcessError {
    /// The operating system refused (out of processes, descriptors, memory, …).
    Io(io::Error),
    /// The argument could not be serialized (e.g. an anonymous handle inside something that is
    /// not sent to a process, or a type whose `Serialize` fails).
    Encode(String),
    /// The result could not be deserialized (e.g. a segment it refers to is gone).
    Decode(String),
    /// The entry panicked; the message is the panic's.
    Panicked {
        /// The panic message.
        message: String,
    },
    /// The process ended with a non-zero exit code before sending a result.
    Exited {
        /// The exit code.
        code: i32,
    },
    /// The process was killed by a signal before sending a result.
    Signaled {
        /// The signal number.
        signal: i32,
        /// Its name, e.g. `SIGKILL`.
        name: &'static str,
    },
    /// A Pool worker died (killed, `abort`, out of memory, …) while running this task. The
    /// pool replaced the worker; other tasks are unaffected.
    WorkerDied {
        /// The worker's pid.
        pid: u32,
        /// How it ended, e.g. `killed by SIGABRT`.
        how: String,
    },
    /// The child could not run the entry: it was not found in the child's binary, or the
    /// argument could not be decoded there.
    Failed(String),
    /// The timeout passed; the process or task is still running and can be waited for again.
    Timeout,
    /// The result was already returned by an earlier `join_result*` / `wait*` call.
    ResultTaken,
    /// The pool was shut down or terminated before the task finished (see `Pool`'s shutdown
    /// table), or a task was submitted after `shutdown`.
    ShutDown,
    /// A Pool worker's initializer (see the pool builder's `initializer`) panicked or failed;
    /// the message is its panic or error. The pool starts no more workers: every queued and
    /// later task fails with this error. Fix the initializer and build a new pool; the failed
    /// one can still be shut down.
    InitializerFailed(String),
    /// `Pool::shutdown_timeout` ran out of time: it terminated the workers, and `abandoned`
    /// tasks (queued or running) never finished; their waiters get [`ProcessError::ShutDown`].
    ShutdownTimeout {
        /// How many tasks were left unfinished.
        abandoned: usize,
    },
    /// The task was cancelled with `Task::cancel` before it started; it never ran.
    Cancelled,
    /// The pool's queue holds as many tasks as its `queue_bound` allows: `Pool::try_submit`
    /// found it full, or `Pool::submit_timeout` waited in vain. Nothing was submitted; retry
    /// later, or wait for some of the submitted tasks first.
    QueueFull,
    /// A broker pool's broker (Redis) could not be reached, failed, or lost the task: the
    /// message says which. Submitting fails at once; a task waiting for its result fails once
    /// the broker stays away past the pool's broker timeout. Calls work again when it is back;
    /// a failed task may or may not have run, so resubmit only what is safe to run twice.
    Broker(String),
}

impl ProcessError {
    /// The error for a process that ended with `status` without sending a result.
    pub(crate) fn from_status(status: std::process::ExitStatus) -> ProcessError {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (_, Some(signal)) => ProcessError::Signaled {
                signal,
                name: crate::sys::signal_name(signal),
            },
            (Some(code), _) => ProcessError::Exited { code },
            (None, None) => ProcessError::Failed(format!("process ended: {status}")),
        }
    }
}

impl fmt::Display for ProcessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcessError::Io(e) => write!(f, "process start or wait failed: {e}"),
            ProcessError::Encode(e) => write!(f, "could not serialize the argument: {e}"),
            ProcessError::Decode(e) => write!(f, "could not deserialize the result: {e}"),
            ProcessError::Panicked { message } => write!(f, "the entry panicked: {message}"),
            ProcessError::Exited { code } => write!(
                f,
                "the process exited with code {code} before sending a result"
            ),
            ProcessError::Signaled { signal, name } => write!(
                f,
                "the process was killed by signal {signal} ({name}) before sending a result"
            ),
            ProcessError::WorkerDied { pid, how } => write!(
                f,
                "pool worker {pid} died running this task ({how}); the pool replaced it, \
                 resubmit the task if it is safe to run again"
            ),
            ProcessError::Failed(e) => write!(f, "the child could not run the entry: {e}"),
            ProcessError::Timeout => f.write_str("timed out; the result can be waited for again"),
            ProcessError::ResultTaken => f.write_str("the result was already taken"),
            ProcessError::ShutDown => {
                f.write_str("the pool was shut down before the task finished")
            }
            ProcessError::InitializerFailed(e) => write!(
                f,
                "a pool worker's initializer failed ({e}); the pool runs no tasks: fix the \
                 initializer and build a new pool"
            ),
            ProcessError::ShutdownTimeout { abandoned } => write!(
                f,
                "the pool did not finish in time: its workers were terminated and {abandoned} \
                 unfinished task(s) abandoned"
            ),
            ProcessError::Cancelled => f.write_str("the task was cancelled before it started"),
            ProcessError::QueueFull => f.write_str(
                "the pool's queue is full (its queue_bound); nothing was submitted, retry later",
            ),
            ProcessError::Broker(e) => write!(f, "the task broker failed: {e}"),
        }
    }
}

impl std::error::Error for ProcessError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProcessError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for ProcessError {
    fn from(e: io::Error) -> Self {
        ProcessError::Io(e)
    }
}
