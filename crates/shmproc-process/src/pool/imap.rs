//! `imap` and `imap_unordered`: lazy maps over any iterator (an endless one too), with a
//! bounded number of chunks in flight, so memory stays flat however long the input is.

use std::collections::VecDeque;
use std::iter::Fuse;
use std::time::{Duration, Instant};

use super::task::Task;
use super::wait::{Admit, TaskSet};
use super::Pool;
use crate::entry::{check_registered, Entry};
use crate::ProcessError;

/// A chunk whose round trip (while the consumer waited for it) took less than this doubles
/// the automatic chunk size; one that took more than [`SLOW_CHUNK`] halves it.
const FAST_CHUNK: Duration = Duration::from_millis(2);
const SLOW_CHUNK: Duration = Duration::from_millis(50);

impl Pool {
    /// Chunks that `imap` and `imap_unordered` keep in flight per worker (submitted, results
    /// not yet consumed): items pulled from the input but not yet yielded stay below
    /// `(workers * IMAP_IN_FLIGHT_PER_WORKER + 1) * chunk size`.
    pub const IMAP_IN_FLIGHT_PER_WORKER: usize = 2;

    /// The largest chunk `imap` and `imap_unordered` pick on their own. They start at one item
    /// and double the chunk while chunks come back within 2 ms (trivial items), halving it
    /// when one takes over 50 ms; `imap_chunked` fixes the size.
    pub const IMAP_MAX_AUTO_CHUNK: usize = 1024;

    /// Runs `entry` on every item of `items`, lazily, yielding results in input order
    /// (Python's `imap`). Items are pulled only as results are consumed (at most
    /// [`IMAP_IN_FLIGHT_PER_WORKER`](Pool::IMAP_IN_FLIGHT_PER_WORKER) chunks per worker ahead),
    /// so `items` may be endless; small items travel in chunks whose size adapts (see
    /// [`IMAP_MAX_AUTO_CHUNK`](Pool::IMAP_MAX_AUTO_CHUNK)).
    ///
    /// A chunk that fails (an item panicked, its worker died) yields its error once, in place
    /// of its items' results; use [`imap_chunked`](Pool::imap_chunked) with 1 for one result
    /// per item whatever happens. After an error submitting (the pool shut down) the iterator
    /// yields the results in flight, then that error, then ends. Dropping it cancels the
    /// chunks not yet started.
    ///
    /// # Examples
    /// ```
    /// #[shmproc::entry]
    /// fn square(n: u64) -> u64 {
    ///     n * n
    /// }
    ///
    /// let pool = shmproc::Pool::new(2)?;
    /// let first: Vec<u64> = pool.imap(square, 0..)?.take(5).collect::<Result<_, _>>()?;
    /// assert_eq!(first, [0, 1, 4, 9, 16]);
    /// # Ok::<(), shmproc::ProcessError>(())
    /// ```
    ///
    /// # Errors
    /// As [`submit`](Pool::submit), for the first chunks (submitted by this call).
    pub fn imap<E, I>(&self, entry: E, items: I) -> Result<Imap<'_, E, I::IntoIter>, ProcessError>
    where
        E: Entry,
        I: IntoIterator<Item = E::Arg>,
    {
        self.imap_with(entry, items, Chunking::Auto(1))
    }

    /// [`imap`](Pool::imap) in chunks of exactly `chunksize` items (at least one; Python's
    /// `imap(f, items, chunksize)`).
    ///
    /// # Errors
    /// As [`imap`](Pool::imap).
    pub fn imap_chunked<E, I>(
        &self,
        entry: E,
        items: I,
        chunksize: usize,
    ) -> Result<Imap<'_, E, I::IntoIter>, ProcessError>
    where
        E: Entry,
        I: IntoIterator<Item = E::Arg>,
    {
        self.imap_with(entry, items, Chunking::Fixed(chunksize.max(1)))
    }

