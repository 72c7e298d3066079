//! `shmproc`: the classic multiprocessing demos, benchmarks and segment tools.

mod channel_cli;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use shmproc_cli::counters::{self, Sample, Variant};
use shmproc_cli::demos::{self, Update, START_BALANCE};
use shmproc_cli::fmt::{rate, thousands};

const USAGE: &str = "\
usage: shmproc <command>

  demo [NAME]                 run a classic multiprocessing demo (no NAME: list them)
  bench counters [--procs N] [--iters N] [--runs N] [--json]
                              processes incrementing one shared counter, every way
  bench processes [--json]    fork/spawn start+join, pool round trip and map, with baselines
  bench channels [--json]     Queue/Pipe throughput and latency vs pipe(2), sockets,
                              ipc-channel, crossbeam and raw futex ping-pong
  chaos [--seconds N] [--seed N] [--only SCENARIO]... [--shared-shm] [--json]
                              SIGKILL processes at random points across every
                              primitive and the pool for N s (default 10); counts
                              hangs, lost/duplicated/torn messages, leaked segments
                              (in a private /dev/shm when it can mount one)
  ls                          list shmproc segments in /dev/shm
  clean                       remove segments nobody holds (unless persistent)
  inspect NAME                show a segment's header
  rm NAME                     remove a named segment
";

const DEMOS: [(&str, &str); 10] = [
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
];

