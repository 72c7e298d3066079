//! The counter benchmark: N processes increment one shared counter in different ways.
//!
//! [`timed`] runs each variant for a fixed time and checks that the processes overlapped (what
//! `shmproc bench counters` reports); [`measure`] and [`run`] make a fixed count of increments
//! (what the demos and the criterion bench use).

pub mod timed;

use std::io;
use std::ptr::NonNull;
#[cfg(feature = "baselines")]
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shmproc::raw::{Segment, SharedRef, Spec, TypeInfo};
use shmproc::{Kind, Lock, Process, RawLock, Value};

#[cfg(feature = "baselines")]
use crate::baselines::RawSyncMutex;
use crate::baselines::{BenchLock, PlainFutexMutex, RobustPthreadMutex};

/// One shared counter and a way to increment it.
pub trait Counter: Clone + Send + 'static {
    /// Adds one (or tries to: the unlocked variant loses updates).
    fn increment(&self);
    /// The final count.
    fn total(&self) -> u64;
}

/// Which counter to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// `v.set(v.get()? + 1)`: two locked steps, loses updates.
    Unlocked,
    /// `fetch_add` on a shared atomic.
    Atomic,
    /// `*v.lock()? += 1` on a shmproc `Value`.
    ValueLock,
    /// A separate shmproc `Lock` around `get`/`set`, as in the Python seeds.
    SeparateLock,
    /// shmproc's robust `RawLock` around a plain counter.
    RawLock,
    /// Baseline: a plain (non-robust) futex mutex.
    PlainFutex,
    /// Baseline: a robust process-shared pthread mutex.
    RobustPthread,
    /// Baseline: raw_sync's mutex in a shared_memory segment.
    RawSync,
    /// In-process reference: `parking_lot::Mutex` with N threads.
    ParkingLotThreads,
}

impl Variant {
    /// Every variant, in table order.
    pub const ALL: [Variant; 9] = [
        Variant::Unlocked,
        Variant::Atomic,
        Variant::ValueLock,
        Variant::SeparateLock,
        Variant::RawLock,
        Variant::PlainFutex,
        Variant::RobustPthread,
        Variant::RawSync,
        Variant::ParkingLotThreads,
    ];

    /// Whether this variant was compiled in: the `raw_sync` and `parking_lot` baselines need
    /// the `baselines` feature.
    pub fn built(self) -> bool {
        cfg!(feature = "baselines")
            || !matches!(self, Variant::RawSync | Variant::ParkingLotThreads)
    }

    /// The name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Unlocked => "unlocked get/set",
            Variant::Atomic => "atomic fetch_add",
            Variant::ValueLock => "Value lock",
            Variant::SeparateLock => "separate Lock + get/set",
            Variant::RawLock => "shmproc RawLock",
            Variant::PlainFutex => "plain futex mutex",
            Variant::RobustPthread => "robust pthread mutex",
            Variant::RawSync => "raw_sync mutex",
            Variant::ParkingLotThreads => "parking_lot (threads)",
        }
    }
}

/// The outcome of one measurement.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The variant measured.
    pub variant: Variant,
    /// Processes (or threads) incrementing.
    pub procs: usize,
    /// Increments per process.
    pub iters: u64,
    /// Wall time from the start signal until all had finished.
    pub elapsed: Duration,
    /// Increments that were lost (expected minus final count).
    pub lost: u64,
}

