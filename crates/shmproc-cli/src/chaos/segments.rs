//! Named segments: children that create, use, reopen and drop named primitives of every kind
//! while one is killed and `clean` runs beside them; and the sweep after each trial that
//! counts what `clean` could not remove.

use std::time::{Duration, Instant};

use shmproc::raw::{sys::SHM_DIR, SegmentInfo};
use shmproc::{
    Array, Barrier, Condition, Event, Lock, Pipe, Queue, SegmentError, Semaphore, Value,
};
use shmproc_shm::NAME_PREFIX;

use super::harness::{bad, work_until, Fault, Setup, GRACE, PATIENCE};
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
/// limited to this run's names so other users of `/dev/shm` are left alone). Returns how many
/// it removed and the names still there afterwards.
pub(crate) fn clean_prefix(prefix: &str) -> std::io::Result<(u64, Vec<String>)> {
    let mut removed = 0;
    for info in list_prefix(prefix)? {
        if info.is_stale() && shmproc::raw::remove(&info.name).is_ok() {
            removed += 1;
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
            t.counts.stale_removed += removed;
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
/// work (it must not remove their live segments: their `open`s would fail) and after them.
pub(crate) fn segments(t: &mut Trial<'_>) -> Setup {
    let n = t.rng.range(2, 3) as usize;
    let mut kids = Kids::new(t, n)?;
    for k in 0..n {
        let base = t.name(&format!("k{k}n"));
        let mut rng = t.rng.split();
        kids.fork("creator", move || {
            let stop = work_until();
            for round in 0..ROUNDS {
                if Instant::now() >= stop {
                    break;
                }
                churn(rng.range(0, 8), &format!("{base}{round}"), round)?;
            }
            Ok(())
        })?;
    }
    kids.arm(&mut t.rng, &[]);
    kids.strike();
    // Beside the survivors (half the time: a half-made segment of the dead creator makes the
    // listing wait half a second): a clean that must touch only the dead creator's segments.
    if t.rng.chance(50) {
        match clean_prefix(&t.prefix) {
            Ok((removed, _)) => t.counts.stale_removed += removed,
            Err(e) => t.problem(Problem::Unexpected, format!("listing /dev/shm: {e}")),
        }
    }
    kids.finish(t, Instant::now() + GRACE);
    Ok(())
}

/// Creates a named primitive of `kind`, uses it, opens it again by name, drops both.
fn churn(kind: u64, name: &str, round: u64) -> Result<(), Fault> {
    let made = |e: SegmentError| bad(&format!("creating {name}"), e);
    let reopened = |e: SegmentError| match e {
        SegmentError::NotFound { .. } => Fault::Bad(format!(
            "{name} vanished while its creator lives (removed by clean?)"
        )),
        e => bad(&format!("opening {name}"), e),
    };
    match kind {
        0 => {
            let v = Value::create(name, round).map_err(made)?;
            let w = Value::<u64>::open(name).map_err(reopened)?;
            same(w.get().map_err(|e| bad("get", e))?, round)?;
            v.set(round + 1).map_err(|e| bad("set", e))?;
        }
        1 => {
            let a = Array::create(name, &[round as u32; 16]).map_err(made)?;
            let b = Array::<u32>::open(name).map_err(reopened)?;
            same(u64::from(b.get(15).map_err(|e| bad("get", e))?), round)?;
            a.set(0, 1).map_err(|e| bad("set", e))?;
        }
        2 => {
            let q = Queue::<u64>::create_with_capacity(name, 1024).map_err(made)?;
            let r = Queue::<u64>::open(name).map_err(reopened)?;
            q.put_timeout(&round, PATIENCE).map_err(|e| bad("put", e))?;
            same(r.get_timeout(PATIENCE).map_err(|e| bad("get", e))?, round)?;
        }
        3 => {
            let l = Lock::create(name).map_err(made)?;
            let m = Lock::open(name).map_err(reopened)?;
            drop(l.acquire_timeout(PATIENCE).map_err(|e| bad("acquire", e))?);
            drop(m.acquire_timeout(PATIENCE).map_err(|e| bad("acquire", e))?);
        }
        4 => {
            let a = Pipe::<u64>::create_with_capacity(name, 1024).map_err(made)?;
            let b = Pipe::<u64>::open(name).map_err(reopened)?;
            a.send_timeout(&round, PATIENCE)
                .map_err(|e| bad("send", e))?;
            same(b.recv_timeout(PATIENCE).map_err(|e| bad("recv", e))?, round)?;
        }
        5 => {
            let b = Barrier::create(name, 1).map_err(made)?;
            let c = Barrier::open(name).map_err(reopened)?;
            b.wait_timeout(PATIENCE).map_err(|e| bad("wait", e))?;
            c.wait_timeout(PATIENCE).map_err(|e| bad("wait", e))?;
        }
        6 => {
            let s = Semaphore::create(name, 1).map_err(made)?;
            let r = Semaphore::open(name).map_err(reopened)?;
            s.acquire_timeout(PATIENCE).map_err(|e| bad("acquire", e))?;
            r.release().map_err(|e| bad("release", e))?;
        }
        7 => {
            let e = Event::create(name).map_err(made)?;
            let f = Event::open(name).map_err(reopened)?;
            e.set().map_err(|x| bad("set", x))?;
            if !f.wait_timeout(Duration::ZERO).map_err(|x| bad("wait", x))? {
                return Err(Fault::Bad(format!("{name}: set but not seen through open")));
            }
        }
        _ => {
            let c = Condition::create(name).map_err(made)?;
            let d = Condition::open(name).map_err(reopened)?;
            drop(c.lock_timeout(PATIENCE).map_err(|e| bad("lock", e))?);
            d.notify_all().map_err(|e| bad("notify", e))?;
        }
    }
    Ok(())
}

fn same(got: u64, want: u64) -> Result<(), Fault> {
    if got == want {
        Ok(())
    } else {
        Err(Fault::Bad(format!("read {got} through open, wrote {want}")))
    }
}
