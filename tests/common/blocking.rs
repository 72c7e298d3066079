//! Bounded blocking for tests: run a blocking call where a watchdog bounds it, and tell when a
//! thread really sleeps.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use shmproc::Process;

/// How long a blocking call may take before the test calls it hung.
pub const WATCHDOG: Duration = Duration::from_secs(10);

pub fn gettid() -> i32 {
    // SAFETY: gettid takes no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// Waits (bounded) until thread `tid` of process `pid` is inside a futex system call, i.e. it
/// has gone to sleep. Where `/proc/<pid>/task/<tid>/syscall` cannot be read, pauses 200 ms
/// instead.
pub fn wait_asleep(pid: u32, tid: i32) {
    let path = format!("/proc/{pid}/task/{tid}/syscall");
    let futex = libc::SYS_futex.to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match std::fs::read_to_string(&path) {
            Ok(s) if s.split_whitespace().next() == Some(futex.as_str()) => return,
            Ok(_) => {}
            Err(_) => {
                std::thread::sleep(Duration::from_millis(200));
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "thread {tid} of process {pid} never went to sleep"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A blocking call running in a thread of this process, awaited under the watchdog.
pub struct Blocked<T> {
    pub result: mpsc::Receiver<T>,
    tid: i32,
}

pub fn block_in_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Blocked<T> {
    let (tid_tx, tid_rx) = mpsc::channel();
    let (tx, result) = mpsc::channel();
    std::thread::spawn(move || {
        tid_tx.send(gettid()).unwrap();
        let _ = tx.send(f());
    });
    Blocked {
        result,
        tid: tid_rx.recv().unwrap(),
    }
}

impl<T> Blocked<T> {
    /// Waits until the thread sleeps in the blocking call.
    pub fn wait_asleep(&self) {
        wait_asleep(std::process::id(), self.tid);
    }

    /// Whether the call is still blocked.
    pub fn still_blocked(&self) -> bool {
        matches!(self.result.try_recv(), Err(mpsc::TryRecvError::Empty))
    }

    /// The call's result; fails the test if it is still blocked after [`WATCHDOG`].
    pub fn result(self, what: &str) -> T {
        match self.result.recv_timeout(WATCHDOG) {
            Ok(r) => r,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("{what}: still blocked after {WATCHDOG:?} (a lost wake-up)")
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: the thread panicked"),
        }
    }
}

/// Joins `child`; fails the test (killing it) if it has not ended after [`WATCHDOG`].
pub fn join_bounded(child: &Process, what: &str) -> ExitStatus {
    match child.join_timeout(WATCHDOG).unwrap() {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.join();
            panic!(
                "{what}: child {} still running after {WATCHDOG:?}",
                child.pid()
            );
        }
    }
}

pub fn assert_aborted(status: ExitStatus) {
    assert_eq!(status.signal(), Some(libc::SIGABRT), "status: {status}");
}
