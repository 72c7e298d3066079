//! The report as JSON and as Markdown.

use serde_json::{json, Value};

use super::{Report, Role, Unit, Workload, CHARTS};

/// The report as one JSON object: run, machine, notes, and per workload its entries and the
/// ratios `shmproc_vs_limit` and `shmproc_vs_python` (speed ratios: above 1, shmproc is faster).
pub fn json(r: &Report) -> Value {
    let m = &r.machine;
    let workloads: Vec<Value> = r
        .workloads
        .iter()
        .map(|w| {
            let entries: Vec<Value> = w
                .entries
                .iter()
                .map(|e| json!({"system": e.system, "role": e.role.name(), "value": e.value}))
                .collect();
            json!({
                "name": w.name,
                "unit": w.unit.name(),
                "higher_is_better": w.unit == Unit::PerSec,
                "entries": entries,
                "shmproc_vs_limit": w.vs_limit(),
                "shmproc_vs_python": w.vs_python(),
            })
        })
        .collect();
    json!({
        "command": r.command,
        "quick": r.quick,
        "pinned": r.pinned,
        "seconds": r.seconds,
        "machine": {
            "cpu": m.cpu, "cores": m.cores, "kernel": m.kernel,
            "rustc": m.rustc, "python": m.python,
        },
        "notes": r.notes,
        "workloads": workloads,
    })
}

/// A figure with its unit: `12.3 M/s` or `4.56 µs`.
pub fn figure(unit: Unit, value: f64) -> String {
    match unit {
        Unit::PerSec => crate::fmt::rate(value),
        Unit::Micros if value >= 1000.0 => format!("{:.0} µs", value),
        Unit::Micros => format!("{value:.2} µs"),
    }
}

fn ratio(r: Option<f64>) -> String {
    r.map_or("–".into(), |r| {
        if r >= 10.0 {
            format!("{r:.0}×")
        } else {
            format!("{r:.2}×")
        }
    })
}

fn cell(w: &Workload, role: Role) -> String {
    w.first(role).map_or("–".into(), |e| {
        format!("{} ({})", figure(w.unit, e.value), e.system)
    })
}

/// The report as Markdown; the charts are linked as `{chart_dir}vs_limit.svg` (pass `""` for
/// charts next to the file, `"docs/bench/"` for the repository's copy).
pub fn markdown(r: &Report, chart_dir: &str) -> String {
    let m = &r.machine;
    let mut out = String::from("# shmproc benchmarks\n\n");
    out.push_str(&format!(
        "Produced by `{}` in {:.0} s{}.\n\n",
        r.command,
        r.seconds,
        if r.quick {
            " (quick: fewer rounds and smaller counts than a full run)"
        } else {
            ""
        }
    ));
    out.push_str(&format!(
        "Machine: {}, {} CPUs, {}, {}, {}. Processes {}.\n\n",
        m.cpu,
        m.cores,
        m.kernel,
        m.rustc,
        m.python,
        if r.pinned {
            "pinned to two CPUs (`--pin`)"
        } else {
            "placed by the scheduler"
        }
    ));
    out.push_str(
        "**vs limit** is shmproc's speed as a fraction of the physical limit measured in the \
         same run (1.00× = at the limit). **vs Python** is how many times faster shmproc is \
         than Python's `multiprocessing` doing the same thing (`benches/python/bench_mp.py`). \
         Rates are per second (higher is better); µs are medians per operation (lower is \
         better).\n\n",
    );
    if !r.pinned {
        out.push_str(
            "Unpinned, the scheduler may keep two processes on one CPU for a while (on a VM \
             especially): stream and round-trip figures vary more between runs; `--pin` pins \
             them to two CPUs as `shmproc bench channels` does.\n\n",
        );
    }
    for note in &r.notes {
        out.push_str(&format!("- Note: {note}\n"));
    }
    if !r.notes.is_empty() {
        out.push('\n');
    }
    out.push_str("## Summary\n\n");
    out.push_str("| workload | shmproc | limit | vs limit | Python | vs Python |\n");
    out.push_str("|---|---|---|---:|---|---:|\n");
    for w in &r.workloads {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            w.name,
            cell(w, Role::Shmproc),
            cell(w, Role::Limit),
            ratio(w.vs_limit()),
            cell(w, Role::Python),
            ratio(w.vs_python()),
        ));
    }
    out.push_str(&format!(
        "\n![shmproc vs the physical limit]({chart_dir}{})\n\n\
         ![shmproc vs Python multiprocessing]({chart_dir}{})\n\n",
        CHARTS[0], CHARTS[1]
    ));
    out.push_str("## Every measurement\n\n");
    out.push_str(
        "shmproc vs it: how many times faster the workload's shmproc figure is than this one.\n\n",
    );
    for w in &r.workloads {
        out.push_str(&format!("### {}\n\n", w.name));
        out.push_str("| implementation | role | figure | shmproc vs it |\n|---|---|---|---:|\n");
        for e in &w.entries {
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                e.system,
                e.role.name(),
                figure(w.unit, e.value),
                ratio(w.speedup_over(e.value))
            ));
        }
        out.push('\n');
    }
    out
}
