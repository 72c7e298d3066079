//! `shmproc demo manager` and `shmproc bench collections`: `SharedMap` / `SharedVec` used from
//! child processes, next to Python's `Manager().dict()` / `.list()` doing the same
//! (`benches/python/bench_manager.py`, run in the same invocation when python3 is on the PATH).

use std::hint::black_box;
use std::io;
use std::process::{Command, Stdio};
use std::time::Instant;

use shmproc::{Array, Barrier, Process, SharedMap, SharedVec};

use crate::channels::join_all;

/// Keys in the benchmark's map (small strings `key-0` .. `key-999`, values `u64`).
pub const KEYS: usize = 1_000;
/// The counter key of the update workload.
const HITS: &str = "hits";

/// What each benchmark process does in a loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `map.get(&key)` over the keys in turn.
    Get,
    /// `map.insert(key, i)`: replaces the value of an existing key.
    Insert,
    /// `map.update(HITS, |n| n + 1)`: one atomic read-modify-write of one counter.
    Update,
    /// `list.push(i)`.
    Push,
}

impl Op {
    /// Every workload, in table order.
    pub const ALL: [Op; 4] = [Op::Get, Op::Insert, Op::Update, Op::Push];

    /// The workload's name (the Python twin prints the same).
    pub fn name(self) -> &'static str {
        match self {
            Op::Get => "dict get",
            Op::Insert => "dict set",
            Op::Update => "dict update (atomic +1)",
            Op::Push => "list append",
        }
    }
}

/// One measured workload.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    /// Operations per second, all processes together.
    pub ops_per_sec: f64,
    /// For [`Op::Update`]: increments lost (expected minus counted).
    pub lost: Option<u64>,
}

/// Runs `op` `ops` times in each of `procs` forked processes, started together; the rate is
/// all operations over the slowest process's time.
///
/// # Errors
/// When shared memory or a process cannot be made, or a process fails.
pub fn measure(op: Op, procs: usize, ops: u64) -> io::Result<Measured> {
    let entries = match op {
        Op::Push => ops as usize * procs,
        _ => KEYS + 1,
    };
    let map: SharedMap<String, u64> = SharedMap::new(KEYS + 1)?;
    let list: SharedVec<u64> = SharedVec::with_capacity(entries, entries * 16)?;
    if op != Op::Push {
        for (i, key) in keys().into_iter().enumerate() {
            map.insert(key, i as u64).map_err(io::Error::other)?;
        }
        map.insert(HITS.into(), 0).map_err(io::Error::other)?;
    }
    let elapsed_ns = Array::<u64>::zeroed(procs)?;
    let start = Barrier::new(procs as u32 + 1)?;
    let children = (0..procs)
        .map(|p| {
            let (map, list, elapsed_ns, start) =
                (map.clone(), list.clone(), elapsed_ns.clone(), start.clone());
            Process::fork(move || {
                let keys = keys();
                start.wait().expect("start barrier");
                let t0 = Instant::now();
                run(op, &map, &list, &keys, p, ops);
                let ns = t0.elapsed().as_nanos() as u64;
                elapsed_ns.set(p, ns).expect("record time");
            })
        })
        .collect::<io::Result<Vec<_>>>()?;
    start.wait().map_err(io::Error::other)?;
    join_all(&children)?;
    let slowest = elapsed_ns.to_vec().map_err(io::Error::other)?;
    let slowest = slowest.into_iter().max().unwrap_or(1).max(1);
    let total = ops * procs as u64;
    let lost = match op {
        Op::Update => {
            let counted = map.get(&HITS.into()).map_err(io::Error::other)?;
            Some(total.saturating_sub(counted.unwrap_or(0)))
        }
        _ => None,
    };
    Ok(Measured {
        ops_per_sec: total as f64 / (slowest as f64 / 1e9),
        lost,
    })
}

/// Mean microseconds of a get and a set from one child process (`ops` of each), for the
/// report's Manager row.
///
/// # Errors
/// As [`measure`].
pub fn get_set_micros(ops: u64) -> io::Result<f64> {
    let get = measure(Op::Get, 1, ops)?.ops_per_sec;
    let set = measure(Op::Insert, 1, ops)?.ops_per_sec;
    Ok((1e6 / get + 1e6 / set) / 2.0)
}

