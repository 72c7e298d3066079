//! The process benchmark: starting and joining processes (fork, spawn) next to raw `fork` and
//! `posix_spawn` of the same binary, a Pool task's round trip next to a raw unix-socket round
//! trip, and `Pool::map` over many trivial items.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shmproc::{Pool, Process, WorkerKind};

/// Returns its argument: the cheapest possible task.
#[shmproc::entry]
pub fn echo(n: u64) -> u64 {
    n
}

/// A trivial map item.
#[shmproc::entry]
pub fn square(n: u64) -> u64 {
    n.wrapping_mul(n)
}

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Times `iters` rounds of `a` then `b` (interleaved, so both see the same machine load).
pub fn paired(
    iters: usize,
    mut a: impl FnMut() -> BenchResult<()>,
    mut b: impl FnMut() -> BenchResult<()>,
) -> BenchResult<(Vec<Duration>, Vec<Duration>)> {
    let (mut ta, mut tb) = (Vec::with_capacity(iters), Vec::with_capacity(iters));
    for _ in 0..iters {
        for (op, out) in [
            (&mut a as &mut dyn FnMut() -> BenchResult<()>, &mut ta),
            (&mut b, &mut tb),
        ] {
            let start = Instant::now();
            op()?;
            out.push(start.elapsed());
        }
    }
    Ok((ta, tb))
}

/// The median of `samples`.
pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

/// `Process::fork(|| {})` + `join`.
///
/// # Errors
/// When a process cannot be started or fails.
pub fn fork_join() -> BenchResult<()> {
    let status = Process::fork(|| {})?.join()?;
    check(status.success(), "forked child failed")
}

/// Baseline: `libc::fork`, the child `_exit(0)`s, the parent `waitpid`s.
///
/// # Errors
/// When `fork` fails.
pub fn raw_fork() -> BenchResult<()> {
    // SAFETY: the child calls only the async-signal-safe `_exit`.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error().into()),
        // SAFETY: `_exit` is async-signal-safe and never returns.
        0 => unsafe { libc::_exit(0) },
        pid => {
            let mut status = 0;
            // SAFETY: waiting for our own child with a valid out-pointer.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            check(status == 0, "raw child failed")
        }
    }
}

/// `Process::spawn(echo, n)` + `join_result`.
///
/// # Errors
/// When a process cannot be started or fails.
pub fn spawn_join() -> BenchResult<()> {
    let got = Process::spawn(echo, 7)?.join_result()?;
    check(got == 7, "wrong result")
}

/// Baseline: `posix_spawn` (via `std::process::Command`) of this same binary, which exits before
/// `main` (the spawn marker without a channel), + `waitpid`.
///
/// # Errors
/// When the process cannot be started.
pub fn raw_posix_spawn() -> BenchResult<()> {
    Command::new("/proc/self/exe")
        .env(shmproc::__private::SPAWN_ENV, "baseline")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    Ok(())
}

/// `pool.submit(echo, n)?.wait()`.
///
/// # Errors
/// When a task fails.
pub fn pool_round_trip(pool: &Pool) -> BenchResult<()> {
    let got = pool.submit(echo, 3)?.wait()?;
    check(got == 3, "wrong result")
}

/// Baseline: a forked process echoing 8-byte messages over a unix socket pair.
#[derive(Debug)]
pub struct SocketEcho {
    ours: UnixStream,
    child: Process,
}

const QUIT: [u8; 8] = [0xff; 8];

impl SocketEcho {
    /// Starts the echo process.
    ///
    /// # Errors
    /// When the socket pair or the process cannot be made.
    pub fn new() -> BenchResult<SocketEcho> {
        let (ours, mut theirs) = UnixStream::pair()?;
        let child = Process::fork(move || {
            // The child inherited `ours` too, so it never sees end-of-stream: stop on QUIT.
            let mut buf = [0u8; 8];
            while theirs.read_exact(&mut buf).is_ok() && buf != QUIT {
                if theirs.write_all(&buf).is_err() {
                    break;
                }
            }
        })?;
        Ok(SocketEcho { ours, child })
    }

    /// One round trip.
    ///
    /// # Errors
    /// When the echo process is gone.
    pub fn round_trip(&mut self) -> BenchResult<()> {
        let mut buf = [1u8; 8];
        self.ours.write_all(&buf)?;
        self.ours.read_exact(&mut buf)?;
        Ok(())
    }
}

impl Drop for SocketEcho {
    fn drop(&mut self) {
        let _ = self.ours.write_all(&QUIT);
        let _ = self.child.join_timeout(Duration::from_secs(5));
    }
}

