//! The shared-collections scenario: workers update a `SharedMap` and push to a `SharedVec`
//! while one of them is killed, often inside a mutation.

use std::time::Instant;

use shmproc::{CollectionError, SharedMap, SharedVec};

use super::harness::{bad, spin_for, work_until, Fault, Ledger, Setup, GRACE, PATIENCE};
use super::kids::{killed, End, Kids};
use super::tally::{Problem, Trial};

/// Most rounds a worker makes (it stops earlier when its working time is up).
const ROUNDS: u64 = 20_000;
/// Most elements the list holds; a worker stops pushing once it is full.
const LIST_CAPACITY: usize = 4096;
/// Ledger slots: updates acknowledged per worker from 0, pushes acknowledged per worker from
/// `PUSHED`, then `OWNER_DIED`.
const PUSHED: usize = 4;
const OWNER_DIED: usize = 8;
const SLOTS: usize = 9;
/// Keys a worker inserts and removes again (churn through the arena), above its counter key.
const CHURN: u32 = 1000;

/// The second word of a counter: a function of the first that a half-applied update breaks.
fn seal(count: u64) -> u64 {
    count.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xC011_EC75
}

/// Runs `op`, once more if it reports `OwnerDied` (the collection was repaired; the operation
/// was not done), counting the report.
fn retried<T>(
    book: &Ledger,
    what: &str,
    mut op: impl FnMut() -> Result<T, CollectionError>,
) -> Result<T, Fault> {
    match op() {
        Err(CollectionError::OwnerDied) => book.add(OWNER_DIED, 1),
        other => return other.map_err(|e| fault(what, e)),
    };
    op().map_err(|e| fault(what, e))
}

fn fault(what: &str, e: CollectionError) -> Fault {
    match e {
        CollectionError::Timeout => Fault::Hang(what.into()),
        e => bad(what, e),
    }
}

/// Workers bump a sealed counter under their own key, push numbered elements and churn a key
/// in and out; one is killed. Afterwards each counter is sealed and between its acknowledged
/// updates and one more if its worker was killed, each worker's elements are in order with no
/// gap or duplicate (one unacknowledged extra allowed for the killed one), at most the killed
/// worker's churn key is left, and `len` matches what iteration yields.
pub(crate) fn collections(t: &mut Trial<'_>) -> Setup {
    let name = t.rng.chance(25).then(|| t.name("map"));
    let map: SharedMap<u32, [u64; 2]> = match &name {
        Some(name) => SharedMap::create(name, 64)?,
        None => SharedMap::new(64)?,
    };
    let map = map.with_timeout(PATIENCE);
    let list = SharedVec::<u64>::new(LIST_CAPACITY)?.with_timeout(PATIENCE);
    let book = Ledger::new(SLOTS)?;
    let workers = t.rng.range(2, 4) as usize;
    let mut kids = Kids::new(t, workers)?;
    for w in 0..workers {
        let (map, list, book, mut rng) = (map.clone(), list.clone(), book.clone(), t.rng.split());
        kids.fork("collection writer", move || {
            let key = w as u32;
            let stop = work_until();
            let mut pushing = true;
            for round in 0..ROUNDS {
                if Instant::now() >= stop {
                    break;
                }
                retried(&book, "update", || {
                    map.update(key, |old| {
                        let [count, _] = old.unwrap_or([0, seal(0)]);
                        [count + 1, seal(count + 1)]
                    })
                })?;
                book.add(w, 1);
                if pushing {
                    let element = (w as u64) << 32 | book.get(PUSHED + w);
                    match retried(&book, "push", || list.push(element)) {
                        Ok(()) => {
                            book.add(PUSHED + w, 1);
                        }
                        Err(Fault::Bad(_)) if list.len() >= LIST_CAPACITY => pushing = false,
                        Err(e) => return Err(e),
                    }
                }
                if rng.chance(20) {
                    let churn = CHURN + key;
                    retried(&book, "insert", || map.insert(churn, [round, seal(round)]))?;
                    spin_for(rng.range(0, 3));
                    retried(&book, "remove", || map.remove(&churn))?;
                }
            }
            Ok(())
        })?;
    }
    kids.arm(&mut t.rng, &[]);
    let ends = kids.finish(t, Instant::now() + GRACE);
    let entries = match retried(&book, "iter", || map.iter()) {
        Ok(entries) => entries,
        Err(f) => {
            t.problem(Problem::Unexpected, f);
            return Ok(());
        }
    };
    if entries.len() != map.len() {
        let what = format!("len {} but iteration yields {}", map.len(), entries.len());
        t.problem(Problem::Unexpected, what);
    }
    for (w, end) in ends.iter().enumerate() {
        let acked = book.get(w);
        t.counts.acked += acked;
        let found = entries.iter().find(|(k, _)| *k == w as u32);
        let count = match found {
            Some((_, [count, check])) if *check == seal(*count) => *count,
            Some(_) => {
                t.problem(
                    Problem::Torn(1),
                    format!("worker {w}'s counter is half written"),
                );
                continue;
            }
            None => 0,
        };
        if count < acked {
            t.problem(Problem::Lost(acked - count), "acknowledged updates missing");
        } else if count > acked + u64::from(end.killed) {
            t.problem(Problem::Duplicated(count - acked), "updates applied twice");
        }
        let churned = entries.iter().any(|(k, _)| *k == CHURN + w as u32);
        if churned && !end.killed {
            t.problem(
                Problem::Unexpected,
                format!("worker {w}'s churn key left behind"),
            );
        }
    }
    check_list(t, &book, &list, &ends);
    // One report per repair, and only a killed writer leaves something to repair.
    let owner_died = book.get(OWNER_DIED);
    t.counts.owner_died += owner_died;
    if owner_died > killed(&ends) {
        t.problem(
            Problem::Unexpected,
            format!("OwnerDied reported {owner_died} times"),
        );
    }
    Ok(())
}

/// Each worker's elements are numbered from 0 in push order: none missing, none twice, at most
/// one unacknowledged (its pusher killed before the acknowledgement).
fn check_list(t: &mut Trial<'_>, book: &Ledger, list: &SharedVec<u64>, ends: &[End]) {
    let elements = match retried(book, "to_vec", || list.to_vec()) {
        Ok(elements) => elements,
        Err(f) => return t.problem(Problem::Unexpected, f),
    };
    for (w, end) in ends.iter().enumerate() {
        let mine: Vec<u64> = elements
            .iter()
            .filter(|e| (*e >> 32) as usize == w)
            .map(|e| e & 0xFFFF_FFFF)
            .collect();
        let acked = book.get(PUSHED + w);
        if mine.iter().enumerate().any(|(i, n)| *n != i as u64) {
            t.problem(
                Problem::Unexpected,
                format!("worker {w}'s elements out of order or twice"),
            );
        }
        let n = mine.len() as u64;
        if n < acked {
            t.problem(Problem::Lost(acked - n), "acknowledged pushes missing");
        } else if n > acked + u64::from(end.killed) {
            t.problem(Problem::Duplicated(n - acked), "pushes applied twice");
        }
    }
}
