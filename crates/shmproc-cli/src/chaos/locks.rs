//! Counter scenarios: a two-word record under a `Value`'s own lock, or under a `Lock` / `RLock`
//! guarding an `Array`, while an incrementer is killed.

use std::time::Instant;

use shmproc::{AccessError, Array, Lock, RLock, Value};

use super::harness::{bad, held, spin_for, work_until, Fault, Ledger, Setup, GRACE, PATIENCE};
use super::kids::{killed, Kids};
use super::tally::{Problem, Trial};

/// Most increments a counter worker makes (it stops earlier when its working time is up).
const INCREMENTS: u64 = 20_000;

/// The second word of a sealed counter record: a function of the first that a half-done
/// update does not match.
fn seal(count: u64) -> u64 {
    count.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x00C0_FFEE
}

/// Ledger slots of the counter scenarios: acks per worker from 0, then these.
const OWNER_DIED: usize = 8;
const INSIDE: usize = 9;
const OVERLAP: usize = 10;
const UNSEALED: usize = 11;
const COUNTER_SLOTS: usize = 12;

/// Enters a critical section: checks nobody else is inside (`OVERLAP`) unless the previous
/// holder died.
fn enter(book: &Ledger, died: bool) {
    if died {
        book.add(OWNER_DIED, 1);
        book.set(INSIDE, 1);
    } else if book.swap(INSIDE, 1) != 0 {
        book.add(OVERLAP, 1);
    }
}

/// Workers increment a two-word record `[count, seal(count)]` under a `Value`'s own lock,
/// spinning between the two writes; one is killed, often inside. `OwnerDied` must come
/// whenever the record is half written, and the final count must lie between the acknowledged
/// increments and that plus one per killed worker.
pub(crate) fn value_counter(t: &mut Trial<'_>) -> Setup {
    let v: Value<[u64; 2]> = match t.rng.chance(25).then(|| t.name("v")) {
        Some(name) => Value::create(&name, [0, seal(0)])?,
        None => Value::new([0, seal(0)])?,
    };
    let book = Ledger::new(COUNTER_SLOTS)?;
    let workers = t.rng.range(2, 3) as usize;
    let mut kids = Kids::new(t, workers)?;
    for w in 0..workers {
        let (v, book, mut rng) = (v.clone(), book.clone(), t.rng.split());
        kids.fork("incrementer", move || {
            let timed = rng.chance(50);
            let stop = work_until();
            for _ in 0..INCREMENTS {
                if Instant::now() >= stop {
                    break;
                }
                let r = if timed {
                    v.lock_timeout(PATIENCE)
                } else {
                    v.lock()
                };
                let (mut g, died) = held(r, "the value's lock")?;
                enter(&book, died);
                if g[1] != seal(g[0]) {
                    if !died {
                        book.add(UNSEALED, 1);
                    }
                    g[1] = seal(g[0]);
                }
                g[0] += 1;
                spin_for(rng.range(0, 3));
                g[1] = seal(g[0]);
                book.set(INSIDE, 0);
                drop(g);
                book.add(w, 1);
                spin_for(rng.range(0, 3));
            }
            Ok(())
        })?;
    }
    kids.arm(&mut t.rng, &[]);
    let killed = killed(&kids.finish(t, Instant::now() + GRACE));
    let count = match held(v.lock_timeout(PATIENCE), "the value's lock") {
        Ok((mut g, died)) => {
            if g[1] != seal(g[0]) {
                if !died {
                    t.problem(Problem::Torn(1), "a half-written record without OwnerDied");
                }
                g[1] = seal(g[0]);
            }
            t.counts.owner_died += u64::from(died);
            g[0]
        }
        Err(f) => {
            t.problem(Problem::Hang, f);
            return Ok(());
        }
    };
    check_counter(t, &book, workers, count, killed);
    Ok(())
}

