//! Timed runs of the counter benchmark: every process increments for the same fixed time
//! after a start barrier, and records when its first and last increments happened on
//! CLOCK_MONOTONIC (system-wide, so the times of different processes compare) and how long it
//! waited meanwhile for a CPU while runnable (`/proc/thread-self/schedstat`). A run counts
//! only if its processes overlapped: see [`Run::overlap`] and [`MIN_OVERLAP`]. The waiting
//! matters: two processes sharing one CPU (the other one busy elsewhere) have overlapping
//! first and last increments but never ran at the same time. Sleeping on a contended lock is
//! not waiting for a CPU, and does not count against a run.

use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shmproc::raw::SharedRef;
use shmproc::Process;

use super::{raw_segment_of, Counter, Variant};

/// The least share of a run's span during which all its processes must have been
/// incrementing; runs below it are repeated.
pub const MIN_OVERLAP: f64 = 0.9;

/// Increments between two looks at the clock (a clock read is ~20 ns; this keeps it under
/// 1 % of even the fastest variant).
const BATCH: u64 = 256;

/// How timed runs are carried out.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long each process increments, from the start signal.
    pub duration: Duration,
    /// Test hook: each process starts only when the previous one has finished, so the run
    /// never overlaps and must be rejected.
    pub serialise: bool,
    /// How many runs to try before giving up on one that overlaps.
    pub max_tries: u32,
    /// The least overlap a run needs to count ([`MIN_OVERLAP`] unless a test lowers it).
    pub min_overlap: f64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            duration: Duration::from_millis(200),
            serialise: false,
            max_tries: 20,
            min_overlap: MIN_OVERLAP,
        }
    }
}

/// One process's (or thread's) part of a run, in nanoseconds since the run's origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stint {
    /// Just before its first increment.
    pub first: u64,
    /// Just after its last increment.
    pub last: u64,
    /// Increments it made.
    pub count: u64,
    /// Time it spent runnable but waiting for a CPU from `first` to `last` (0 when the
    /// kernel does not say).
    pub waited: u64,
}

/// One timed run of a variant.
#[derive(Debug, Clone)]
pub struct Run {
    /// The variant measured.
    pub variant: Variant,
    /// Every process's stint.
    pub stints: Vec<Stint>,
    /// Increments that were lost (made minus the final count).
    pub lost: u64,
}

impl Run {
    /// From the first process's first increment to the last process's last one.
    pub fn span(&self) -> Duration {
        let first = self.stints.iter().map(|s| s.first).min().unwrap_or(0);
        let last = self.stints.iter().map(|s| s.last).max().unwrap_or(0);
        Duration::from_nanos(last.saturating_sub(first))
    }

    /// The share of the span during which every process was incrementing (1.0 for one
    /// process; 0.0 when one finished before another started): see [`overlap`].
    pub fn overlap(&self) -> f64 {
        overlap(&self.stints, cpus())
    }

    /// Increments made, all processes together.
    pub fn ops(&self) -> u64 {
        self.stints.iter().map(|s| s.count).sum()
    }

    /// Increments made per second of the span, all processes together.
    pub fn ops_per_sec(&self) -> f64 {
        self.ops() as f64 / self.span().as_secs_f64().max(1e-9)
    }

    /// Increments per process (the mean).
    pub fn per_process(&self) -> u64 {
        self.ops() / self.stints.len().max(1) as u64
    }
}

/// How much of the span of `stints` all of them were running, on `cpus` CPUs: the share of
/// the span between the last first increment and the first last one, times the least share
/// of its stint a process was not kept waiting for a CPU (relative to its fair share,
/// `cpus / stints`, when there are more processes than CPUs).
pub fn overlap(stints: &[Stint], cpus: usize) -> f64 {
    let first = stints.iter().map(|s| s.first).min().unwrap_or(0);
    let last = stints.iter().map(|s| s.last).max().unwrap_or(0);
    let all_in = stints.iter().map(|s| s.first).max().unwrap_or(0);
    let first_out = stints.iter().map(|s| s.last).min().unwrap_or(0);
    let span = last.saturating_sub(first);
    if span == 0 {
        return 1.0;
    }
    let fair = (cpus as f64 / stints.len().max(1) as f64).min(1.0);
    let on_cpu = stints
        .iter()
        .map(|s| {
            let wall = s.last.saturating_sub(s.first).max(1);
            let ran = 1.0 - (s.waited as f64 / wall as f64).min(1.0);
            (ran / fair).min(1.0)
        })
        .fold(1.0, f64::min);
    first_out.saturating_sub(all_in) as f64 / span as f64 * on_cpu
}

