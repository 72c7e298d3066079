//! Whole records in and out of a shared ring: the `Queue`'s hot path. These functions do not
//! depend on the message type, so they are compiled (and inlined into each other) once, here,
//! instead of in every crate that names a `Queue<T>`.

use std::sync::atomic::Ordering;

use crate::end::EndLocal;
use crate::error::Stop;
use crate::ring::{Deadline, Event, Ring, Sink, WaitPolicy, HEADER};
use crate::scratch::Landing;

/// Appends `bytes` as one record under the producer lock, waiting (as `policy` and `deadline`
/// say) while the ring is full. `member`: this process's membership of the queue (a blocked
/// put ends once every other process has left it).
pub(crate) fn put(
    ring: &Ring,
    member: Option<&EndLocal>,
    policy: WaitPolicy,
    bytes: &[u8],
    deadline: Deadline,
) -> Result<(), Stop> {
    if let Some(m) = member {
        m.claim()?;
        if m.puts_closed() {
            return Err(Stop::ClosedHere);
        }
    }
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
            let (_guard, owner_died) = ring.lock_put(deadline)?;
            if owner_died {
                // The last producer died holding the lock, perhaps after publishing its record
                // but before waking sleeping consumers: wake everyone so nobody sleeps on it.
                ring.wake_all();
            }
            if ctl.flags.shut_down.load(Ordering::Relaxed) != 0 {
                return Err(Stop::Closed);
            }
            if member.is_some_and(EndLocal::puts_closed) {
                return Err(Stop::ClosedHere); // closed by another thread while we waited
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
        let ready = || {
            is_shut_down(ring)
                || member.is_some_and(EndLocal::puts_closed)
                || ring.free_hint() >= need
        };
        wait(ring, member, Event::Space, policy, deadline, ready)?;
    }
}

/// [`take`] into a vector (`get_bytes`).
pub(crate) fn take_into_vec(
    ring: &Ring,
    member: Option<&EndLocal>,
    policy: WaitPolicy,
    deadline: Deadline,
    out: &mut Vec<u8>,
) -> Result<(), Stop> {
    take(ring, member, policy, deadline, out)
}

/// [`take`] onto the stack when small (typed `get`).
pub(crate) fn take_into_landing(
    ring: &Ring,
    member: Option<&EndLocal>,
    policy: WaitPolicy,
    deadline: Deadline,
    out: &mut Landing,
) -> Result<(), Stop> {
    take(ring, member, policy, deadline, out)
}

/// Takes the oldest record into `out` under the consumer lock, waiting while the ring is
/// empty; `Closed` once the queue is shut down and drained, or empty and left by every other
/// process.
#[inline(always)]
fn take(
    ring: &Ring,
    member: Option<&EndLocal>,
    policy: WaitPolicy,
    deadline: Deadline,
    out: &mut impl Sink,
) -> Result<(), Stop> {
    if let Some(m) = member {
        m.claim()?;
    }
    let ctl = ring.ctl();
    loop {
        {
            let (_guard, owner_died) = ring.lock_get(deadline)?;
            if owner_died {
                // The last consumer died holding the lock, perhaps after freeing space but
                // before waking sleeping producers: wake everyone so nobody sleeps on it.
                ring.wake_all();
            }
            // The flag first, then the tail: a put that completed before shutdown is seen.
            let closed = ctl.flags.shut_down.load(Ordering::Acquire) != 0;
            let head = ctl.get.pos.load(Ordering::Relaxed);
            let avail = ring.readable(head, 1)?;
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
                if let Some(m) = member {
                    m.note_taken();
                }
                return Ok(());
            }
            if closed {
                return Err(Stop::Closed);
            }
        }
        let ready = || is_shut_down(ring) || ring.len_hint() > 0;
        wait(ring, member, Event::Data, policy, deadline, ready)?;
    }
}

/// Waits on `ring` for `event` until `ready`. After each nap (or watcher alarm) it looks for
/// the queue's ending: every other member process left (`Closed`) or died (`PeerDied`) —
/// unless what we wait for arrived meanwhile (a producer that put its last record, then left).
fn wait(
    ring: &Ring,
    member: Option<&EndLocal>,
    event: Event,
    policy: WaitPolicy,
    deadline: Deadline,
    ready: impl Fn() -> bool,
) -> Result<(), Stop> {
    let ending = || match member.and_then(EndLocal::gone) {
        Some(stop) if !ready() => Err(stop),
        _ => Ok(()),
    };
    let watch = member.map(|m| &m.watch);
    ring.wait_for(event, policy, deadline, watch, || Ok(ready()), ending)
}

