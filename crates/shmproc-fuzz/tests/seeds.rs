//! Every target's checked-in seeds, and a few thousand mutants of them, run clean: the quick
//! part of the fuzzing that `cargo test` does (`.ci/run` runs the bounded campaign;
//! `docs/RELIABILITY.md` documents the long one).

use std::time::Duration;

use shmproc_fuzz::{load_seeds, replay, run, Budget, TARGETS};

#[test]
fn checked_in_seeds_exist_for_every_target_and_run_clean() {
    for target in &TARGETS {
        let seeds = load_seeds(target).expect("fuzz/seeds/<target>/ is readable");
        assert!(!seeds.is_empty(), "no seeds for {}", target.name);
        assert!(
            seeds.len() <= 16,
            "{}: a handful of seeds, not a corpus",
            target.name
        );
        replay(target, &seeds).unwrap_or_else(|f| panic!("{f}"));
    }
}

#[test]
fn generated_seeds_run_clean() {
    for target in &TARGETS {
        replay(target, &(target.seeds)()).unwrap_or_else(|f| panic!("{f}"));
    }
}

#[test]
fn a_few_thousand_mutants_per_target_run_clean() {
    let budget = Budget {
        time: Duration::from_secs(2),
        inputs: 3_000,
        hang: Duration::from_secs(20),
    };
    for (i, target) in TARGETS.iter().enumerate() {
        let report = run(target, &budget, 0x5eed + i as u64).unwrap_or_else(|f| panic!("{f}"));
        assert!(report.inputs > report.seeds, "{}: {report}", target.name);
    }
}
