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
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: shmproc"));
}

#[test]
fn bench_counters_json_has_every_variant_and_field() {
    let json = stdout(&[
        "bench", "counters", "--procs", "2", "--iters", "2000", "--runs", "1", "--json",
    ]);
    let lines: Vec<&str> = json.lines().collect();
    assert_eq!(lines.len(), 9, "{json}");
    for line in &lines {
        for field in [
            "\"name\":",
            "\"procs\":2",
            "\"iters\":2000",
            "\"ops_per_sec\":",
            "\"lost\":",
        ] {
            assert!(line.contains(field), "{field} missing in {line}");
        }
    }
    let exact: Vec<&&str> = lines.iter().filter(|l| !l.contains("unlocked")).collect();
    assert!(exact.iter().all(|l| l.contains("\"lost\":0,")), "{json}");
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
