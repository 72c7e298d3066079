//! `shmproc demo manager` and `shmproc bench collections`: printing for the work that lives in
//! the library (`shmproc_cli::collections`).

use shmproc_cli::collections::{self, Measured, Op, PythonFigure};
use shmproc_cli::fmt::{rate, thousands};

use crate::progress;

type CliResult = Result<(), Box<dyn std::error::Error>>;

/// The goal of issue 13: every row at least this many operations per second …
const GOAL_OPS: f64 = 2e6;
/// … and at least this many times the Manager's rate in the same run.
const GOAL_RATIO: f64 = 200.0;
/// Operations per process of one Python figure (a Manager does 10-50 k/s).
const PYTHON_OPS: u64 = 3_000;

pub fn demo_manager() -> CliResult {
    println!(
        "Two processes append 10 to a shared list (Python: Manager().list()), and each adds \
         an entry to a shared dict and counts itself in it:"
    );
    let seen = collections::manager_demo()?;
    println!("  list: {:?}", seen.list);
    println!("  dict: {{{}}}", dict_text(&seen.dict));
    let ops = 300_000;
    let m = collections::measure(Op::Update, 1, ops)?;
    println!(
        "Atomic updates of one dict entry from a child process: {} (Python's Manager().dict() \
         proxies every access to a server process: 10-50 k/s; `shmproc bench collections` \
         measures both)",
        rate(m.ops_per_sec)
    );
    Ok(())
}

fn dict_text(entries: &[(String, u64)]) -> String {
    let shown: Vec<String> = entries.iter().map(|(k, v)| format!("{k:?}: {v}")).collect();
    shown.join(", ")
}

/// One row: a workload at a process count, shmproc next to Python.
struct Row {
    op: Op,
    procs: usize,
    ours: Measured,
    python: Option<PythonFigure>,
}

impl Row {
    fn ratio(&self) -> Option<f64> {
        self.python
            .as_ref()
            .map(|p| self.ours.ops_per_sec / p.ops_per_sec.max(1e-9))
    }

    fn meets_goal(&self) -> bool {
        let ratio_ok = self.ratio().map_or(true, |r| r >= GOAL_RATIO);
        self.ours.ops_per_sec >= GOAL_OPS && ratio_ok && self.ours.lost.unwrap_or(0) == 0
    }
}

pub fn bench_collections(json: bool, quick: bool, ops: Option<u64>) -> CliResult {
    let ops = ops.unwrap_or(if quick { 300_000 } else { 1_000_000 });
    let mut rows = Vec::new();
    for procs in [1, 2] {
        for op in Op::ALL {
            progress::step(format!("bench collections: {} x{procs}", op.name()));
            // Median of three runs.
            let mut runs = (0..3)
                .map(|_| collections::measure(op, procs, ops))
                .collect::<Result<Vec<_>, _>>()?;
            runs.sort_by(|a, b| a.ops_per_sec.total_cmp(&b.ops_per_sec));
            let mut ours = runs[1];
            ours.lost = runs.iter().filter_map(|r| r.lost).max();
            rows.push(Row {
                op,
                procs,
                ours,
                python: None,
            });
        }
    }
    progress::step("bench collections: Python Manager twin");
    let python = collections::python_twin(if quick { PYTHON_OPS / 3 } else { PYTHON_OPS })?;
    for row in &mut rows {
        row.python = python.as_ref().and_then(|figures| {
            figures
                .iter()
                .find(|f| f.workload == row.op.name() && f.procs == row.procs)
                .cloned()
        });
    }
    progress::clear();
    let met = rows.iter().all(Row::meets_goal) && python.is_some();
    if json {
        print_json(&rows, met);
    } else {
        print_table(&rows, python.is_some(), met);
    }
    Ok(())
}

fn print_table(rows: &[Row], have_python: bool, met: bool) {
    println!(
        "SharedMap / SharedVec from child processes vs Python's Manager (same run), small \
         string keys, u64 values:"
    );
    println!(
        "{:<26} {:>5} {:>14} {:>18} {:>9}  lost",
        "workload", "procs", "shmproc", "Python Manager", "ratio"
    );
    for r in rows {
        let python = r
            .python
            .as_ref()
            .map_or("-".into(), |p| rate(p.ops_per_sec));
        let ratio = r.ratio().map_or("-".into(), |x| format!("{x:.0}x"));
        let lost = match (r.ours.lost, r.python.as_ref().and_then(|p| p.lost)) {
            (Some(ours), Some(py)) => format!("{} / {}", thousands(ours), thousands(py)),
            (Some(ours), None) => thousands(ours),
            _ => String::new(),
        };
        println!(
            "{:<26} {:>5} {:>14} {:>18} {:>9}  {lost}",
            r.op.name(),
            r.procs,
            rate(r.ours.ops_per_sec),
            python,
            ratio
        );
    }
    if !have_python {
        println!("python3 is not on the PATH: no Manager figures to compare with");
    }
    println!(
        "goal (every row >= {} and >= {GOAL_RATIO:.0}x the Manager, no lost update): {}",
        rate(GOAL_OPS),
        if met { "met" } else { "not met" }
    );
}

fn print_json(rows: &[Row], met: bool) {
    for r in rows {
        let v = serde_json::json!({
            "workload": r.op.name(),
            "procs": r.procs,
            "shmproc_ops_per_sec": r.ours.ops_per_sec,
            "python_ops_per_sec": r.python.as_ref().map(|p| p.ops_per_sec),
            "ratio": r.ratio(),
            "lost": r.ours.lost,
            "python_lost": r.python.as_ref().and_then(|p| p.lost),
        });
        println!("{v}");
    }
    println!("{}", serde_json::json!({ "goal_met": met }));
}
