//! `shmproc chaos`: repeated trials that SIGKILL a process at a random moment while processes
//! use every primitive and the pool, then check what the survivors saw.
//!
//! Each trial picks a scenario, forks its children, kills one of them 0–20 ms later (so kills
//! land anywhere, inside `put`, `send`, critical sections and waits included) and then checks
//! the scenario's invariants against a ledger of shared atomic counters the children keep:
//!
//! | scenario | what is checked |
//! |---|---|
//! | `queue` | every acknowledged `put` delivered exactly once, in order per consumer, never torn; only a killed producer's next message and one record per killed consumer may be missing |
//! | `pipe-stream` | in order, no gap, no duplicate, never torn (long messages streamed); the receiver ends with `PeerDied`/`Broken` if the sender was killed, `Disconnected` if it left; a killed receiver gives the sender `PeerDied`/`Broken` |
//! | `pipe-echo` | every reply is the exact request; a killed echo child gives `PeerDied`/`Broken`, never a hang |
//! | `value-lock`, `lock-array` | a two-word record under a `Value`'s lock, or a `Lock` (or re-entered `RLock`) guarding an `Array`: `OwnerDied` whenever a holder died, never a half-written record without it; final count between the acknowledged increments and that plus the killed workers |
//! | `barrier` | survivors of a killed member get `ParticipantDied` or `Broken`, none passes more than one round beyond the dead one |
//! | `semaphore` | never more holders than permits; the final value is the initial one, less the permit a killed holder kept |
//! | `condition` | items produced = consumed + left over, give or take the one item of each killed process; consumers wake and finish |
//! | `event` | once set (even by a setter killed right after), every waiter returns |
//! | `pool` | a killed worker fails at most its one task with `WorkerDied` naming it; every other result is right; shutdown finishes |
//! | `collections` | a `SharedMap` of sealed counters and a `SharedVec` of numbered elements, with keys churned in and out: every counter sealed and within its acknowledged updates (+1 for the killed writer), every writer's elements in order without gap or duplicate, `len` equal to what iteration yields, `OwnerDied` at most once per kill |
//! | `segments` | creators killed while creating and using named segments: `clean` removes what they left, never a live one |
//!
//! Every wait of the parent has a deadline (5 s for a call, 8 s for a trial's children):
//! a deadline that passes is a *hang*; a watchdog ends a run whose parent is stuck in a call
//! that ignores its deadline. Named segments carry a per-run prefix; after each trial and after
//! the run, `clean` must leave none of them. With a private `/dev/shm` ([`isolate`]) `clean`
//! is the library's own and also runs during `segments` trials; in the shared one it is
//! limited to the run's names and runs only between trials.

// Layers, bottom-up: `harness` (constants, random source, ledger, faults, frames) → `tally`
// (counters, problems, the trial) → `kids` (forked children and the kill) → the scenarios
// (`queue`, `pipes`, `locks`, `sync`, `pool`, `collections`, `segments`), which import only those three.
// `isolate` (the private /dev/shm) stands alone.
mod harness;
mod tally;

mod isolate;
mod kids;

mod collections;
mod locks;
mod pipes;
mod pool;
mod queue;
mod segments;
mod sync;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::{Rng, Setup};
pub use isolate::isolate;
pub use tally::Counts;
use tally::{Problem, Trial};

type Scenario = fn(&mut Trial<'_>) -> Setup;

/// Every scenario, by name.
const SCENARIOS: [(&str, Scenario); 12] = [
    ("queue", queue::queue),
    ("pipe-stream", pipes::pipe_stream),
    ("pipe-echo", pipes::pipe_echo),
    ("value-lock", locks::value_counter),
    ("lock-array", locks::lock_counter),
    ("barrier", sync::barrier),
    ("semaphore", sync::semaphore),
    ("condition", sync::condition),
    ("event", sync::event),
    ("pool", pool::pool),
    ("collections", collections::collections),
    ("segments", segments::segments),
];

/// What `shmproc chaos` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// Run trials for this long.
    pub seconds: u64,
    /// Seed of the random choices (a fresh one when `None`).
    pub seed: Option<u64>,
    /// Run only these scenarios (all when empty).
    pub only: Vec<String>,
    /// Whether this process has a `/dev/shm` of its own ([`isolate`] succeeded): `clean` then
    /// runs unrestricted, also while trials run; otherwise it is limited to this run's names
    /// and runs only between trials.
    pub private_shm: bool,
}