/// CPUs this process may run on.
fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// How long the calling thread has spent runnable but waiting for a CPU, in nanoseconds (the
/// second field of `/proc/thread-self/schedstat`; 0 where the kernel does not keep it).
fn waited_now() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Measures `variant` once, for `timing.duration`, overlap or not.
///
/// # Errors
/// When segments cannot be created, a process cannot be forked or a worker fails; with
/// [`io::ErrorKind::Unsupported`] when the variant was not built (see [`Variant::built`]).
pub fn measure_once(variant: Variant, procs: usize, timing: &Timing) -> io::Result<Run> {
    use super::{Guarded, LockedValue, SeparateLock, UnlockedValue};
    use crate::baselines::{PlainFutexMutex, RobustPthreadMutex};
    use shmproc::{Lock, RawLock, Value};
    let (stints, total) = match variant {
        Variant::Unlocked => run_for(procs, timing, UnlockedValue(Value::new(0)?))?,
        Variant::Atomic => run_for(
            procs,
            timing,
            SharedRef::<AtomicU64>::new(raw_segment_of(256)?, 0)?,
        )?,
        Variant::ValueLock => run_for(procs, timing, LockedValue(Value::new(0)?))?,
        Variant::SeparateLock => {
            run_for(procs, timing, SeparateLock(Lock::new()?, Value::new(0)?))?
        }
        Variant::RawLock => run_for(procs, timing, Guarded::<RawLock>::new()?)?,
        Variant::PlainFutex => run_for(procs, timing, Guarded::<PlainFutexMutex>::new()?)?,
        Variant::RobustPthread => run_for(procs, timing, Guarded::<RobustPthreadMutex>::new()?)?,
        #[cfg(feature = "baselines")]
        Variant::RawSync => run_for(procs, timing, super::RawSyncCounter::new()?)?,
        #[cfg(feature = "baselines")]
        Variant::ParkingLotThreads => threads_for(procs, timing),
        #[cfg(not(feature = "baselines"))]
        Variant::RawSync | Variant::ParkingLotThreads => return Err(super::not_built(variant)),
    };
    let made: u64 = stints.iter().map(|s| s.count).sum();
    Ok(Run {
        variant,
        stints,
        lost: made.saturating_sub(total),
    })
}

/// Measures `variant` until a run overlaps at least `timing.min_overlap`; returns that run
/// and how many were rejected before it.
///
/// # Errors
/// As [`measure_once`], and when `timing.max_tries` runs in a row overlapped too little.
pub fn measure(variant: Variant, procs: usize, timing: &Timing) -> io::Result<(Run, u32)> {
    let mut rejected = 0;
    loop {
        let run = measure_once(variant, procs, timing)?;
        if run.overlap() >= timing.min_overlap {
            return Ok((run, rejected));
        }
        rejected += 1;
        if rejected >= timing.max_tries {
            return Err(io::Error::other(format!(
                "{}: the processes of {rejected} runs in a row overlapped less than {:.0} % \
                 of their span (the last {:.0} %)",
                variant.name(),
                timing.min_overlap * 100.0,
                run.overlap() * 100.0
            )));
        }
    }
}

/// Increments for one stint: until `end` (ns since `origin`), looking at the clock every
/// [`BATCH`] increments.
pub(super) fn stint(origin: Instant, end: u64, mut increment: impl FnMut()) -> Stint {
    let waited_before = waited_now();
    let first = since(origin);
    let mut count = 0;
    loop {
        for _ in 0..BATCH {
            increment();
        }
        count += BATCH;
        let last = since(origin);
        if last >= end {
            let waited = waited_now().saturating_sub(waited_before);
            return Stint {
                first,
                last,
                count,
                waited,
            };
        }
    }
}

/// The same with `threads` threads of this process and a `parking_lot::Mutex`.
#[cfg(feature = "baselines")]
fn threads_for(threads: usize, timing: &Timing) -> (Vec<Stint>, u64) {
    let counter = parking_lot::Mutex::new(0_u64);
    let barrier = std::sync::Barrier::new(threads);
    let origin = Instant::now();
    let end = since(origin) + timing.duration.as_nanos() as u64;
    let stints = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (counter, barrier) = (&counter, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    stint(origin, end, || *counter.lock() += 1)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("counter thread"))
            .collect()
    });
    let total = *counter.lock();
    (stints, total)
}

