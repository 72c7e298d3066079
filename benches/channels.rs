#![allow(missing_docs)] // criterion_group! generates undocumented public functions
//! Channel cost: one-way throughput (8 B, 1 KiB, 64 KiB) of shmproc's Queue and Pipe next to
//! pipe(2), a unix socketpair, ipc-channel and crossbeam-channel (threads); round-trip latency
//! of a Pipe spinning and sleeping next to raw spin/futex ping-pongs and the same baselines.
//! Processes are pinned as in `shmproc bench channels` (receiver and senders on two CPUs;
//! round trips on one CPU and on two).
//! Each criterion iteration is one message (throughput) or one round trip (latency). A sample
//! sets up fresh channels and processes, so it always runs at least a few thousand messages or
//! round trips and reports the time scaled back to the iterations asked for.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shmproc_cli::channel_baselines::{self as base, Fd, Wake};
use shmproc_cli::channels::{self, Placement, SPIN_FOREVER};

fn throughput(c: &mut Criterion) {
    // Receiver on one CPU, senders on another, as `shmproc bench channels` runs them.
    channels::set_placement(two_cpus_if_possible());
    let mut g = c.benchmark_group("one-way throughput");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for size in [8usize, 1024, 64 << 10] {
        g.throughput(Throughput::Bytes(size as u64));
        let run = |f: fn(usize, u64) -> std::io::Result<Duration>| {
            move |b: &mut criterion::Bencher<'_>, &size: &usize| {
                b.iter_custom(|n| {
                    let m = n.max(channels::messages_for(size) / 50);
                    scaled(f(size, m).unwrap(), n, m)
                })
            }
        };
        g.bench_with_input(
            BenchmarkId::new("shmproc Queue", size),
            &size,
            run(|s, n| channels::queue_stream(s, 1, n)),
        );
        g.bench_with_input(
            BenchmarkId::new("shmproc Queue 2 producers", size),
            &size,
            run(|s, n| channels::queue_stream(s, 2, n)),
        );
        g.bench_with_input(
            BenchmarkId::new("shmproc Pipe", size),
            &size,
            run(|s, n| channels::pipe_stream(s, 1, n)),
        );
        g.bench_with_input(
            BenchmarkId::new("pipe(2)", size),
            &size,
            run(|s, n| base::fd_stream(Fd::Pipe, s, n)),
        );
        g.bench_with_input(
            BenchmarkId::new("unix socketpair", size),
            &size,
            run(|s, n| base::fd_stream(Fd::Socket, s, n)),
        );
        g.bench_with_input(
            BenchmarkId::new("ipc-channel", size),
            &size,
            run(base::ipc_stream),
        );
        g.bench_with_input(
            BenchmarkId::new("crossbeam (threads)", size),
            &size,
            run(|s, n| Ok(base::crossbeam_stream(s, n))),
        );
        if size == 8 {
            g.bench_with_input(
                BenchmarkId::new("shmproc Queue, typed", size),
                &size,
                run(|_, n| channels::queue_stream_typed(n)),
            );
            g.bench_with_input(
                BenchmarkId::new("raw SPSC ring", size),
                &size,
                run(|_, n| base::spsc_stream(n)),
            );
        }
    }
    g.finish();
}

/// `took` for `ran` iterations, scaled to `asked` iterations.
fn scaled(took: Duration, asked: u64, ran: u64) -> Duration {
    took.mul_f64(asked as f64 / ran as f64)
}

/// Round trips: at least 2,000 per sample, scaled to the `n` asked for.
fn trips(n: u64, run: impl FnOnce(usize) -> std::io::Result<Vec<Duration>>) -> Duration {
    let m = n.max(2_000);
    let total: Duration = run(m as usize).unwrap().into_iter().sum();
    scaled(total, n, m)
}

/// Pins like `shmproc bench channels`: two CPUs when there are two, else none.
fn two_cpus_if_possible() -> Placement {
    if std::thread::available_parallelism().map_or(1, usize::from) >= 2 {
        Placement::TwoCpus
    } else {
        Placement::Free
    }
}

/// Round trips with the two processes on one CPU and on two (as `shmproc bench channels`
/// does: left free, a run measures mostly where the scheduler put them).
fn latency(c: &mut Criterion) {
    let placements = [
        (Placement::SameCpu, "same CPU"),
        (two_cpus_if_possible(), "two CPUs"),
    ];
    for (placement, place) in placements {
        channels::set_placement(placement);
        let mut g = c.benchmark_group(format!("round trip 8 B, {place}"));
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(2));
        if placement != Placement::SameCpu {
            // Spinning on one CPU only measures the scheduler's time slices.
            g.bench_function("shmproc Pipe, spinning", |b| {
                b.iter_custom(|i| trips(i, |n| channels::pipe_round_trips(n, Some(SPIN_FOREVER))))
            });
            g.bench_function("raw spin ping-pong", |b| {
                b.iter_custom(|i| trips(i, |n| base::word_ping_pong(n, Wake::Spin)))
            });
        }
        g.bench_function("shmproc Pipe, sleeping", |b| {
            b.iter_custom(|i| trips(i, |n| channels::pipe_round_trips(n, Some(0))))
        });
        g.bench_function("raw futex ping-pong", |b| {
            b.iter_custom(|i| trips(i, |n| base::word_ping_pong(n, Wake::Futex)))
        });
        g.bench_function("pipe(2)", |b| {
            b.iter_custom(|i| trips(i, |n| base::fd_ping_pong(Fd::Pipe, n)))
        });
        g.bench_function("unix socketpair", |b| {
            b.iter_custom(|i| trips(i, |n| base::fd_ping_pong(Fd::Socket, n)))
        });
        g.bench_function("ipc-channel", |b| {
            b.iter_custom(|i| trips(i, base::ipc_ping_pong))
        });
        g.finish();
    }
    channels::set_placement(Placement::Free);
    let mut g = c.benchmark_group("round trip 8 B, threads");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    g.bench_function("crossbeam (threads)", |b| {
        b.iter_custom(|i| trips(i, |n| Ok(base::crossbeam_ping_pong(n))))
    });
    g.finish();
}

criterion_group!(benches, throughput, latency);
criterion_main!(benches);