/// The names of the scenarios, in the order the summary lists them.
pub fn scenario_names() -> Vec<&'static str> {
    SCENARIOS.iter().map(|(name, _)| *name).collect()
}

/// The outcome of a chaos run.
#[derive(Debug, Clone)]
pub struct Summary {
    /// How long the trials ran.
    pub elapsed: Duration,
    /// The seed (pass it back with `--seed` to replay the same choices).
    pub seed: u64,
    /// Every counter, summed over the scenarios.
    pub total: Counts,
    /// The counters of each scenario.
    pub scenarios: Vec<(&'static str, Counts)>,
    /// What went wrong, one line each (the first 100).
    pub problems: Vec<String>,
    /// Whether the run had a `/dev/shm` of its own.
    pub private_shm: bool,
}

impl Summary {
    /// Whether every must-be-zero counter is zero.
    pub fn passed(&self) -> bool {
        self.total.bad() == 0
    }
}

/// How long one trial may take before the parent counts itself stuck: a call of the parent
/// ignored its timeout (no trial needs more than half of this, hangs included).
const STUCK: Duration = Duration::from_secs(60);

/// What the watchdog knows: the trial under way, when it began, the summary before it.
struct Watched {
    trial: u64,
    scenario: &'static str,
    began: Instant,
    last: Summary,
    done: bool,
}

/// Runs trials for `opts.seconds`, calling `progress` after each.
///
/// If a trial is stuck in the parent for a minute (a call that ignored its timeout: the trial
/// cannot be ended from outside), a watchdog thread counts a hang, hands the summary so far to
/// `on_stuck`, kills this process's children and exits with status 1.
///
/// # Errors
/// `InvalidInput` when `opts.only` names no scenario; otherwise none: everything a trial meets
/// is counted.
pub fn run(
    opts: &Options,
    mut progress: impl FnMut(&Summary),
    on_stuck: impl Fn(&Summary) + Send + 'static,
) -> std::io::Result<Summary> {
    let seed = opts.seed.unwrap_or_else(fresh_seed);
    let chosen: Vec<usize> = (0..SCENARIOS.len())
        .filter(|&i| opts.only.is_empty() || opts.only.iter().any(|o| o == SCENARIOS[i].0))
        .collect();
    if chosen.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "no scenario named {:?} (there are: {})",
                opts.only,
                scenario_names().join(", ")
            ),
        ));
    }
    let mut rng = Rng::new(seed);
    let run_prefix = format!("chaos{}-", std::process::id());
    let mut per: Vec<Counts> = vec![Counts::default(); SCENARIOS.len()];
    let mut problems = Vec::new();
    let mut order: Vec<usize> = Vec::new();
    let start = Instant::now();
    let budget = Duration::from_secs(opts.seconds);
    let watched = Arc::new(Mutex::new(Watched {
        trial: 0,
        scenario: "",
        began: start,
        last: summary(opts, start, seed, &per, &problems),
        done: false,
    }));
    watchdog(Arc::clone(&watched), on_stuck)?;
    let mut number = 0_u64;
    while start.elapsed() < budget {
        if order.is_empty() {
            order = shuffled(&mut rng, &chosen);
        }
        let which = order.pop().unwrap_or(0);
        let (scenario, body) = SCENARIOS[which];
        number += 1;
        let mut t = Trial {
            number,
            scenario,
            rng: rng.split(),
            counts: &mut per[which],
            problems: &mut problems,
            prefix: format!("{run_prefix}{number}-"),
            private_shm: opts.private_shm,
        };
        t.counts.trials += 1;
        let began = Instant::now();
        {
            let mut w = watched.lock().unwrap_or_else(|e| e.into_inner());
            (w.trial, w.scenario, w.began) = (number, scenario, began);
        }
        if let Err(e) = body(&mut t) {
            t.problem(Problem::Unexpected, format!("set-up failed: {e}"));
        }
        let prefix = t.prefix.clone();
        segments::sweep(&mut t, &prefix);
        t.counts.micros += began.elapsed().as_micros() as u64;
        let now = summary(opts, start, seed, &per, &problems);
        progress(&now);
        watched.lock().unwrap_or_else(|e| e.into_inner()).last = now;
    }
    watched.lock().unwrap_or_else(|e| e.into_inner()).done = true;
    // Anything of this run still there now (every child is gone) is a leak.
    let mut last = Counts::default();
    let mut t = Trial {
        number: number + 1,
        scenario: "end of run",
        rng: rng.split(),
        counts: &mut last,
        problems: &mut problems,
        prefix: run_prefix.clone(),
        private_shm: opts.private_shm,
    };
    segments::sweep(&mut t, &run_prefix);
    let mut out = summary(opts, start, seed, &per, &problems);
    out.total.add(&last);
    Ok(out)
}

