//! The pool goals of `bench processes`: a task's round trip next to the raw futex ping-pong in
//! the same placement (unpinned, one CPU, two CPUs), a hot worker's round trip, `Pool::map`
//! next to Python's `Pool.map`, and (after the threads backend lands) `Pool::threads` next to
//! crossbeam. Every figure is checked for validity: the task must have run in another process
//! and returned the right value.

use std::io;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shmproc::{Pool, WorkerKind};

use crate::channels::{self, Placement};
use crate::pingpong::{PingPong, RawFutex};
use crate::processes::{median, square, Row};

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Returns its worker's pid with its argument: proof the task ran in another process.
#[shmproc::entry]
pub fn whoami(n: u64) -> (u32, u64) {
    (std::process::id(), n)
}

/// A goal and whether this run met it.
#[derive(Debug, Clone)]
pub struct Goal {
    /// What is compared, e.g. `Pool round trip (idle worker) [two CPUs] <= 2x raw futex`.
    pub what: String,
    /// The measured figure (µs, or a ratio).
    pub value: f64,
    /// The goal's limit in the same unit.
    pub limit: f64,
    /// Whether `value` is on the right side of `limit`.
    pub met: bool,
    /// Unit of `value` and `limit`: `"us"` or `"x"`.
    pub unit: &'static str,
}

impl Goal {
    fn at_most(what: String, value: f64, limit: f64, unit: &'static str) -> Goal {
        Goal {
            what,
            value,
            limit,
            met: value <= limit,
            unit,
        }
    }
}

/// The placements, as `bench channels` reports them: unpinned, and pinned to one or two CPUs.
const PLACEMENTS: [(Placement, &str); 3] = [
    (Placement::Free, "unpinned"),
    (Placement::SameCpu, "same CPU"),
    (Placement::TwoCpus, "two CPUs"),
];

/// Pause between "idle worker" round trips: longer than any spin, so both sides sleep.
const IDLE_GAP: Duration = Duration::from_millis(1);

/// Round trips measured per case ("idle" ones are a fifth, each after a 1 ms pause).
pub struct Sizes {
    /// Back-to-back round trips per placement.
    pub trips: usize,
    /// Items of a `map`.
    pub items: u64,
    /// Timed `map` runs.
    pub runs: usize,
}