    /// Like [`imap`](Pool::imap), yielding results in the order they finish (Python's
    /// `imap_unordered`): a slow item does not hold back the others.
    ///
    /// # Examples
    /// ```
    /// #[shmproc::entry]
    /// fn square(n: u64) -> u64 {
    ///     n * n
    /// }
    ///
    /// let pool = shmproc::Pool::new(2)?;
    /// let mut all: Vec<u64> = pool.imap_unordered(square, 0..5)?.collect::<Result<_, _>>()?;
    /// all.sort();
    /// assert_eq!(all, [0, 1, 4, 9, 16]);
    /// # Ok::<(), shmproc::ProcessError>(())
    /// ```
    ///
    /// # Errors
    /// As [`imap`](Pool::imap).
    pub fn imap_unordered<E, I>(
        &self,
        entry: E,
        items: I,
    ) -> Result<ImapUnordered<'_, E, I::IntoIter>, ProcessError>
    where
        E: Entry,
        I: IntoIterator<Item = E::Arg>,
    {
        self.imap_unordered_with(entry, items, Chunking::Auto(1))
    }

    /// [`imap_unordered`](Pool::imap_unordered) in chunks of exactly `chunksize` items (at
    /// least one).
    ///
    /// # Errors
    /// As [`imap`](Pool::imap).
    pub fn imap_unordered_chunked<E, I>(
        &self,
        entry: E,
        items: I,
        chunksize: usize,
    ) -> Result<ImapUnordered<'_, E, I::IntoIter>, ProcessError>
    where
        E: Entry,
        I: IntoIterator<Item = E::Arg>,
    {
        self.imap_unordered_with(entry, items, Chunking::Fixed(chunksize.max(1)))
    }

    fn imap_with<E: Entry, I: IntoIterator<Item = E::Arg>>(
        &self,
        entry: E,
        items: I,
        chunking: Chunking,
    ) -> Result<Imap<'_, E, I::IntoIter>, ProcessError> {
        let mut imap = Imap {
            feed: Feed::new(self, entry, items, chunking)?,
            in_flight: VecDeque::new(),
            ready: Vec::new().into_iter(),
            failed: None,
        };
        imap.fill()?;
        Ok(imap)
    }

    fn imap_unordered_with<E: Entry, I: IntoIterator<Item = E::Arg>>(
        &self,
        entry: E,
        items: I,
        chunking: Chunking,
    ) -> Result<ImapUnordered<'_, E, I::IntoIter>, ProcessError> {
        let mut imap = ImapUnordered {
            feed: Feed::new(self, entry, items, chunking)?,
            in_flight: TaskSet::new(),
            submitted: Vec::new(),
            ready: Vec::new().into_iter(),
            failed: None,
        };
        imap.fill()?;
        Ok(imap)
    }
}

/// The tasks of one chunk of items (one, or more if the items' handles overflow a message).
type Chunk<R> = Vec<Task<Vec<R>>>;

#[derive(Clone, Copy, Debug)]
enum Chunking {
    Fixed(usize),
    /// The current size, adapted as chunks come back.
    Auto(usize),
}

/// The input side shared by both iterators: pulls chunks of items and submits them.
#[derive(Debug)]
struct Feed<'a, E: Entry, I> {
    pool: &'a Pool,
    entry: E,
    items: Fuse<I>,
    chunking: Chunking,
    /// Most chunks in flight.
    max_in_flight: usize,
    /// A submission failed: pull nothing more.
    stopped: bool,
}

impl<'a, E: Entry, I: Iterator<Item = E::Arg>> Feed<'a, E, I> {
    fn new(
        pool: &'a Pool,
        entry: E,
        items: impl IntoIterator<IntoIter = I>,
        chunking: Chunking,
    ) -> Result<Self, ProcessError> {
        check_registered(E::KEY)?;
        Ok(Feed {
            pool,
            entry,
            items: items.into_iter().fuse(),
            chunking,
            max_in_flight: pool.size * Pool::IMAP_IN_FLIGHT_PER_WORKER,
            stopped: false,
        })
    }

    /// Pulls and submits the next chunk (one task, or more if handles in it overflow one
    /// message). `None` once the input is exhausted or a submission failed.
    fn next_chunk(&mut self) -> Option<Result<Chunk<E::Ret>, ProcessError>> {
        if self.stopped {
            return None;
        }
        let size = match self.chunking {
            Chunking::Fixed(n) | Chunking::Auto(n) => n,
        };
        let items: Vec<E::Arg> = self.items.by_ref().take(size).collect();
        if items.is_empty() {
            return None;
        }
        let tasks = self
            .pool
            .submit_batches(self.entry, &items, size, Admit::Block);
        self.stopped = tasks.is_err();
        Some(tasks)
    }

