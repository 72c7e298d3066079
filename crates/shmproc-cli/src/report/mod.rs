//! `shmproc bench all`: every benchmark with its same-run baselines and the Python twins, in
//! one report (`report.json`, `report.md`, SVG charts).
//!
//! Each workload holds one shmproc figure, the physical limit measured in the same run (a raw
//! futex or cache-line ping-pong, a bare SPSC ring, `memcpy`, a raw `fork`/`posix_spawn`, a
//! unix-socket round trip), other baselines (pipe(2), socketpair, ipc-channel, raw_sync,
//! robust pthread mutex, crossbeam and parking_lot in-process) and, when `python3` is on the
//! PATH, Python's `multiprocessing` doing the same thing (`benches/python/bench_mp.py`).
//!
//! Run it with `shmproc bench all [--quick] [--out DIR] [--pin]`, or before the CLI is wired
//! with `cargo test -p shmproc-cli --release -- --ignored bench_all_quick`.

mod chart;
mod measure;
mod python;
mod render;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Instant;

pub use render::{json, markdown};

/// What `bench all` runs and where it writes.
#[derive(Debug, Clone)]
pub struct AllOptions {
    /// Smaller counts and fewer rounds: under 3 minutes on 2 cores.
    pub quick: bool,
    /// The directory receiving `report.json`, `report.md` and the `.svg` charts.
    pub out: PathBuf,
    /// Pin the two processes of a stream or round trip to two CPUs (as `bench channels`).
    pub pin: bool,
    /// No progress lines on stderr.
    pub quiet: bool,
}

/// How a workload's figures read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Operations (messages, increments, items) per second: higher is better.
    PerSec,
    /// Microseconds per operation (median): lower is better.
    Micros,
}

impl Unit {
    /// The name used in JSON (and by the Python twins).
    pub fn name(self) -> &'static str {
        match self {
            Unit::PerSec => "per_sec",
            Unit::Micros => "us",
        }
    }
}

/// What an entry of a workload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// shmproc itself (the first one is the workload's headline figure).
    Shmproc,
    /// The physical limit: the cheapest way the machine can do it.
    Limit,
    /// Another implementation measured in the same run.
    Baseline,
    /// Python's `multiprocessing` (the first one is the one compared to).
    Python,
}

impl Role {
    /// The name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Role::Shmproc => "shmproc",
            Role::Limit => "limit",
            Role::Baseline => "baseline",
            Role::Python => "python",
        }
    }
}

/// One measured implementation of a workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Which implementation (`"shmproc Queue"`, `"pipe(2)"`, `"multiprocessing.Queue"`).
    pub system: String,
    /// What it is to the workload.
    pub role: Role,
    /// Its figure, in the workload's unit.
    pub value: f64,
}

/// One thing measured several ways.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// The name shared with the Python twins (`"Queue 8 B"`).
    pub name: String,
    /// How the figures read.
    pub unit: Unit,
    /// Every implementation measured.
    pub entries: Vec<Entry>,
}

impl Workload {
    /// The first entry with `role`.
    pub fn first(&self, role: Role) -> Option<&Entry> {
        self.entries.iter().find(|e| e.role == role)
    }

    /// How many times faster the headline shmproc figure is than `value` (below 1: slower).
    pub fn speedup_over(&self, value: f64) -> Option<f64> {
        let ours = self.first(Role::Shmproc)?.value;
        let r = match self.unit {
            Unit::PerSec => ours / value,
            Unit::Micros => value / ours,
        };
        r.is_finite().then_some(r)
    }

    /// shmproc's speed as a fraction of the limit's (1 = at the limit).
    pub fn vs_limit(&self) -> Option<f64> {
        self.speedup_over(self.first(Role::Limit)?.value)
    }

    /// How many times faster shmproc is than Python.
    pub fn vs_python(&self) -> Option<f64> {
        self.speedup_over(self.first(Role::Python)?.value)
    }
}