/// Runs every pool case; the rows, and the goals with their verdicts.
///
/// # Errors
/// When a process cannot be started, a task fails, or a figure is invalid (the task did not
/// run in another process, or returned a wrong value).
pub fn run(sizes: &Sizes) -> BenchResult<(Vec<Row>, Vec<Goal>)> {
    let mut rows = Vec::new();
    let mut goals = Vec::new();
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    for (placement, place) in PLACEMENTS {
        if placement == Placement::TwoCpus && cpus < 2 {
            continue;
        }
        channels::set_placement(placement);
        let result = round_trips(sizes.trips, place);
        channels::set_placement(Placement::Free);
        let (futex, idle, hot) = result?;
        goals.push(Goal::at_most(
            format!("Pool round trip, idle worker [{place}] <= 2x raw futex ping-pong"),
            idle.as_secs_f64() / futex.as_secs_f64(),
            2.0,
            "x",
        ));
        goals.push(Goal::at_most(
            format!("Pool round trip, hot worker [{place}] <= 10 us"),
            micros(hot),
            10.0,
            "us",
        ));
        for (name, d) in [
            ("raw futex ping-pong (sleeping)", futex),
            ("Pool round trip, idle worker", idle),
            ("Pool round trip, hot worker", hot),
        ] {
            rows.push(Row {
                name: leak(format!("{name} [{place}]")),
                median: d,
                baseline: None,
                items_per_sec: None,
            });
        }
    }
    let map = map_rate(sizes.items, sizes.runs)?;
    rows.push(Row {
        name: "Pool::map 100k trivial items (2 workers)",
        median: Duration::from_secs_f64(sizes.items as f64 / map),
        baseline: None,
        items_per_sec: Some(map),
    });
    match python_map_rate() {
        Ok(py) => {
            rows.push(Row {
                name: "Python multiprocessing Pool.map 100k items",
                median: Duration::from_secs_f64(sizes.items as f64 / py),
                baseline: None,
                items_per_sec: Some(py),
            });
            let ratio = map / py;
            goals.push(Goal {
                what: "Pool::map 100k items >= 10x Python's Pool.map".into(),
                value: ratio,
                limit: 10.0,
                met: ratio >= 10.0,
                unit: "x",
            });
        }
        Err(e) => eprintln!("  (no Python figure: {e})"),
    }
    threads(sizes.trips, &mut rows, &mut goals)?;
    Ok((rows, goals))
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// In the current placement: the raw futex ping-pong, a pool's idle-worker and hot-worker
/// round trips (medians).
fn round_trips(trips: usize, place: &str) -> BenchResult<(Duration, Duration, Duration)> {
    let futex = RawFutex::new()?;
    let server = futex.clone();
    let rounds = (trips + trips / 10) as u64;
    let samples = channels::ping_pong(
        trips,
        move || server.serve(rounds),
        || {
            futex.ping();
            Ok(())
        },
    )?;
    let futex = median(samples);
    let (idle, hot) = channels::placed(|worker_cpu| {
        // Started from a thread pinned where the worker should run: the worker and the
        // manager thread inherit its CPU.
        let pool = std::thread::spawn(move || {
            channels::pin_here(worker_cpu);
            Pool::with_kind(1, WorkerKind::Spawned)
        })
        .join()
        .map_err(|_| io::Error::other("pool start panicked"))?
        .map_err(io::Error::other)?;
        let trip = |n: u64| -> io::Result<Duration> {
            let start = Instant::now();
            let (pid, got) = pool
                .submit(whoami, n)
                .and_then(|t| t.wait())
                .map_err(io::Error::other)?;
            let took = start.elapsed();
            if pid == std::process::id() || got != n {
                return Err(io::Error::other(format!(
                    "invalid round trip [{place}]: ran in pid {pid} (we are {}), returned {got} for {n}",
                    std::process::id()
                )));
            }
            Ok(took)
        };
        for n in 0..200 {
            trip(n)?;
        }
        let mut idle = Vec::new();
        for n in 0..(trips / 5).max(1) as u64 {
            std::thread::sleep(IDLE_GAP);
            idle.push(trip(n)?);
        }
        let hot = (0..trips as u64)
            .map(trip)
            .collect::<io::Result<Vec<_>>>()?;
        pool.shutdown().map_err(io::Error::other)?;
        Ok((median(idle), median(hot)))
    })?;
    Ok((futex, idle, hot))
}

/// Items per second of `pool.map(square, 0..items)` on 2 spawned workers (median of `runs`).
fn map_rate(items: u64, runs: usize) -> BenchResult<f64> {
    let pool = Pool::new(2)?;
    // Checked, and a full-size warm-up (the Python twin warms up the same way).
    let check = pool.map(square, 0..items)?;
    if check
        .iter()
        .enumerate()
        .any(|(i, &v)| v != (i as u64).wrapping_mul(i as u64))
    {
        return Err(io::Error::other("Pool::map returned wrong results").into());
    }
    let samples = crate::processes::pool_map(&pool, items, runs)?;
    pool.shutdown()?;
    Ok(items as f64 / median(samples).as_secs_f64())
}

/// The Python twins (the script `bench all` runs).
const PYTHON_TWINS: &str = include_str!("../../../benches/python/bench_mp.py");

/// Items per second of Python's `Pool.map` over 100,000 items: the twin in
/// `benches/python/bench_mp.py`, run as `bench all` runs it.
fn python_map_rate() -> BenchResult<f64> {
    let dir = std::env::temp_dir().join(format!("shmproc-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let script = dir.join("bench_mp.py");
    std::fs::write(&script, PYTHON_TWINS)?;
    let out = Command::new("python3")
        .arg(&script)
        .args(["--only", "Pool.map"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    let out = out?;
    if !out.status.success() {
        return Err(format!("python3 exited with {}", out.status).into());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("\"Pool.map 100k items\""))
        .ok_or("the Python twin printed no Pool.map figure")?;
    let value = line
        .rsplit("\"value\":")
        .next()
        .and_then(|v| v.trim().trim_end_matches('}').trim().parse::<f64>().ok())
        .ok_or_else(|| format!("unreadable Python figure: {line}"))?;
    Ok(value)
}

/// Pins the pool thread that runs it to `cpu` (if given): puts a `Pool::threads` worker where
/// the crossbeam echo thread it is compared with runs.
#[shmproc::entry]
pub fn pin_pool_thread(cpu: Option<usize>) {
    channels::pin_here(cpu);
}

/// `Pool::threads` next to a crossbeam-channel round trip between two threads, in each
/// placement (the requesting thread and the echo or pool thread pinned alike).
fn threads(trips: usize, rows: &mut Vec<Row>, goals: &mut Vec<Goal>) -> BenchResult<()> {
    #[cfg(feature = "baselines")]
    for (placement, place) in PLACEMENTS {
        if placement == Placement::TwoCpus
            && std::thread::available_parallelism().map_or(1, usize::from) < 2
        {
            continue;
        }
        channels::set_placement(placement);
        let measured = channels::placed(|theirs| {
            let crossbeam = median(crate::channel_baselines::crossbeam_ping_pong_on(
                trips, theirs,
            ));
            Ok((crossbeam, pool_threads_round_trip(trips, theirs)?))
        });
        channels::set_placement(Placement::Free);
        let (crossbeam, ours) = measured?;
        let base = leak(format!("crossbeam-channel round trip (threads) [{place}]"));
        rows.push(Row {
            name: base,
            median: crossbeam,
            baseline: None,
            items_per_sec: None,
        });
        rows.push(Row {
            name: leak(format!("Pool::threads round trip [{place}]")),
            median: ours,
            baseline: Some(base),
            items_per_sec: None,
        });
        // Unpinned, each pair of threads lands where the scheduler puts it (crossbeam's figure
        // flips between ~0.3 µs on two CPUs and ~8 µs on one): a row, not a like-for-like goal.
        if placement != Placement::Free {
            goals.push(Goal::at_most(
                format!("Pool::threads round trip [{place}] <= 2x crossbeam-channel"),
                ours.as_secs_f64() / crossbeam.as_secs_f64(),
                2.0,
                "x",
            ));
        }
    }
    let _ = (trips, rows, goals);
    Ok(())
}

/// Median round trip of `submit(echo, n)?.wait()?` on a one-thread `Pool::threads` whose thread
/// is pinned to `cpu`: like for like with the crossbeam echo thread (an entry that only returns
/// its argument, the same untimed warm-up of a tenth of the trips).
#[cfg(feature = "baselines")]
fn pool_threads_round_trip(trips: usize, cpu: Option<usize>) -> io::Result<Duration> {
    let pool = Pool::threads(1).map_err(io::Error::other)?;
    pool.submit(pin_pool_thread, cpu)
        .and_then(|t| t.wait())
        .map_err(io::Error::other)?;
    let trip = |n: u64| -> io::Result<Duration> {
        let start = Instant::now();
        let got = pool
            .submit(crate::processes::echo, n)
            .and_then(|t| t.wait())
            .map_err(io::Error::other)?;
        let took = start.elapsed();
        if got != n {
            return Err(io::Error::other("invalid Pool::threads round trip"));
        }
        Ok(took)
    };
    for n in 0..(trips / 10) as u64 {
        trip(n)?;
    }
    let samples = (0..trips as u64)
        .map(trip)
        .collect::<io::Result<Vec<_>>>()?;
    pool.shutdown().map_err(io::Error::other)?;
    Ok(median(samples))
}

/// The goals as text lines, or JSON lines with `json`.
pub fn report(goals: &[Goal], json: bool) -> String {
    let mut out = String::new();
    if !json && !goals.is_empty() {
        out.push_str("\nGoals (each against a baseline measured in this run and placement)\n");
    }
    for g in goals {
        let verdict = if g.met { "met" } else { "NOT MET" };
        if json {
            out.push_str(&format!(
                "{{\"goal\":\"{}\",\"value\":{:.3},\"limit\":{},\"unit\":\"{}\",\"met\":{}}}\n",
                g.what, g.value, g.limit, g.unit, g.met
            ));
        } else {
            out.push_str(&format!(
                "  {:<66} {:>8.2}{}  {verdict}\n",
                g.what,
                g.value,
                if g.unit == "us" { " µs" } else { "x" }
            ));
        }
    }
    out
}
