//! One pipe end's view: the ring it sends on, the ring it receives from, and who is at the
//! other end. Messages are streamed, so any size goes through any ring.
//!
//! On the wire a message is an 8-byte little-endian length followed by the bytes. A message
//! that fits in the free space is published at once; a longer one is written and published in
//! chunks while the receiver reads it, both sides holding their ring lock throughout.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use shmproc_shm::SharedRef;

use crate::end::{EndLocal, EndState};
use crate::error::Stop;
use crate::record::advance;
use crate::ring::{Deadline, Event, Ring, Side, WaitPolicy, HEADER};

/// A receiver never reserves more than this up front for a message (a corrupt length must not
/// make it allocate without bound); the buffer grows as the bytes arrive.
const MAX_RESERVE: u64 = 64 << 20;

#[derive(Clone)]
pub(crate) struct Link {
    pub tx: Option<Ring>,
    pub rx: Option<Ring>,
    pub me: Arc<EndLocal>,
    pub peer: SharedRef<EndState>,
    pub policy: WaitPolicy,
}

/// Whether a side that died holding its lock left a message half done (`pos` strictly inside
/// the message it had started).
fn mid_message(side: &Side) -> bool {
    let pos = side.pos.load(Ordering::Relaxed);
    let start = side.msg_start.load(Ordering::Relaxed);
    let end = side.msg_end.load(Ordering::Relaxed);
    start < pos && pos < end
}

impl Link {
    fn tx(&self) -> &Ring {
        self.tx
            .as_ref()
            .expect("a sending handle always has a ring to send on")
    }

    fn rx(&self) -> &Ring {
        self.rx
            .as_ref()
            .expect("a receiving handle always has a ring to receive from")
    }

    /// The ending to report once the other side is closed or found dead.
    fn peer_gone(&self) -> Option<Stop> {
        self.peer.gone_as_peer()
    }

    fn check_peer(&self) -> Result<(), Stop> {
        self.peer_gone().map_or(Ok(()), Err)
    }

    /// Waits on `ring` until `enough`, the other end is closed, or the ring breaks; the other
    /// end's liveness is checked after every nap or watcher alarm.
    fn wait(
        &self,
        ring: &Ring,
        event: Event,
        deadline: Deadline,
        enough: impl Fn() -> bool,
    ) -> Result<(), Stop> {
        let ready = || enough() || self.peer.is_closed() || ring.is_broken();
        let watch = Some(&self.me.watch);
        // A peer that published its last message and then died right after our last look is
        // not reported before that message: the ending counts only if nothing arrived.
        let ending = || match self.peer_gone() {
            Some(stop) if !ready() => Err(stop),
            _ => Ok(()),
        };
        ring.wait_for(event, self.policy, deadline, watch, || Ok(ready()), ending)
    }

    /// Sends `bytes` as one message.
    pub fn send(&self, bytes: &[u8], deadline: Deadline) -> Result<(), Stop> {
        self.me.claim()?;
        let ring = self.tx();
        if self.peer.is_closed() {
            return Err(Stop::Closed);
        }
        let (_guard, died) = ring.lock_put(deadline)?;
        let ctl = ring.ctl();
        if died && mid_message(&ctl.put) {
            ring.set_broken();
        } else if died {
            ring.wake_all(); // it may have died between publishing and waking
        }
        if ring.is_broken() {
            return Err(Stop::Broken);
        }
        let total = HEADER + bytes.len() as u64;
        let header = (bytes.len() as u64).to_le_bytes();
        let mut tail = ctl.put.pos.load(Ordering::Relaxed);
        let end = advance(tail, total)?;
        if ring.writable(tail, total)? >= total {
            ring.write(tail, &header)?;
            ring.write(tail + HEADER, bytes)?;
            ring.publish(end);
            return Ok(());
        }
        if let Deadline::Now = deadline {
            return Err(Stop::WouldBlock);
        }
        ctl.put.msg_start.store(tail, Ordering::Relaxed);
        ctl.put.msg_end.store(end, Ordering::Relaxed);
        let batch = ring.capacity() / 2;
        let mut sent = 0;
        while sent < total {
            let want = (total - sent).min(batch);
            let mut free = ring.writable(tail, want)?;
            if free < want {
                let waited = self.wait(ring, Event::Space, deadline, || ring.free_hint() >= want);
                if let Err(stop) = waited {
                    if sent > 0 {
                        ring.set_broken(); // half a message is out: the stream cannot go on
                    }
                    return Err(stop);
                }
                if ring.is_broken() {
                    return Err(Stop::Broken);
                }
                free = ring.writable(tail, 1)?;
                if free == 0 {
                    self.check_peer()?;
                    continue;
                }
            }
            let n = free.min(total - sent);
            write_part(ring, tail, &header, bytes, sent, n)?;
            tail += n;
            sent += n;
            ring.publish(tail);
        }
        Ok(())
    }

