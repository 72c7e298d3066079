//! Named segments: children that create, use, reopen and drop named primitives of every kind
//! while one is killed and `clean` runs beside them; and the sweep after each trial that
//! counts what `clean` could not remove.

use std::time::{Duration, Instant};

use shmproc::raw::SegmentInfo;
use shmproc::{
    Array, Barrier, Condition, Event, Lock, Pipe, Queue, SegmentError, Semaphore, Value,
};

use super::harness::{bad, work_until, Fault, Ledger, Setup, GRACE, PATIENCE};
use super::kids::Kids;
use super::tally::{Problem, Trial};

/// Most named segments a child goes through (it stops earlier when its working time is up).
const ROUNDS: u64 = 100_000;

/// The segments whose name starts with `prefix`, as `shmproc ls` lists them.
fn list_prefix(prefix: &str) -> std::io::Result<Vec<SegmentInfo>> {
    Ok(shmproc::raw::list()?
        .into_iter()
        .filter(|info| info.name.starts_with(prefix))
        .collect())
}

/// `clean` as the run may do it: in a private `/dev/shm`, `shmproc::raw::clean` itself (every
/// segment there is this run's); in the shared one, limited to `prefix` so other users'
/// segments are left alone — a list, then `remove` of the stale ones, which is only safe once
/// the trial's children are gone (`raw::clean` claims a segment before removing it; a plain
/// `remove` after the listing could race a creator). Returns what it removed.
fn clean(t: &Trial<'_>, prefix: &str) -> std::io::Result<Vec<SegmentInfo>> {
    if t.private_shm {
        return shmproc::raw::clean();
    }
    let mut removed = Vec::new();
    for info in list_prefix(prefix)? {
        if info.is_stale() && shmproc::raw::remove(&info.name).is_ok() {
            removed.push(info);
        }
    }
    Ok(removed)
}

/// After a trial (its children gone): `clean`; whatever of `prefix` is left is a leak
/// (reported, then removed so it is not counted again).
pub(crate) fn sweep(t: &mut Trial<'_>, prefix: &str) {
    let swept = clean(t, prefix).and_then(|removed| Ok((removed, list_prefix(prefix)?)));
    match swept {
        Ok((removed, left)) => {
            t.counts.stale_removed += removed.len() as u64;
            if !left.is_empty() {
                let names: Vec<String> = left.into_iter().map(|i| i.name).collect();
                t.problem(
                    Problem::Leaked(names.len() as u64),
                    format!("left after clean: {}", names.join(", ")),
                );
                for name in names {
                    let _ = shmproc::raw::remove(&name);
                }
            }
        }
        Err(e) => t.problem(Problem::Unexpected, format!("listing /dev/shm: {e}")),
    }
}

/// Children churn through named segments; one is killed. In a private `/dev/shm`, `clean` runs
/// right after the kill, while the others still create, open and drop theirs: it may remove the
/// dead creator's segments and brand-new empty files nobody holds yet (their creator makes
/// them again), never an initialised segment of a live creator — and no live creator may find
/// its segment gone. In the shared `/dev/shm` a segment found gone was removed by some other
/// process (such as a `shmproc clean` of another layout version): counted apart.
pub(crate) fn segments(t: &mut Trial<'_>) -> Setup {
    let n = t.rng.range(2, 3) as usize;
    let vanished = Ledger::new(n)?;
    let mut kids = Kids::new(t, n)?;
    for k in 0..n {
        let (base, vanished) = (t.name(&format!("k{k}n")), vanished.clone());
        let mut rng = t.rng.split();
        kids.fork("creator", move || {
            let stop = work_until();
            for round in 0..ROUNDS {
                if Instant::now() >= stop {
                    break;
                }
                if !churn(rng.range(0, 8), &format!("{base}{round}"), round)? {
                    vanished.add(k, 1);
                }
            }
            Ok(())
        })?;
    }
    kids.arm(&mut t.rng, &[]);
    kids.strike();
    if t.private_shm {
        let prefix = t.prefix.clone();
        match clean(t, &prefix) {
            Ok(removed) => {
                t.counts.stale_removed += removed.len() as u64;
                let victim = kids.victim();
                for info in removed.iter().filter(|i| i.status.is_ok()) {
                    let creator = info.name[prefix.len()..]
                        .strip_prefix('k')
                        .and_then(|r| r.split('n').next())
                        .and_then(|k| k.parse::<usize>().ok());
                    if creator != victim {
                        t.problem(
                            Problem::Unexpected,
                            format!("clean removed {} of live creator {creator:?}", info.name),
                        );
                    }
                }
            }
            Err(e) => t.problem(Problem::Unexpected, format!("listing /dev/shm: {e}")),
        }
    }
    kids.finish(t, Instant::now() + GRACE);
    let gone = vanished.sum(0..n);
    if t.private_shm && gone > 0 {
        t.problem(
            Problem::Unexpected,
            format!("{gone} segments of live creators vanished before they reopened them"),
        );
    } else {
        t.counts.removed_by_others += gone;
    }
    Ok(())
}

