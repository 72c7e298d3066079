//! Pool API parity with Python (issue 12) on worker processes: imap / imap_unordered,
//! map_chunked, initializer, max_tasks_per_child, cancel, wait_any, as_completed_timeout and
//! the queue bound. The same bodies run on threads in `pool_threads`.

mod common;
mod pool_cases;

use shmproc::WorkerKind::{Forked, Spawned};

#[test]
fn a_panicking_task_fails_only_itself() {
    pool_cases::a_panicking_task_fails_only_itself(Spawned);
}

#[test]
fn imap_over_an_endless_input_is_ordered_and_bounded() {
    pool_cases::imap_over_an_endless_input_is_ordered_and_bounded(Spawned);
}

#[test]
fn imap_ends_when_the_pool_stops() {
    pool_cases::imap_ends_when_the_pool_stops(Spawned);
}

#[test]
fn imap_unordered_yields_every_result_once() {
    pool_cases::imap_unordered_yields_every_result_once(Spawned);
}

#[test]
fn map_chunked_keeps_input_order() {
    pool_cases::map_chunked_keeps_input_order(Spawned);
}

#[test]
fn initializer_sets_per_worker_state() {
    pool_cases::initializer_sets_per_worker_state(Spawned);
    pool_cases::initializer_sets_per_worker_state(Forked);
}

#[test]
fn max_tasks_per_child_replaces_workers() {
    pool_cases::max_tasks_per_child_replaces_workers(Spawned);
}

#[test]
fn cancel_takes_queued_tasks_out() {
    pool_cases::cancel_takes_queued_tasks_out(Spawned);
    pool_cases::cancel_takes_queued_tasks_out(Forked);
}

#[test]
fn wait_any_and_as_completed_timeout() {
    pool_cases::wait_any_and_as_completed_timeout(Spawned);
}

#[test]
fn submit_blocks_at_the_queue_bound() {
    pool_cases::submit_blocks_at_the_queue_bound(Spawned);
    pool_cases::submit_blocks_at_the_queue_bound(Forked);
}
