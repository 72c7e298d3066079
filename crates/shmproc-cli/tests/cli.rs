//! The `shmproc` binary as a user runs it: demos tell their story, the benchmark prints what
//! it promises, the segment tools see and remove segments.

use std::process::{Command, Output};

fn shmproc(args: &[&str]) -> Output {
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
    out
}

fn stdout(args: &[&str]) -> String {
    String::from_utf8(shmproc(args).stdout).unwrap()
}

#[test]
fn demos_tell_their_stories() {
    assert!(stdout(&["demo", "unshared"]).contains("Final balance: 400"));
    let race = stdout(&["demo", "race"]);
    assert!(race.contains("expected balance:      900,400"), "{race}");
    assert!(race.contains("lost updates:"), "{race}");
    let locked = stdout(&["demo", "locked"]);
    assert_eq!(
        locked.matches("actual balance:        900,400").count(),
        2,
        "{locked}"
    );
    assert!(stdout(&["demo"]).contains("race"));
    let va = stdout(&["demo", "value-array"]);
    assert!(va.contains(": 2000") && va.contains("[1, 4, 9]"), "{va}");
    assert!(stdout(&["demo", "cpu-count"]).contains("name Process-"));
}

#[test]
fn unknown_commands_fail_with_usage() {
    let out = Command::new(env!("CARGO_BIN_EXE_shmproc"))
        .args(["frobnicate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage: shmproc"));
}

#[test]
fn bench_counters_json_has_every_variant_and_field() {
    // Short runs, any overlap: this checks the output, not the figures (tests/counter_*.rs do).
    let json = stdout(&[
        "bench",
        "counters",
        "--procs",
        "2",
        "--ms",
        "20",
        "--runs",
        "1",
        "--min-overlap",
        "0",
        "--json",
    ]);
    let rows: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(rows.len(), 9, "{json}");
    for row in &rows {
        for field in [
            "name",
            "procs",
            "iters",
            "ops_per_sec",
            "min_ops_per_sec",
            "max_ops_per_sec",
            "lost",
            "ratio_to_plain_futex",
            "runs",
            "ms",
            "overlap",
            "rejected",
        ] {
            assert!(row.get(field).is_some(), "{field} missing in {row}");
        }
        assert_eq!(row["procs"], 2, "{row}");
        assert_eq!(row["runs"], 1, "{row}");
        let overlap = row["overlap"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&overlap), "{row}");
        if row["name"] != "unlocked get/set" {
            assert_eq!(row["lost"], 0, "{row}");
        }
    }
}

#[test]
fn segment_tools_list_inspect_and_remove() {
    let name = format!("cli{}-tools", std::process::id());
    let v = shmproc::Value::create(&name, 5_u16).unwrap();
    v.persist();
    let ls = stdout(&["ls"]);
    assert!(ls.contains(&name) && ls.contains("persistent"), "{ls}");
    let inspect = stdout(&["inspect", &name]);
    assert!(
        inspect.contains("kind:        Value") && inspect.contains("u16"),
        "{inspect}"
    );
    drop(v);
    shmproc(&["rm", &name]);
    assert!(!stdout(&["ls"]).contains(&name));
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
