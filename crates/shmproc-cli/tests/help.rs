//! Every command's help, and usage errors: `--help` exits 0 and names the options, a bad
//! argument exits 2 with a message on stderr, `--version` prints the version.

use std::process::{Command, Output};

fn shmproc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shmproc"))
        .args(args)
        .output()
        .expect("run shmproc")
}

/// Each command path and the options (or words) its help must name.
const HELPS: &[(&[&str], &[&str])] = &[
    (
        &[],
        &[
            "demo",
            "bench",
            "chaos",
            "ls",
            "clean",
            "inspect",
            "rm",
            "--quiet",
            "--version",
            "Exit codes",
        ],
    ),
    (&["demo"], &["[NAME]", "sleepers", "pipe", "all"]),
    (
        &["bench"],
        &["counters", "processes", "channels", "cluster", "all"],
    ),
    (
        &["bench", "counters"],
        &["--procs", "--runs", "--ms", "--iters", "--json", "--quiet"],
    ),
    (&["bench", "processes"], &["--json"]),
    (&["bench", "channels"], &["--json"]),
    (
        &["bench", "cluster"],
        &["--round-trips", "--items", "--chunk", "--json"],
    ),
    (&["bench", "all"], &["--quick", "--out", "--pin"]),
    (
        &["chaos"],
        &[
            "--seconds",
            "--seed",
            "--only",
            "--shared-shm",
            "--json",
            "queue",
        ],
    ),
    (&["ls"], &["--quiet"]),
    (&["clean"], &["--quiet"]),
    (&["inspect"], &["<NAME>"]),
    (&["rm"], &["<NAME>"]),
];

#[test]
fn every_command_has_help_naming_its_options() {
    for (path, words) in HELPS {
        let mut args = path.to_vec();
        args.push("--help");
        let out = shmproc(&args);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "shmproc {args:?}: {}", out.status);
        for word in *words {
            assert!(
                text.contains(word),
                "shmproc {args:?} does not name {word}:\n{text}"
            );
        }
        assert!(text.contains("Exit codes"), "shmproc {args:?}:\n{text}");
    }
}

#[test]
fn bad_arguments_exit_2_with_a_message() {
    for (args, says) in [
        (&["frobnicate"][..], "unrecognized subcommand"),
        (&["bench", "nope"], "unrecognized subcommand"),
        (&["bench", "counters", "--procs", "x"], "--procs"),
        (&["bench", "counters", "--procs", "0"], "at least 1"),
        (&["bench", "counters", "--bogus"], "--bogus"),
        (&["bench", "processes", "--json", "extra"], "extra"),
        (&["demo", "nope"], "possible values"),
        (&["chaos", "--only", "nope"], "possible values"),
        (&["chaos", "--seconds", "soon"], "--seconds"),
        (&["inspect"], "<NAME>"),
    ] {
        let out = shmproc(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "shmproc {args:?}: {err}");
        assert!(
            err.contains(says),
            "shmproc {args:?} should say {says:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "shmproc {args:?} printed on stdout");
    }
}

#[test]
fn version_and_bare_command() {
    let out = shmproc(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("shmproc {}", env!("CARGO_PKG_VERSION"))
    );
    let out = shmproc(&[]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: shmproc"));
}

#[test]
fn failures_exit_1() {
    let out = shmproc(&["inspect", "no-such-segment-for-this-test"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("shmproc: "));
}