fn since(origin: Instant) -> u64 {
    origin.elapsed().as_nanos() as u64
}

/// Where a worker reports its stint: five words on a cache line of its own.
#[derive(Clone)]
struct Slot {
    first: SharedRef<AtomicU64>,
    last: SharedRef<AtomicU64>,
    count: SharedRef<AtomicU64>,
    waited: SharedRef<AtomicU64>,
    done: SharedRef<AtomicU64>,
}

/// Forks `procs` workers that each increment `counter` for `timing.duration` after a start
/// barrier; returns their stints and the final count.
///
/// # Errors
/// When a worker cannot be forked, does not start within 30 s, or fails.
pub fn run_for<C: Counter>(
    procs: usize,
    timing: &Timing,
    counter: C,
) -> io::Result<(Vec<Stint>, u64)> {
    let seg = raw_segment_of(128 + 64 * procs)?;
    let gate = SharedRef::<AtomicU32>::new(Arc::clone(&seg), 0)?;
    let end = SharedRef::<AtomicU64>::new(Arc::clone(&seg), 8)?;
    let ready = SharedRef::<AtomicU32>::new(Arc::clone(&seg), 64)?;
    let slots = (0..procs)
        .map(|i| {
            let at = |k: usize| SharedRef::<AtomicU64>::new(Arc::clone(&seg), 128 + 64 * i + 8 * k);
            Ok(Slot {
                first: at(0)?,
                last: at(1)?,
                count: at(2)?,
                waited: at(3)?,
                done: at(4)?,
            })
        })
        .collect::<io::Result<Vec<_>>>()?;
    let origin = Instant::now();
    let mut workers = Vec::with_capacity(procs);
    for i in 0..procs {
        let (gate, end, ready, counter) =
            (gate.clone(), end.clone(), ready.clone(), counter.clone());
        let me = slots[i].clone();
        let previous = (timing.serialise && i > 0).then(|| slots[i - 1].done.clone());
        workers.push(Process::fork(move || {
            ready.fetch_add(1, Ordering::AcqRel);
            while gate.load(Ordering::Acquire) == 0 {
                std::thread::yield_now();
            }
            if let Some(previous) = previous {
                while previous.load(Ordering::Acquire) == 0 {
                    std::thread::yield_now();
                }
            }
            let s = stint(origin, end.load(Ordering::Acquire), || counter.increment());
            me.first.store(s.first, Ordering::Relaxed);
            me.last.store(s.last, Ordering::Relaxed);
            me.count.store(s.count, Ordering::Relaxed);
            me.waited.store(s.waited, Ordering::Relaxed);
            me.done.store(1, Ordering::Release);
        })?);
    }
    super::await_ready(&ready, procs, &workers)?;
    end.store(
        since(origin) + timing.duration.as_nanos() as u64,
        Ordering::Release,
    );
    gate.store(1, Ordering::Release);
    for w in &workers {
        let status = w.join()?;
        if !status.success() {
            return Err(io::Error::other(format!("worker failed: {status}")));
        }
    }
    let stints = slots
        .iter()
        .map(|s| Stint {
            first: s.first.load(Ordering::Acquire),
            last: s.last.load(Ordering::Acquire),
            count: s.count.load(Ordering::Acquire),
            waited: s.waited.load(Ordering::Acquire),
        })
        .collect();
    Ok((stints, counter.total()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(first: u64, last: u64) -> Stint {
        Stint {
            first,
            last,
            count: 1,
            waited: 0,
        }
    }

    #[test]
    fn overlap_of_side_by_side_and_one_after_another() {
        assert_eq!(overlap(&[s(0, 100)], 2), 1.0);
        assert_eq!(overlap(&[s(0, 100), s(0, 100)], 2), 1.0);
        assert_eq!(overlap(&[s(0, 100), s(5, 100)], 2), 0.95);
        assert_eq!(overlap(&[s(0, 100), s(100, 200)], 2), 0.0);
        assert_eq!(overlap(&[s(0, 100), s(150, 200)], 2), 0.0);
    }

    #[test]
    fn overlap_sees_processes_taking_turns_on_one_cpu() {
        let half = |first, last| Stint {
            waited: (last - first) / 2,
            ..s(first, last)
        };
        assert_eq!(overlap(&[half(0, 100), half(0, 100)], 2), 0.5);
        // Four processes on two CPUs: half of each stint is their fair share.
        assert_eq!(overlap(&[half(0, 100); 4], 2), 1.0);
    }
}
