//! `shmproc demo manager` and `shmproc bench collections` as a user runs them.

use std::process::Command;

fn stdout(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_shmproc"))
        .args(args)
        .output()
        .expect("run shmproc");
    assert!(
        out.status.success(),
        "shmproc {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_manager_demo_prints_the_shared_list_and_dict() {
    let out = stdout(&["demo", "manager"]);
    assert!(out.contains("list: [10, 10]"), "{out}");
    assert!(out.contains("\"appends\": 2"), "{out}");
    assert!(out.contains("\"process-1\": 100"), "{out}");
    assert!(stdout(&["demo"]).contains("manager"));
}

#[test]
fn bench_collections_json_has_every_row_and_no_lost_update() {
    let json = stdout(&[
        "-q",
        "bench",
        "collections",
        "--quick",
        "--ops",
        "20000",
        "--json",
    ]);
    let rows: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(rows.len(), 9, "8 figures and the goal: {json}");
    for row in &rows[..8] {
        for field in [
            "workload",
            "procs",
            "shmproc_ops_per_sec",
            "python_ops_per_sec",
        ] {
            assert!(row.get(field).is_some(), "{field} missing: {row}");
        }
        assert!(row["shmproc_ops_per_sec"].as_f64().unwrap() > 0.0);
        if row["workload"].as_str().unwrap().contains("update") {
            assert_eq!(row["lost"].as_u64(), Some(0), "{row}");
        }
    }
    assert!(rows[8]["goal_met"].is_boolean());
    assert!(stdout(&["bench", "--help"]).contains("collections"));
}
