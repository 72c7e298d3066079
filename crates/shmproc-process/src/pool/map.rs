//! `map` and `map_chunked`: every item of a finite input, in chunks, results in input order.

use super::task::Task;
use super::wait::Admit;
use super::{Call, Pool};
use crate::entry::{check_registered, encode_batches_with, Entry};
use crate::ProcessError;

impl Pool {
    /// Runs `entry` on every item and returns the results in input order (Python's `map`).
    /// Items are sent in a few chunks per worker, so even trivial tasks run fast.
    ///
    /// Anonymous handles in the items travel as file descriptors, and one message carries a
    /// limited number of them, so a chunk is also cut where its items' descriptors would go
    /// over that limit: any number of items may carry handles. Each chunk is sent as soon as it
    /// is serialized, so workers start while later chunks are encoded; if an item cannot be
    /// serialized, the chunks sent before it are cancelled (those already running finish, their
    /// results dropped) and the call fails. Results travel back a chunk at a time: results carrying anonymous
    /// handles (an entry returning a `Value::new`) are limited per chunk in the same way, and
    /// a chunk whose results carry too many fails with an error saying so — [`submit`]
    /// them one by one instead.
    ///
    /// [`submit`]: Pool::submit
    ///
    /// # Errors
    /// The first failing chunk's error: a panic ([`ProcessError::Panicked`]), a dead worker
    /// ([`ProcessError::WorkerDied`]), or as [`submit`](Pool::submit) (an item that alone
    /// carries more handles than one message can is an [`ProcessError::Encode`] error).
    pub fn map<E, I>(&self, entry: E, items: I) -> Result<Vec<E::Ret>, ProcessError>
    where
        E: Entry,
        I: IntoIterator<Item = E::Arg>,
    {
        let items: Vec<E::Arg> = items.into_iter().collect();
        let chunk = items.len().div_ceil(self.size * Pool::CHUNKS_PER_WORKER);
        self.map_items(entry, items, chunk)
    }

    /// [`map`](Pool::map) in chunks of `chunksize` items (Python's `map(f, items,
    /// chunksize)`): larger chunks cost fewer round trips, smaller ones balance uneven items
    /// better. `map` picks `ceil(items / (workers * CHUNKS_PER_WORKER))`
    /// ([`CHUNKS_PER_WORKER`](Pool::CHUNKS_PER_WORKER)); a `chunksize` of 0 counts as 1.
    ///
    /// # Examples
    /// ```
    /// #[shmproc::entry]
    /// fn square(n: u64) -> u64 {
    ///     n * n
    /// }
    ///
    /// let pool = shmproc::Pool::new(2)?;
    /// assert_eq!(pool.map_chunked(square, 0..5, 2)?, [0, 1, 4, 9, 16]);
    /// # Ok::<(), shmproc::ProcessError>(())
    /// ```
    ///
    /// # Errors
    /// As [`map`](Pool::map).
    pub fn map_chunked<E, I>(
        &self,
        entry: E,
        items: I,
        chunksize: usize,
    ) -> Result<Vec<E::Ret>, ProcessError>
    where
        E: Entry,
        I: IntoIterator<Item = E::Arg>,
    {
        self.map_items(entry, items.into_iter().collect(), chunksize)
    }

    fn map_items<E: Entry>(
        &self,
        entry: E,
        items: Vec<E::Arg>,
        chunk: usize,
    ) -> Result<Vec<E::Ret>, ProcessError> {
        let count = items.len();
        let tasks = self.submit_batches(entry, &items, chunk, Admit::Block)?;
        drop(items);
        let mut out = Vec::with_capacity(count);
        for task in tasks {
            out.extend(task.wait()?);
        }
        Ok(out)
    }

    /// Submits `items` as `CallMany` jobs of at most `chunk` items each (at least one), in
    /// order.
    pub(super) fn submit_batches<E: Entry>(
        &self,
        entry: E,
        items: &[E::Arg],
        chunk: usize,
        how: Admit,
    ) -> Result<Vec<Task<Vec<E::Ret>>>, ProcessError> {
        let _ = entry;
        check_registered(E::KEY)?;
        let mut tasks = Vec::with_capacity(items.len().div_ceil(chunk.max(1)));
        let sent = self.encoding(|| {
            encode_batches_with(items, chunk, |batch| {
                tasks.push(self.submit_call(Call::many::<E>(), batch, how)?);
                Ok(())
            })
        });
        if let Err(e) = sent {
            // Chunks already sent are cancelled if queued; running ones finish unseen.
            tasks.iter().for_each(|t| {
                t.cancel();
            });
            return Err(e);
        }
        Ok(tasks)
    }
}
