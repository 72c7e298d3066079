#![allow(missing_docs)] // criterion_group! generates undocumented public functions
//! The sync family: uncontended cost of each operation, and the wake-up round trip of Event and
//! Condition between two processes next to a raw futex ping-pong, all in the same run.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use shmproc::{Barrier, Condition, Event, Lock, RLock, Semaphore};
use shmproc_cli::pingpong::{self, ConditionTurn, EventPair, PingPong, RawFutex};

fn uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("uncontended");
    let lock = Lock::new().unwrap();
    g.bench_function("Lock acquire+release", |b| {
        b.iter(|| drop(lock.acquire().unwrap()))
    });
    let rlock = RLock::new().unwrap();
    g.bench_function("RLock acquire+release", |b| {
        b.iter(|| drop(rlock.acquire().unwrap()))
    });
    let outer = rlock.acquire().unwrap();
    g.bench_function("RLock re-entry", |b| {
        b.iter(|| drop(rlock.acquire().unwrap()))
    });
    drop(outer);
    let sem = Semaphore::new(1).unwrap();
    g.bench_function("Semaphore acquire+release", |b| {
        b.iter(|| {
            sem.acquire().unwrap();
            sem.release().unwrap()
        })
    });
    let ev = Event::new().unwrap();
    g.bench_function("Event set+clear", |b| {
        b.iter(|| {
            ev.set().unwrap();
            ev.clear().unwrap()
        })
    });
    let cond = Condition::new().unwrap();
    g.bench_function("Condition notify_one (no waiter)", |b| {
        b.iter(|| cond.notify_one().unwrap())
    });
    let bar = Barrier::new(1).unwrap();
    g.bench_function("Barrier(1) wait", |b| b.iter(|| bar.wait().unwrap()));
    g.finish();
}

fn round_trip(c: &mut Criterion) {
    let mut g = c.benchmark_group("2-process wake-up round trip");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    fn bench<P: PingPong>(
        g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
        name: &str,
        pp: P,
    ) {
        g.bench_function(name, |b| {
            b.iter_custom(|n| pingpong::measure(&pp, n).unwrap())
        });
    }
    bench(&mut g, "raw futex ping-pong", RawFutex::new().unwrap());
    bench(&mut g, "Event pair", EventPair::new().unwrap());
    bench(&mut g, "Condition", ConditionTurn::new().unwrap());
    g.finish();
}

criterion_group!(benches, uncontended, round_trip);
criterion_main!(benches);
