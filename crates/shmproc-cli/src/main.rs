//! `shmproc`: the classic multiprocessing demos, benchmarks and segment tools.

mod channel_cli;
mod cli;
mod collections_cli;
mod counters_cli;
mod progress;

use std::process::ExitCode;

use clap::Parser;

use shmproc_cli::counters::{self, Variant};
use shmproc_cli::demos::{self, Update, START_BALANCE};
use shmproc_cli::fmt::thousands;

/// Every demo: its name and what it shows.
pub const DEMOS: [(&str, &str); 11] = [
    (
        "sleepers",
        "2 and 10 processes sleeping together, then one after another",
    ),
    (
        "unshared",
        "a plain variable changed in children stays 400 in the parent",
    ),
    (
        "race",
        "deposit/withdraw processes lose updates with get-then-set",
    ),
    (
        "locked",
        "the same under a lock: always exact, and what it costs",
    ),
    (
        "value-array",
        "a Value and an Array changed by children, seen by the parent",
    ),
    (
        "cpu-count",
        "cpu_count() and current_process() in parent and child",
    ),
    (
        "pool",
        "Pool: ten 1 s tasks on cpu_count workers, as_completed, map, a timeout",
    ),
    (
        "square-cube",
        "calc_square and calc_cube in two spawned processes vs sequential",
    ),
    (
        "queue",
        "a child puts squares on a Queue, the parent drains them; throughput",
    ),
    (
        "pipe",
        "parent and child talk over a duplex Pipe; round-trip latency",
    ),
    (
        "manager",
        "two processes append to a shared list and dict (Python's Manager); ops/s",
    ),
];

type CliResult = Result<(), Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    progress::init(cli.quiet);
    let result = run(cli);
    progress::clear();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shmproc: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: cli::Cli) -> CliResult {
    use cli::{Bench, Command};
    let Some(command) = cli.command else {
        use clap::CommandFactory;
        cli::Cli::command().print_help()?;
        return Ok(());
    };
    match command {
        Command::Demo { name: None } => {
            list_demos();
            Ok(())
        }
        Command::Demo { name: Some(name) } => run_demo(&name),
        Command::Bench(Bench::Counters(args)) => counters_cli::bench_counters(&args),
        Command::Bench(Bench::Processes { json }) => bench_processes(json),
        Command::Bench(Bench::Channels { json }) => channel_cli::bench_channels(json),
        Command::Bench(Bench::Collections { json, quick, ops }) => {
            collections_cli::bench_collections(json, quick, ops)
        }
        Command::Bench(Bench::Cluster(args)) => bench_cluster(&args),
        Command::Bench(Bench::All(args)) => {
            shmproc_cli::report::bench_all(&shmproc_cli::report::AllOptions {
                quick: args.quick,
                out: args.out,
                pin: args.pin,
                quiet: cli.quiet,
            })
        }
        Command::Chaos(args) => chaos(&args),
        Command::Ls => segments_ls(),
        Command::Clean => segments_clean(),
        Command::Inspect { name } => segments_inspect(&name),
        Command::Rm { name } => shmproc::raw::remove(&name).map_err(Into::into),
    }
}

fn list_demos() {
    println!("demos (run one with `shmproc demo NAME`, or `shmproc demo all`):");
    for (name, what) in DEMOS {
        println!("  {name:<12} {what}");
    }
}

fn run_demo(name: &str) -> CliResult {
    match name {
        "sleepers" => shmproc_cli::classic_demos::sleepers(),
        "unshared" => demo_unshared(),
        "value-array" => shmproc_cli::classic_demos::value_array(),
        "cpu-count" => shmproc_cli::classic_demos::cpu_info(),
        "race" => demo_race(),
        "locked" => demo_locked(),
        "pool" => shmproc_cli::spawn_demos::pool(),
        "square-cube" => shmproc_cli::spawn_demos::square_cube(),
        "queue" => channel_cli::demo_queue(),
        "pipe" => channel_cli::demo_pipe(),
        "manager" => collections_cli::demo_manager(),
        "all" => {
            for (name, _) in DEMOS {
                println!("=== demo {name} ===");
                run_demo(name)?;
                println!();
            }
            Ok(())
        }
        _ => {
            list_demos();
            Err(format!("no demo named {name:?}").into())
        }
    }
}

