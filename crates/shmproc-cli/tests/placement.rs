//! The benchmark harness's process placement: pinned round trips and streams still measure
//! every message, and the calling thread gets its CPU set back afterwards.

use std::thread::available_parallelism;

use shmproc_cli::channel_baselines::{self as base, Wake};
use shmproc_cli::channels::{self, Placement};

#[test]
fn pinned_runs_measure_every_trip_and_restore_the_callers_cpus() {
    let cpus = available_parallelism().unwrap();
    let mut placements = vec![Placement::SameCpu];
    if cpus.get() >= 2 {
        placements.push(Placement::TwoCpus);
    }
    for placement in placements {
        channels::set_placement(placement);
        assert_eq!(channels::pipe_round_trips(50, Some(0)).unwrap().len(), 50);
        assert_eq!(base::word_ping_pong(50, Wake::Futex).unwrap().len(), 50);
        assert!(channels::queue_stream_typed(10_000).unwrap() > std::time::Duration::ZERO);
        // available_parallelism reads this thread's affinity: pinning was undone.
        assert_eq!(available_parallelism().unwrap(), cpus, "{placement:?}");
    }
    channels::set_placement(Placement::Free);
}