/// The machine a report was measured on.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    /// `model name` from /proc/cpuinfo.
    pub cpu: String,
    /// CPUs this process may run on.
    pub cores: usize,
    /// The running kernel's release.
    pub kernel: String,
    /// `rustc --version`, or `rustc not found`.
    pub rustc: String,
    /// `python3 --version`, or [`NO_PYTHON`].
    pub python: String,
}

impl Machine {
    /// Describes this machine.
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or("unknown".into(), |(_, v)| v.trim().to_owned());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or("unknown".into(), |k| format!("Linux {}", k.trim()));
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            kernel,
            rustc: version_of("rustc").unwrap_or_else(|| "rustc not found".into()),
            python: version_of("python3").unwrap_or_else(|| NO_PYTHON.into()),
        }
    }
}

/// [`Machine::python`] when `python3 --version` does not run.
pub const NO_PYTHON: &str = "no python3 on the PATH";

/// `program --version`'s first line, if it runs.
fn version_of(program: &str) -> Option<String> {
    let out = std::process::Command::new(program)
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(if out.stdout.is_empty() {
        &out.stderr
    } else {
        &out.stdout
    })
    .lines()
    .next()?
    .trim()
    .to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// A whole run.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The command that produced it.
    pub command: String,
    /// Whether it was a `--quick` run.
    pub quick: bool,
    /// Whether processes were pinned (`--pin`).
    pub pinned: bool,
    /// Wall time of the whole run, seconds.
    pub seconds: f64,
    /// Where it ran.
    pub machine: Machine,
    /// What was skipped or failed.
    pub notes: Vec<String>,
    /// Every workload, in table order.
    pub workloads: Vec<Workload>,
}

impl Report {
    /// Adds an entry to workload `name` (created with `unit` if new).
    pub fn add(&mut self, name: &str, unit: Unit, system: &str, role: Role, value: f64) {
        let at = match self.workloads.iter().position(|w| w.name == name) {
            Some(at) => at,
            None => {
                self.workloads.push(Workload {
                    name: name.to_owned(),
                    unit,
                    entries: Vec::new(),
                });
                self.workloads.len() - 1
            }
        };
        self.workloads[at].entries.push(Entry {
            system: system.to_owned(),
            role,
            value,
        });
    }
}

/// The chart files [`bench_all`] writes next to the report.
pub const CHARTS: [&str; 2] = ["vs_limit.svg", "vs_python.svg"];

/// Runs every benchmark, its baselines and the Python twins, and writes `report.json`,
/// `report.md` and the charts of [`CHARTS`] into `opts.out` (created if missing).
///
/// # Errors
/// When the output directory or a file cannot be written. A benchmark that fails is noted in
/// the report and the run goes on.
pub fn bench_all(opts: &AllOptions) -> Result<(), Box<dyn std::error::Error>> {
    let began = Instant::now();
    std::fs::create_dir_all(&opts.out)?;
    let progress = |msg: &str| {
        if !opts.quiet {
            eprintln!("[{:>5.1} s] {msg}", began.elapsed().as_secs_f64());
        }
    };
    let mut command = String::from("shmproc bench all");
    if opts.quick {
        command.push_str(" --quick");
    }
    command.push_str(&format!(" --out {}", opts.out.display()));
    if opts.pin {
        command.push_str(" --pin");
    }
    let mut report = Report {
        command,
        quick: opts.quick,
        pinned: opts.pin,
        seconds: 0.0,
        machine: Machine::detect(),
        notes: Vec::new(),
        workloads: Vec::new(),
    };
    measure::all(opts, &mut report, &progress);
    python::run(opts, &mut report, &progress);
    report.seconds = began.elapsed().as_secs_f64();
    std::fs::write(opts.out.join("report.json"), json(&report).to_string())?;
    std::fs::write(opts.out.join("report.md"), markdown(&report, ""))?;
    let [limit, py] = chart::render(&report)?;
    std::fs::write(opts.out.join(CHARTS[0]), limit)?;
    std::fs::write(opts.out.join(CHARTS[1]), py)?;
    progress(&format!(
        "wrote report.json, report.md, {} and {} in {}",
        CHARTS[0],
        CHARTS[1],
        opts.out.display()
    ));
    Ok(())
}
