//! Test bodies shared by `pool_parity` (worker processes) and `pool_threads` (threads): each
//! takes the `WorkerKind` to build its pool with, so both backends pass the same checks.
#![allow(dead_code)]

use std::cell::Cell;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shmproc::{wait_any, Pool, ProcessError, Value, WorkerKind};

use crate::common::blocking::block_in_thread;

/// Longest bounded wait for a task in these tests.
pub const LONG: Duration = Duration::from_secs(20);

#[shmproc::entry]
pub fn square(n: u64) -> u64 {
    n * n
}

#[shmproc::entry]
pub fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[shmproc::entry]
pub fn fail_on_seven(n: u64) -> u64 {
    assert_ne!(n, 7, "seven is not allowed");
    n
}

/// A task that panics fails with its message; the others, `map` included, are unaffected, and
/// the pool keeps serving.
pub fn a_panicking_task_fails_only_itself(kind: WorkerKind) {
    let pool = Pool::with_kind(2, kind).unwrap();
    let bad = pool.submit(fail_on_seven, 7).unwrap();
    let good = pool.submit(fail_on_seven, 8).unwrap();
    match bad.wait() {
        Err(ProcessError::Panicked { message }) => {
            assert!(message.contains("seven is not allowed"), "{message}")
        }
        other => panic!("expected a panic, got {other:?}"),
    }
    assert_eq!(good.wait().unwrap(), 8);
    assert!(matches!(
        pool.map(fail_on_seven, 0..20),
        Err(ProcessError::Panicked { .. })
    ));
    let expected: Vec<u64> = (0..100).map(|n| n * n).collect();
    assert_eq!(pool.map(square, 0..100).unwrap(), expected);
}

#[shmproc::entry]
pub fn bump(counter: Value<u64>) {
    *counter.lock().unwrap() += 1;
}

/// Says it started (`started += 1`), then waits (at most 20 s) until `release` is set.
#[shmproc::entry]
pub fn hold((started, release): (Value<u64>, Value<u64>)) -> u64 {
    *started.lock().unwrap() += 1;
    let deadline = Instant::now() + LONG;
    while release.get().unwrap() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    release.get().unwrap()
}

thread_local! {
    /// Set by `remember` in the worker (or thread) that runs it.
    static REMEMBERED: Cell<u64> = const { Cell::new(0) };
}

#[shmproc::entry]
pub fn remember(value: u64) {
    REMEMBERED.with(|r| r.set(value));
}

#[shmproc::entry]
pub fn recall(_: ()) -> u64 {
    REMEMBERED.with(Cell::get)
}

/// Which worker runs this: its pid and thread.
#[shmproc::entry]
pub fn whoami(_: ()) -> String {
    format!("{}/{:?}", std::process::id(), std::thread::current().id())
}

fn pool(kind: WorkerKind, workers: usize) -> Pool {
    Pool::builder().workers(workers).kind(kind).build().unwrap()
}

/// Waits (bounded) until `value` is at least `at_least`.
fn wait_value(value: &Value<u64>, at_least: u64) {
    let deadline = Instant::now() + LONG;
    while value.get().unwrap() < at_least {
        assert!(Instant::now() < deadline, "timed out waiting for a task");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A task holding the only worker of `pool` until `release` is set, once it runs.
fn occupy(pool: &Pool) -> (shmproc::Task<u64>, Value<u64>) {
    let started = Value::new(0_u64).unwrap();
    let release = Value::new(0_u64).unwrap();
    let task = pool
        .submit(hold, (started.clone(), release.clone()))
        .unwrap();
    wait_value(&started, 1);
    (task, release)
}

/// `imap` over an endless input yields the first 10,000 results in order, pulling only a
/// bounded number of items ahead of what was consumed; likewise `imap_chunked`.
pub fn imap_over_an_endless_input_is_ordered_and_bounded(kind: WorkerKind) {
    let workers = 2;
    let pool = pool(kind, workers);
    for chunk in [None, Some(10)] {
        let pulled = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&pulled);
        let input = (0_u64..).inspect(move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
        });
        let per_chunk = chunk.unwrap_or(Pool::IMAP_MAX_AUTO_CHUNK);
        let bound = (workers * Pool::IMAP_IN_FLIGHT_PER_WORKER + 1) * per_chunk;
        let results = match chunk {
            None => pool.imap(square, input).unwrap(),
            Some(n) => pool.imap_chunked(square, input, n).unwrap(),
        };
        let mut most_ahead = 0;
        for (consumed, (n, result)) in (1..).zip((0_u64..).zip(results).take(10_000)) {
            assert_eq!(result.unwrap(), n * n, "{kind:?} {chunk:?}");
            let ahead = pulled.load(Ordering::Relaxed) - consumed;
            most_ahead = most_ahead.max(ahead);
            assert!(
                ahead <= bound,
                "{kind:?} {chunk:?}: {ahead} items in flight > {bound}"
            );
        }
        assert!(most_ahead > 0, "imap submitted nothing ahead");
    }
}

