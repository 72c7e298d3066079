//! Whole records in and out of a shared ring: the `Queue`'s hot path. These functions do not
//! depend on the message type, so they are compiled (and inlined into each other) once, here,
//! instead of in every crate that names a `Queue<T>`.

use std::sync::atomic::Ordering;

use crate::codec::Landing;
use crate::error::Stop;
use crate::ring::{Deadline, Event, Ring, Sink, WaitPolicy, HEADER};

/// Appends `bytes` as one record under the producer lock, waiting (as `policy` and `deadline`
/// say) while the ring is full.
pub(crate) fn put(
    ring: &Ring,
    policy: WaitPolicy,
    bytes: &[u8],
    deadline: Deadline,
) -> Result<(), Stop> {
    let need = HEADER + bytes.len() as u64;
    if need > ring.capacity() {
        return Err(Stop::TooLarge {
            len: need as usize,
            max: ring.capacity() as usize,
        });
    }
    let ctl = ring.ctl();
    // A blocking put that may spin lets a working consumer free a batch first.
    let batch_pause = match deadline {
        Deadline::Now => 0,
        _ if policy.spins == 0 => 0,
        _ => policy.pause,
    };
    loop {
        {
            let _guard = ring.lock_put(deadline)?;
            if ctl.flags.closed.load(Ordering::Relaxed) != 0 {
                return Err(Stop::Closed);
            }
            let tail = ctl.put.pos.load(Ordering::Relaxed);
            if ring.writable_batched(tail, need, batch_pause)? >= need {
                let end = advance(tail, need)?;
                ring.write(tail, &(bytes.len() as u64).to_le_bytes())?;
                ring.write(tail + HEADER, bytes)?;
                let count = ctl.put.count.load(Ordering::Relaxed);
                ctl.put
                    .count
                    .store(count.wrapping_add(1), Ordering::Relaxed);
                ring.publish(end);
                return Ok(());
            }
        }
        let ready = || Ok(is_closed(ring) || ring.free_hint() >= need);
        ring.wait_for(Event::Space, policy, deadline, None, ready, || Ok(()))?;
    }
}

/// [`take`] into a vector (`get_bytes`).
pub(crate) fn take_into_vec(
    ring: &Ring,
    policy: WaitPolicy,
    deadline: Deadline,
    out: &mut Vec<u8>,
) -> Result<(), Stop> {
    take(ring, policy, deadline, out)
}

/// [`take`] onto the stack when small (typed `get`).
pub(crate) fn take_into_landing(
    ring: &Ring,
    policy: WaitPolicy,
    deadline: Deadline,
    out: &mut Landing,
) -> Result<(), Stop> {
    take(ring, policy, deadline, out)
}

/// Takes the oldest record into `out` under the consumer lock, waiting while the ring is
/// empty; `Closed` once the queue is closed and drained.
#[inline(always)]
fn take(
    ring: &Ring,
    policy: WaitPolicy,
    deadline: Deadline,
    out: &mut impl Sink,
) -> Result<(), Stop> {
    let ctl = ring.ctl();
    loop {
        {
            let _guard = ring.lock_get(deadline)?;
            // Closed first, then the tail: a put that completed before close is seen.
            let closed = ctl.flags.closed.load(Ordering::Acquire) != 0;
            let head = ctl.get.pos.load(Ordering::Relaxed);
            let avail = ring.readable(head)?;
            if avail > 0 {
                let len = ring.read_header(head)?;
                if avail < HEADER || len > avail - HEADER {
                    return Err(Stop::Corrupt(format!(
                        "record of {len} bytes but only {avail} published"
                    )));
                }
                out.take(ring, head + HEADER, len as usize)?;
                let count = ctl.get.count.load(Ordering::Relaxed);
                ctl.get
                    .count
                    .store(count.wrapping_add(1), Ordering::Relaxed);
                ring.release(head + HEADER + len);
                return Ok(());
            }
            if closed {
                return Err(Stop::Closed);
            }
        }
        let ready = || Ok(is_closed(ring) || ring.len_hint() > 0);
        ring.wait_for(Event::Data, policy, deadline, None, ready, || Ok(()))?;
    }
}

/// Whether the queue on `ring` was closed.
#[inline]
pub(crate) fn is_closed(ring: &Ring) -> bool {
    ring.ctl().flags.closed.load(Ordering::Acquire) != 0
}

/// `pos + n`, or a corruption error if a peer-written index would overflow.
#[inline]
pub(crate) fn advance(pos: u64, n: u64) -> Result<u64, Stop> {
    pos.checked_add(n)
        .ok_or_else(|| Stop::Corrupt("ring index overflows".into()))
}
