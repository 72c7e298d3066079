//! The stable driver of shmproc's fuzz targets.
//!
//! The targets themselves live next to the code they test, as plain functions in each crate's
//! hidden `fuzzing` module, so this driver and the libFuzzer harness in `fuzz/` (nightly,
//! coverage-guided, AddressSanitizer) run exactly the same code:
//!
//! | target | function | what the input becomes |
//! |---|---|---|
//! | `header` | `shmproc_shm::fuzzing::fuzz_header` | a segment file, opened as some kind and type |
//! | `queue` | `shmproc_channel::fuzzing::fuzz_queue` | a queue's ring (indices, locks, records), then `try_get`/`try_put` |
//! | `pipe` | `shmproc_channel::fuzzing::fuzz_pipe` | a duplex pipe's two rings, then `try_recv`/`try_send`/`poll` |
//! | `open` | `shmproc_channel::fuzzing::fuzz_open` | a named channel segment (capacities, rosters), opened as a `Queue` or `Pipe` end |
//! | `frames` | `shmproc_process::fuzzing::fuzz_frames` | a socket stream of job/reply frames with descriptors |
//!
//! The driver replays the checked-in seeds (`fuzz/seeds/<target>/`), then runs mutants of them
//! for a bounded time or number of inputs ([`run`]); a panic or an input that runs too long
//! is saved under `fuzz/artifacts/<target>/` with the command that replays it.
//!
//! # Examples
//! ```
//! use std::time::Duration;
//! use shmproc_fuzz::{run, Budget, TARGETS};
//!
//! let budget = Budget { time: Duration::from_millis(200), inputs: 500, hang: Duration::from_secs(10) };
//! let report = run(&TARGETS[0], &budget, 42).expect("no failure");
//! assert!(report.inputs > 0);
//! ```

mod mutate;
mod runner;

use std::fs;
use std::io;
use std::path::PathBuf;

pub use mutate::{mutant, Rng};
pub use runner::{replay, run, Budget, Failure, Report};

/// One fuzz target.
#[derive(Debug)]
pub struct Target {
    /// Its name (also its seed and artifact directory, and the libFuzzer target's name).
    pub name: &'static str,
    /// Runs one input; panics on a bug.
    pub run: fn(&[u8]),
    /// Generates the seeds checked in under `fuzz/seeds/<name>/`.
    pub seeds: fn() -> Vec<Vec<u8>>,
    /// Longest input the mutator makes.
    pub max_len: usize,
}

/// Every target.
pub const TARGETS: [Target; 5] = [
    Target {
        name: "header",
        run: shmproc_shm::fuzzing::fuzz_header,
        seeds: shmproc_shm::fuzzing::header_seeds,
        max_len: 1024,
    },
    Target {
        name: "queue",
        run: shmproc_channel::fuzzing::fuzz_queue,
        seeds: shmproc_channel::fuzzing::queue_seeds,
        max_len: 4096,
    },
    Target {
        name: "pipe",
        run: shmproc_channel::fuzzing::fuzz_pipe,
        seeds: shmproc_channel::fuzzing::pipe_seeds,
        max_len: 4096,
    },
    Target {
        name: "open",
        run: shmproc_channel::fuzzing::fuzz_open,
        seeds: shmproc_channel::fuzzing::open_seeds,
        max_len: 2048,
    },
    Target {
        name: "frames",
        run: shmproc_process::fuzzing::fuzz_frames,
        seeds: shmproc_process::fuzzing::frame_seeds,
        max_len: 2048,
    },
];

/// Saves `input` as `fuzz/artifacts/<target>/<kind>-<hash>`; where, if it could.
pub fn save_input(target: &Target, kind: &str, input: &[u8]) -> Option<PathBuf> {
    runner::save(target, kind, input)
}

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// `fuzz/` of this repository.
pub fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Where `target`'s seeds are checked in.
pub fn seeds_dir(target: &Target) -> PathBuf {
    fuzz_dir().join("seeds").join(target.name)
}

/// The checked-in seeds of `target`, in file-name order.
///
/// # Errors
/// When the directory or a file cannot be read.
pub fn load_seeds(target: &Target) -> io::Result<Vec<Vec<u8>>> {
    let mut paths: Vec<PathBuf> = fs::read_dir(seeds_dir(target))?
        .map(|e| e.map(|e| e.path()))
        .collect::<io::Result<_>>()?;
    paths.sort();
    paths.into_iter().map(fs::read).collect()
}

/// Writes `target`'s generated seeds as `seed-NN` files (replacing those there).
///
/// # Errors
/// When the directory cannot be written.
pub fn write_seeds(target: &Target) -> io::Result<usize> {
    let dir = seeds_dir(target);
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    fs::create_dir_all(&dir)?;
    let seeds = (target.seeds)();
    for (i, seed) in seeds.iter().enumerate() {
        fs::write(dir.join(format!("seed-{i:02}")), seed)?;
    }
    Ok(seeds.len())
}