/// `imap_unordered` yields every result exactly once.
pub fn imap_unordered_yields_every_result_once(kind: WorkerKind) {
    let pool = pool(kind, 2);
    for chunk in [None, Some(1), Some(7)] {
        let results = match chunk {
            None => pool.imap_unordered(square, 0..3_000_u64).unwrap(),
            Some(n) => pool
                .imap_unordered_chunked(square, 0..3_000_u64, n)
                .unwrap(),
        };
        let mut got: Vec<u64> = results.map(Result::unwrap).collect();
        got.sort_unstable();
        let expected: Vec<u64> = (0..3_000).map(|n| n * n).collect();
        assert_eq!(got, expected, "{kind:?} {chunk:?}");
    }
}

/// `map_chunked` gives `map`'s result whatever the chunk size.
pub fn map_chunked_keeps_input_order(kind: WorkerKind) {
    let pool = pool(kind, 2);
    let expected: Vec<u64> = (0..2_000).map(|n| n * n).collect();
    for chunk in [1, 7, 10_000] {
        assert_eq!(
            pool.map_chunked(square, 0..2_000, chunk).unwrap(),
            expected,
            "{kind:?} chunk {chunk}"
        );
    }
    assert!(pool.map_chunked(square, [], 7).unwrap().is_empty());
}

/// The initializer runs in every worker before its tasks: each task sees what it set.
pub fn initializer_sets_per_worker_state(kind: WorkerKind) {
    let pool = Pool::builder()
        .workers(2)
        .kind(kind)
        .initializer(remember, 42)
        .build()
        .unwrap();
    let tasks: Vec<_> = (0..20).map(|_| pool.submit(recall, ()).unwrap()).collect();
    for task in tasks {
        assert_eq!(task.wait_timeout(LONG).unwrap(), 42, "{kind:?}");
    }
}

/// With `max_tasks_per_child(3)`, 30 tasks run on at least 10 different workers.
pub fn max_tasks_per_child_replaces_workers(kind: WorkerKind) {
    let pool = Pool::builder()
        .workers(2)
        .kind(kind)
        .max_tasks_per_child(3)
        .build()
        .unwrap();
    let tasks: Vec<_> = (0..30).map(|_| pool.submit(whoami, ()).unwrap()).collect();
    let workers: HashSet<String> = tasks
        .into_iter()
        .map(|t| t.wait_timeout(LONG).unwrap())
        .collect();
    assert!(
        workers.len() >= 10,
        "{kind:?}: only {} workers",
        workers.len()
    );
}

/// Tasks queued behind a long one can be cancelled: they never run, their waiters get
/// `Cancelled`; a running or finished task cannot be.
pub fn cancel_takes_queued_tasks_out(kind: WorkerKind) {
    let pool = pool(kind, 1);
    let counter = Value::new(0_u64).unwrap();
    let (long, release) = occupy(&pool);
    let queued: Vec<_> = (0..5)
        .map(|_| pool.submit(bump, counter.clone()).unwrap())
        .collect();
    let kept = pool.submit(bump, counter.clone()).unwrap();
    assert!(!long.cancel(), "{kind:?}: a running task was cancelled");
    for task in &queued {
        assert!(task.cancel(), "{kind:?}");
        assert!(!task.cancel(), "{kind:?}: cancelled twice");
        assert!(task.is_ready());
    }
    release.set(1).unwrap();
    assert_eq!(long.wait_timeout(LONG).unwrap(), 1);
    kept.wait_timeout(LONG).unwrap();
    assert!(!kept.cancel(), "{kind:?}: a finished task was cancelled");
    for task in queued {
        assert!(
            matches!(task.wait(), Err(ProcessError::Cancelled)),
            "{kind:?}"
        );
    }
    pool.shutdown().unwrap();
    assert_eq!(counter.get().unwrap(), 1, "{kind:?}: a cancelled task ran");
}