/// `pool.map(square, 0..items)`, per run.
///
/// # Errors
/// When a task fails.
pub fn pool_map(pool: &Pool, items: u64, runs: usize) -> BenchResult<Vec<Duration>> {
    pool.map(square, 0..1000)?;
    let mut out = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let got = pool.map(square, 0..items)?;
        out.push(start.elapsed());
        check(got.len() as u64 == items, "lost items")?;
    }
    Ok(out)
}

fn check(ok: bool, what: &str) -> BenchResult<()> {
    if ok {
        Ok(())
    } else {
        Err(io::Error::other(what.to_owned()).into())
    }
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Row {
    /// What was measured.
    pub name: &'static str,
    /// Median time per operation.
    pub median: Duration,
    /// The baseline this is compared to, if any.
    pub baseline: Option<&'static str>,
    /// Items per second, for throughput rows.
    pub items_per_sec: Option<f64>,
}

/// Runs the whole benchmark: `iters` process starts, `trips` round trips, `runs` maps of
/// `items` items. Each case runs interleaved with its baseline.
///
/// # Errors
/// When anything fails to start or a task fails.
pub fn run(iters: usize, trips: usize, items: u64, runs: usize) -> BenchResult<Vec<Row>> {
    let row = |name, samples: Vec<Duration>, baseline| Row {
        name,
        median: median(samples),
        baseline,
        items_per_sec: None,
    };
    let mut rows = Vec::new();
    let (raw, ours) = paired(iters, raw_fork, fork_join)?;
    rows.push(row("raw fork + waitpid", raw, None));
    rows.push(row(
        "Process::fork + join",
        ours,
        Some("raw fork + waitpid"),
    ));
    let (raw, ours) = paired(iters, raw_posix_spawn, spawn_join)?;
    rows.push(row("posix_spawn same binary + wait", raw, None));
    rows.push(row(
        "Process::spawn + join_result",
        ours,
        Some("posix_spawn same binary + wait"),
    ));
    for (kind, raw_name, trip_name, map_name) in [
        (
            WorkerKind::Spawned,
            "unix socket round trip",
            "Pool task round trip",
            "Pool::map 100k trivial items",
        ),
        (
            WorkerKind::Forked,
            "unix socket round trip (2)",
            "Pool (forked) task round trip",
            "Pool (forked)::map 100k trivial items",
        ),
    ] {
        let pool = Pool::with_kind(2, kind)?;
        let mut socket = SocketEcho::new()?;
        for _ in 0..100 {
            pool_round_trip(&pool)?; // warm-up
        }
        let (raw, ours) = paired(trips, || socket.round_trip(), || pool_round_trip(&pool))?;
        drop(socket);
        rows.push(row(raw_name, raw, None));
        rows.push(row(trip_name, ours, Some(raw_name)));
        let mut map = row(map_name, pool_map(&pool, items, runs)?, None);
        map.items_per_sec = Some(items as f64 / map.median.as_secs_f64());
        rows.push(map);
        pool.shutdown()?;
    }
    Ok(rows)
}

/// The median of the row named `name`.
pub fn median_of(rows: &[Row], name: &str) -> Option<Duration> {
    rows.iter().find(|r| r.name == name).map(|r| r.median)
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The report as a table, or as JSON lines with `json`.
pub fn report(rows: &[Row], json: bool) -> String {
    let mut out = String::new();
    if !json {
        out.push_str(&format!(
            "{:<40} {:>12} {:>14}   vs baseline\n",
            "case (median)", "per op", "items/s"
        ));
    }
    for r in rows {
        let ratio = r
            .baseline
            .and_then(|b| median_of(rows, b))
            .map(|b| r.median.as_secs_f64() / b.as_secs_f64());
        if json {
            out.push_str(&format!(
                "{{\"name\":\"{}\",\"median_us\":{:.2},\"items_per_sec\":{},\"baseline\":{},\
                 \"ratio_to_baseline\":{}}}\n",
                r.name,
                micros(r.median),
                r.items_per_sec.map_or("null".into(), |v| format!("{v:.0}")),
                r.baseline.map_or("null".into(), |b| format!("\"{b}\"")),
                ratio.map_or("null".into(), |v| format!("{v:.3}")),
            ));
        } else {
            out.push_str(&format!(
                "{:<40} {:>9.1} µs {:>14}   {}\n",
                r.name,
                micros(r.median),
                r.items_per_sec.map_or(String::new(), crate::fmt::rate),
                match (ratio, r.baseline) {
                    (Some(x), Some(b)) => format!("{x:.2}x {b}"),
                    _ => String::new(),
                }
            ));
        }
    }
    out
}
