//! What a run counts and what a trial reports.

use std::fmt;

use super::harness::Rng;

/// Everything a run counts, per scenario and in total.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    /// Trials run.
    pub trials: u64,
    /// SIGKILLs that killed a live process.
    pub kills: u64,
    /// Blocking calls (or whole children) that did not finish within the patience.
    pub hangs: u64,
    /// Acknowledged messages (or increments, items) that never arrived, beyond what the
    /// guarantees allow (one in-flight message per killed producer, one record per killed
    /// consumer).
    pub lost: u64,
    /// Messages (or increments, items) that arrived more often than they were sent.
    pub duplicated: u64,
    /// Messages that arrived corrupted, truncated or mixed (checksum or content mismatch), and
    /// protected data found half-updated without an owner-died report.
    pub torn: u64,
    /// Other broken invariants: a wrong error, a wrong result, a lost permit, …
    pub unexpected: u64,
    /// Named segments of this run still in `/dev/shm` after `clean`.
    pub leaked_segments: u64,
    /// Acknowledged messages and increments checked.
    pub acked: u64,
    /// Messages that arrived although their producer was killed before acknowledging them.
    pub in_flight_delivered: u64,
    /// Acknowledged records that vanished with a consumer killed inside `get` (allowed).
    pub taken_by_killed_consumer: u64,
    /// `OwnerDied` recoveries seen.
    pub owner_died: u64,
    /// `PeerDied` / `ParticipantDied` reports seen.
    pub peer_died: u64,
    /// Pool tasks failed with `WorkerDied`.
    pub worker_died: u64,
    /// Stale segments (of killed creators) that `clean` removed.
    pub stale_removed: u64,
    /// Pipe peers told `Disconnected` (left), not `PeerDied`, because the killed process had
    /// not yet used the end it inherited through `fork` (it never became one of the end's
    /// holders; the inherited copy only delays the verdict).
    pub unused_end_left: u64,
    /// Named segments of live processes that vanished: removed by another process (such as a
    /// `shmproc clean` of another shmproc version, which cannot read them). Not ours to judge.
    pub removed_by_others: u64,
    /// Wall-clock time the trials took, in microseconds.
    pub micros: u64,
}

impl Counts {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Counts) {
        self.trials += other.trials;
        self.kills += other.kills;
        self.hangs += other.hangs;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.torn += other.torn;
        self.unexpected += other.unexpected;
        self.leaked_segments += other.leaked_segments;
        self.acked += other.acked;
        self.in_flight_delivered += other.in_flight_delivered;
        self.taken_by_killed_consumer += other.taken_by_killed_consumer;
        self.owner_died += other.owner_died;
        self.peer_died += other.peer_died;
        self.worker_died += other.worker_died;
        self.stale_removed += other.stale_removed;
        self.unused_end_left += other.unused_end_left;
        self.removed_by_others += other.removed_by_others;
        self.micros += other.micros;
    }

    /// Sum of the counters that must stay 0.
    pub fn bad(&self) -> u64 {
        self.hangs
            + self.lost
            + self.duplicated
            + self.torn
            + self.unexpected
            + self.leaked_segments
    }
}

/// What a trial found wrong.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Problem {
    Hang,
    Lost(u64),
    Duplicated(u64),
    Torn(u64),
    Leaked(u64),
    Unexpected,
}

/// At most this many problem descriptions are kept (the counters count all).
const KEEP_PROBLEMS: usize = 100;

/// One trial: its number, scenario, random source, and where its findings go.
pub(crate) struct Trial<'a> {
    pub(crate) number: u64,
    pub(crate) scenario: &'static str,
    pub(crate) rng: Rng,
    pub(crate) counts: &'a mut Counts,
    pub(crate) problems: &'a mut Vec<String>,
    /// Prefix of this trial's named segments.
    pub(crate) prefix: String,
    /// Whether the run has a `/dev/shm` of its own (see `isolate`).
    pub(crate) private_shm: bool,
}

impl Trial<'_> {
    /// A segment name unique to this trial.
    pub(crate) fn name(&self, what: &str) -> String {
        format!("{}{what}", self.prefix)
    }

    pub(crate) fn problem(&mut self, kind: Problem, what: impl fmt::Display) {
        let c = &mut *self.counts;
        let label = match kind {
            Problem::Hang => {
                c.hangs += 1;
                "hang".to_owned()
            }
            Problem::Lost(n) => {
                c.lost += n;
                format!("{n} lost")
            }
            Problem::Duplicated(n) => {
                c.duplicated += n;
                format!("{n} duplicated")
            }
            Problem::Torn(n) => {
                c.torn += n;
                format!("{n} torn")
            }
            Problem::Leaked(n) => {
                c.leaked_segments += n;
                format!("{n} leaked")
            }
            Problem::Unexpected => {
                c.unexpected += 1;
                "unexpected".to_owned()
            }
        };
        if self.problems.len() < KEEP_PROBLEMS {
            self.problems.push(format!(
                "trial {} {}: {label}: {what}",
                self.number, self.scenario
            ));
        }
    }
}
