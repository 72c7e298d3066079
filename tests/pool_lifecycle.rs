//! Pool worker lifecycle and the shared-memory task link: initializers (also in replacement
//! workers), a failing initializer, workers retired after N tasks, a worker killed mid-task,
//! large results streamed through the pipe, results carrying handles (descriptors on the
//! socket), and fire-and-forget tasks collected by the manager. Every wait is bounded.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use shmproc::{Pool, ProcessError, Task, Value, WorkerKind};

const WATCHDOG: Duration = Duration::from_secs(20);

static TAG: AtomicU64 = AtomicU64::new(0);
static INIT_RUNS: AtomicU32 = AtomicU32::new(0);

/// The initializer: sets this worker's tag.
#[shmproc::entry]
fn set_tag(tag: u64) {
    INIT_RUNS.fetch_add(1, Ordering::Relaxed);
    TAG.store(tag, Ordering::Relaxed);
}

/// What a task sees: (worker pid, tag, how often the initializer ran here).
#[shmproc::entry]
fn read_tag() -> (u32, u64, u32) {
    (
        std::process::id(),
        TAG.load(Ordering::Relaxed),
        INIT_RUNS.load(Ordering::Relaxed),
    )
}

/// An initializer that counts its runs, then panics.
#[shmproc::entry]
fn failing_init(runs: Value<u32>) {
    *runs.lock().unwrap() += 1;
    panic!("no database here");
}

#[shmproc::entry]
fn square(n: u64) -> u64 {
    n * n
}

#[shmproc::entry]
fn pid_and_square(n: u64) -> (u32, u64) {
    (std::process::id(), n * n)
}

/// Records its worker's pid, then never finishes on its own.
#[shmproc::entry]
fn stuck(pid: Value<u32>) -> u64 {
    pid.set(std::process::id()).unwrap();
    thread::sleep(Duration::from_secs(3600));
    0
}

/// `len` bytes of a pattern.
#[shmproc::entry]
fn big(len: usize) -> Vec<u8> {
    pattern(len)
}

/// The sum of `bytes` (a large argument).
#[shmproc::entry]
fn sum_bytes(bytes: Vec<u8>) -> u64 {
    bytes.iter().map(|&b| u64::from(b)).sum()
}

/// A new anonymous value made in the worker.
#[shmproc::entry]
fn make_value(n: u64) -> Value<u64> {
    Value::new(n).unwrap()
}