/// Whether the queue on `ring` was shut down.
#[inline]
pub(crate) fn is_shut_down(ring: &Ring) -> bool {
    ring.ctl().flags.shut_down.load(Ordering::Acquire) != 0
}

/// `pos + n`, or a corruption error if a peer-written index would overflow.
#[inline]
pub(crate) fn advance(pos: u64, n: u64) -> Result<u64, Stop> {
    pos.checked_add(n)
        .ok_or_else(|| Stop::Corrupt("ring index overflows".into()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use shmproc_shm::Kind;

    use super::*;
    use crate::layout;
    use crate::ring::footprint;

    /// A 64-byte queue ring in an anonymous segment, and a policy that sleeps at once.
    fn ring() -> (Ring, WaitPolicy) {
        let elem = layout::message_type::<u8>();
        let seg = layout::create_segment(None, Kind::Queue, elem, footprint(64)).unwrap();
        let policy = layout::policy(0, 0, Duration::from_secs(60));
        (Ring::new(seg, 0, 64).unwrap(), policy)
    }

    #[test]
    fn a_producer_dead_between_publishing_and_waking_does_not_strand_consumers() {
        let (ring, policy) = ring();
        let cap = ring.capacity();
        std::thread::scope(|s| {
            // A consumer asleep (untimed) on the empty ring.
            let consumer = s.spawn(|| {
                let mut out = Vec::new();
                take_into_vec(&ring, None, policy, Deadline::Never, &mut out).map(|()| out)
            });
            std::thread::sleep(Duration::from_millis(200));
            // A producer fills the ring with one record, publishes it without waking anyone and
            // dies holding the producer lock.
            s.spawn(|| {
                let (guard, _) = ring.lock_put(Deadline::Never).unwrap();
                std::mem::forget(guard);
                let len = cap - HEADER;
                ring.write(0, &len.to_le_bytes()).unwrap();
                ring.write(HEADER, &vec![7; len as usize]).unwrap();
                ring.ctl().put.pos.store(cap, Ordering::Release);
            })
            .join()
            .unwrap();
            // The next producer finds the ring full: only the consumer can make room.
            let put = put(
                &ring,
                None,
                policy,
                &[1],
                Deadline::after(Duration::from_secs(5)),
            );
            ring.wake_all(); // if the put timed out: let the consumer finish, then fail
            let taken = consumer.join().unwrap().unwrap();
            assert!(put.is_ok(), "{put:?}");
            assert_eq!(taken, vec![7; (cap - HEADER) as usize]);
        });
    }

    #[test]
    fn a_consumer_dead_between_freeing_and_waking_does_not_strand_producers() {
        let (ring, policy) = ring();
        let big = vec![7; (ring.capacity() - HEADER) as usize];
        put(&ring, None, policy, &big, Deadline::Now).unwrap();
        std::thread::scope(|s| {
            // A producer asleep (untimed) on the full ring.
            let producer = s.spawn(|| put(&ring, None, policy, &[1], Deadline::Never));
            std::thread::sleep(Duration::from_millis(200));
            // A consumer takes the record, frees its space without waking anyone and dies
            // holding the consumer lock.
            s.spawn(|| {
                let (guard, _) = ring.lock_get(Deadline::Never).unwrap();
                std::mem::forget(guard);
                let ctl = ring.ctl();
                ctl.get
                    .pos
                    .store(ctl.put.pos.load(Ordering::Acquire), Ordering::Release);
            })
            .join()
            .unwrap();
            // The next consumer finds the ring empty: only the producer can fill it.
            let mut out = Vec::new();
            let took = take_into_vec(
                &ring,
                None,
                policy,
                Deadline::after(Duration::from_secs(5)),
                &mut out,
            );
            ring.wake_all(); // if the take timed out: let the producer finish, then fail
            producer.join().unwrap().unwrap();
            assert!(took.is_ok(), "{took:?}");
            assert_eq!(out, [1]);
        });
    }
}
