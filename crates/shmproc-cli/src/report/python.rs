//! The Python twins: `benches/python/bench_mp.py` (embedded, written next to the report and
//! run with `python3`), whose JSON lines join the Rust workloads of the same name.

use std::process::{Command, Stdio};

use super::{AllOptions, Report, Role, Unit};

/// The twin script, as in `benches/python/`.
pub const SCRIPT: &str = include_str!("../../../../benches/python/bench_mp.py");

/// Runs the twins into `report`, or notes why not (no `python3`, a failure).
pub fn run(opts: &AllOptions, report: &mut Report, progress: &dyn Fn(&str)) {
    if report.machine.python == super::NO_PYTHON {
        progress("python3 is not on the PATH: skipping the Python twins");
        report
            .notes
            .push("python3 is not on the PATH: no Python figures".into());
        return;
    }
    progress(&format!(
        "Python twins ({}, multiprocessing)",
        report.machine.python
    ));
    if let Err(e) = run_script(opts, report) {
        progress(&format!("Python twins failed: {e}"));
        report.notes.push(format!("Python twins failed: {e}"));
    }
}

fn run_script(opts: &AllOptions, report: &mut Report) -> Result<(), Box<dyn std::error::Error>> {
    let script = opts.out.join("bench_mp.py");
    std::fs::write(&script, SCRIPT)?;
    let mut cmd = Command::new("python3");
    cmd.arg(&script);
    if opts.quick {
        cmd.arg("--quick");
    }
    let stderr = if opts.quiet {
        Stdio::null()
    } else {
        Stdio::inherit()
    };
    let out = cmd.stdin(Stdio::null()).stderr(stderr).output()?;
    let added = parse(&String::from_utf8_lossy(&out.stdout), report)?;
    if !out.status.success() {
        return Err(format!("python3 exited with {} after {added} figures", out.status).into());
    }
    Ok(())
}

/// Adds each JSON line `{"workload", "system", "unit", "value"}` of `text` to `report`;
/// returns how many.
///
/// # Errors
/// On a line that is not such an object.
pub fn parse(text: &str, report: &mut Report) -> Result<usize, String> {
    let mut added = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("{e}: {line}"))?;
        let field = |k: &str| v.get(k).and_then(serde_json::Value::as_str);
        let (Some(workload), Some(system), Some(unit), Some(value)) = (
            field("workload"),
            field("system"),
            field("unit"),
            v.get("value").and_then(serde_json::Value::as_f64),
        ) else {
            return Err(format!("not a figure: {line}"));
        };
        let unit = match unit {
            "per_sec" => Unit::PerSec,
            "us" => Unit::Micros,
            other => return Err(format!("unknown unit {other:?}: {line}")),
        };
        report.add(workload, unit, system, Role::Python, value);
        added += 1;
    }
    Ok(added)
}
