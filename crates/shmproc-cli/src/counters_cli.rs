//! `shmproc bench counters`: every counter variant for a fixed time per run, interleaved
//! across rounds, reported as the median and min-max of the rounds.

use std::time::Duration;

use shmproc_cli::counters::timed::{self, Run, Timing};
use shmproc_cli::counters::Variant;
use shmproc_cli::fmt::{rate, thousands};

use crate::cli::CountersArgs;
use crate::progress;

type CliResult = Result<(), Box<dyn std::error::Error>>;

/// The accepted runs of one variant, one per round.
struct Row {
    variant: Variant,
    runs: Vec<Run>,
    rejected: u32,
}

impl Row {
    /// Ops/s of every run, sorted.
    fn rates(&self) -> Vec<f64> {
        let mut r: Vec<f64> = self.runs.iter().map(Run::ops_per_sec).collect();
        r.sort_by(f64::total_cmp);
        r
    }

    fn median_run(&self) -> &Run {
        let mut by_rate: Vec<&Run> = self.runs.iter().collect();
        by_rate.sort_by(|a, b| a.ops_per_sec().total_cmp(&b.ops_per_sec()));
        by_rate[by_rate.len() / 2]
    }

    fn median(&self) -> f64 {
        self.median_run().ops_per_sec()
    }

    /// The least overlap of the accepted runs.
    fn overlap(&self) -> f64 {
        self.runs
            .iter()
            .map(Run::overlap)
            .fold(f64::INFINITY, f64::min)
    }

    /// The most updates lost in one run.
    fn lost(&self) -> u64 {
        self.runs.iter().map(|r| r.lost).max().unwrap_or(0)
    }
}

pub fn bench_counters(args: &CountersArgs) -> CliResult {
    if args.iters.is_some() {
        progress::suspend(|| {
            eprintln!("shmproc: bench counters: --iters is ignored (each run lasts --ms)")
        });
    }
    let procs = args.procs as usize;
    let rounds = args.runs as usize;
    let timing = Timing {
        duration: Duration::from_millis(args.ms),
        serialise: args.serialise_for_test,
        min_overlap: args.min_overlap,
        ..Timing::default()
    };
    let variants: Vec<Variant> = Variant::ALL.into_iter().filter(|v| v.built()).collect();
    let mut rows: Vec<Row> = variants
        .iter()
        .map(|&variant| Row {
            variant,
            runs: Vec::new(),
            rejected: 0,
        })
        .collect();
    let total = (rounds * rows.len()) as u64;
    let mut done = 0;
    for round in 0..rounds {
        // A rotating order: no variant always runs first (or right after the same neighbour).
        for k in 0..rows.len() {
            let row = &mut rows[(k + round) % variants.len()];
            progress::counted(
                done,
                total,
                &format!("round {}: {}", round + 1, row.variant.name()),
            );
            let (run, rejected) = timed::measure(row.variant, procs, &timing)?;
            row.runs.push(run);
            row.rejected += rejected;
            done += 1;
        }
    }
    progress::clear();
    // Each variant's ratio is the median of its per-round ratios: a round's runs are close
    // in time, so a slow patch of the machine moves both sides of a ratio together.
    let reference: Vec<f64> = rows
        .iter()
        .find(|r| r.variant == Variant::PlainFutex)
        .map_or_else(Vec::new, |r| r.runs.iter().map(Run::ops_per_sec).collect());
    let ratio = |row: &Row| -> f64 {
        if reference.len() != row.runs.len() {
            return f64::NAN;
        }
        let mut r: Vec<f64> = row
            .runs
            .iter()
            .zip(&reference)
            .map(|(run, plain)| run.ops_per_sec() / plain)
            .collect();
        r.sort_by(f64::total_cmp);
        r[r.len() / 2]
    };
    if args.json {
        for row in &rows {
            let rates = row.rates();
            println!(
                "{{\"name\":\"{}\",\"procs\":{procs},\"iters\":{},\"ops_per_sec\":{:.0},\
                 \"min_ops_per_sec\":{:.0},\"max_ops_per_sec\":{:.0},\"lost\":{},\
                 \"ratio_to_plain_futex\":{:.3},\"runs\":{rounds},\"ms\":{},\"overlap\":{:.3},\
                 \"rejected\":{}}}",
                row.variant.name(),
                row.median_run().per_process(),
                row.median(),
                rates[0],
                rates[rates.len() - 1],
                row.lost(),
                ratio(row),
                args.ms,
                row.overlap(),
                row.rejected
            );
        }
        return Ok(());
    }
    let rejected: u32 = rows.iter().map(|r| r.rejected).sum();
    println!(
        "{procs} processes incrementing one shared counter for {} ms per run: median and \
         min-max of {rounds} rounds (vs plain futex: the median of the rounds' ratios)",
        args.ms
    );
    println!(
        "(a run counts when its processes overlapped >= {:.0} % of it; {rejected} run(s) \
         repeated)",
        args.min_overlap * 100.0
    );
    println!(
        "{:<26} {:>10} {:>21} {:>10} {:>15} {:>8}",
        "variant", "ops/s", "min-max", "lost", "vs plain futex", "overlap"
    );
    for row in &rows {
        let rates = row.rates();
        println!(
            "{:<26} {:>10} {:>21} {:>10} {:>14.2}x {:>7.0}%",
            row.variant.name(),
            rate(row.median()),
            format!("{}-{}", rate(rates[0]), rate(rates[rates.len() - 1])),
            thousands(row.lost()),
            ratio(row),
            row.overlap() * 100.0
        );
    }
    for v in Variant::ALL.into_iter().filter(|v| !v.built()) {
        println!(
            "{:<26} not built (the `baselines` feature is off)",
            v.name()
        );
    }
    Ok(())
}
