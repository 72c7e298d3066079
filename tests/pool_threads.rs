//! `Pool::threads`: the same calls as a process pool (the bodies in `pool_cases`), plus what
//! is particular to threads: a panic fails only its task, terminate cannot stop a running task.

mod common;
mod pool_cases;

use std::time::Duration;

use pool_cases::{square, LONG};
use shmproc::{Pool, ProcessError, WorkerKind::Threads};

#[test]
fn imap_over_an_endless_input_is_ordered_and_bounded() {
    pool_cases::imap_over_an_endless_input_is_ordered_and_bounded(Threads);
}

#[test]
fn imap_ends_when_the_pool_stops() {
    pool_cases::imap_ends_when_the_pool_stops(Threads);
}

#[test]
fn imap_unordered_yields_every_result_once() {
    pool_cases::imap_unordered_yields_every_result_once(Threads);
}

#[test]
fn map_chunked_keeps_input_order() {
    pool_cases::map_chunked_keeps_input_order(Threads);
}

#[test]
fn initializer_sets_per_worker_state() {
    pool_cases::initializer_sets_per_worker_state(Threads);
}

#[test]
fn max_tasks_per_child_replaces_workers() {
    pool_cases::max_tasks_per_child_replaces_workers(Threads);
}

#[test]
fn cancel_takes_queued_tasks_out() {
    pool_cases::cancel_takes_queued_tasks_out(Threads);
}

#[test]
fn wait_any_and_as_completed_timeout() {
    pool_cases::wait_any_and_as_completed_timeout(Threads);
}

#[test]
fn submit_blocks_at_the_queue_bound() {
    pool_cases::submit_blocks_at_the_queue_bound(Threads);
}

#[shmproc::entry]
fn failing_setup(_: ()) {
    panic!("no connection");
}

#[test]
fn a_panicking_task_fails_only_itself() {
    pool_cases::a_panicking_task_fails_only_itself(Threads);
}

#[test]
fn a_failing_initializer_fails_tasks_instead_of_hanging() {
    let pool = Pool::builder()
        .workers(2)
        .kind(Threads)
        .initializer(failing_setup, ())
        .build()
        .unwrap();
    match pool.submit(square, 3).unwrap().wait_timeout(LONG) {
        Err(ProcessError::Failed(message)) => {
            assert!(message.contains("no connection"), "{message}")
        }
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[test]
fn terminate_fails_queued_tasks_and_running_ones_finish_in_the_background() {
    let pool = Pool::threads(1).unwrap();
    let running = pool.submit(pool_cases::nap, 200).unwrap();
    let queued = pool.submit(pool_cases::nap, 0).unwrap();
    pool.terminate().unwrap();
    assert!(matches!(queued.wait(), Err(ProcessError::ShutDown)));
    assert!(matches!(running.wait(), Err(ProcessError::ShutDown)));
    assert!(matches!(
        pool.submit(square, 1),
        Err(ProcessError::ShutDown)
    ));
}

#[test]
fn shutdown_timeout_counts_what_it_abandoned() {
    let pool = Pool::threads(1).unwrap();
    let _running = pool.submit(pool_cases::nap, 300).unwrap();
    let _queued = pool.submit(pool_cases::nap, 0).unwrap();
    match pool.shutdown_timeout(Duration::from_millis(20)) {
        Err(ProcessError::ShutdownTimeout { abandoned }) => assert_eq!(abandoned, 2),
        other => panic!("expected ShutdownTimeout, got {other:?}"),
    }
    let pool = Pool::threads(2).unwrap();
    let tasks: Vec<_> = (0..6)
        .map(|_| pool.submit(pool_cases::nap, 5).unwrap())
        .collect();
    pool.shutdown().unwrap();
    for task in tasks {
        assert_eq!(task.wait().unwrap(), 5);
    }
}