type CliResult = Result<(), Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        [] | ["help" | "--help" | "-h"] => {
            print!("{USAGE}");
            Ok(())
        }
        ["--version" | "-V"] => {
            println!("shmproc {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        ["demo"] => {
            list_demos();
            Ok(())
        }
        ["demo", name] => run_demo(name),
        ["bench", "counters", rest @ ..] => bench_counters(rest),
        ["bench", "processes"] => bench_processes(false),
        ["bench", "processes", "--json"] => bench_processes(true),
        ["bench", "channels", rest @ ..] => channel_cli::bench_channels(rest),
        ["chaos", rest @ ..] => chaos(rest),
        ["ls"] => segments_ls(),
        ["clean"] => segments_clean(),
        ["inspect", name] => segments_inspect(name),
        ["rm", name] => shmproc::raw::remove(name).map_err(Into::into),
        _ => Err(format!("unknown command: {}\n\n{USAGE}", args.join(" ")).into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shmproc: {e}");
            ExitCode::FAILURE
        }
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

fn parse_flag(rest: &[&str], flag: &str, default: u64) -> Result<u64, String> {
    match rest.iter().position(|a| *a == flag) {
        None => Ok(default),
        Some(i) => rest
            .get(i + 1)
            .and_then(|v| v.replace('_', "").parse().ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{flag} needs a positive number")),
    }
}

fn bench_counters(rest: &[&str]) -> CliResult {
    let known = ["--procs", "--iters", "--runs", "--json"];
    for (i, a) in rest.iter().enumerate() {
        let is_value = i > 0 && rest[i - 1] != "--json" && known.contains(&rest[i - 1]);
        if !is_value && !known.contains(a) {
            return Err(format!("unknown option {a:?}\n\n{USAGE}").into());
        }
    }
    let procs = parse_flag(rest, "--procs", 2)? as usize;
    let iters = parse_flag(rest, "--iters", 1_000_000)?;
    let runs = parse_flag(rest, "--runs", 3)? as usize;
    let json = rest.contains(&"--json");
    let progress = std::io::stderr().is_terminal();

    let mut medians: Vec<Sample> = Vec::new();
    for (n, variant) in Variant::ALL.into_iter().enumerate() {
        if progress {
            eprint!(
                "\r\x1b[K[{}/{}] {} ...",
                n + 1,
                Variant::ALL.len(),
                variant.name()
            );
            let _ = std::io::stderr().flush();
        }
        let mut samples = (0..runs)
            .map(|_| counters::measure(variant, procs, iters))
            .collect::<Result<Vec<_>, _>>()?;
        samples.sort_by_key(|s| s.elapsed);
        medians.push(samples.swap_remove(runs / 2));
    }
    if progress {
        eprint!("\r\x1b[K");
    }
    let reference = medians
        .iter()
        .find(|s| s.variant == Variant::PlainFutex)
        .map_or(1.0, Sample::ops_per_sec);
    if json {
        for s in &medians {
            println!(
                "{{\"name\":\"{}\",\"procs\":{},\"iters\":{},\"ops_per_sec\":{:.0},\"lost\":{},\
                 \"ratio_to_plain_futex\":{:.3},\"runs\":{}}}",
                s.variant.name(),
                s.procs,
                s.iters,
                s.ops_per_sec(),
                s.lost,
                s.ops_per_sec() / reference,
                runs
            );
        }
        return Ok(());
    }
    println!(
        "{procs} processes x {} increments of one shared counter (median of {runs} runs)",
        thousands(iters)
    );
    println!(
        "{:<26} {:>12} {:>12} {:>16}",
        "variant", "ops/s", "lost", "vs plain futex"
    );
    for s in &medians {
        println!(
            "{:<26} {:>12} {:>12} {:>15.2}x",
            s.variant.name(),
            rate(s.ops_per_sec()),
            thousands(s.lost),
            s.ops_per_sec() / reference
        );
    }
    Ok(())
}

fn bench_processes(json: bool) -> CliResult {
    let rows = shmproc_cli::processes::run(200, 5000, 100_000, 15)?;
    print!("{}", shmproc_cli::processes::report(&rows, json));
    Ok(())
}

const CHAOS_USAGE: &str = "\
usage: shmproc chaos [--seconds N] [--seed N] [--only SCENARIO]... [--shared-shm] [--json]

Runs trials for N seconds: each forks processes that use one primitive (or the pool),
SIGKILLs one of them 0-20 ms later and checks what the others saw. Prints trials, kills,
hangs, lost / duplicated / torn messages and segments left after clean; exits with 1 if any
of those (or another broken rule) is not 0.

  --seconds N     how long to run (default 10)
  --seed N        replay the random choices of an earlier run (printed by every run)
  --only NAME     run only this scenario (may be repeated)
  --shared-shm    use the system's /dev/shm (default: a private one, when it can be mounted)
  --json          one JSON object instead of the table
";

fn chaos(rest: &[&str]) -> CliResult {
    if rest.iter().any(|a| matches!(*a, "--help" | "-h")) {
        print!("{CHAOS_USAGE}");
        println!(
            "\nscenarios: {}",
            shmproc_cli::chaos::scenario_names().join(", ")
        );
        return Ok(());
    }
    let known = ["--seconds", "--seed", "--only", "--shared-shm", "--json"];
    for (i, a) in rest.iter().enumerate() {
        let is_value = i > 0 && ["--seconds", "--seed", "--only"].contains(&rest[i - 1]);
        if !is_value && !known.contains(a) {
            return Err(format!("unknown option {a:?}\n\n{CHAOS_USAGE}").into());
        }
    }
    // A /dev/shm of its own, so `clean` can run as users run it without touching anyone else's
    // segments (and nobody else's `clean` touches ours).
    let private_shm = !rest.contains(&"--shared-shm")
        && match shmproc_cli::chaos::isolate() {
            Ok(()) => true,
            Err(why) => {
                eprintln!("shmproc chaos: using the shared /dev/shm ({why})");
                false
            }
        };
    let opts = shmproc_cli::chaos::Options {
        seconds: parse_flag(rest, "--seconds", 10)?,
        seed: rest
            .contains(&"--seed")
            .then(|| parse_flag(rest, "--seed", 1))
            .transpose()?,
        only: rest
            .windows(2)
            .filter(|w| w[0] == "--only")
            .map(|w| w[1].to_owned())
            .collect(),
        private_shm,
    };
    let json = rest.contains(&"--json");
    let progress = std::io::stderr().is_terminal();
    let report = move |s: &shmproc_cli::chaos::Summary| {
        if json {
            println!("{}", shmproc_cli::chaos::to_json(s));
        } else {
            print!("{}", shmproc_cli::chaos::to_text(s));
        }
    };
    let on_stuck = move |s: &shmproc_cli::chaos::Summary| {
        eprintln!();
        report(s);
        eprintln!(
            "shmproc: chaos: stuck in a trial; replay with --seed {}",
            s.seed
        );
    };
    let summary = shmproc_cli::chaos::run(
        &opts,
        |s| {
            if progress {
                let t = &s.total;
                eprint!(
                    "\r\x1b[K{:.0}/{} s: {} trials, {} kills, {} problems",
                    s.elapsed.as_secs_f64(),
                    opts.seconds,
                    thousands(t.trials),
                    thousands(t.kills),
                    t.bad()
                );
                let _ = std::io::stderr().flush();
            }
        },
        on_stuck,
    )?;
    if progress {
        eprint!("\r\x1b[K");
    }
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
