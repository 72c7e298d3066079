//! The Rust side of `bench all`: calls the counter, sync, channel and process benchmarks and
//! their baselines, and files each figure under the workload name the Python twins share.

use std::io;
use std::time::{Duration, Instant};

use super::{AllOptions, Report, Role, Unit};
use crate::channel_baselines::{self as base, Fd, Wake};
use crate::channels::{self, Latency, Placement};
use crate::counters::{self, Variant};
use crate::pingpong::{self, ConditionTurn, EventPair, RawFutex};
use crate::processes;

type Progress<'a> = &'a dyn Fn(&str);
type Failure = Box<dyn std::error::Error>;

/// Counts of one run: `quick` or full.
struct Sizes {
    counter_time: std::time::Duration,
    counter_runs: usize,
    pingpong_trips: u64,
    pingpong_rounds: usize,
    stream_divisor: u64,
    stream_runs: usize,
    trip_rounds: usize,
    trips: usize,
    process_starts: usize,
    pool_trips: usize,
    map_runs: usize,
}

impl Sizes {
    fn of(quick: bool) -> Sizes {
        if quick {
            Sizes {
                counter_time: std::time::Duration::from_millis(100),
                counter_runs: 3,
                pingpong_trips: 5_000,
                pingpong_rounds: 5,
                stream_divisor: 2,
                stream_runs: 3,
                trip_rounds: 8,
                trips: 1_000,
                process_starts: 100,
                pool_trips: 3_000,
                map_runs: 5,
            }
        } else {
            Sizes {
                counter_time: std::time::Duration::from_millis(200),
                counter_runs: 5,
                pingpong_trips: 10_000,
                pingpong_rounds: 9,
                stream_divisor: 1,
                stream_runs: 5,
                trip_rounds: 20,
                trips: 1_000,
                process_starts: 200,
                pool_trips: 5_000,
                map_runs: 15,
            }
        }
    }
}

/// Items per `Pool::map` run, on both sides.
pub const MAP_ITEMS: u64 = 100_000;

