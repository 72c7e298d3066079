#![allow(missing_docs)] // criterion_group! generates undocumented public functions
//! Process cost: start+join of forked and spawned processes next to raw `fork` and
//! `posix_spawn` of the same binary; a Pool task's round trip next to a unix-socket echo; and
//! `Pool::map` over 100,000 trivial items. Baselines run in the same invocation.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shmproc::{Pool, WorkerKind};
use shmproc_cli::processes::{self, SocketEcho};

fn timed(n: u64, mut op: impl FnMut() -> Result<(), Box<dyn std::error::Error>>) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        op().unwrap();
    }
    start.elapsed()
}

fn start_and_join(c: &mut Criterion) {
    let mut g = c.benchmark_group("process start+join");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    g.bench_function("raw fork + waitpid", |b| {
        b.iter_custom(|n| timed(n, processes::raw_fork))
    });
    g.bench_function("Process::fork + join", |b| {
        b.iter_custom(|n| timed(n, processes::fork_join))
    });
    g.bench_function("posix_spawn same binary", |b| {
        b.iter_custom(|n| timed(n, processes::raw_posix_spawn))
    });
    g.bench_function("Process::spawn + join_result", |b| {
        b.iter_custom(|n| timed(n, processes::spawn_join))
    });
    g.finish();
}

fn pool(c: &mut Criterion) {
    let mut g = c.benchmark_group("pool");
    g.sample_size(20).measurement_time(Duration::from_secs(2));
    let mut socket = SocketEcho::new().unwrap();
    g.bench_function("unix socket round trip", |b| {
        b.iter_custom(|n| timed(n, || socket.round_trip()))
    });
    drop(socket);
    for (kind, name) in [
        (WorkerKind::Spawned, "spawned"),
        (WorkerKind::Forked, "forked"),
    ] {
        let pool = Pool::with_kind(2, kind).unwrap();
        g.bench_function(format!("task round trip ({name})"), |b| {
            b.iter_custom(|n| timed(n, || processes::pool_round_trip(&pool)))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("pool map 100k trivial items");
    g.sample_size(10).throughput(Throughput::Elements(100_000));
    let pool = Pool::new(2).unwrap();
    g.bench_function("Pool::map", |b| {
        b.iter(|| pool.map(processes::square, 0..100_000).unwrap())
    });
    g.bench_function("sequential in-process (reference)", |b| {
        b.iter(|| {
            (0..100_000_u64)
                .map(|n| n.wrapping_mul(n))
                .collect::<Vec<_>>()
        })
    });
    g.finish();
}

criterion_group!(benches, start_and_join, pool);
criterion_main!(benches);
