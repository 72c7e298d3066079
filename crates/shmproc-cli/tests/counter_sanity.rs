//! A sanity bound on the counter benchmark: two processes sharing one atomic counter cannot
//! increment it faster than one process alone (the cache line moves between CPUs at every
//! increment). A benchmark that reports more ran its processes one after another.

use std::time::Duration;

use shmproc_cli::counters::{timed, Variant};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
fn two_processes_do_not_outrun_one_at_fetch_add() {
    // Every run counts, overlapping or not: the bound holds either way (taking turns on one
    // CPU, two processes make about one's rate), and a busy machine (other builds) may not
    // give two CPUs for long enough to pass the overlap check (tests/counter_overlap.rs).
    let timing = timed::Timing {
        duration: Duration::from_millis(100),
        min_overlap: 0.0,
        ..timed::Timing::default()
    };
    let (mut one, mut two) = (Vec::new(), Vec::new());
    // Interleaved rounds, medians compared with a tolerance for a noisy 2-CPU VM.
    for _ in 0..5 {
        one.push(
            timed::measure(Variant::Atomic, 1, &timing)
                .unwrap()
                .0
                .ops_per_sec(),
        );
        two.push(
            timed::measure(Variant::Atomic, 2, &timing)
                .unwrap()
                .0
                .ops_per_sec(),
        );
    }
    let (one, two) = (median(one), median(two));
    assert!(
        two <= 1.2 * one,
        "2 processes: {two:.0} ops/s, 1 process: {one:.0} ops/s"
    );
}