/// Runs every Rust benchmark into `report`; a failing group becomes a note.
pub fn all(opts: &AllOptions, report: &mut Report, progress: Progress<'_>) {
    let sizes = Sizes::of(opts.quick);
    let placement = if opts.pin {
        if std::thread::available_parallelism().map_or(1, usize::from) >= 2 {
            Placement::TwoCpus
        } else {
            report
                .notes
                .push("--pin needs 2 CPUs: processes left unpinned".into());
            Placement::Free
        }
    } else {
        Placement::Free
    };
    channels::set_placement(placement);
    type Group = fn(&Sizes, &mut Report, Progress<'_>) -> Result<(), Failure>;
    let spin_group: Group = if placement == Placement::TwoCpus {
        spin_trip_group
    } else {
        |_, _, _| Ok(())
    };
    let groups: [(&str, Group); 7] = [
        ("counters", counter_group),
        ("sync ping-pong", sync_group),
        ("channel throughput", stream_group),
        ("channel round trips", trip_group),
        ("spinning round trips", spin_group),
        ("processes", process_group),
        ("collections", collection_group),
    ];
    for (name, group) in groups {
        if let Err(e) = group(&sizes, report, progress) {
            progress(&format!("{name} failed: {e}"));
            report.notes.push(format!("{name} failed: {e}"));
        }
    }
    channels::set_placement(Placement::Free);
}

/// Counter workloads: (workload, shmproc variant, limit variant, other baselines).
const COUNTERS: [(&str, Variant, Variant, &[Variant]); 3] = [
    (
        "counter, Value without lock",
        Variant::Unlocked,
        Variant::Atomic,
        &[],
    ),
    (
        "counter, Value lock",
        Variant::ValueLock,
        Variant::PlainFutex,
        &[
            Variant::RawLock,
            Variant::RobustPthread,
            Variant::RawSync,
            Variant::ParkingLotThreads,
        ],
    ),
    (
        "counter, separate Lock",
        Variant::SeparateLock,
        Variant::PlainFutex,
        &[],
    ),
];

fn counter_group(s: &Sizes, report: &mut Report, progress: Progress<'_>) -> Result<(), Failure> {
    progress("counters: 2 processes increment one shared counter");
    // Every variant once per round, rounds interleaved so all see the same machine state.
    let mut samples: Vec<(Variant, Vec<f64>)> =
        Variant::ALL.iter().map(|v| (*v, Vec::new())).collect();
    for _ in 0..s.counter_runs {
        for (variant, got) in &mut samples {
            // Fixed-time runs whose two processes really overlapped (repeated otherwise).
            let timing = counters::timed::Timing {
                duration: s.counter_time,
                ..Default::default()
            };
            let (run, _rejected) = counters::timed::measure(*variant, 2, &timing)?;
            got.push(run.ops_per_sec());
        }
    }
    let median_of = |v: Variant| {
        let (_, got) = samples.iter().find(|(w, _)| *w == v).expect("measured");
        median_f64(got)
    };
    for (workload, ours, limit, others) in COUNTERS {
        let add = |r: &mut Report, v: Variant, role| {
            r.add(workload, Unit::PerSec, v.name(), role, median_of(v));
        };
        add(report, ours, Role::Shmproc);
        add(report, limit, Role::Limit);
        for v in others {
            add(report, *v, Role::Baseline);
        }
    }
    Ok(())
}

fn sync_group(s: &Sizes, report: &mut Report, progress: Progress<'_>) -> Result<(), Failure> {
    progress("sync: Event and Condition ping-pong vs a raw futex ping-pong");
    let (futex, event, cond) = (RawFutex::new()?, EventPair::new()?, ConditionTurn::new()?);
    let n = s.pingpong_trips;
    let per_trip = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    let (mut f, mut e, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..s.pingpong_rounds {
        f.push(per_trip(pingpong::measure(&futex, n)?));
        e.push(per_trip(pingpong::measure(&event, n)?));
        c.push(per_trip(pingpong::measure(&cond, n)?));
    }
    let futex_name = "raw futex ping-pong";
    for (workload, system, samples) in [
        ("Event ping-pong", "shmproc Event", &e),
        ("Condition ping-pong", "shmproc Condition", &c),
    ] {
        report.add(
            workload,
            Unit::Micros,
            system,
            Role::Shmproc,
            median_f64(samples),
        );
        report.add(
            workload,
            Unit::Micros,
            futex_name,
            Role::Limit,
            median_f64(&f),
        );
    }
    Ok(())
}

/// Message sizes of the queue workloads and their names.
const STREAM_SIZES: [(usize, &str); 3] = [
    (8, "Queue 8 B"),
    (1024, "Queue 1 KiB"),
    (65536, "Queue 64 KiB"),
];

fn stream_group(s: &Sizes, report: &mut Report, progress: Progress<'_>) -> Result<(), Failure> {
    for (size, workload) in STREAM_SIZES {
        progress(&format!("channels: {workload}, one producer process"));
        let n = (channels::messages_for(size) / s.stream_divisor).max(1_000);
        let nb = (n / 4).max(500);
        let runs = s.stream_runs;
        let mut add =
            |system: &str, role, msgs: u64, f: &mut dyn FnMut() -> io::Result<Duration>| {
                let mut rates = Vec::with_capacity(runs);
                for _ in 0..runs {
                    rates.push(msgs as f64 / f()?.as_secs_f64().max(1e-9));
                }
                report.add(workload, Unit::PerSec, system, role, median_f64(&rates));
                io::Result::Ok(())
            };
        add("shmproc Queue", Role::Shmproc, n, &mut || {
            channels::queue_stream(size, 1, n)
        })?;
        if size == 8 {
            add(
                "shmproc Queue, typed put/get",
                Role::Shmproc,
                n,
                &mut || channels::queue_stream_typed(n),
            )?;
            add("raw SPSC ring", Role::Limit, n, &mut || {
                base::spsc_stream(n)
            })?;
        } else {
            add(
                "memcpy in and out of a ring (1 thread)",
                Role::Limit,
                n,
                &mut || Ok(memcpy_ring(size, n)),
            )?;
        }
        add("shmproc Pipe", Role::Baseline, n, &mut || {
            channels::pipe_stream(size, 1, n)
        })?;
        for fd in [Fd::Pipe, Fd::Socket] {
            add(fd.name(), Role::Baseline, nb, &mut || {
                base::fd_stream(fd, size, nb)
            })?;
        }
        #[cfg(feature = "baselines")]
        {
            add("ipc-channel", Role::Baseline, nb, &mut || {
                base::ipc_stream(size, nb)
            })?;
            add("crossbeam (threads)", Role::Baseline, n, &mut || {
                Ok(base::crossbeam_stream(size, n))
            })?;
        }
    }
    Ok(())
}

/// The copying a shared-memory queue cannot avoid: `msgs` messages of `size` bytes copied into
/// a 1 MiB ring and out again, in one thread.
fn memcpy_ring(size: usize, msgs: u64) -> Duration {
    let mut ring = vec![0u8; channels::RING];
    let src = vec![7u8; size];
    let mut dst = vec![0u8; size];
    let slots = (ring.len() / size).max(1);
    let start = Instant::now();
    for i in 0..msgs {
        let at = (i as usize % slots) * size;
        ring[at..at + size].copy_from_slice(std::hint::black_box(&src));
        dst.copy_from_slice(&ring[at..at + size]);
        std::hint::black_box(&mut dst);
    }
    start.elapsed()
}

/// The round-trip workload's name, shared with the Python twin.
const PIPE_TRIP: &str = "Pipe round trip 8 B";

fn trip_group(s: &Sizes, report: &mut Report, progress: Progress<'_>) -> Result<(), Failure> {
    progress("channels: Pipe round trips vs a raw futex ping-pong, pipe(2), sockets");
    let n = s.trips;
    let (mut ours, mut floor) = (Vec::new(), Vec::new());
    for _ in 0..s.trip_rounds {
        ours.extend(channels::pipe_round_trips(n, Some(0))?);
        floor.extend(base::word_ping_pong(n, Wake::Futex)?);
    }
    let mut add = |system: &str, role, samples: &mut Vec<Duration>| {
        let median = Latency::of(system, samples).median;
        report.add(
            PIPE_TRIP,
            Unit::Micros,
            system,
            role,
            median.as_secs_f64() * 1e6,
        );
    };
    add("shmproc Pipe, sleeping", Role::Shmproc, &mut ours);
    add("raw futex ping-pong", Role::Limit, &mut floor);
    let more = n * s.trip_rounds / 2;
    add(
        "pipe(2)",
        Role::Baseline,
        &mut base::fd_ping_pong(Fd::Pipe, more)?,
    );
    add(
        "unix socketpair",
        Role::Baseline,
        &mut base::fd_ping_pong(Fd::Socket, more)?,
    );
    #[cfg(feature = "baselines")]
    {
        add(
            "ipc-channel",
            Role::Baseline,
            &mut base::ipc_ping_pong(more)?,
        );
        add(
            "crossbeam (threads)",
            Role::Baseline,
            &mut base::crossbeam_ping_pong(more * 4),
        );
    }
    Ok(())
}

/// Spinning round trips, only measured pinned to two CPUs (unpinned, two spinning processes
/// on one CPU measure the scheduler's time slice).
fn spin_trip_group(s: &Sizes, report: &mut Report, progress: Progress<'_>) -> Result<(), Failure> {
    progress("channels: spinning Pipe round trips vs a raw cache-line ping-pong");
    let workload = "Pipe round trip 8 B, spinning";
    let n = s.trips * 2;
    let (mut ours, mut floor) = (Vec::new(), Vec::new());
    for _ in 0..s.trip_rounds {
        ours.extend(channels::pipe_round_trips(n, Some(channels::SPIN_FOREVER))?);
        floor.extend(base::word_ping_pong(n, Wake::Spin)?);
    }
    for (system, role, samples) in [
        ("shmproc Pipe, spinning", Role::Shmproc, &mut ours),
        ("raw cache-line ping-pong", Role::Limit, &mut floor),
    ] {
        let median = Latency::of(system, samples).median;
        report.add(
            workload,
            Unit::Micros,
            system,
            role,
            median.as_secs_f64() * 1e6,
        );
    }
    Ok(())
}

/// Process rows: (row of `processes::run`, workload, role).
const PROCESS_ROWS: [(&str, &str, Role); 8] = [
    ("Process::fork + join", "fork start + join", Role::Shmproc),
    ("raw fork + waitpid", "fork start + join", Role::Limit),
    (
        "Process::spawn + join_result",
        "spawn start + join",
        Role::Shmproc,
    ),
    (
        "posix_spawn same binary + wait",
        "spawn start + join",
        Role::Limit,
    ),
    (
        "Pool task round trip",
        "Pool task round trip",
        Role::Shmproc,
    ),
    (
        "Pool (forked) task round trip",
        "Pool task round trip",
        Role::Shmproc,
    ),
    (
        "unix socket round trip",
        "Pool task round trip",
        Role::Limit,
    ),
    (
        "Pool (forked)::map 100k trivial items",
        "Pool.map 100k items",
        Role::Baseline,
    ),
];

fn process_group(s: &Sizes, report: &mut Report, progress: Progress<'_>) -> Result<(), Failure> {
    progress("processes: fork/spawn start, Pool round trip and map");
    let rows = processes::run(s.process_starts, s.pool_trips, MAP_ITEMS, s.map_runs)?;
    let us = |name: &str| processes::median_of(&rows, name).map(|d| d.as_secs_f64() * 1e6);
    let map = |name: &str| {
        rows.iter()
            .find(|r| r.name == name)
            .and_then(|r| r.items_per_sec)
    };
    if let Some(v) = map("Pool::map 100k trivial items") {
        let system = "shmproc Pool::map";
        report.add(
            "Pool.map 100k items",
            Unit::PerSec,
            system,
            Role::Shmproc,
            v,
        );
    }
    for (row, workload, role) in PROCESS_ROWS {
        let value = if workload.starts_with("Pool.map") {
            map(row)
        } else {
            us(row)
        };
        let unit = if workload.starts_with("Pool.map") {
            Unit::PerSec
        } else {
            Unit::Micros
        };
        if let Some(v) = value {
            report.add(workload, unit, row, role, v);
        }
    }
    Ok(())
}

/// The median of `xs` (0 when empty).
pub fn median_f64(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// The Manager row: a `SharedMap` get and set from a child process, microseconds per operation.
fn collection_group(_: &Sizes, report: &mut Report, progress: Progress<'_>) -> Result<(), Failure> {
    progress("collections: SharedMap get and set from a child");
    let us = crate::collections::get_set_micros(300_000)?;
    let system = "shmproc SharedMap (from a child)";
    report.add(
        "Manager dict get/set",
        Unit::Micros,
        system,
        Role::Shmproc,
        us,
    );
    Ok(())
}