/// Starts the thread that ends a run stuck in a trial (see [`run`]).
fn watchdog(
    watched: Arc<Mutex<Watched>>,
    on_stuck: impl Fn(&Summary) + Send + 'static,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("chaos-watchdog".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_secs(1));
            let w = watched.lock().unwrap_or_else(|e| e.into_inner());
            if w.done {
                return;
            }
            if w.trial > 0 && w.began.elapsed() > STUCK {
                let mut s = w.last.clone();
                s.elapsed += w.began.elapsed();
                s.total.trials += 1;
                s.total.hangs += 1;
                if let Some((_, c)) = s.scenarios.iter_mut().find(|(n, _)| *n == w.scenario) {
                    c.trials += 1;
                    c.hangs += 1;
                }
                s.problems.push(format!(
                    "trial {} {}: hang: the parent is stuck in a call that should have timed \
                     out ({} s so far; run stopped)",
                    w.trial,
                    w.scenario,
                    w.began.elapsed().as_secs()
                ));
                on_stuck(&s);
                kids::kill_all_children();
                std::process::exit(1);
            }
        })
        .map(drop)
}

fn summary(
    opts: &Options,
    start: Instant,
    seed: u64,
    per: &[Counts],
    problems: &[String],
) -> Summary {
    let mut total = Counts::default();
    for c in per {
        total.add(c);
    }
    Summary {
        elapsed: start.elapsed(),
        seed,
        total,
        scenarios: SCENARIOS
            .iter()
            .map(|(n, _)| *n)
            .zip(per.iter().copied())
            .collect(),
        problems: problems.to_vec(),
        private_shm: opts.private_shm,
    }
}

fn shuffled(rng: &mut Rng, items: &[usize]) -> Vec<usize> {
    let mut v = items.to_vec();
    for i in (1..v.len()).rev() {
        v.swap(i, rng.range(0, i as u64) as usize);
    }
    v
}

fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 40)
}

/// The summary as one JSON object.
pub fn to_json(s: &Summary) -> String {
    let mut out = format!(
        "{{\"seconds\":{:.1},\"seed\":{},\"private_shm\":{},\"passed\":{},{}",
        s.elapsed.as_secs_f64(),
        s.seed,
        s.private_shm,
        s.passed(),
        counts_json(&s.total)
    );
    out.push_str(",\"scenarios\":{");
    for (i, (name, c)) in s.scenarios.iter().enumerate() {
        let sep = if i > 0 { "," } else { "" };
        out.push_str(&format!("{sep}\"{name}\":{{{}}}", counts_json(c)));
    }
    out.push_str("},\"problems\":[");
    for (i, p) in s.problems.iter().enumerate() {
        let sep = if i > 0 { "," } else { "" };
        out.push_str(&format!("{sep}\"{}\"", json_escape(p)));
    }
    out.push_str("]}");
    out
}

