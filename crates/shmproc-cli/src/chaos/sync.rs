//! Barrier, Semaphore, Condition and Event scenarios.

use std::time::{Duration, Instant};

use shmproc::{Barrier, BoundedSemaphore, Condition, Event, LockError, Semaphore, SyncError};

use super::harness::{bad, held, spin_for, work_until, Fault, Ledger, Setup, GRACE, PATIENCE};
use super::kids::{killed, Kids};
use super::tally::{Problem, Trial};

/// Most rounds a barrier member waits for (they stop together earlier, see `barrier`).
const ROUNDS: u64 = 1_000_000;
/// Barrier ledger: rounds passed per member from 0, how each ended from `ENDED`, the last round.
const ENDED: usize = 8;
const LAST: usize = 16;
const PASSED_ALL: u64 = 1;
const SAW_DEATH: u64 = 2;
const SAW_BROKEN: u64 = 3;

/// Members pass a barrier round after round; one is killed once every member has waited (a
/// process that never waited is no member: the others would wait for it, as in Python). The
/// survivors must get `ParticipantDied` or `Broken`, and none may pass more than one round
/// beyond the rounds the dead member passed.
///
/// Members stop together: one whose time is up lowers `LAST` to its round *before* arriving,
/// so the round cannot complete before every member can see it; each stops after the round
/// `LAST` names.
pub(crate) fn barrier(t: &mut Trial<'_>) -> Setup {
    let parties = t.rng.range(2, 4) as usize;
    let bar = match t.rng.chance(25).then(|| t.name("b")) {
        Some(name) => Barrier::create(&name, parties as u32)?,
        None => Barrier::new(parties as u32)?,
    };
    let book = Ledger::new(LAST + 1)?;
    book.set(LAST, ROUNDS);
    let mut kids = Kids::new(t, parties)?;
    for i in 0..parties {
        let (bar, book, timed) = (bar.clone(), book.clone(), t.rng.chance(50));
        kids.fork("member", move || {
            let stop = work_until();
            for round in 0..ROUNDS {
                if Instant::now() >= stop {
                    book.min(LAST, round);
                }
                let r = if timed {
                    bar.wait_timeout(PATIENCE)
                } else {
                    bar.wait()
                };
                let end = match r {
                    Ok(_) => {
                        book.set(i, round + 1);
                        if book.get(LAST) <= round {
                            break;
                        }
                        continue;
                    }
                    Err(SyncError::ParticipantDied { .. }) => SAW_DEATH,
                    Err(SyncError::Broken) => SAW_BROKEN,
                    Err(SyncError::Timeout) => {
                        return Err(Fault::Hang(format!("wait in round {round}")))
                    }
                    Err(e) => return Err(bad("wait", e)),
                };
                book.set(ENDED + i, end);
                return Ok(());
            }
            book.set(ENDED + i, PASSED_ALL);
            Ok(())
        })?;
    }
    let first = Instant::now() + PATIENCE;
    while (0..parties).any(|i| book.get(i) == 0 && !kids.exited(i)) {
        if Instant::now() > first {
            t.problem(Problem::Hang, "the first round never completed");
            return Ok(());
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    kids.arm(&mut t.rng, &[]);
    let ends = kids.finish(t, Instant::now() + GRACE);
    let passed: Vec<u64> = (0..parties).map(|i| book.get(i)).collect();
    let ended: Vec<u64> = (0..parties).map(|i| book.get(ENDED + i)).collect();
    let Some(v) = ends.iter().position(|e| e.killed) else {
        if ended.iter().any(|&e| e != PASSED_ALL && e != 0) {
            t.problem(
                Problem::Unexpected,
                format!("nobody was killed, yet {ended:?}"),
            );
        }
        return Ok(());
    };
    let survivors: Vec<usize> = (0..parties).filter(|&s| s != v).collect();
    for &s in &survivors {
        if passed[s] > passed[v] + 1 {
            t.problem(
                Problem::Unexpected,
                format!(
                    "a member passed {} rounds, the killed one only reached round {}",
                    passed[s],
                    passed[v] + 1
                ),
            );
        }
    }
    let saw_death = survivors.iter().filter(|&&s| ended[s] == SAW_DEATH).count();
    let saw_broken = survivors
        .iter()
        .filter(|&&s| ended[s] == SAW_BROKEN)
        .count();
    t.counts.peer_died += saw_death as u64;
    if saw_broken > 0 && saw_death == 0 {
        t.problem(
            Problem::Unexpected,
            "Broken, yet no survivor saw ParticipantDied",
        );
    }
    Ok(())
}

/// Most acquisitions a semaphore worker makes (or until its working time is up).
const ACQUIRES: u64 = 20_000;
/// Semaphore ledger: acks per worker from 0, holders now, overflows, holding flags from 10.
const HOLDERS: usize = 8;
const TOO_MANY: usize = 9;
const HOLDING: usize = 10;

/// More workers than permits take and give back permits; one is killed. Never more holders
/// than permits; at the end the value is the initial one, less the permit the killed worker
/// kept if it died holding one (permits have no owner, as in Python).
pub(crate) fn semaphore(t: &mut Trial<'_>) -> Setup {
    let permits = t.rng.range(2, 3);
    let workers = (permits + t.rng.range(1, 2)) as usize;
    let sem: Semaphore = if t.rng.chance(50) {
        (*BoundedSemaphore::new(permits as u32)?).clone()
    } else {
        Semaphore::new(permits as u32)?
    };
    let book = Ledger::new(HOLDING + workers)?;
    let mut kids = Kids::new(t, workers)?;
    for i in 0..workers {
        let (sem, book, mut rng) = (sem.clone(), book.clone(), t.rng.split());
        kids.fork("worker", move || {
            let timed = rng.chance(50);
            let stop = work_until();
            for _ in 0..ACQUIRES {
                if Instant::now() >= stop {
                    break;
                }
                let r = if timed {
                    sem.acquire_timeout(PATIENCE)
                } else {
                    sem.acquire()
                };
                match r {
                    Ok(()) => {}
                    Err(SyncError::Timeout) => return Err(Fault::Hang("acquire".into())),
                    Err(e) => return Err(bad("acquire", e)),
                }
                book.set(HOLDING + i, 1);
                if book.add(HOLDERS, 1) + 1 > permits {
                    book.add(TOO_MANY, 1);
                }
                spin_for(rng.range(0, 5));
                book.sub(HOLDERS, 1);
                book.set(HOLDING + i, 0);
                sem.release().map_err(|e| bad("release", e))?;
                book.add(i, 1);
                spin_for(rng.range(0, 5));
            }
            Ok(())
        })?;
    }
    kids.arm(&mut t.rng, &[]);
    let ends = kids.finish(t, Instant::now() + GRACE);
    t.counts.acked += book.sum(0..workers);
    if book.get(TOO_MANY) > 0 {
        t.problem(Problem::Unexpected, "more holders than permits at once");
    }
    let value = u64::from(sem.value());
    let ok = match ends.iter().position(|e| e.killed) {
        None => value == permits,
        Some(v) if book.get(HOLDING + v) == 1 => value == permits - 1,
        Some(_) => value == permits || value == permits - 1,
    };
    if !ok {
        t.problem(
            Problem::Unexpected,
            format!(
                "{value} permits left of {permits} (killed: {})",
                killed(&ends)
            ),
        );
    }
    Ok(())
}

/// Most items a condition producer adds (or until its working time is up).
const ITEMS: u64 = 20_000;
/// Condition ledger: items waiting, done flag, produced acks from 2, consumed acks from 6.
const COUNT: usize = 0;
const DONE: usize = 1;
const PRODUCED: usize = 2;
const CONSUMED: usize = 6;

/// Producers add items under a `Condition`'s lock and notify (inside or after the lock, one or
/// all); consumers wait for items. One process is killed. Then the parent sets "done" and
/// notifies all: every consumer must finish, and produced = consumed + left, give or take
/// one item per killed process.
pub(crate) fn condition(t: &mut Trial<'_>) -> Setup {
    let cond = match t.rng.chance(25).then(|| t.name("c")) {
        Some(name) => Condition::create(&name)?,
        None => Condition::new()?,
    };
    let producers = t.rng.range(1, 2) as usize;
    let consumers = t.rng.range(1, 2) as usize;
    let book = Ledger::new(CONSUMED + 4)?;
    let mut kids = Kids::new(t, producers + consumers)?;
    for i in 0..producers {
        let (cond, book, mut rng) = (cond.clone(), book.clone(), t.rng.split());
        kids.fork("producer", move || {
            let timed = rng.chance(50);
            let stop = work_until();
            for _ in 0..ITEMS {
                if Instant::now() >= stop {
                    break;
                }
                let r = if timed {
                    cond.lock_timeout(PATIENCE)
                } else {
                    cond.lock()
                };
                let (g, _) = held(r, "the condition's lock")?;
                book.set(COUNT, book.get(COUNT) + 1);
                let (inside, all) = (rng.chance(50), rng.chance(30));
                let notify = || {
                    if all {
                        cond.notify_all()
                    } else {
                        cond.notify_one()
                    }
                };
                if inside {
                    notify().map_err(|e| bad("notify", e))?;
                }
                drop(g);
                if !inside {
                    notify().map_err(|e| bad("notify", e))?;
                }
                book.add(PRODUCED + i, 1);
                spin_for(rng.range(0, 30));
            }
            Ok(())
        })?;
    }
    for j in 0..consumers {
        let (cond, book, timed) = (cond.clone(), book.clone(), t.rng.chance(50));
        kids.fork("consumer", move || loop {
            let r = if timed {
                cond.lock_timeout(PATIENCE)
            } else {
                cond.lock()
            };
            let (mut g, _) = held(r, "the condition's lock")?;
            while book.get(COUNT) == 0 && book.get(DONE) == 0 {
                let woke = if timed {
                    cond.wait_timeout(g, PATIENCE)
                } else {
                    cond.wait(g).map(|g| (g, true))
                };
                let in_time;
                (g, in_time) = match woke {
                    Ok(woke) => woke,
                    Err(LockError::OwnerDied(g)) => (g, true),
                    Err(e) => return Err(bad("wait", e)),
                };
                if !in_time && book.get(COUNT) == 0 && book.get(DONE) == 0 {
                    return Err(Fault::Hang("wait: no notify came".into()));
                }
            }
            let count = book.get(COUNT);
            if count == 0 {
                return Ok(());
            }
            book.set(COUNT, count - 1);
            drop(g);
            book.add(CONSUMED + j, 1);
        })?;
    }
    kids.arm(&mut t.rng, &[]);
    kids.strike();
    let deadline = Instant::now() + GRACE;
    let mut producers_done = true;
    for i in 0..producers {
        producers_done &= kids.wait(i, deadline);
    }
    if !producers_done {
        t.problem(Problem::Hang, "producers still running after the trial");
    }
    match held(cond.lock_timeout(PATIENCE), "the condition's lock") {
        Ok((g, died)) => {
            t.counts.owner_died += u64::from(died);
            book.set(DONE, 1);
            let _ = cond.notify_all();
            drop(g);
        }
        Err(f) => t.problem(Problem::Hang, format!("the parent {f}")),
    }
    let ends = kids.finish(t, deadline);
    let killed_p = killed(&ends[..producers]);
    let killed_c = killed(&ends[producers..]);
    let produced = book.sum(PRODUCED..PRODUCED + producers);
    let consumed = book.sum(CONSUMED..CONSUMED + consumers);
    let left = book.get(COUNT);
    t.counts.acked += produced;
    if left + consumed > produced + killed_p {
        t.problem(
            Problem::Duplicated(left + consumed - produced - killed_p),
            format!("{consumed} consumed + {left} left > {produced} produced"),
        );
    }
    if produced > left + consumed + killed_c {
        t.problem(
            Problem::Lost(produced - left - consumed - killed_c),
            format!("{produced} produced > {consumed} consumed + {left} left"),
        );
    }
    if killed_c < consumers as u64 && left != 0 {
        t.problem(
            Problem::Unexpected,
            format!("{left} items left although a consumer lived"),
        );
    }
    Ok(())
}

/// Event ledger: waiting flags from 0, returned flags from 8, the setter's "done" at 16.
const RETURNED: usize = 8;
const SET_DONE: usize = 16;

/// Waiters wait on an `Event` a setter sets after a random delay; one process is killed (the
/// setter maybe between setting and waking). Once the event is set — by the setter, or by the
/// parent if the setter died first — every surviving waiter must return.
pub(crate) fn event(t: &mut Trial<'_>) -> Setup {
    let ev = match t.rng.chance(25).then(|| t.name("e")) {
        Some(name) => Event::create(&name)?,
        None => Event::new()?,
    };
    let waiters = t.rng.range(2, 3) as usize;
    let book = Ledger::new(SET_DONE + 1)?;
    let mut kids = Kids::new(t, waiters + 1)?;
    for i in 0..waiters {
        let (ev, book, timed) = (ev.clone(), book.clone(), t.rng.chance(50));
        kids.fork("waiter", move || {
            book.set(i, 1);
            let r = if timed {
                ev.wait_timeout(PATIENCE)
            } else {
                ev.wait().map(|()| true)
            };
            match r {
                Ok(true) => {
                    book.set(RETURNED + i, 1);
                    Ok(())
                }
                Ok(false) => Err(Fault::Hang("wait".into())),
                Err(e) => Err(bad("wait", e)),
            }
        })?;
    }
    let (e, b, delay) = (ev.clone(), book.clone(), t.rng.range(0, 25_000));
    let setter = kids.fork("setter", move || {
        spin_for(delay);
        e.set().map_err(|x| bad("set", x))?;
        b.set(SET_DONE, 1);
        Ok(())
    })?;
    kids.arm(&mut t.rng, &[]);
    kids.strike();
    let deadline = Instant::now() + GRACE;
    if !kids.wait(setter, deadline) {
        t.problem(Problem::Hang, "the setter still running after the trial");
    }
    if !ev.is_set() && book.get(SET_DONE) == 0 {
        ev.set()?;
    }
    kids.finish(t, deadline);
    Ok(())
}