fn demo_unshared() -> CliResult {
    println!(
        "Two child processes change a plain (not shared) balance of {START_BALANCE}: \
         +400 x 2000 and -400 x 200."
    );
    let seen = demos::unshared()?;
    println!("Final balance: {seen}");
    println!(
        "Each child changed its own copy: fork gives a process a separate address space. \
         Share it with a Value (`shmproc demo race`)."
    );
    Ok(())
}

const DEPOSITS: u64 = 1_000_000;
const WITHDRAWALS: u64 = 100_000;

fn bank_story(title: &str, outcome: &demos::BankOutcome) {
    println!("{title}");
    println!(
        "  expected balance: {:>12}",
        thousands(outcome.expected as u64)
    );
    println!(
        "  actual balance:   {:>12}",
        thousands(outcome.actual as u64)
    );
    println!(
        "  lost updates:     {:>12}   ({:.0} ms)",
        thousands(outcome.lost()),
        outcome.elapsed.as_secs_f64() * 1e3
    );
}

fn demo_race() -> CliResult {
    println!(
        "Balance {START_BALANCE} in a shared Value. A deposit process adds 1 x {}, a withdraw \
         process subtracts 1 x {}, each as `balance.set(balance.get()? + amount)`.",
        thousands(DEPOSITS),
        thousands(WITHDRAWALS)
    );
    let outcome = demos::bank(Update::GetThenSet, DEPOSITS, WITHDRAWALS)?;
    bank_story("Unlocked read-modify-write:", &outcome);
    println!(
        "get and set are each atomic, but between them the other process writes, and one of \
         the two writes is lost. Fix: `shmproc demo locked`."
    );
    Ok(())
}

fn demo_locked() -> CliResult {
    println!(
        "The same deposit (+1 x {}) and withdraw (-1 x {}) processes, now holding a lock for \
         each whole update.",
        thousands(DEPOSITS),
        thousands(WITHDRAWALS)
    );
    let with_value_lock = demos::bank(Update::ValueLock, DEPOSITS, WITHDRAWALS)?;
    bank_story(
        "With the value's own lock (`*balance.lock()? += 1`):",
        &with_value_lock,
    );
    let with_lock = demos::bank(Update::SeparateLock, DEPOSITS, WITHDRAWALS)?;
    bank_story(
        "With a separate Lock around get/set (as in the Python seed):",
        &with_lock,
    );
    let unlocked = demos::bank(Update::GetThenSet, DEPOSITS, WITHDRAWALS)?;
    let atomic = counters::measure(Variant::Atomic, 2, (DEPOSITS + WITHDRAWALS) / 2)?;
    println!("What exactness costs, for the same 1.1 M updates by 2 processes:");
    println!(
        "  unlocked get/set: {:>6.0} ms, {} updates lost",
        unlocked.elapsed.as_secs_f64() * 1e3,
        thousands(unlocked.lost())
    );
    for (name, o) in [
        ("value lock", &with_value_lock),
        ("separate Lock", &with_lock),
    ] {
        println!(
            "  {name:<16}: {:>6.0} ms, {} lost",
            o.elapsed.as_secs_f64() * 1e3,
            thousands(o.lost())
        );
    }
    println!(
        "  atomic fetch_add: {:>6.0} ms, {} lost (a lock-free counter: no lock at all)",
        atomic.elapsed.as_secs_f64() * 1e3,
        thousands(atomic.lost)
    );
    Ok(())
}

fn bench_processes(json: bool) -> CliResult {
    progress::step("bench processes: fork/spawn start, pool round trips and map ...");
    let mut rows = shmproc_cli::processes::run(200, 5000, 100_000, 15)?;
    let sizes = shmproc_cli::pool_bench::Sizes {
        trips: 5000,
        items: 100_000,
        runs: 15,
    };
    let (pool_rows, goals) = shmproc_cli::pool_bench::run(&sizes)?;
    rows.extend(pool_rows);
    print!("{}", shmproc_cli::processes::report(&rows, json));
    print!("{}", shmproc_cli::pool_bench::report(&goals, json));
    Ok(())
}

