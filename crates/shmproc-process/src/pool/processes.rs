//! The process backend of `Pool`: worker processes driven by the manager thread.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde::de::DeserializeOwned;

use super::config::{PoolConfig, Stop};
use super::manager::{self, Job, Shared, State};
use super::task::{CancelQueued, Slot, Task};
use super::wait::{admit, Admit, AdmitState};

use crate::transport::Frame;
use crate::worker::Op;
use crate::ProcessError;

pub(crate) struct Processes {
    shared: Arc<Shared>,
    manager: Mutex<Option<JoinHandle<()>>>,
}

impl AdmitState for State {
    fn closing(&self) -> bool {
        self.closing
    }
    fn queue_full(&self) -> bool {
        self.queue_at_bound()
    }
    fn space_waiters(&mut self) -> &mut usize {
        &mut self.space_waiters
    }
}

impl CancelQueued for Shared {
    fn cancel_queued(&self, slot: &Arc<Slot>) -> bool {
        self.lock().cancel_queued(slot)
    }
}

impl Processes {
    /// Starts the workers and the manager thread.
    pub fn new(config: PoolConfig) -> Result<Processes, ProcessError> {
        let shared = Arc::new(Shared::new(config)?);
        let for_thread = Arc::clone(&shared);
        let manager = std::thread::Builder::new()
            .name("shmproc-pool".into())
            .spawn(move || manager::run(for_thread))?;
        Ok(Processes {
            shared,
            manager: Mutex::new(Some(manager)),
        })
    }

    /// Hands the job to a worker or queues it, once `how` admits it.
    pub fn submit<R: DeserializeOwned>(
        &self,
        op: Op,
        key: &'static str,
        arg: Frame,
        how: Admit,
    ) -> Result<Task<R>, ProcessError> {
        let slot = Arc::new(Slot::default());
        let job = Job {
            op,
            key,
            arg,
            slot: Arc::clone(&slot),
        };
        let state = self.shared.lock();
        let space = Arc::clone(&state.space);
        let mut state = admit(state, &space, how)?;
        let queued = state.dispatch(job);
        drop(state);
        if queued {
            self.shared.wake();
        }
        Ok(Task::new(slot, Arc::downgrade(&self.shared)))
    }

    /// Stops the pool `how`, waits for the manager thread to leave, and returns how many tasks
    /// it left unfinished (0 if another call stopped the pool).
    pub fn stop(&self, how: Stop) -> Result<usize, ProcessError> {
        {
            let mut state = self.shared.lock();
            state.closing = true;
            // Submitters blocked at the queue bound return `ShutDown`.
            state.space.notify_all();
            let earliest = |d| Some(state.deadline.map_or(d, |e: std::time::Instant| e.min(d)));
            match how {
                Stop::Wait => {}
                Stop::Until(deadline) => state.deadline = earliest(deadline),
                Stop::Drop(deadline) => {
                    state.deadline = earliest(deadline);
                    state.cancel_abandoned = true;
                }
                Stop::Now => state.terminating = true,
            }
        }
        self.shared.wake();
        // Held while joining, so a concurrent call returns only once the pool has stopped.
        let mut manager = self.manager.lock().unwrap_or_else(|e| e.into_inner());
        let Some(handle) = manager.take() else {
            return Ok(0);
        };
        if handle.join().is_err() {
            return Err(ProcessError::Failed(
                "the pool's manager thread panicked".into(),
            ));
        }
        let abandoned = self.shared.lock().abandoned;
        Ok(abandoned)
    }
}
