//! The children of a trial: forked with a status slot they report their own faults in, one of
//! them SIGKILLed at a random moment, all waited for with a deadline; and SIGKILL for pool
//! workers through a pidfd.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use shmproc::{Process, SegmentError};

use super::harness::{Fault, Ledger, Rng};
use super::tally::{Problem, Trial};

/// Latest moment of the kill, after the children were started.
const MAX_KILL_DELAY: Duration = Duration::from_millis(20);

/// What a child reported about itself (in its status slot).
const RUNNING: u64 = 0;
const DONE: u64 = 1;
const HUNG: u64 = 2;
const FAILED: u64 = 3;

/// How one child of a trial ended.
#[derive(Debug)]
pub(crate) struct End {
    /// It was the trial's victim and died of the SIGKILL.
    pub(crate) killed: bool,
}

/// The children of one trial, the planned kill, and their status slots.
pub(crate) struct Kids {
    procs: Vec<(Process, &'static str)>,
    status: Ledger,
    label: String,
    strike_at: Option<Instant>,
    victim: AtomicUsize,
    struck: AtomicBool,
}

impl Kids {
    /// Room for up to `max` children.
    pub(crate) fn new(t: &Trial<'_>, max: usize) -> Result<Kids, SegmentError> {
        Ok(Kids {
            procs: Vec::with_capacity(max),
            status: Ledger::new(max)?,
            label: format!("trial {} ({})", t.number, t.scenario),
            strike_at: None,
            victim: AtomicUsize::new(usize::MAX),
            struck: AtomicBool::new(false),
        })
    }

    /// Forks a child running `work`; it writes how that went to its status slot and leaves.
    pub(crate) fn fork(
        &mut self,
        role: &'static str,
        work: impl FnOnce() -> Result<(), Fault> + Send + 'static,
    ) -> std::io::Result<usize> {
        let i = self.procs.len();
        let status = self.status.clone();
        let label = self.label.clone();
        let p = Process::fork(move || {
            let code = match work() {
                Ok(()) => DONE,
                Err(fault) => {
                    eprintln!("shmproc chaos: {label}: {role} #{i}: {fault}");
                    match fault {
                        Fault::Hang(_) => HUNG,
                        Fault::Bad(_) => FAILED,
                    }
                }
            };
            status.set(i, code);
        })?;
        self.procs.push((p, role));
        Ok(i)
    }

    pub(crate) fn len(&self) -> usize {
        self.procs.len()
    }

    /// Plans the kill: one of `candidates` (all children if empty), 0–20 ms from now.
    pub(crate) fn arm(&mut self, rng: &mut Rng, candidates: &[usize]) {
        let all: Vec<usize> = (0..self.procs.len()).collect();
        let from = if candidates.is_empty() {
            &all
        } else {
            candidates
        };
        self.victim.store(rng.pick(from), Ordering::Relaxed);
        let delay = rng.range(0, MAX_KILL_DELAY.as_micros() as u64);
        self.strike_at = Some(Instant::now() + Duration::from_micros(delay));
    }

    /// The child chosen to be killed, if the kill is planned.
    pub(crate) fn victim(&self) -> Option<usize> {
        Some(self.victim.load(Ordering::Relaxed)).filter(|&v| v != usize::MAX)
    }

    /// Kills the victim if its moment has come; returns whether the kill is done.
    pub(crate) fn strike_if_due(&self) -> bool {
        match self.strike_at {
            Some(at) if Instant::now() >= at => {
                self.strike_now();
                true
            }
            Some(_) => self.struck.load(Ordering::Relaxed),
            None => true,
        }
    }

    /// Sleeps until the planned moment, then kills the victim.
    pub(crate) fn strike(&self) {
        if let Some(at) = self.strike_at {
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            self.strike_now();
        }
    }

    fn strike_now(&self) {
        if !self.struck.swap(true, Ordering::Relaxed) {
            let v = self.victim.load(Ordering::Relaxed);
            if let Some((p, _)) = self.procs.get(v) {
                let _ = p.kill();
            }
        }
    }