impl Sample {
    /// Increments attempted per second, all processes together.
    pub fn ops_per_sec(&self) -> f64 {
        (self.procs as f64 * self.iters as f64) / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Measures `variant` once.
///
/// # Errors
/// When segments cannot be created, a process cannot be forked, or a worker fails.
pub fn measure(variant: Variant, procs: usize, iters: u64) -> io::Result<Sample> {
    let elapsed = match variant {
        Variant::Unlocked => run(procs, iters, UnlockedValue(Value::new(0)?))?,
        Variant::Atomic => run(
            procs,
            iters,
            SharedRef::<AtomicU64>::new(raw_segment()?, 0)?,
        )?,
        Variant::ValueLock => run(procs, iters, LockedValue(Value::new(0)?))?,
        Variant::SeparateLock => run(procs, iters, SeparateLock(Lock::new()?, Value::new(0)?))?,
        Variant::RawLock => run(procs, iters, Guarded::<RawLock>::new()?)?,
        Variant::PlainFutex => run(procs, iters, Guarded::<PlainFutexMutex>::new()?)?,
        Variant::RobustPthread => run(procs, iters, Guarded::<RobustPthreadMutex>::new()?)?,
        #[cfg(feature = "baselines")]
        Variant::RawSync => run(procs, iters, RawSyncCounter::new()?)?,
        #[cfg(feature = "baselines")]
        Variant::ParkingLotThreads => return Ok(measure_threads(procs, iters)),
        #[cfg(not(feature = "baselines"))]
        Variant::RawSync | Variant::ParkingLotThreads => return Err(not_built(variant)),
    };
    Ok(Sample {
        variant,
        procs,
        iters,
        elapsed: elapsed.0,
        lost: (procs as u64 * iters).saturating_sub(elapsed.1),
    })
}

/// The error for a variant compiled out (see [`Variant::built`]).
pub fn not_built(variant: Variant) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!(
            "{}: not built (the `baselines` feature is off)",
            variant.name()
        ),
    )
}

fn raw_segment() -> io::Result<Arc<Segment>> {
    raw_segment_of(256)
}

fn raw_segment_of(payload_len: usize) -> io::Result<Arc<Segment>> {
    let spec = Spec {
        kind: Kind::Raw,
        elem: TypeInfo::none(),
        payload_len,
    };
    Ok(Arc::new(Segment::create_anonymous(&spec, |_| Ok(()))?))
}

/// Forks `procs` workers that each increment `counter` `iters` times, started together.
/// Returns the time from the start signal until all have exited, and the final count.
///
/// # Errors
/// When a worker cannot be forked, does not start within 30 s, or fails.
pub fn run<C: Counter>(procs: usize, iters: u64, counter: C) -> io::Result<(Duration, u64)> {
    let gate = SharedRef::<AtomicU32>::new(raw_segment()?, 0)?;
    let ready = SharedRef::<AtomicU32>::new(Arc::clone(gate.segment()), 64)?;
    let mut workers = Vec::with_capacity(procs);
    for _ in 0..procs {
        let (gate, ready, counter) = (gate.clone(), ready.clone(), counter.clone());
        workers.push(Process::fork(move || {
            ready.fetch_add(1, Ordering::AcqRel);
            while gate.load(Ordering::Acquire) == 0 {
                std::thread::yield_now();
            }
            for _ in 0..iters {
                counter.increment();
            }
        })?);
    }
    await_ready(&ready, procs, &workers)?;
    let start = Instant::now();
    gate.store(1, Ordering::Release);
    for w in &workers {
        let status = w.join()?;
        if !status.success() {
            return Err(io::Error::other(format!("worker failed: {status}")));
        }
    }
    Ok((start.elapsed(), counter.total()))
}

#[cfg(feature = "baselines")]
fn measure_threads(threads: usize, iters: u64) -> Sample {
    let counter = parking_lot::Mutex::new(0_u64);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            let counter = &counter;
            s.spawn(move || {
                for _ in 0..iters {
                    *counter.lock() += 1;
                }
            });
        }
    });
    let elapsed = start.elapsed();
    let total = *counter.lock();
    Sample {
        variant: Variant::ParkingLotThreads,
        procs: threads,
        iters,
        elapsed,
        lost: (threads as u64 * iters).saturating_sub(total),
    }
}

#[derive(Clone)]
struct UnlockedValue(Value<i64>);
impl Counter for UnlockedValue {
    fn increment(&self) {
        let v = self.0.get().expect("counter lock");
        self.0.set(v + 1).expect("counter lock");
    }
    fn total(&self) -> u64 {
        self.0.get().expect("counter lock") as u64
    }
}

#[derive(Clone)]
struct LockedValue(Value<i64>);
impl Counter for LockedValue {
    fn increment(&self) {
        *self.0.lock().expect("counter lock") += 1;
    }
    fn total(&self) -> u64 {
        self.0.get().expect("counter lock") as u64
    }
}

#[derive(Clone)]
struct SeparateLock(Lock, Value<i64>);
impl Counter for SeparateLock {
    fn increment(&self) {
        let _guard = self.0.acquire().expect("counter lock");
        let v = self.1.get().expect("counter lock");
        self.1.set(v + 1).expect("counter lock");
    }
    fn total(&self) -> u64 {
        self.1.get().expect("counter lock") as u64
    }
}