/// The same with a separate `Lock` — or an `RLock`, taken again (re-entered) between the two
/// writes — guarding an `Array` of two words written with `set`: a worker killed inside
/// `get`/`set` also leaves the array's own lock to recover, one killed at depth 2 an `RLock`
/// that must come back at depth 1.
pub(crate) fn lock_counter(t: &mut Trial<'_>) -> Setup {
    let lock = Lock::new()?;
    let rlock = t.rng.chance(50).then(RLock::new).transpose()?;
    let arr = Array::from_slice(&[0_u64, seal(0)])?;
    let book = Ledger::new(COUNTER_SLOTS)?;
    let workers = t.rng.range(2, 3) as usize;
    let mut kids = Kids::new(t, workers)?;
    for w in 0..workers {
        let (lock, rlock, arr, book) = (lock.clone(), rlock.clone(), arr.clone(), book.clone());
        let mut rng = t.rng.split();
        kids.fork("incrementer", move || {
            let timed = rng.chance(50);
            let stop = work_until();
            for _ in 0..INCREMENTS {
                if Instant::now() >= stop {
                    break;
                }
                let pause = rng.range(0, 3);
                if let Some(r) = &rlock {
                    let again = || {
                        let (inner, died) = held(r.acquire_timeout(PATIENCE), "the rlock again")?;
                        spin_for(pause);
                        drop(inner);
                        match died {
                            false => Ok(()),
                            true => Err(Fault::Bad("OwnerDied re-entering a held RLock".into())),
                        }
                    };
                    let got = if timed {
                        r.acquire_timeout(PATIENCE)
                    } else {
                        r.acquire()
                    };
                    let (g, died) = held(got, "the rlock")?;
                    bump(&arr, &book, died, again)?;
                    drop(g);
                } else {
                    let got = if timed {
                        lock.acquire_timeout(PATIENCE)
                    } else {
                        lock.acquire()
                    };
                    let (g, died) = held(got, "the lock")?;
                    bump(&arr, &book, died, || {
                        spin_for(pause);
                        Ok(())
                    })?;
                    drop(g);
                }
                book.add(w, 1);
                spin_for(rng.range(0, 3));
            }
            Ok(())
        })?;
    }
    kids.arm(&mut t.rng, &[]);
    let killed = killed(&kids.finish(t, Instant::now() + GRACE));
    let count = match &rlock {
        Some(r) => match held(r.acquire_timeout(PATIENCE), "the rlock") {
            Ok((g, died)) => {
                let count = final_words(t, &arr, died);
                drop(g);
                count
            }
            Err(f) => {
                t.problem(Problem::Hang, f);
                None
            }
        },
        None => match held(lock.acquire_timeout(PATIENCE), "the lock") {
            Ok((g, died)) => {
                let count = final_words(t, &arr, died);
                drop(g);
                count
            }
            Err(f) => {
                t.problem(Problem::Hang, f);
                None
            }
        },
    };
    if let Some(count) = count {
        check_counter(t, &book, workers, count, killed);
    }
    Ok(())
}

/// One increment of the two-word record in `arr`, the lock held (`died`: taken over from a
/// dead owner); `between` runs between the two writes.
fn bump(
    arr: &Array<u64>,
    book: &Ledger,
    died: bool,
    between: impl FnOnce() -> Result<(), Fault>,
) -> Result<(), Fault> {
    enter(book, died);
    let count = read(arr, 0, book)?;
    if read(arr, 1, book)? != seal(count) {
        if !died {
            book.add(UNSEALED, 1);
        }
        write(arr, 1, seal(count), book)?;
    }
    write(arr, 0, count + 1, book)?;
    between()?;
    write(arr, 1, seal(count + 1), book)?;
    book.set(INSIDE, 0);
    Ok(())
}

/// The parent's last look at the record, holding the outer lock (`died`: taken over).
fn final_words(t: &mut Trial<'_>, arr: &Array<u64>, died: bool) -> Option<u64> {
    t.counts.owner_died += u64::from(died);
    match held(arr.lock_timeout(PATIENCE), "the array's lock") {
        Ok((mut a, adied)) => {
            t.counts.owner_died += u64::from(adied);
            if a[1] != seal(a[0]) {
                if !died {
                    t.problem(Problem::Torn(1), "a half-written record without OwnerDied");
                }
                a[1] = seal(a[0]);
            }
            Some(a[0])
        }
        Err(f) => {
            t.problem(Problem::Hang, f);
            None
        }
    }
}

/// `Array::get`, retried once the array's lock reported its owner's death.
fn read(arr: &Array<u64>, i: usize, book: &Ledger) -> Result<u64, Fault> {
    loop {
        match arr.get(i) {
            Ok(v) => return Ok(v),
            Err(AccessError::OwnerDied) => book.add(OWNER_DIED, 1),
            Err(e) => return Err(bad("Array::get", e)),
        };
    }
}

/// `Array::set`, retried once the array's lock reported its owner's death.
fn write(arr: &Array<u64>, i: usize, v: u64, book: &Ledger) -> Result<(), Fault> {
    loop {
        match arr.set(i, v) {
            Ok(()) => return Ok(()),
            Err(AccessError::OwnerDied) => book.add(OWNER_DIED, 1),
            Err(e) => return Err(bad("Array::set", e)),
        };
    }
}

/// `acked ≤ count ≤ acked + killed workers`; no overlap; no silent half-written record.
fn check_counter(t: &mut Trial<'_>, book: &Ledger, workers: usize, count: u64, killed: u64) {
    let acked = book.sum(0..workers);
    t.counts.acked += acked;
    t.counts.owner_died += book.get(OWNER_DIED);
    if count < acked {
        t.problem(
            Problem::Lost(acked - count),
            "acknowledged increments missing",
        );
    }
    if count > acked + killed {
        t.problem(
            Problem::Duplicated(count - acked - killed),
            format!("count {count} > {acked} acknowledged + {killed} killed in the act"),
        );
    }
    if book.get(OVERLAP) > 0 {
        t.problem(
            Problem::Unexpected,
            "two holders inside the critical section at once",
        );
    }
    let unsealed = book.get(UNSEALED);
    if unsealed > 0 {
        t.problem(
            Problem::Torn(unsealed),
            "a half-written record without OwnerDied",
        );
    }
}
