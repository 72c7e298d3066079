//! The command line, as clap types: every command, subcommand and option with its help.

use std::path::PathBuf;

use clap::builder::PossibleValuesParser;
use clap::{Args, Parser, Subcommand};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  failure (an OS error, a failed check, a chaos problem)
  2  usage error (unknown command or option, bad value)";

/// Python-style multiprocessing for Rust: classic demos, benchmarks and segment tools.
#[derive(Debug, Parser)]
#[command(name = "shmproc", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// Hide progress on stderr (it is also hidden when stderr is not a terminal)
    #[arg(short, long, global = true)]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a classic multiprocessing demo (no NAME: list them)
    #[command(after_help = EXIT_CODES)]
    Demo {
        /// The demo to run, or `all`
        #[arg(value_parser = PossibleValuesParser::new(demo_names()))]
        name: Option<String>,
    },
    /// Benchmarks, each next to its baselines measured in the same run
    #[command(subcommand, after_help = EXIT_CODES)]
    Bench(Bench),
    /// SIGKILL processes at random points across every primitive and the pool
    ///
    /// Runs trials for N seconds: each forks processes that use one primitive (or the pool),
    /// SIGKILLs one of them 0-20 ms later and checks what the others saw. Prints trials, kills,
    /// hangs, lost / duplicated / torn messages and segments left after clean; exits with 1 if
    /// any of those (or another broken rule) is not 0. Runs in a private /dev/shm when it can
    /// mount one.
    #[command(after_help = EXIT_CODES)]
    Chaos(ChaosArgs),
    /// List shmproc segments in /dev/shm
    #[command(after_help = EXIT_CODES)]
    Ls,
    /// Remove segments nobody holds (unless persistent)
    #[command(after_help = EXIT_CODES)]
    Clean,
    /// Show a segment's header
    #[command(after_help = EXIT_CODES)]
    Inspect {
        /// The segment's name (as `shmproc ls` prints it)
        name: String,
    },
    /// Remove a named segment
    #[command(after_help = EXIT_CODES)]
    Rm {
        /// The segment's name (as `shmproc ls` prints it)
        name: String,
    },
}

/// `shmproc bench ...`
#[derive(Debug, Subcommand)]
pub enum Bench {
    /// Processes incrementing one shared counter, every way, for a fixed time per run
    ///
    /// Each run lasts --ms milliseconds after a start barrier; every process records its first
    /// and last increment on CLOCK_MONOTONIC, and a run whose processes overlapped less than
    /// 90 % of its span is repeated (the repeats are counted). Variants are interleaved across
    /// rounds; the table shows the median and min-max of --runs rounds.
    #[command(after_help = EXIT_CODES)]
    Counters(CountersArgs),
    /// Fork/spawn start+join, pool round trip and map, with baselines
    #[command(after_help = EXIT_CODES)]
    Processes {
        /// One JSON object per line instead of the table
        #[arg(long)]
        json: bool,
    },
    /// Queue/Pipe throughput and latency vs pipe(2), sockets, ipc-channel, crossbeam and raw
    /// futex ping-pong
    #[command(after_help = EXIT_CODES)]
    Channels {
        /// One JSON object per line instead of the tables
        #[arg(long)]
        json: bool,
    },
    /// SharedMap/SharedVec get, set, atomic update and append from 1 and 2 child processes, next
    /// to Python's Manager().dict()/.list() doing the same (when python3 is on the PATH)
    #[command(after_help = EXIT_CODES)]
    Collections {
        /// One JSON object per line instead of the table
        #[arg(long)]
        json: bool,
        /// Fewer operations per figure
        #[arg(long)]
        quick: bool,
        /// Test hook: operations per process of each shmproc figure
        #[arg(long, hide = true, value_parser = positive)]
        ops: Option<u64>,
    },
    /// Broker pool round trip and map throughput with 1, 2 and 4 worker processes, next to a
    /// bare redis client's cycle (needs redis-server on the PATH; starts its own)
    #[command(after_help = EXIT_CODES)]
    Cluster(ClusterArgs),
    /// Every benchmark with its baselines (and Python's multiprocessing when python3 is on the
    /// PATH); writes report.json, report.md and SVG charts
    #[command(after_help = EXIT_CODES)]
    All(AllArgs),
}