impl Counter for SharedRef<AtomicU64> {
    fn increment(&self) {
        self.fetch_add(1, Ordering::Relaxed);
    }
    fn total(&self) -> u64 {
        self.load(Ordering::Relaxed)
    }
}

/// Increments a plain counter under `lock`: relaxed load + store, exact only with the lock.
fn locked_increment(lock: &impl BenchLock, counter: &AtomicU64) {
    lock.with(|| counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed));
}

/// A lock of type `L` at offset 0 of an anonymous segment and a counter at offset 128.
pub struct Guarded<L> {
    lock: NonNull<L>,
    counter: SharedRef<AtomicU64>,
}

impl<L> Clone for Guarded<L> {
    fn clone(&self) -> Self {
        Guarded {
            lock: self.lock,
            counter: self.counter.clone(),
        }
    }
}

// SAFETY: `lock` points into the segment kept alive by `counter`; L is a process-shared lock
// that is Sync, so using it from whichever thread or process holds a clone is sound.
unsafe impl<L: Sync> Send for Guarded<L> {}

/// Puts a lock into fresh shared memory.
pub trait InitLock: Sized {
    /// Initialises the lock at `place` (zeroed, aligned, mapped) and returns it.
    fn init(place: NonNull<Self>) -> NonNull<Self>;
}
impl InitLock for RawLock {
    fn init(place: NonNull<Self>) -> NonNull<Self> {
        place // all zeroes is an unlocked RawLock
    }
}
impl InitLock for PlainFutexMutex {
    fn init(place: NonNull<Self>) -> NonNull<Self> {
        place // all zeroes is an unlocked futex mutex
    }
}
impl InitLock for RobustPthreadMutex {
    fn init(place: NonNull<Self>) -> NonNull<Self> {
        // SAFETY: `place` is a fresh, aligned, mapped slot of the segment that outlives use.
        NonNull::from(unsafe { RobustPthreadMutex::init(place.as_ptr()) })
    }
}

impl<L: InitLock + Sync> Guarded<L> {
    /// A new lock and counter in an anonymous segment.
    ///
    /// # Errors
    /// When the segment cannot be created.
    pub fn new() -> io::Result<Self> {
        let seg = raw_segment()?;
        let lock = L::init(seg.ptr::<L>(0, 1)?);
        Ok(Guarded {
            lock,
            counter: SharedRef::new(seg, 128)?,
        })
    }
}

impl<L: BenchLock + Sync + 'static> Counter for Guarded<L> {
    fn increment(&self) {
        // SAFETY: `lock` points at an initialised L inside the live segment (see `new`).
        locked_increment(unsafe { self.lock.as_ref() }, &self.counter);
    }
    fn total(&self) -> u64 {
        self.counter.load(Ordering::Relaxed)
    }
}

#[cfg(feature = "baselines")]
#[derive(Clone)]
struct RawSyncCounter(Rc<(RawSyncMutex, SharedRef<AtomicU64>)>);
#[cfg(feature = "baselines")]
impl RawSyncCounter {
    fn new() -> io::Result<Self> {
        let lock = RawSyncMutex::new().map_err(io::Error::other)?;
        let counter = SharedRef::new(raw_segment()?, 0)?;
        Ok(RawSyncCounter(Rc::new((lock, counter))))
    }
}
#[cfg(feature = "baselines")]
// SAFETY: the handle only ever moves into a forked child (one thread, its own copy of the
// address space); it never crosses threads within one process.
unsafe impl Send for RawSyncCounter {}
#[cfg(feature = "baselines")]
impl Counter for RawSyncCounter {
    fn increment(&self) {
        locked_increment(&self.0 .0, &self.0 .1);
    }
    fn total(&self) -> u64 {
        self.0 .1.load(Ordering::Relaxed)
    }
}

/// Waits (at most 30 s) until `procs` workers have said they are ready; kills them all if not.
pub(crate) fn await_ready(
    ready: &std::sync::atomic::AtomicU32,
    procs: usize,
    workers: &[shmproc::Process],
) -> io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while ready.load(Ordering::Acquire) < procs as u32 {
        if Instant::now() > deadline {
            workers.iter().for_each(|w| drop(w.kill()));
            return Err(io::Error::other("benchmark workers did not start"));
        }
        std::thread::yield_now();
    }
    Ok(())
}
