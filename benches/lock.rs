#![allow(missing_docs)] // criterion_group! generates undocumented public functions
//! Lock cost: uncontended acquire+release, and a counter contended by 2 processes, for
//! shmproc's robust lock next to a plain futex mutex, a robust pthread mutex, raw_sync and
//! parking_lot (threads), all in the same run.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use shmproc::RawLock;
use shmproc_cli::baselines::{BenchLock, PlainFutexMutex, RawSyncMutex, RobustPthreadMutex};
use shmproc_cli::counters::{self, Counter, Guarded};

fn uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("uncontended acquire+release");
    let ours = Guarded::<RawLock>::new().unwrap();
    g.bench_function("shmproc RawLock", |b| b.iter(|| ours.increment()));
    let value = shmproc::Value::new(0_u64).unwrap();
    g.bench_function("shmproc Value lock", |b| {
        b.iter(|| *value.lock().unwrap() += 1)
    });
    let plain = Guarded::<PlainFutexMutex>::new().unwrap();
    g.bench_function("plain futex mutex", |b| b.iter(|| plain.increment()));
    let robust = Guarded::<RobustPthreadMutex>::new().unwrap();
    g.bench_function("robust pthread mutex", |b| b.iter(|| robust.increment()));
    let raw_sync = RawSyncMutex::new().unwrap();
    g.bench_function("raw_sync mutex", |b| b.iter(|| raw_sync.with(|| ())));
    let pl = parking_lot::Mutex::new(());
    g.bench_function("parking_lot mutex", |b| b.iter(|| pl.with(|| ())));
    g.finish();
}

fn contended(c: &mut Criterion) {
    let mut g = c.benchmark_group("2-process contended counter");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    fn per_op<C: Counter>(counter: &C, iters: u64) -> Duration {
        counters::run(2, iters, counter.clone()).unwrap().0
    }
    let ours = Guarded::<RawLock>::new().unwrap();
    g.bench_function("shmproc RawLock", |b| b.iter_custom(|n| per_op(&ours, n)));
    let plain = Guarded::<PlainFutexMutex>::new().unwrap();
    g.bench_function("plain futex mutex", |b| {
        b.iter_custom(|n| per_op(&plain, n))
    });
    let robust = Guarded::<RobustPthreadMutex>::new().unwrap();
    g.bench_function("robust pthread mutex", |b| {
        b.iter_custom(|n| per_op(&robust, n))
    });
    let pl = parking_lot::Mutex::new(0_u64);
    g.bench_function("parking_lot (2 threads)", |b| {
        b.iter_custom(|n| {
            let start = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..2 {
                    s.spawn(|| (0..n).for_each(|_| *pl.lock() += 1));
                }
            });
            start.elapsed()
        })
    });
    g.finish();
}

criterion_group!(benches, uncontended, contended);
criterion_main!(benches);
