//! `Process::spawn`: run a registered entry in a fresh copy of this program, and get its result.

use std::io;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use crate::current::{current_process, PARENT_NAME_ENV};
use crate::entry::{decode_reply, encode_for, Entry};
use crate::process::{next_name, ResultLink, Took, Waited};
use crate::transport::{Channel, Frame};
use crate::worker::{job_head, Op, DISPATCH, SPAWN_ENV, WORKER_ENV};
use crate::{sys, Process, ProcessError};

/// Starts a pool worker: a fresh copy of this program (`/proc/self/exe`) that serves jobs on
/// the returned channel (see `worker::serve_jobs`), never runs `main`, and dies with this
/// process (see `owner_watch`).
pub(crate) fn start_child(name: &str) -> io::Result<(u32, Channel)> {
    start(name, true)
}

/// Starts a fresh copy of this program serving jobs on the returned channel; with
/// `dies_with_owner` (pool workers, daemons), the child is killed when this process dies.
fn start(name: &str, dies_with_owner: bool) -> io::Result<(u32, Channel)> {
    // Keep the before-main dispatcher linked into every program that can spawn.
    std::hint::black_box(&DISPATCH);
    let (ours, theirs) = Channel::pair()?;
    let worker = if dies_with_owner { "1" } else { "0" };
    let parent = current_process().name;
    let env = [
        (SPAWN_ENV, name),
        (WORKER_ENV, worker),
        (PARENT_NAME_ENV, &parent),
    ];
    let pid = sys::spawn_self(std::os::fd::AsFd::as_fd(&theirs), &env)?;
    Ok((pid, ours))
}

/// Sends a job; a child that is already gone is not an error here (its exit status tells why).
pub(crate) fn send_job(channel: &Channel, op: Op, key: &str, arg: &Frame) -> io::Result<()> {
    match channel.send(&[&job_head(op, key), &arg.bytes], &arg.fds) {
        Err(e) if is_gone(&e) => Ok(()),
        other => other,
    }
}

/// Whether a send failed only because the child is gone.
pub(crate) fn is_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
    )
}

impl<R: DeserializeOwned> Process<R> {
    /// Runs the registered entry `entry` with `arg` in a new process: a fresh copy of this
    /// program, which runs the entry before its `main` would start, sends the result back and
    /// exits. Works the same in binaries, examples, test and bench binaries; no setup code.
    ///
    /// Handles (`Value`, `Array`, the sync types, `Queue`, pipe ends) in `arg` are shared with
    /// the child: anonymous ones travel as file descriptors, named ones by name. The child is
    /// started before `arg` is serialized, so a pipe end in it is vouched for by the child
    /// until the child takes hold of it (see `Pipe`).
    ///
    /// # Examples
    /// ```
    /// #[shmproc::entry]
    /// fn square(n: u64) -> u64 {
    ///     n * n
    /// }
    ///
    /// let p = shmproc::Process::spawn(square, 7)?; // Process<u64>
    /// assert_eq!(p.join_result()?, 49);
    /// # Ok::<(), shmproc::ProcessError>(())
    /// ```
    ///
    /// # Errors
    /// [`ProcessError::Encode`] if `arg` cannot be serialized; [`ProcessError::Io`] if the OS
    /// cannot start the process.
    pub fn spawn<E: Entry<Ret = R>>(entry: E, arg: E::Arg) -> Result<Process<R>, ProcessError> {
        Process::spawn_as(next_name(), false, entry, arg)
    }

    /// `spawn` with a name, as a daemon or not (see [`crate::ProcessBuilder`]). A daemon
    /// child dies with this process, as pool workers do.
    pub(crate) fn spawn_as<E: Entry<Ret = R>>(
        name: String,
        daemon: bool,
        entry: E,
        arg: E::Arg,
    ) -> Result<Process<R>, ProcessError> {
        let _ = entry;
        // A key registered twice is refused here, before a child is started.
        crate::entry::check_registered(E::KEY)?;
        let (pid, channel) = start(&name, daemon)?;
        let process = Process::started_as(pid, name, daemon, ResultLink::Pending(channel));
        // Encoded for the child once it exists: pipe ends in `arg` register it as recipient.
        let arg = match encode_for(&arg, Some(pid)) {
            Ok(arg) => arg,
            Err(e) => {
                let _ = process.kill();
                let _ = process.join_timeout(Duration::from_secs(5));
                return Err(ProcessError::Encode(e));
            }
        };
        if let Some(channel) = process.channel() {
            send_job(channel, Op::Call, E::KEY, &arg)?;
            send_job(channel, Op::Exit, "", &Frame::default())?;
        }
        Ok(process)
    }

    /// Waits for the entry's return value (Python's `join()` + the target's result). The
    /// result may also have been read by an earlier [`join`](Process::join) and kept.
    ///
    /// # Errors
    /// [`ProcessError::Panicked`] with the panic message; [`ProcessError::Signaled`] (naming
    /// the signal) or [`ProcessError::Exited`] if the child died without a result — reported
    /// when the child dies, even if processes it started still hold its channel;
    /// [`ProcessError::ResultTaken`] on a second call. A forked process gives `Ok` when it
    /// exited with 0.
    pub fn join_result(&self) -> Result<R, ProcessError> {
        loop {
            match self.join_result_timeout(Duration::from_secs(3600)) {
                Err(ProcessError::Timeout) => continue,
                other => return other,
            }
        }
    }

    /// Like [`join_result`](Process::join_result), waiting at most `timeout`; on
    /// [`ProcessError::Timeout`] the result can still be waited for.
    ///
    /// # Errors
    /// As `join_result`, plus `Timeout`.
    pub fn join_result_timeout(&self, timeout: Duration) -> Result<R, ProcessError> {
        let deadline = Instant::now() + timeout;
        loop {
            // Status first: once the child is reaped, all it sent can be read right away.
            let status = self.poll_status()?;
            match self.take_reply(status.is_some()) {
                Took::Frame(reply) => {
                    // The child exits right after replying; reap it so no zombie stays behind.
                    let _ = self.wait_until(deadline, false);
                    return decode_reply(reply);
                }
                Took::Taken => return Err(ProcessError::ResultTaken),
                Took::Nothing => {
                    if let Some(status) = status {
                        return result_of_exit(status);
                    }
                }
            }
            if let Waited::TimedOut = self.wait_until(deadline, true)? {
                return Err(ProcessError::Timeout);
            }
        }
    }
}

/// The "result" of a process that sent none: `()` for a clean exit of a forked process.
fn result_of_exit<R: DeserializeOwned>(status: ExitStatus) -> Result<R, ProcessError> {
    if !status.success() {
        return Err(ProcessError::from_status(status));
    }
    // Only `()` decodes from nothing: a forked process's result.
    postcard::from_bytes(&[]).map_err(|_| {
        ProcessError::Failed("the process exited without sending its result".to_owned())
    })
}