    /// Adapts an automatic chunk size to a chunk that took `round_trip` while the consumer
    /// waited for it.
    fn adapt(&mut self, round_trip: Duration) {
        if let Chunking::Auto(size) = &mut self.chunking {
            if round_trip < FAST_CHUNK {
                *size = (*size * 2).min(Pool::IMAP_MAX_AUTO_CHUNK);
            } else if round_trip > SLOW_CHUNK {
                *size = (*size / 2).max(1);
            }
        }
    }
}

/// The iterator of [`Pool::imap`] and [`Pool::imap_chunked`]: results in input order.
#[derive(Debug)]
pub struct Imap<'a, E: Entry, I> {
    feed: Feed<'a, E, I>,
    in_flight: VecDeque<(Task<Vec<E::Ret>>, Instant)>,
    ready: std::vec::IntoIter<E::Ret>,
    /// Why submitting stopped, yielded after the results in flight.
    failed: Option<ProcessError>,
}

impl<E: Entry, I: Iterator<Item = E::Arg>> Imap<'_, E, I> {
    /// Submits chunks until the in-flight bound; a submission error is returned.
    fn fill(&mut self) -> Result<(), ProcessError> {
        while self.in_flight.len() < self.feed.max_in_flight {
            match self.feed.next_chunk() {
                None => break,
                Some(tasks) => {
                    let now = Instant::now();
                    self.in_flight.extend(tasks?.into_iter().map(|t| (t, now)));
                }
            }
        }
        Ok(())
    }
}

impl<E: Entry, I: Iterator<Item = E::Arg>> Iterator for Imap<'_, E, I> {
    type Item = Result<E::Ret, ProcessError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(result) = self.ready.next() {
                return Some(Ok(result));
            }
            if let Err(e) = self.fill() {
                self.failed = Some(e);
            }
            let Some((task, submitted)) = self.in_flight.pop_front() else {
                return self.failed.take().map(Err);
            };
            let waited = !task.is_ready();
            let results = task.wait();
            if waited {
                self.feed.adapt(submitted.elapsed());
            }
            match results {
                Ok(results) => self.ready = results.into_iter(),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl<E: Entry, I> Drop for Imap<'_, E, I> {
    fn drop(&mut self) {
        for (task, _) in &self.in_flight {
            task.cancel();
        }
    }
}

/// The iterator of [`Pool::imap_unordered`] and [`Pool::imap_unordered_chunked`]: results in
/// the order their chunks finish.
#[derive(Debug)]
pub struct ImapUnordered<'a, E: Entry, I> {
    feed: Feed<'a, E, I>,
    in_flight: TaskSet<Vec<E::Ret>>,
    /// When each in-flight chunk was submitted, by its index in `in_flight`.
    submitted: Vec<Instant>,
    ready: std::vec::IntoIter<E::Ret>,
    /// Why submitting stopped, yielded after the results in flight.
    failed: Option<ProcessError>,
}

impl<E: Entry, I: Iterator<Item = E::Arg>> ImapUnordered<'_, E, I> {
    fn fill(&mut self) -> Result<(), ProcessError> {
        while self.in_flight.len() < self.feed.max_in_flight {
            match self.feed.next_chunk() {
                None => break,
                Some(tasks) => {
                    let now = Instant::now();
                    for task in tasks? {
                        let index = self.in_flight.insert(task);
                        if index >= self.submitted.len() {
                            self.submitted.resize(index + 1, now);
                        }
                        self.submitted[index] = now;
                    }
                }
            }
        }
        Ok(())
    }
}

impl<E: Entry, I: Iterator<Item = E::Arg>> Iterator for ImapUnordered<'_, E, I> {
    type Item = Result<E::Ret, ProcessError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(result) = self.ready.next() {
                return Some(Ok(result));
            }
            if let Err(e) = self.fill() {
                self.failed = Some(e);
            }
            if self.in_flight.len() == 0 {
                return self.failed.take().map(Err);
            }
            let (index, task, waited) = match self.in_flight.next_done(Some(Instant::now())) {
                Some((index, task)) => (index, task, false),
                None => {
                    let (index, task) = self.in_flight.next_done(None)?;
                    (index, task, true)
                }
            };
            if waited {
                self.feed.adapt(self.submitted[index].elapsed());
            }
            match task.wait() {
                Ok(results) => self.ready = results.into_iter(),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl<E: Entry, I> Drop for ImapUnordered<'_, E, I> {
    fn drop(&mut self) {
        self.in_flight.cancel_all();
    }
}
