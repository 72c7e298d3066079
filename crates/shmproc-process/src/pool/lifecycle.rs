//! A stand-in for the pool builder's lifecycle settings (initializer, tasks per worker), so
//! they can be tested before the builder lands. Not a public API.
// TODO(issue 12): drop once `Pool::builder()` sets these and the tests use it.

use std::num::NonZeroUsize;

use super::config::{Initializer, PoolConfig};
use super::{Pool, WorkerKind};
use crate::entry::{check_registered, encode, Entry};
use crate::ProcessError;

/// A pool of `workers` workers of `kind`, each replaced after `max_tasks_per_child` tasks.
///
/// # Errors
/// As [`Pool::new`].
pub fn pool_with(
    workers: usize,
    kind: WorkerKind,
    max_tasks_per_child: Option<NonZeroUsize>,
) -> Result<Pool, ProcessError> {
    let mut config = PoolConfig::new(workers, kind);
    config.max_tasks_per_child = max_tasks_per_child;
    Pool::with_config(config)
}

/// Like [`pool_with`], every worker running `entry(arg)` once before its first task.
///
/// # Errors
/// As [`Pool::new`], plus [`ProcessError::Encode`] if `arg` cannot be serialized.
pub fn pool_with_init<E: Entry>(
    workers: usize,
    kind: WorkerKind,
    entry: E,
    arg: E::Arg,
    max_tasks_per_child: Option<NonZeroUsize>,
) -> Result<Pool, ProcessError> {
    let _ = entry;
    check_registered(E::KEY)?;
    let mut config = PoolConfig::new(workers, kind);
    let arg = encode(&arg).map_err(ProcessError::Encode)?;
    config.initializer = Some(Initializer { key: E::KEY, arg });
    config.max_tasks_per_child = max_tasks_per_child;
    Pool::with_config(config)
}