#[shmproc::entry]
fn add_to((total, n): (Value<u64>, u64)) {
    *total.lock().unwrap() += n;
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn both_kinds() -> [WorkerKind; 2] {
    [WorkerKind::Spawned, WorkerKind::Forked]
}

/// Waits (bounded) until the manager has completed `task` with nobody waiting on it.
fn wait_ready<R: serde::de::DeserializeOwned>(task: &Task<R>) {
    let deadline = Instant::now() + WATCHDOG;
    while !task.is_ready() {
        assert!(Instant::now() < deadline, "the task never completed");
        thread::sleep(Duration::from_millis(1));
    }
}

fn wait_bounded<R: serde::de::DeserializeOwned>(task: &Task<R>) -> Result<R, ProcessError> {
    task.wait_timeout(WATCHDOG)
}

#[test]
fn every_worker_runs_the_initializer_once_before_its_first_task() {
    for kind in both_kinds() {
        // Retiring workers after 2 tasks makes replacements, which must run it too.
        let pool = Pool::builder()
            .workers(2)
            .kind(kind)
            .initializer(set_tag, 42)
            .max_tasks_per_child(2)
            .build()
            .unwrap();
        let tasks: Vec<_> = (0..12)
            .map(|_| pool.submit(read_tag, ()).unwrap())
            .collect();
        let mut pids = HashSet::new();
        for task in &tasks {
            let (pid, tag, runs) = wait_bounded(task).unwrap();
            assert_eq!((tag, runs), (42, 1), "worker {pid} ({kind:?})");
            pids.insert(pid);
        }
        assert!(pids.len() >= 6, "{kind:?}: only {} workers", pids.len());
        pool.shutdown().unwrap();
    }
}

#[test]
fn a_failing_initializer_fails_tasks_clearly_and_starts_no_more_workers() {
    let runs = Value::new(0u32).unwrap();
    let pool = Pool::builder()
        .workers(2)
        .initializer(failing_init, runs.clone())
        .build()
        .unwrap();
    let tasks: Vec<_> = (0..4).map(|n| pool.submit(square, n).unwrap()).collect();
    for task in &tasks {
        match wait_bounded(task) {
            Err(ProcessError::InitializerFailed(msg)) => {
                assert!(msg.contains("no database here"), "{msg}")
            }
            other => panic!("expected InitializerFailed, got {other:?}"),
        }
    }
    // Later tasks fail at once, and no worker is started to retry.
    match pool.submit(square, 5).unwrap().wait_timeout(WATCHDOG) {
        Err(ProcessError::InitializerFailed(_)) => {}
        other => panic!("expected InitializerFailed, got {other:?}"),
    }
    thread::sleep(Duration::from_millis(200));
    assert!(
        runs.get().unwrap() <= 2,
        "{} initializer runs",
        runs.get().unwrap()
    );
    pool.shutdown_timeout(WATCHDOG).unwrap();
}

#[test]
fn max_tasks_per_child_replaces_workers_and_loses_nothing() {
    for kind in both_kinds() {
        let pool = Pool::builder()
            .workers(2)
            .kind(kind)
            .max_tasks_per_child(3)
            .build()
            .unwrap();
        // Submitted all at once (the manager collects most replies) ...
        let tasks: Vec<_> = (0..30)
            .map(|n| pool.submit(pid_and_square, n).unwrap())
            .collect();
        let mut pids = HashSet::new();
        for (n, task) in (0..30u64).zip(&tasks) {
            let (pid, sq) = wait_bounded(task).unwrap();
            assert_eq!(sq, n * n);
            pids.insert(pid);
        }
        assert!(
            pids.len() >= 10,
            "{kind:?}: {} distinct workers",
            pids.len()
        );
        // ... and one by one (the waiter takes each reply).
        let mut pids = HashSet::new();
        for n in 0..30u64 {
            let (pid, sq) = wait_bounded(&pool.submit(pid_and_square, n).unwrap()).unwrap();
            assert_eq!(sq, n * n);
            pids.insert(pid);
        }
        assert!(
            pids.len() >= 10,
            "{kind:?}: {} distinct workers",
            pids.len()
        );
        assert_eq!(pool.map(square, 0..100).unwrap()[99], 99 * 99);
        pool.shutdown().unwrap();
    }
}

#[test]
fn a_worker_killed_mid_task_fails_it_with_worker_died_and_the_pool_goes_on() {
    for kind in both_kinds() {
        let pool = Pool::with_kind(2, kind).unwrap();
        let pid = Value::new(0u32).unwrap();
        let task = pool.submit(stuck, pid.clone()).unwrap();
        let waiter = thread::spawn(move || task.wait_timeout(WATCHDOG));
        let deadline = Instant::now() + WATCHDOG;
        while pid.get().unwrap() == 0 {
            assert!(Instant::now() < deadline, "the task never started");
            thread::sleep(Duration::from_millis(1));
        }
        let worker = pid.get().unwrap();
        // SAFETY: plain syscall on the pool's own worker, which is stuck (not reaped).
        assert_eq!(unsafe { libc::kill(worker as i32, libc::SIGKILL) }, 0);
        match waiter.join().unwrap() {
            Err(ProcessError::WorkerDied { pid, how }) => {
                assert_eq!(pid, worker);
                assert!(how.contains("SIGKILL"), "{how}");
            }
            other => panic!("expected WorkerDied, got {other:?}"),
        }
        let results = pool.map(square, 0..50).unwrap();
        assert_eq!(results[49], 49 * 49);
        pool.shutdown().unwrap();
    }
}

#[test]
fn large_results_and_arguments_cross_the_pipe_intact() {
    let pool = Pool::new(2).unwrap();
    for len in [4 << 20, 9 << 20] {
        // A waiter takes it ...
        let got = wait_bounded(&pool.submit(big, len).unwrap()).unwrap();
        assert!(got == pattern(len), "a {len}-byte result was altered");
        // ... or the manager does, nobody waiting when it is sent.
        let task = pool.submit(big, len).unwrap();
        wait_ready(&task);
        assert!(task.wait().unwrap() == pattern(len));
    }
    let arg = pattern(8 << 20);
    let expected: u64 = arg.iter().map(|&b| u64::from(b)).sum();
    assert_eq!(
        wait_bounded(&pool.submit(sum_bytes, arg).unwrap()).unwrap(),
        expected
    );
    pool.shutdown().unwrap();
}

#[test]
fn results_carrying_handles_arrive_with_their_descriptors() {
    for kind in both_kinds() {
        let pool = Pool::with_kind(2, kind).unwrap();
        let value = wait_bounded(&pool.submit(make_value, 7).unwrap()).unwrap();
        assert_eq!(value.get().unwrap(), 7);
        let task = pool.submit(make_value, 8).unwrap();
        wait_ready(&task);
        assert_eq!(task.wait().unwrap().get().unwrap(), 8);
        let tasks: Vec<_> = (0..20)
            .map(|n| pool.submit(make_value, n).unwrap())
            .collect();
        for (n, task) in (0..20).zip(tasks) {
            assert_eq!(task.wait_timeout(WATCHDOG).unwrap().get().unwrap(), n);
        }
        pool.shutdown().unwrap();
    }
}

#[test]
fn abandoned_tasks_are_collected_and_shutdown_runs_them_all() {
    for kind in both_kinds() {
        let pool = Pool::with_kind(2, kind).unwrap();
        let total = Value::new(0u64).unwrap();
        for n in 1..=40 {
            drop(pool.submit(add_to, (total.clone(), n)).unwrap());
        }
        // The pool stays usable while they are collected in the background.
        assert_eq!(pool.map(square, 0..10).unwrap()[9], 81);
        pool.shutdown_timeout(WATCHDOG).unwrap();
        assert_eq!(total.get().unwrap(), (1..=40).sum::<u64>());
    }
}