/// `wait_any` returns a finished task's index, or times out leaving every task waitable;
/// `as_completed_timeout` ends with a timeout.
pub fn wait_any_and_as_completed_timeout(kind: WorkerKind) {
    let pool = pool(kind, 2);
    let (long, release) = occupy(&pool);
    assert!(matches!(
        wait_any(std::slice::from_ref(&long), Duration::from_millis(20)),
        Err(ProcessError::Timeout)
    ));
    let mut tasks = vec![long, pool.submit(nap, 1).unwrap()];
    assert_eq!(wait_any(&tasks, LONG).unwrap(), 1, "{kind:?}");
    assert_eq!(tasks.pop().unwrap().wait().unwrap(), 1);
    assert!(wait_any::<u64>(&[], LONG).is_err());

    tasks.push(pool.submit(nap, 0).unwrap());
    let items: Vec<_> = pool
        .as_completed_timeout(tasks, Duration::from_secs(1))
        .collect();
    assert!(
        matches!(items[..], [Ok(0), Err(ProcessError::Timeout)]),
        "{kind:?}: {items:?}"
    );
    release.set(1).unwrap();
}

/// With `queue_bound(2)`: `try_submit` and `submit_timeout` fail with `QueueFull`, `submit`
/// blocks until a queued task starts, and a blocked `submit` returns `ShutDown` when the pool
/// is terminated.
pub fn submit_blocks_at_the_queue_bound(kind: WorkerKind) {
    let pool = Arc::new(
        Pool::builder()
            .workers(1)
            .kind(kind)
            .queue_bound(2)
            .build()
            .unwrap(),
    );
    let (long, release) = occupy(&pool);
    let queued = [pool.submit(nap, 0).unwrap(), pool.submit(nap, 0).unwrap()];
    assert!(matches!(
        pool.try_submit(nap, 0),
        Err(ProcessError::QueueFull)
    ));
    assert!(matches!(
        pool.submit_timeout(nap, 0, Duration::from_millis(20)),
        Err(ProcessError::QueueFull)
    ));
    let p = Arc::clone(&pool);
    let blocked = block_in_thread(move || p.submit(nap, 7).map(|t| t.wait()));
    blocked.wait_asleep();
    assert!(blocked.still_blocked(), "{kind:?}: submit did not block");
    release.set(1).unwrap(); // `long` ends, a queued task starts: room for one
    let last = blocked.result("submit at the bound");
    assert_eq!(last.unwrap().unwrap(), 7, "{kind:?}");
    assert_eq!(long.wait().unwrap(), 1);
    for task in queued {
        assert_eq!(task.wait().unwrap(), 0);
    }

    // Blocked again, then the pool stops.
    let (_long, release) = occupy(&pool);
    let queued = [pool.submit(nap, 0).unwrap(), pool.submit(nap, 0).unwrap()];
    let p = Arc::clone(&pool);
    let blocked = block_in_thread(move || p.submit(nap, 0).map(drop));
    blocked.wait_asleep();
    pool.terminate().unwrap();
    assert!(
        matches!(
            blocked.result("submit at shutdown"),
            Err(ProcessError::ShutDown)
        ),
        "{kind:?}"
    );
    release.set(1).unwrap();
    for task in queued {
        assert!(matches!(task.wait(), Err(ProcessError::ShutDown)));
    }
}

/// An `imap` over an endless input ends (with `ShutDown` errors) once its pool is terminated,
/// instead of pulling more input forever.
pub fn imap_ends_when_the_pool_stops(kind: WorkerKind) {
    let pool = pool(kind, 2);
    let mut results = pool.imap(square, 0_u64..).unwrap();
    for n in 0..100 {
        assert_eq!(results.next().unwrap().unwrap(), n * n);
    }
    pool.terminate().unwrap();
    let rest: Vec<_> = results.by_ref().take(100_000).collect();
    assert!(
        results.next().is_none(),
        "{kind:?}: imap went on after terminate"
    );
    assert!(
        matches!(rest.last(), Some(Err(ProcessError::ShutDown))),
        "{kind:?}: {:?}",
        rest.last()
    );
}
