//! The counter benchmark rejects runs whose processes did not run at the same time: here they
//! are forced to run one after another (the serialising test hook).

use std::process::Command;
use std::time::Duration;

use shmproc_cli::counters::{timed, Variant};

#[test]
fn serialised_runs_are_rejected() {
    let timing = timed::Timing {
        duration: Duration::from_millis(50),
        serialise: true,
        max_tries: 3,
        ..timed::Timing::default()
    };
    let run = timed::measure_once(Variant::Atomic, 2, &timing).unwrap();
    assert!(
        run.overlap() < timed::MIN_OVERLAP,
        "a serialised run overlapped {:.2}: {:?}",
        run.overlap(),
        run.stints
    );
    let err = timed::measure(Variant::Atomic, 2, &timing).unwrap_err();
    assert!(err.to_string().contains("overlapped less than"), "{err}");

    let out = Command::new(env!("CARGO_BIN_EXE_shmproc"))
        .args([
            "bench",
            "counters",
            "--ms",
            "20",
            "--runs",
            "1",
            "--serialise-for-test",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("overlapped less than 90 %"));
}