    /// Receives one message, appending its bytes to `out`. The deadline applies until the
    /// message starts arriving; after that the rest is awaited as long as the sender lives.
    pub fn recv(&self, deadline: Deadline, out: &mut Vec<u8>) -> Result<(), Stop> {
        self.me.claim()?;
        let ring = self.rx();
        let (_guard, died) = ring.lock_get(deadline)?;
        let ctl = ring.ctl();
        if died && mid_message(&ctl.get) {
            ring.set_broken();
        } else if died {
            ring.wake_all(); // it may have died between publishing and waking
        }
        let mut head = ctl.get.pos.load(Ordering::Relaxed);
        let avail = self.wait_readable(ring, head, HEADER, deadline)?;
        let len = ring.read_header(head)?;
        let end = advance(head, HEADER)
            .and_then(|h| advance(h, len))
            .map_err(|_| Stop::Corrupt(format!("message length {len} overflows")))?;
        if avail - HEADER >= len {
            // Fast path: the whole message is there.
            ring.read_append(head + HEADER, len as usize, out)?;
            ring.release(end);
            return Ok(());
        }
        if let Deadline::Now = deadline {
            return Err(Stop::WouldBlock); // not all there yet: leave it for a blocking call
        }
        ctl.get.msg_start.store(head, Ordering::Relaxed);
        ctl.get.msg_end.store(end, Ordering::Relaxed);
        head += HEADER;
        ring.release(head);
        out.reserve(len.min(MAX_RESERVE) as usize);
        while head < end {
            let avail = self.wait_readable(ring, head, 1, Deadline::Never)?;
            let n = avail.min(end - head);
            ring.read_append(head, n as usize, out)?;
            head += n;
            ring.release(head);
        }
        Ok(())
    }

    /// Waits until `want` bytes are readable at `head`; reports the ending if the sender is
    /// gone with fewer left.
    fn wait_readable(
        &self,
        ring: &Ring,
        head: u64,
        want: u64,
        deadline: Deadline,
    ) -> Result<u64, Stop> {
        loop {
            if ring.is_broken() {
                return Err(Stop::Broken);
            }
            // Closed first, then the tail: what was published before the close is seen.
            let closed = self.peer.is_closed();
            let avail = ring.readable(head, want)?;
            if avail >= want {
                return Ok(avail);
            }
            if closed {
                return Err(if avail == 0 {
                    Stop::Closed
                } else {
                    Stop::Broken
                });
            }
            self.wait(ring, Event::Data, deadline, || ring.len_hint() >= want)?;
        }
    }

    /// Whether a message is waiting (or the other end is gone), waiting up to the deadline.
    pub fn poll(&self, deadline: Deadline) -> Result<bool, Stop> {
        self.me.claim()?;
        let ring = self.rx();
        if ring.len_hint() > 0 || self.peer.is_closed() || ring.is_broken() {
            return Ok(true);
        }
        match self.wait(ring, Event::Data, deadline, || ring.len_hint() > 0) {
            Ok(()) => Ok(true),
            Err(Stop::WouldBlock | Stop::Timeout) => Ok(false),
            Err(Stop::Closed | Stop::PeerDied(_)) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Bytes waiting to be received (a snapshot).
    pub fn pending(&self) -> u64 {
        self.rx().len_hint()
    }
}

/// Writes bytes `[from, from + n)` of `header ++ body` at `pos`.
fn write_part(
    ring: &Ring,
    mut pos: u64,
    header: &[u8; HEADER as usize],
    body: &[u8],
    from: u64,
    n: u64,
) -> Result<(), Stop> {
    let (from, to) = (from as usize, (from + n) as usize);
    let h = HEADER as usize;
    if from < h {
        let k = to.min(h);
        ring.write(pos, &header[from..k])?;
        pos += (k - from) as u64;
    }
    if to > h {
        ring.write(pos, &body[from.max(h) - h..to - h])?;
    }
    Ok(())
}