fn counts_json(c: &Counts) -> String {
    let fields = [
        ("trials", c.trials),
        ("kills", c.kills),
        ("hangs", c.hangs),
        ("lost", c.lost),
        ("duplicated", c.duplicated),
        ("torn", c.torn),
        ("leaked_segments", c.leaked_segments),
        ("unexpected", c.unexpected),
        ("acked", c.acked),
        ("in_flight_delivered", c.in_flight_delivered),
        ("taken_by_killed_consumer", c.taken_by_killed_consumer),
        ("owner_died", c.owner_died),
        ("peer_died", c.peer_died),
        ("worker_died", c.worker_died),
        ("stale_removed", c.stale_removed),
        ("unused_end_left", c.unused_end_left),
        ("removed_by_others", c.removed_by_others),
        ("micros", c.micros),
    ];
    fields
        .iter()
        .map(|(k, v)| format!("\"{k}\":{v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// The summary as a table for people.
pub fn to_text(s: &Summary) -> String {
    use crate::fmt::thousands;
    let t = &s.total;
    let mut out = format!(
        "chaos: {} trials in {:.1} s, {} processes SIGKILLed (seed {}, {} /dev/shm)\n\n",
        thousands(t.trials),
        s.elapsed.as_secs_f64(),
        thousands(t.kills),
        s.seed,
        if s.private_shm { "private" } else { "shared" }
    );
    out.push_str(&format!(
        "{:<12} {:>7} {:>7} {:>8} {:>10} {:>6} {:>5} {:>5} {:>5} {:>6}\n",
        "scenario", "trials", "kills", "ms/trial", "acked", "hangs", "lost", "dup", "torn", "other"
    ));
    for (name, c) in &s.scenarios {
        out.push_str(&format!(
            "{:<12} {:>7} {:>7} {:>8.1} {:>10} {:>6} {:>5} {:>5} {:>5} {:>6}\n",
            name,
            thousands(c.trials),
            thousands(c.kills),
            c.micros as f64 / 1e3 / c.trials.max(1) as f64,
            thousands(c.acked),
            c.hangs,
            c.lost,
            c.duplicated,
            c.torn,
            c.unexpected
        ));
    }
    out.push_str(&format!(
        "\nrecoveries seen: {} OwnerDied, {} PeerDied/ParticipantDied, {} WorkerDied; \
         {} stale segments removed by clean\n",
        thousands(t.owner_died),
        thousands(t.peer_died),
        thousands(t.worker_died),
        thousands(t.stale_removed)
    ));
    out.push_str(&format!(
        "allowed by the guarantees: {} unacknowledged in-flight messages of killed producers \
         delivered, {} acknowledged records taken by killed consumers\n",
        thousands(t.in_flight_delivered),
        thousands(t.taken_by_killed_consumer)
    ));
    if t.unused_end_left > 0 {
        out.push_str(&format!(
            "{} pipe peers were told Disconnected, not PeerDied: the killed process had not yet \
             used the end it inherited\n",
            thousands(t.unused_end_left)
        ));
    }
    if t.removed_by_others > 0 {
        out.push_str(&format!(
            "note: {} named segments of live processes were removed by some other process \
             (e.g. `shmproc clean` of another shmproc version); not counted\n",
            t.removed_by_others
        ));
    }
    out.push_str(&format!(
        "\nhangs {}  lost {}  duplicated {}  torn {}  leaked segments {}  other {}  => {}\n",
        t.hangs,
        t.lost,
        t.duplicated,
        t.torn,
        t.leaked_segments,
        t.unexpected,
        if s.passed() { "PASS" } else { "FAIL" }
    ));
    for p in &s.problems {
        out.push_str(&format!("  {p}\n"));
    }
    out
}
