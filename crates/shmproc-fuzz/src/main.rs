//! `shmproc-fuzz`: runs the fuzz targets on stable Rust for a bounded time (what `.ci/run`
//! does), replays saved inputs, and regenerates the checked-in seeds.

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use shmproc_fuzz::{
    load_seeds, replay, run, save_input, target, write_seeds, Budget, Target, TARGETS,
};

const USAGE: &str = "\
usage: shmproc-fuzz [TARGET...] [--seconds N] [--inputs N] [--seed N] [--hang-seconds N]
                    [--save-slowest]
         run the targets (default: all) on their seeds, then on mutants of them, for N seconds
         in all (default 48, split evenly) or N inputs per target, whichever comes first;
         save each target's slowest input under fuzz/artifacts/
       shmproc-fuzz --replay TARGET FILE...   run saved inputs through TARGET
       shmproc-fuzz --write-seeds             regenerate fuzz/seeds/<target>/
       shmproc-fuzz --list                    list the targets";

fn main() -> ExitCode {
    match main_inner(std::env::args().skip(1).collect()) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("shmproc-fuzz: {message}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn main_inner(args: Vec<String>) -> Result<ExitCode, String> {
    let mut targets: Vec<&'static Target> = Vec::new();
    let mut seconds = 48.0;
    let mut inputs = u64::MAX;
    let mut hang = 10.0;
    let mut seed = None;
    let mut save_slowest = false;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--seconds" => seconds = number(&value("--seconds")?)?,
            "--inputs" => inputs = number(&value("--inputs")?)? as u64,
            "--hang-seconds" => hang = number(&value("--hang-seconds")?)?,
            "--seed" => seed = Some(number(&value("--seed")?)? as u64),
            "--save-slowest" => save_slowest = true,
            "--replay" => {
                let name = value("--replay")?;
                return replay_files(&name, it.collect());
            }
            "--write-seeds" => {
                for t in &TARGETS {
                    let n = write_seeds(t).map_err(|e| format!("{}: {e}", t.name))?;
                    println!("{}: wrote {n} seeds", t.name);
                }
                return Ok(ExitCode::SUCCESS);
            }
            "--list" => {
                TARGETS.iter().for_each(|t| println!("{}", t.name));
                return Ok(ExitCode::SUCCESS);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            name => targets.push(target(name).ok_or(format!("no target {name:?}"))?),
        }
    }
    if targets.is_empty() {
        targets = TARGETS.iter().collect();
    }
    let seed = seed.unwrap_or_else(|| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        now.as_nanos() as u64
    });
    let budget = Budget {
        time: Duration::from_secs_f64(seconds / targets.len() as f64),
        inputs,
        hang: Duration::from_secs_f64(hang),
    };
    println!(
        "shmproc-fuzz: seed {seed}, {:.1} s per target",
        budget.time.as_secs_f64()
    );
    let mut total = 0;
    for (i, t) in targets.iter().enumerate() {
        match run(t, &budget, seed.wrapping_add(i as u64)) {
            Ok(report) => {
                println!("{:>7}: {report}", t.name);
                if save_slowest {
                    let saved = save_input(t, "slow", &report.slowest_input);
                    println!("         slowest input saved as {saved:?}");
                }
                total += report.inputs;
            }
            Err(failure) => {
                eprintln!("{failure}\n  (campaign seed {seed})");
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    println!("shmproc-fuzz: {total} inputs, no panic and no hang");
    Ok(ExitCode::SUCCESS)
}

fn replay_files(name: &str, files: Vec<String>) -> Result<ExitCode, String> {
    let t = target(name).ok_or(format!("no target {name:?}"))?;
    let inputs = if files.is_empty() {
        load_seeds(t).map_err(|e| e.to_string())?
    } else {
        let read = files
            .iter()
            .map(|f| std::fs::read(f).map_err(|e| format!("{f}: {e}")));
        read.collect::<Result<_, _>>()?
    };
    match replay(t, &inputs) {
        Ok(()) => {
            println!("{name}: {} inputs, no panic", inputs.len());
            Ok(ExitCode::SUCCESS)
        }
        Err(failure) => {
            eprintln!("{failure}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn number(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 0.0)
        .ok_or(format!("not a number: {s:?}"))
}