    /// Whether child `i` has exited (without waiting).
    pub(crate) fn exited(&self, i: usize) -> bool {
        !self.procs[i].0.is_alive()
    }

    /// Waits (until `deadline`) for child `i`; `false` if it still runs.
    pub(crate) fn wait(&self, i: usize, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        matches!(self.procs[i].0.join_timeout(left), Ok(Some(_)))
    }

    /// Waits for every child until `deadline`, reports hangs and faults, counts the kill.
    pub(crate) fn finish(&self, t: &mut Trial<'_>, deadline: Instant) -> Vec<End> {
        self.strike();
        let victim = self.victim.load(Ordering::Relaxed);
        let mut ends = Vec::with_capacity(self.procs.len());
        for (i, (p, role)) in self.procs.iter().enumerate() {
            let left = deadline.saturating_duration_since(Instant::now());
            let status = match p.join_timeout(left) {
                Ok(Some(status)) => Some(status),
                Ok(None) => {
                    t.problem(
                        Problem::Hang,
                        format!(
                            "{role} #{i} (pid {}) still running after the trial",
                            p.pid()
                        ),
                    );
                    self.reap(i);
                    None
                }
                Err(e) => {
                    t.problem(Problem::Unexpected, format!("joining {role} #{i}: {e}"));
                    None
                }
            };
            let killed = i == victim && status.is_some_and(|s| s.signal() == Some(libc::SIGKILL));
            if killed {
                t.counts.kills += 1;
            }
            match self.status.get(i) {
                HUNG => t.problem(Problem::Hang, format!("{role} #{i} timed out (see stderr)")),
                FAILED => t.problem(
                    Problem::Unexpected,
                    format!("{role} #{i} failed (see stderr)"),
                ),
                RUNNING | DONE if killed || status.is_none() => {}
                RUNNING => t.problem(
                    Problem::Unexpected,
                    format!("{role} #{i} ended without reporting: {}", describe(status)),
                ),
                _ if !status.is_some_and(|s| s.success()) => t.problem(
                    Problem::Unexpected,
                    format!(
                        "{role} #{i} reported success but ended {}",
                        describe(status)
                    ),
                ),
                _ => {}
            }
            ends.push(End { killed });
        }
        ends
    }

    /// Kills a hung child (not counted as a chaos kill: its status is never looked at).
    fn reap(&self, i: usize) {
        let p = &self.procs[i].0;
        let _ = p.kill();
        let _ = p.join_timeout(Duration::from_secs(1));
    }
}

impl Drop for Kids {
    /// No child outlives its trial, whatever path the scenario took.
    fn drop(&mut self) {
        for (p, _) in &self.procs {
            if p.is_alive() {
                let _ = p.kill();
                let _ = p.join_timeout(Duration::from_secs(1));
            }
        }
    }
}

fn describe(status: Option<ExitStatus>) -> String {
    status.map_or_else(|| "unknown".to_owned(), |s| s.to_string())
}

/// Sends SIGKILL to `pid` if it is a child of this process (pool workers): through a pidfd,
/// after checking the parent, so a recycled pid is never hit.
pub(crate) fn kill_own_child(pid: u32) -> bool {
    let Ok(raw_pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: pidfd_open reads no memory; it returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, raw_pid, 0) };
    if fd < 0 {
        return false;
    }
    // SAFETY: `fd` was just returned by pidfd_open and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    if parent_of(pid) != Some(std::process::id()) {
        return false;
    }
    // SAFETY: a valid pidfd, a signal number, no siginfo (null) and no flags.
    let sent = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    sent == 0
}

/// SIGKILLs every child of this process (when a stuck run is abandoned).
pub(crate) fn kill_all_children() {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in dir.flatten() {
        if let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
            kill_own_child(pid);
        }
    }
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// How many of a trial's children died of its SIGKILL.
pub(crate) fn killed(ends: &[End]) -> u64 {
    ends.iter().filter(|e| e.killed).count() as u64
}