/// Options of `shmproc bench counters`.
#[derive(Debug, Args)]
pub struct CountersArgs {
    /// Processes (or threads) incrementing the counter; may exceed the CPU count
    #[arg(long, value_name = "N", default_value = "2", value_parser = positive)]
    pub procs: u64,
    /// Rounds; each round runs every variant once, in a rotating order
    #[arg(long, value_name = "N", default_value = "5", value_parser = positive)]
    pub runs: u64,
    /// Length of one run in milliseconds
    #[arg(long, value_name = "MS", default_value = "200", value_parser = positive)]
    pub ms: u64,
    /// Accepted for compatibility and ignored: runs last a fixed time (--ms), not a fixed count
    #[arg(long, value_name = "N", value_parser = positive)]
    pub iters: Option<u64>,
    /// One JSON object per variant instead of the table
    #[arg(long)]
    pub json: bool,
    /// Test hook: each process waits for the previous one to finish (so runs never overlap)
    #[arg(long, hide = true)]
    pub serialise_for_test: bool,
    /// Test hook: the least overlap a run needs (default 0.9)
    #[arg(long, hide = true, default_value = "0.9")]
    pub min_overlap: f64,
}

/// Options of `shmproc bench cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Sequential round trips timed per worker count (each paired with a bare cycle)
    #[arg(long, value_name = "N", default_value = "2000", value_parser = positive)]
    pub round_trips: u64,
    /// Items of the timed map
    #[arg(long, value_name = "N", default_value = "100000", value_parser = positive)]
    pub items: u64,
    /// Items per chunk of the map
    #[arg(long, value_name = "N", default_value = "5000", value_parser = positive)]
    pub chunk: u64,
    /// One JSON object per line instead of the table
    #[arg(long)]
    pub json: bool,
}

/// Options of `shmproc bench all`.
#[derive(Debug, Args)]
pub struct AllArgs {
    /// Fewer messages and rounds: finishes in under 3 minutes on 2 cores
    #[arg(long)]
    pub quick: bool,
    /// Directory for report.json, report.md and the charts (created if missing)
    #[arg(long, value_name = "DIR", default_value = "shmproc-report")]
    pub out: PathBuf,
    /// Pin benchmark processes to CPUs (steadier figures on an idle machine)
    #[arg(long)]
    pub pin: bool,
}

/// Options of `shmproc chaos`.
#[derive(Debug, Args)]
pub struct ChaosArgs {
    /// How long to run, in seconds
    #[arg(long, value_name = "N", default_value = "10", value_parser = positive)]
    pub seconds: u64,
    /// Replay the random choices of an earlier run (printed by every run)
    #[arg(long, value_name = "N", value_parser = whole)]
    pub seed: Option<u64>,
    /// Run only this scenario (may be repeated)
    #[arg(long, value_name = "SCENARIO",
          value_parser = PossibleValuesParser::new(shmproc_cli::chaos::scenario_names()))]
    pub only: Vec<String>,
    /// Use the system's /dev/shm (default: a private one, when it can be mounted)
    #[arg(long)]
    pub shared_shm: bool,
    /// One JSON object instead of the table
    #[arg(long)]
    pub json: bool,
}

/// A whole number; `_` may separate digits (`1_000_000`).
fn whole(s: &str) -> Result<u64, String> {
    s.replace('_', "")
        .parse::<u64>()
        .map_err(|e| format!("not a whole number ({e})"))
}

/// A positive whole number; `_` may separate digits (`1_000_000`).
fn positive(s: &str) -> Result<u64, String> {
    match whole(s)? {
        0 => Err("must be at least 1".into()),
        n => Ok(n),
    }
}

/// Every demo name, and `all`.
pub fn demo_names() -> Vec<&'static str> {
    crate::DEMOS
        .iter()
        .map(|(name, _)| *name)
        .chain(["all"])
        .collect()
}