fn bench_cluster(args: &cli::ClusterArgs) -> CliResult {
    progress::step("bench cluster: broker pool round trips and map vs a bare redis client ...");
    let plan = shmproc_cli::cluster_bench::Plan {
        round_trips: args.round_trips as usize,
        items: args.items,
        chunk: args.chunk as usize,
    };
    let rows = shmproc_cli::cluster_bench::run(plan)?;
    print!(
        "{}",
        shmproc_cli::cluster_bench::report(&rows, plan, args.json)
    );
    Ok(())
}

fn chaos(args: &cli::ChaosArgs) -> CliResult {
    // A /dev/shm of its own, so `clean` can run as users run it without touching anyone else's
    // segments (and nobody else's `clean` touches ours).
    let private_shm = !args.shared_shm
        && match shmproc_cli::chaos::isolate() {
            Ok(()) => true,
            Err(why) => {
                eprintln!("shmproc chaos: using the shared /dev/shm ({why})");
                false
            }
        };
    let opts = shmproc_cli::chaos::Options {
        seconds: args.seconds,
        seed: args.seed,
        only: args.only.clone(),
        private_shm,
    };
    let json = args.json;
    let report = move |s: &shmproc_cli::chaos::Summary| {
        if json {
            println!("{}", shmproc_cli::chaos::to_json(s));
        } else {
            print!("{}", shmproc_cli::chaos::to_text(s));
        }
    };
    let on_stuck = move |s: &shmproc_cli::chaos::Summary| {
        progress::clear();
        report(s);
        eprintln!(
            "shmproc: chaos: stuck in a trial; replay with --seed {}",
            s.seed
        );
    };
    let summary = shmproc_cli::chaos::run(
        &opts,
        |s| {
            let t = &s.total;
            progress::step(format!(
                "chaos: {:.0}/{} s: {} trials, {} kills, {} problems",
                s.elapsed.as_secs_f64(),
                opts.seconds,
                thousands(t.trials),
                thousands(t.kills),
                t.bad()
            ));
        },
        on_stuck,
    )?;
    progress::clear();
    report(&summary);
    if summary.passed() {
        Ok(())
    } else {
        Err(format!(
            "chaos: {} problem(s); replay the same choices with --seed {}",
            summary.total.bad(),
            summary.seed
        )
        .into())
    }
}

fn segments_ls() -> CliResult {
    let segments = shmproc::raw::list()?;
    if segments.is_empty() {
        println!("no shmproc segments in /dev/shm");
        return Ok(());
    }
    println!(
        "{:<40} {:>10} {:<10} {:<12} {:>8} state",
        "name", "bytes", "kind", "type", "creator"
    );
    for s in segments {
        match &s.status {
            Ok(h) => println!(
                "{:<40} {:>10} {:<10} {:<12} {:>8} {}{}",
                s.name,
                s.size,
                h.kind.map_or_else(|| "?".to_owned(), |k| k.to_string()),
                if h.type_name.is_empty() {
                    "-"
                } else {
                    &h.type_name
                },
                h.creator_pid,
                if s.is_stale() { "stale" } else { "live" },
                if h.persistent { ", persistent" } else { "" }
            ),
            Err(e) => println!("{:<40} {:>10} unreadable: {e}", s.name, s.size),
        }
    }
    Ok(())
}

fn segments_clean() -> CliResult {
    let removed = shmproc::raw::clean()?;
    for s in &removed {
        println!("removed {}", s.name);
    }
    println!("{} stale segment(s) removed", removed.len());
    Ok(())
}

fn segments_inspect(name: &str) -> CliResult {
    let h = shmproc::raw::inspect(name)?;
    println!("name:        {name}");
    println!(
        "kind:        {}",
        h.kind
            .map_or_else(|| "unknown".to_owned(), |k| k.to_string())
    );
    println!(
        "type:        {} (size {}, align {})",
        h.type_name, h.elem_size, h.elem_align
    );
    println!("payload:     {} bytes", h.payload_len);
    println!(
        "creator:     pid {} ({})",
        h.creator_pid,
        if h.creator_alive { "running" } else { "gone" }
    );
    println!("persistent:  {}", h.persistent);
    println!("in use:      {}", h.in_use);
    Ok(())
}