fn keys() -> Vec<String> {
    (0..KEYS).map(|i| format!("key-{i}")).collect()
}

/// One benchmark process's loop.
fn run(
    op: Op,
    map: &SharedMap<String, u64>,
    list: &SharedVec<u64>,
    keys: &[String],
    p: usize,
    ops: u64,
) {
    let hits = HITS.to_string();
    for i in 0..ops {
        let key = &keys[(i as usize + p * KEYS / 2) % KEYS];
        match op {
            Op::Get => {
                black_box(map.get(key).expect("get"));
            }
            Op::Insert => {
                black_box(map.insert(key.clone(), i).expect("insert"));
            }
            Op::Update => {
                black_box(
                    map.update(hits.clone(), |n| n.unwrap_or(0) + 1)
                        .expect("update"),
                );
            }
            Op::Push => list.push(i).expect("push"),
        }
    }
}

/// The Python twin, as in `benches/python/`.
pub const PYTHON_SCRIPT: &str = include_str!("../../../benches/python/bench_manager.py");

/// One figure of the Python twin.
#[derive(Debug, Clone)]
pub struct PythonFigure {
    /// The workload ([`Op::name`]).
    pub workload: String,
    /// Processes.
    pub procs: usize,
    /// Operations per second.
    pub ops_per_sec: f64,
    /// Lost increments (update only).
    pub lost: Option<u64>,
}

/// Runs the Python Manager twin with `ops` operations per process; `Ok(None)` when python3
/// is not on the PATH.
///
/// # Errors
/// When the script fails or prints something else than its figures.
pub fn python_twin(ops: u64) -> io::Result<Option<Vec<PythonFigure>>> {
    let script =
        std::env::temp_dir().join(format!("shmproc-bench-manager-{}.py", std::process::id()));
    std::fs::write(&script, PYTHON_SCRIPT)?;
    let out = Command::new("python3")
        .arg(&script)
        .arg("--ops")
        .arg(ops.to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output();
    let _ = std::fs::remove_file(&script);
    let out = match out {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        other => other?,
    };
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "python3 twin exited with {}",
            out.status
        )));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(parse_figure)
        .collect::<io::Result<Vec<_>>>()
        .map(Some)
}

fn parse_figure(line: &str) -> io::Result<PythonFigure> {
    let bad = || io::Error::other(format!("not a figure: {line}"));
    let v: serde_json::Value = serde_json::from_str(line).map_err(|_| bad())?;
    Ok(PythonFigure {
        workload: v["workload"].as_str().ok_or_else(bad)?.to_owned(),
        procs: v["procs"].as_u64().ok_or_else(bad)? as usize,
        ops_per_sec: v["value"].as_f64().ok_or_else(bad)?,
        lost: v["lost"].as_u64(),
    })
}

/// What the `manager` demo saw.
#[derive(Debug)]
pub struct ManagerDemo {
    /// The shared list after two processes each appended 10.
    pub list: Vec<u64>,
    /// The shared dict after each process added its name and its count.
    pub dict: Vec<(String, u64)>,
}

/// The seed's Manager demo: two processes append 10 to a shared list; each also adds an entry
/// to a shared dict and bumps a shared counter in it.
///
/// # Errors
/// When shared memory or a process fails.
pub fn manager_demo() -> io::Result<ManagerDemo> {
    let list: SharedVec<u64> = SharedVec::new(16)?;
    let dict: SharedMap<String, u64> = SharedMap::new(16)?;
    let children = (1..=2_u64)
        .map(|n| {
            let (list, dict) = (list.clone(), dict.clone());
            Process::fork(move || {
                list.push(10).expect("append");
                dict.insert(format!("process-{n}"), n * 100)
                    .expect("insert");
                dict.update("appends".into(), |c| c.unwrap_or(0) + 1)
                    .expect("update");
            })
        })
        .collect::<io::Result<Vec<_>>>()?;
    join_all(&children)?;
    let mut entries = dict.iter().map_err(io::Error::other)?;
    entries.sort();
    Ok(ManagerDemo {
        list: list.to_vec().map_err(io::Error::other)?,
        dict: entries,
    })
}
