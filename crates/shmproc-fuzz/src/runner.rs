//! Running a target on many inputs: seeds first, then mutants, under a watchdog for hangs.

use std::fmt;
use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::mutate::{mutant, Rng};
use crate::{fuzz_dir, load_seeds, Target};

/// How much a run may do: it stops at whichever limit comes first.
#[derive(Debug, Clone)]
pub struct Budget {
    /// Wall-clock time for the whole run (the seeds are always replayed in full).
    pub time: Duration,
    /// Inputs, seeds included.
    pub inputs: u64,
    /// One input running longer than this is a hang: it is saved and the process aborts.
    pub hang: Duration,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Report {
    /// Inputs run, seeds included.
    pub inputs: u64,
    /// Of which seeds.
    pub seeds: u64,
    /// Time taken.
    pub elapsed: Duration,
    /// The slowest input's time.
    pub slowest: Duration,
    /// The slowest input.
    pub slowest_input: Vec<u8>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let per_sec = self.inputs as f64 / self.elapsed.as_secs_f64().max(1e-9);
        write!(
            f,
            "{} inputs ({} seeds) in {:.1} s, {per_sec:.0}/s, slowest {:.1} ms",
            self.inputs,
            self.seeds,
            self.elapsed.as_secs_f64(),
            self.slowest.as_secs_f64() * 1e3
        )
    }
}

/// An input that made the target panic, saved for replay.
#[derive(Debug)]
pub struct Failure {
    /// The target.
    pub target: &'static str,
    /// Where the input was saved (`None` if it could not be).
    pub saved: Option<PathBuf>,
    /// The panic message.
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "target {} panicked: {}", self.target, self.message)?;
        if let Some(path) = &self.saved {
            write!(
                f,
                "\n  input saved as {}\n  replay: cargo run -p shmproc-fuzz -- --replay {} {}",
                path.display(),
                self.target,
                path.display()
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for Failure {}

/// Replays `target`'s seeds, then runs mutants of them (from generator `seed`) until `budget`
/// runs out.
///
/// # Errors
/// The first input that made the target panic, saved under `fuzz/artifacts/<target>/`.
///
/// # Panics
/// When the seeds cannot be read. An input that hangs aborts the process (after saving it).
pub fn run(target: &'static Target, budget: &Budget, seed: u64) -> Result<Report, Failure> {
    let seeds = load_seeds(target).unwrap_or_else(|e| {
        panic!("cannot read the seeds of {}: {e}", target.name);
    });
    let watchdog = Watchdog::start(target, budget.hang);
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    let mut report = Report {
        inputs: 0,
        seeds: seeds.len() as u64,
        elapsed: Duration::ZERO,
        slowest: Duration::ZERO,
        slowest_input: Vec::new(),
    };
    let mut next = 0;
    let result = loop {
        let input = if next < seeds.len() {
            next += 1;
            seeds[next - 1].clone()
        } else if report.inputs >= budget.inputs || started.elapsed() >= budget.time {
            break Ok(());
        } else {
            let base = &seeds[rng.below(seeds.len())];
            mutant(&mut rng, base, &seeds, target.max_len)
        };
        let took = Instant::now();
        watchdog.arm(&input);
        let outcome = catch_unwind(AssertUnwindSafe(|| (target.run)(&input)));
        watchdog.disarm();
        if took.elapsed() > report.slowest {
            report.slowest = took.elapsed();
            report.slowest_input.clone_from(&input);
        }
        report.inputs += 1;
        if let Err(payload) = outcome {
            break Err(failure(target, &input, payload.as_ref()));
        }
    };
    watchdog.stop();
    report.elapsed = started.elapsed();
    result.map(|()| report)
}

/// Runs `target` on each of `inputs` (files), as [`run`] does.
///
/// # Errors
/// The first input that made the target panic.
pub fn replay(target: &'static Target, inputs: &[Vec<u8>]) -> Result<(), Failure> {
    for input in inputs {
        let outcome = catch_unwind(AssertUnwindSafe(|| (target.run)(input)));
        if let Err(payload) = outcome {
            let message = panic_message(payload.as_ref());
            return Err(Failure {
                target: target.name,
                saved: None,
                message,
            });
        }
    }
    Ok(())
}

fn failure(target: &Target, input: &[u8], payload: &(dyn std::any::Any + Send)) -> Failure {
    Failure {
        target: target.name,
        saved: save(target, "crash", input),
        message: panic_message(payload),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-string payload".to_owned())
}

/// Saves `input` as `fuzz/artifacts/<target>/<kind>-<hash>`.
pub(crate) fn save(target: &Target, kind: &str, input: &[u8]) -> Option<PathBuf> {
    let dir = fuzz_dir().join("artifacts").join(target.name);
    fs::create_dir_all(&dir).ok()?;
    let hash = input.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    let path = dir.join(format!("{kind}-{hash:016x}"));
    fs::write(&path, input).ok()?;
    Some(path)
}

/// The input running now, and since when.
#[derive(Default)]
struct Current {
    input: Vec<u8>,
    since: Option<Instant>,
}

/// A thread that aborts the process when one input runs longer than the hang limit (a hang
/// cannot be caught like a panic), after saving that input.
struct Watchdog {
    current: Arc<Mutex<Current>>,
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    fn start(target: &'static Target, limit: Duration) -> Watchdog {
        let current = Arc::new(Mutex::new(Current::default()));
        let done = Arc::new(AtomicBool::new(false));
        let (c, d) = (Arc::clone(&current), Arc::clone(&done));
        let thread = std::thread::spawn(move || {
            while !d.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                let now = c.lock().unwrap_or_else(|e| e.into_inner());
                if now.since.is_some_and(|s| s.elapsed() > limit) {
                    let saved = save(target, "hang", &now.input);
                    eprintln!(
                        "target {} ran one input for over {limit:?} (a hang); saved as {saved:?}",
                        target.name
                    );
                    std::process::abort();
                }
            }
        });
        Watchdog {
            current,
            done,
            thread: Some(thread),
        }
    }

    fn arm(&self, input: &[u8]) {
        let mut now = self.current.lock().unwrap_or_else(|e| e.into_inner());
        now.input.clear();
        now.input.extend_from_slice(input);
        now.since = Some(Instant::now());
    }

    fn disarm(&self) {
        self.current.lock().unwrap_or_else(|e| e.into_inner()).since = None;
    }

    fn stop(mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
