//! Named segments: children that create, use, reopen and drop named primitives of every kind
//! while one is killed and `clean` runs beside them; and the sweep after each trial that
//! counts what `clean` could not remove.

use std::time::{Duration, Instant};

use shmproc::raw::{sys::SHM_DIR, SegmentInfo};
use shmproc::{
    Array, Barrier, Condition, Event, Lock, Pipe, Queue, SegmentError, Semaphore, Value,
};
use shmproc_shm::NAME_PREFIX;

use super::harness::{bad, work_until, Fault, Ledger, Setup, GRACE, PATIENCE};
use super::kids::Kids;
use super::tally::{Problem, Trial};

/// Most named segments a child goes through (it stops earlier when its working time is up).
const ROUNDS: u64 = 100_000;

/// The segments whose name starts with `prefix`, read as `shmproc ls` reads them. Only those
/// are inspected (a segment of someone else that is still being made would make the listing
/// wait for it).
fn list_prefix(prefix: &str) -> std::io::Result<Vec<SegmentInfo>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(SHM_DIR)? {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(name) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(NAME_PREFIX))
            .filter(|n| n.starts_with(prefix))
        else {
            continue;
        };
        out.push(SegmentInfo {
            name: name.to_owned(),
            size: entry.metadata().map_or(0, |m| m.len()),
            status: shmproc::raw::inspect(name).map_err(|e| e.to_string()),
        });
    }
    Ok(out)
}

/// Removes the stale segments whose name starts with `prefix` (what `shmproc clean` does,
/// limited to this run's names so other users of `/dev/shm` are left alone). Returns the names
/// it removed and the names still there afterwards.
pub(crate) fn clean_prefix(prefix: &str) -> std::io::Result<(Vec<String>, Vec<String>)> {
    let mut removed = Vec::new();
    for info in list_prefix(prefix)? {
        if info.is_stale() && shmproc::raw::remove(&info.name).is_ok() {
            removed.push(info.name);
        }
    }
    let left = list_prefix(prefix)?.into_iter().map(|i| i.name).collect();
    Ok((removed, left))
}

/// After a trial: `clean` the trial's names; whatever is left is a leak (reported, then removed
/// so it is not counted again).
pub(crate) fn sweep(t: &mut Trial<'_>, prefix: &str) {
    match clean_prefix(prefix) {
        Ok((removed, left)) => {
            t.counts.stale_removed += removed.len() as u64;
            if !left.is_empty() {
                t.problem(
                    Problem::Leaked(left.len() as u64),
                    format!("left after clean: {}", left.join(", ")),
                );
                for name in left {
                    let _ = shmproc::raw::remove(&name);
                }
            }
        }
        Err(e) => t.problem(Problem::Unexpected, format!("listing /dev/shm: {e}")),
    }
}

/// Children churn through named segments; one is killed; `clean` runs while the others still
/// work — it may remove only the dead creator's segments — and after them. A child that finds
/// its own segment gone counts it (some other process removed it: a `shmproc clean` of another
/// shmproc version treats segments it cannot read as stale).
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
    // Beside the survivors (half the time: a half-made segment of the dead creator makes the
    // listing wait half a second).
    if t.rng.chance(50) {
        match clean_prefix(&t.prefix) {
            Ok((removed, _)) => {
                t.counts.stale_removed += removed.len() as u64;
                let victim = kids.victim();
                for name in removed {
                    let creator = name[t.prefix.len()..]
                        .strip_prefix('k')
                        .and_then(|r| r.split('n').next())
                        .and_then(|k| k.parse::<usize>().ok());
                    if creator != victim {
                        t.problem(
                            Problem::Unexpected,
                            format!("clean removed {name} of live creator {creator:?}"),
                        );
                    }
                }
            }
            Err(e) => t.problem(Problem::Unexpected, format!("listing /dev/shm: {e}")),
        }
    }
    kids.finish(t, Instant::now() + GRACE);
    t.counts.removed_by_others += vanished.sum(0..n);
    Ok(())
}

/// Creates a named primitive of `kind`, uses it, opens it again by name, drops both. `false`
/// if it was gone by then (removed by another process).
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
