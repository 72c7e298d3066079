//! `shmproc demo manager` and `shmproc bench collections`: printing for the work that lives in
//! the library (`shmproc_cli::collections`).

use shmproc_cli::collections::{self, Measured, Op, PythonFigure};
use shmproc_cli::fmt::{rate, thousands};

use crate::progress;

type CliResult = Result<(), Box<dyn std::error::Error>>;

/// The goal of issue 13: every row at least this many operations per second (200 times the
/// 10,300 sets a second of a Manager measured there), and no lost update …
const GOAL_OPS: f64 = 2e6;
/// … and, compared with the Manager of the same run, this many times its rate.
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
        self.ours.ops_per_sec >= GOAL_OPS && self.ours.lost.unwrap_or(0) == 0
    }

    fn meets_ratio(&self) -> bool {
        self.ratio().is_some_and(|r| r >= GOAL_RATIO)
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
    let met = rows.iter().all(Row::meets_goal);
    let ratio_rows = rows.iter().filter(|r| r.meets_ratio()).count();
    if json {
        print_json(&rows, met, ratio_rows);
    } else {
        print_table(&rows, python.is_some(), met, ratio_rows);
    }
    Ok(())
}

fn print_table(rows: &[Row], have_python: bool, met: bool, ratio_rows: usize) {
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
    println!(
        "goal (every row >= {}, no lost update): {}",
        rate(GOAL_OPS),
        if met { "met" } else { "not met" }
    );
    if have_python {
        println!(
            ">= {GOAL_RATIO:.0}x this run's Manager: {ratio_rows} of {} rows (the Manager's own \
             rate swings with the machine's load)",
            rows.len()
        );
    } else {
        println!("python3 is not on the PATH: no Manager figures to compare with");
    }
}

fn print_json(rows: &[Row], met: bool, ratio_rows: usize) {
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
    let summary = serde_json::json!({ "goal_met": met, "rows_at_200x_python": ratio_rows });
    println!("{summary}");
}
