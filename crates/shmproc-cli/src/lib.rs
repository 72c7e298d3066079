//! Library half of the `shmproc` command: the demos, the counter benchmark, the baseline
//! locks and the chaos run, shared by the CLI, the examples, the integration tests and the
//! criterion benches.

pub mod baselines;
pub mod channel_baselines;
pub mod channel_demos;
pub mod channels;
pub mod chaos;
pub mod classic_demos;
pub mod cluster_bench;
pub mod collections;
pub mod counters;
pub mod demos;
pub mod fmt;
pub mod pingpong;
pub mod pool_bench;
pub mod processes;
pub mod report;
pub mod spawn_demos;