/// Creates a named primitive of `kind`, uses it, opens it again by name, drops both. `false`
/// if it was gone by then.
fn churn(kind: u64, name: &str, round: u64) -> Result<bool, Fault> {
    let made = |e: SegmentError| bad(&format!("creating {name}"), e);
    let reopened = |e: SegmentError| bad(&format!("opening {name}"), e);
    macro_rules! reopen {
        ($open:expr) => {
            match $open {
                Ok(handle) => handle,
                Err(SegmentError::NotFound { .. }) => return Ok(false),
                Err(e) => return Err(reopened(e)),
            }
        };
    }
    match kind {
        0 => {
            let v = Value::create(name, round).map_err(made)?;
            let w = reopen!(Value::<u64>::open(name));
            same(w.get().map_err(|e| bad("get", e))?, round)?;
            v.set(round + 1).map_err(|e| bad("set", e))?;
        }
        1 => {
            let a = Array::create(name, &[round as u32; 16]).map_err(made)?;
            let b = reopen!(Array::<u32>::open(name));
            same(u64::from(b.get(15).map_err(|e| bad("get", e))?), round)?;
            a.set(0, 1).map_err(|e| bad("set", e))?;
        }
        2 => {
            let q = Queue::<u64>::create_with_capacity(name, 1024).map_err(made)?;
            let r = reopen!(Queue::<u64>::open(name));
            q.put_timeout(&round, PATIENCE).map_err(|e| bad("put", e))?;
            same(r.get_timeout(PATIENCE).map_err(|e| bad("get", e))?, round)?;
        }
        3 => {
            let l = Lock::create(name).map_err(made)?;
            let m = reopen!(Lock::open(name));
            drop(l.acquire_timeout(PATIENCE).map_err(|e| bad("acquire", e))?);
            drop(m.acquire_timeout(PATIENCE).map_err(|e| bad("acquire", e))?);
        }
        4 => {
            let a = Pipe::<u64>::create_with_capacity(name, 1024).map_err(made)?;
            let b = reopen!(Pipe::<u64>::open(name));
            a.send_timeout(&round, PATIENCE)
                .map_err(|e| bad("send", e))?;
            same(b.recv_timeout(PATIENCE).map_err(|e| bad("recv", e))?, round)?;
        }
        5 => {
            let b = Barrier::create(name, 1).map_err(made)?;
            let c = reopen!(Barrier::open(name));
            b.wait_timeout(PATIENCE).map_err(|e| bad("wait", e))?;
            c.wait_timeout(PATIENCE).map_err(|e| bad("wait", e))?;
        }
        6 => {
            let s = Semaphore::create(name, 1).map_err(made)?;
            let r = reopen!(Semaphore::open(name));
            s.acquire_timeout(PATIENCE).map_err(|e| bad("acquire", e))?;
            r.release().map_err(|e| bad("release", e))?;
        }
        7 => {
            let e = Event::create(name).map_err(made)?;
            let f = reopen!(Event::open(name));
            e.set().map_err(|x| bad("set", x))?;
            if !f.wait_timeout(Duration::ZERO).map_err(|x| bad("wait", x))? {
                return Err(Fault::Bad(format!("{name}: set but not seen through open")));
            }
        }
        _ => {
            let c = Condition::create(name).map_err(made)?;
            let d = reopen!(Condition::open(name));
            drop(c.lock_timeout(PATIENCE).map_err(|e| bad("lock", e))?);
            d.notify_all().map_err(|e| bad("notify", e))?;
        }
    }
    Ok(true)
}

fn same(got: u64, want: u64) -> Result<(), Fault> {
    if got == want {
        Ok(())
    } else {
        Err(Fault::Bad(format!("read {got} through open, wrote {want}")))
    }
}
