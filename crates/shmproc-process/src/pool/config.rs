//! What a pool is built with: shared by `Pool::new`/`with_kind`, the builder and the manager.

use std::num::NonZeroUsize;
use std::time::Instant;

use super::manager::WorkerKind;
use crate::transport::Frame;

/// An entry every worker runs once before its first task (Python's `initializer`/`initargs`).
#[derive(Debug)]
pub(crate) struct Initializer {
    /// The entry's key (see `Entry::KEY`).
    pub key: &'static str,
    /// Its encoded argument, sent to every worker started (descriptors are duplicated per send).
    pub arg: Frame,
}

/// The settings of one pool.
#[derive(Debug)]
pub(crate) struct PoolConfig {
    /// Number of workers (at least one).
    pub workers: usize,
    /// How workers are started.
    pub kind: WorkerKind,
    /// Run by every worker before its first task.
    pub initializer: Option<Initializer>,
    /// A worker is replaced after running this many tasks.
    pub max_tasks_per_child: Option<NonZeroUsize>,
    /// Most tasks queued (submitted, not yet running) before `submit` blocks; `None`: no bound.
    pub queue_bound: Option<usize>,
}

impl PoolConfig {
    /// `workers` workers of `kind`, nothing else set.
    pub fn new(workers: usize, kind: WorkerKind) -> PoolConfig {
        PoolConfig {
            workers: workers.max(1),
            kind,
            initializer: None,
            max_tasks_per_child: None,
            queue_bound: None,
        }
    }
}

/// How a pool stops (see the table on `Pool`).
#[derive(Clone, Copy)]
pub(crate) enum Stop {
    /// Let every submitted task finish.
    Wait,
    /// Let them finish until the deadline, then terminate.
    Until(Instant),
    /// Cancel abandoned tasks, let held ones finish until the deadline, then terminate.
    Drop(Instant),
    /// Kill the workers now.
    Now,
}
