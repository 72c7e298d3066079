//! The ring both channels are built on: a power-of-two byte buffer in a shared segment with a
//! producer index (`tail`) and a consumer index (`head`) that only ever grow.
//!
//! # Layout (`RingCtl`, then `capacity` data bytes)
//! | line | written by | what |
//! |---|---|---|
//! | `put_lock` | producers | robust lock serialising producers |
//! | `put` | producers (under `put_lock`) | `tail`, a cached `head`, bounds of the message being written |
//! | `get_lock` | consumers | robust lock serialising consumers |
//! | `get` | consumers (under `get_lock`) | `head`, a cached `tail`, bounds of the message being read |
//! | `data_wait`, `space_wait` | sleepers | event counts: sleeper count and sequence in one word |
//! | `flags` | anyone | `shut_down`, `broken` |
//!
//! Each line is its own cache line, so producers and consumers never write the same line on the
//! fast path. Bytes `[head, tail)` are published: a producer writes data past `tail`, then
//! stores the new `tail` with `Release`; a consumer reads after an `Acquire` load of `tail` and
//! frees with a `Release` store of `head`. Nothing read from shared memory is trusted: every
//! index pair is checked (`head <= tail <= head + capacity`) and every copy goes through
//! [`Segment::ptr`], which bounds-checks it.

//!
//! Waiting and waking live in [`crate::wait`].

use std::ops::Range;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use shmproc_shm::{AtomicShareable, Segment, SegmentError, SharedRef};
use shmproc_sync::{LockError, RawGuard, RawLock};

use crate::error::Stop;
use crate::wait::{wait, wake, Waiters};
pub(crate) use crate::wait::{Deadline, Event, WaitPolicy};
use crate::watch::Watch;

/// Bytes of a record header: the payload length, little-endian `u64`.
pub(crate) const HEADER: u64 = 8;
/// The smallest ring (bytes of data): none is created smaller, and an opened segment whose
/// payload leaves less is corrupt (below it a queue's message limit underflows and a pipe's
/// streaming send, in batches of half the ring, stops making progress).
pub(crate) const MIN_RING: u64 = 64;

/// Free bytes a blocking producer lets a working consumer clear before it writes into a nearly
/// full ring (at most a quarter of the ring): see [`Ring::writable_batched`].
const LOW_WATER: u64 = 4 << 10;
/// Most polls [`Ring::writable_batched`] spends waiting for that batch.
const BATCH_POLLS: u32 = 32;

/// One side's indices (one cache line).
#[repr(C, align(64))]
#[derive(Debug, Default)]
pub(crate) struct Side {
    /// Producer: `tail`; consumer: `head`. Only grows.
    pub pos: AtomicU64,
    /// The other side's index as last seen (stale is fine: both only grow).
    pub peer_cache: AtomicU64,
    /// Where the message this side is in the middle of started (pipes).
    pub msg_start: AtomicU64,
    /// Where it ends; `pos` outside `(msg_start, msg_end)` means between messages.
    pub msg_end: AtomicU64,
    /// Messages this side has completed (queues: `len` is the difference).
    pub count: AtomicU64,
}

/// Flags anyone may set (one cache line).
#[repr(C, align(64))]
#[derive(Debug, Default)]
pub(crate) struct Flags {
    /// Queue: `shutdown()` was called (in any process). Pipe: unused (ends carry their own
    /// flag).
    pub shut_down: AtomicU32,
    /// A message was left half written or half read (a side died or timed out mid-message).
    pub broken: AtomicU32,
}

/// The control block at the start of every ring.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct RingCtl {
    put_lock: RawLock,
    pub put: Side,
    get_lock: RawLock,
    pub get: Side,
    data_wait: Waiters,
    space_wait: Waiters,
    pub flags: Flags,
}

// SAFETY: made only of atomics (RawLock is AtomicShareable) in repr(C) cache-line structs; all
// zeroes is an empty, open ring with unlocked locks, and every other bit pattern is validated
// before use.
unsafe impl AtomicShareable for RingCtl {}

/// Bytes a ring of `capacity` occupies in a segment (control block + data).
pub(crate) fn footprint(capacity: u64) -> usize {
    std::mem::size_of::<RingCtl>() + capacity as usize
}

/// Where a consumer copies the record it takes.
pub(crate) trait Sink {
    /// Copies the `len` published bytes at stream position `pos` out of `ring` (the caller
    /// holds the consumer lock and has checked they are published).
    fn take(&mut self, ring: &Ring, pos: u64, len: usize) -> Result<(), Stop>;
}

impl Sink for Vec<u8> {
    #[inline]
    fn take(&mut self, ring: &Ring, pos: u64, len: usize) -> Result<(), Stop> {
        ring.read_append(pos, len, self)
    }
}

/// A handle to one ring inside a segment.
#[derive(Clone)]
pub(crate) struct Ring {
    ctl: SharedRef<RingCtl>,
    data_off: usize,
    cap: u64,
}

impl Ring {
    /// The ring whose control block is at `off`, followed by `cap` data bytes.
    pub fn new(seg: Arc<Segment>, off: usize, cap: u64) -> Result<Ring, SegmentError> {
        let data_off = off + std::mem::size_of::<RingCtl>();
        let cap_usize = usize::try_from(cap)
            .ok()
            .filter(|c| c.is_power_of_two() && cap >= MIN_RING);
        let Some(cap_usize) = cap_usize else {
            return Err(SegmentError::Corrupt {
                name: seg.name().unwrap_or("<anonymous>").to_owned(),
                reason: format!("ring capacity {cap} is not a power of two of at least {MIN_RING}"),
            });
        };
        seg.ptr::<u8>(data_off, cap_usize)?; // the whole data area must lie in the mapping
        Ok(Ring {
            ctl: SharedRef::new(seg, off)?,
            data_off,
            cap,
        })
    }

    pub fn capacity(&self) -> u64 {
        self.cap
    }

    pub fn segment(&self) -> &Arc<Segment> {
        self.ctl.segment()
    }

    pub fn ctl(&self) -> &RingCtl {
        &self.ctl
    }

    /// Takes the producer lock. A producer that died holding it left at most an unpublished
    /// partial record past `tail`, which the next one simply overwrites.
    #[inline]
    pub fn lock_put(&self, deadline: Deadline) -> Result<(RawGuard<'_>, bool), Stop> {
        lock(&self.ctl.put_lock, deadline)
    }

    /// Takes the consumer lock (see [`Ring::lock_put`]).
    #[inline]
    pub fn lock_get(&self, deadline: Deadline) -> Result<(RawGuard<'_>, bool), Stop> {
        lock(&self.ctl.get_lock, deadline)
    }

    /// Published bytes seen by the consumer holding the lock: `tail - head`, refreshing the
    /// cached tail when the cached one shows fewer than `want`. (A pipe's tail can stop inside
    /// a message header: a cache showing those few bytes must not hide what came after.)
    #[inline]
    pub fn readable(&self, head: u64, want: u64) -> Result<u64, Stop> {
        let get = &self.ctl.get;
        let cached = get.peer_cache.load(Ordering::Relaxed);
        if cached > head && cached - head <= self.cap && cached - head >= want {
            return Ok(cached - head);
        }
        let tail = self.ctl.put.pos.load(Ordering::Acquire);
        self.check(head, tail)?;
        get.peer_cache.store(tail, Ordering::Relaxed);
        Ok(tail - head)
    }

    /// Free bytes seen by the producer holding the lock, refreshing the cached head when the
    /// cached one shows fewer than `want`.
    #[inline]
    pub fn writable(&self, tail: u64, want: u64) -> Result<u64, Stop> {
        self.writable_batched(tail, want, 0)
    }

    /// Like [`Ring::writable`], but when a refresh finds the ring nearly full (less than
    /// [`LOW_WATER`] free) while the consumer is still freeing, polls `pause` hints apart (a
    /// bounded number of times) until it has freed a batch. Re-reading the consumer's index for
    /// every record of a full ring would take its cache line away on each of its stores, making
    /// the consumer — the side a full ring waits for — miss once per record. `pause == 0`: no
    /// batching (pipes, `try_` calls).
    #[inline]
    pub fn writable_batched(&self, tail: u64, want: u64, pause: u32) -> Result<u64, Stop> {
        let put = &self.ctl.put;
        let cached = put.peer_cache.load(Ordering::Relaxed);
        if cached <= tail && tail - cached <= self.cap && self.cap - (tail - cached) >= want {
            return Ok(self.cap - (tail - cached));
        }
        let mut head = self.ctl.get.pos.load(Ordering::Acquire);
        self.check(head, tail)?;
        let low_water = LOW_WATER.min(self.cap / 4).max(want);
        if pause > 0 && self.cap - (tail - head) < low_water {
            head = self.await_batch(tail, head, low_water, pause)?;
        }
        put.peer_cache.store(head, Ordering::Relaxed);
        Ok(self.cap - (tail - head))
    }

    /// Polls the head until `low_water` bytes are free, the consumer stops moving, or
    /// `BATCH_POLLS` polls have passed; returns the last head seen.
    #[cold]
    fn await_batch(
        &self,
        tail: u64,
        mut head: u64,
        low_water: u64,
        pause: u32,
    ) -> Result<u64, Stop> {
        for _ in 0..BATCH_POLLS {
            for _ in 0..pause {
                std::hint::spin_loop();
            }
            let now = self.ctl.get.pos.load(Ordering::Acquire);
            self.check(now, tail)?;
            if now == head {
                break; // no consumer at work: waiting would only delay this put
            }
            head = now;
            if self.cap - (tail - head) >= low_water {
                break;
            }
        }
        Ok(head)
    }

    /// Rejects an index pair no correct peer can produce.
    #[inline]
    fn check(&self, head: u64, tail: u64) -> Result<(), Stop> {
        if head <= tail && tail - head <= self.cap {
            Ok(())
        } else {
            Err(Stop::Corrupt(format!(
                "ring indices out of range (head {head}, tail {tail}, capacity {})",
                self.cap
            )))
        }
    }

    /// Unlocked snapshot: published bytes (0 if the indices make no sense).
    #[inline]
    pub fn len_hint(&self) -> u64 {
        let head = self.ctl.get.pos.load(Ordering::Acquire);
        let tail = self.ctl.put.pos.load(Ordering::Acquire);
        if head <= tail && tail - head <= self.cap {
            tail - head
        } else {
            0
        }
    }

    /// Copies `src` into the ring at stream position `pos` (wrapping). The caller holds the
    /// producer lock and has checked that `src.len()` bytes are free there.
    #[inline]
    pub fn write(&self, pos: u64, src: &[u8]) -> Result<(), Stop> {
        self.pieces(pos, src.len(), |ring_bytes, part| {
            let from = &src[part];
            // SAFETY: `ring_bytes` holds `from.len()` checked bytes inside the mapping, in the
            // free part of the ring, which no cooperating process reads until we publish it.
            unsafe { copy_bytes(from.as_ptr(), ring_bytes, from.len()) };
        })
    }

    /// Copies `dst.len()` bytes at stream position `pos` out of the ring. The caller holds the
    /// consumer lock and has checked that they are published.
    #[inline]
    pub fn read(&self, pos: u64, dst: &mut [u8]) -> Result<(), Stop> {
        self.pieces(pos, dst.len(), |ring_bytes, part| {
            let to = &mut dst[part];
            // SAFETY: `ring_bytes` holds `to.len()` checked bytes inside the mapping; they are
            // published and not yet freed, so no cooperating process writes them meanwhile.
            unsafe { copy_bytes(ring_bytes, to.as_mut_ptr(), to.len()) };
        })
    }

    /// Appends the `len` bytes at `pos` to `out`: one copy, no zero-filling first.
    #[inline]
    pub fn read_append(&self, pos: u64, len: usize, out: &mut Vec<u8>) -> Result<(), Stop> {
        if out.capacity() == 0 {
            // A fresh buffer (`get_bytes`): one exact allocation, not the growth path.
            *out = Vec::with_capacity(len);
        } else {
            out.reserve(len);
        }
        let base = out.len();
        let spare = &mut out.spare_capacity_mut()[..len];
        self.pieces(pos, len, |ring_bytes, part| {
            let to = &mut spare[part];
            // SAFETY: as in `read`; `to` is uninitialised spare capacity of `out`, which
            // `MaybeUninit<u8>` has the layout of `u8` to be written through.
            unsafe { copy_bytes(ring_bytes, to.as_mut_ptr().cast(), to.len()) };
        })?;
        // SAFETY: `pieces` succeeded, so all `len` spare bytes after `base` were written.
        unsafe { out.set_len(base + len) };
        Ok(())
    }

    /// Reads the record header at `pos`.
    #[inline]
    pub fn read_header(&self, pos: u64) -> Result<u64, Stop> {
        let mut h = [0u8; HEADER as usize];
        self.read(pos, &mut h)?;
        Ok(u64::from_le_bytes(h))
    }

    /// Calls `f` with a checked pointer into the data area and the matching part of a
    /// `len`-byte buffer, for the (at most two) pieces of `len` bytes at stream position `pos`:
    /// up to the end of the data area, then from its start. Inlined with a one-piece fast path:
    /// on small records the bookkeeping here costs more than the copy.
    #[inline(always)]
    fn pieces(
        &self,
        pos: u64,
        len: usize,
        mut f: impl FnMut(*mut u8, Range<usize>),
    ) -> Result<(), Stop> {
        if len as u64 > self.cap {
            return Err(Stop::Corrupt("record longer than the ring".into()));
        }
        let off = (pos & (self.cap - 1)) as usize;
        let first = len.min(self.cap as usize - off);
        let ptr = self.segment().ptr::<u8>(self.data_off + off, first)?;
        f(ptr.as_ptr(), 0..first);
        if first < len {
            let ptr = self.segment().ptr::<u8>(self.data_off, len - first)?;
            f(ptr.as_ptr(), first..len);
        }
        Ok(())
    }

    /// Publishes bytes up to `tail` and wakes sleeping consumers, if any.
    #[inline]
    pub fn publish(&self, tail: u64) {
        self.ctl.put.pos.store(tail, Ordering::Release);
        crate::test_hooks::after_publish();
        wake(&self.ctl.data_wait);
    }

    /// Frees bytes up to `head` and wakes sleeping producers, if any.
    #[inline]
    pub fn release(&self, head: u64) {
        self.ctl.get.pos.store(head, Ordering::Release);
        wake(&self.ctl.space_wait);
    }

    /// Wakes every sleeper on both sides (shutdown, close, peer gone).
    pub fn wake_all(&self) {
        for w in [&self.ctl.data_wait, &self.ctl.space_wait] {
            w.wake(true);
        }
    }

    /// Waits for `event` until `ready` says so (or the deadline, or an error from `on_nap`).
    /// `watch`: a pipe end's sleep bookkeeping (its peer is checked by `on_nap` after every nap
    /// or alarm).
    pub fn wait_for(
        &self,
        event: Event,
        policy: WaitPolicy,
        deadline: Deadline,
        watch: Option<&Watch>,
        ready: impl FnMut() -> Result<bool, Stop>,
        on_nap: impl FnMut() -> Result<(), Stop>,
    ) -> Result<(), Stop> {
        // What the other side moves when it makes us ready: the tail for data, the head for
        // space.
        let (waiters, progress) = match event {
            Event::Data => (&self.ctl.data_wait, &self.ctl.put.pos),
            Event::Space => (&self.ctl.space_wait, &self.ctl.get.pos),
        };
        wait(waiters, progress, policy, deadline, watch, ready, on_nap)
    }

    /// Unlocked snapshot of the free space (for wait predicates).
    #[inline]
    pub fn free_hint(&self) -> u64 {
        self.cap - self.len_hint()
    }

    pub fn is_broken(&self) -> bool {
        self.ctl.flags.broken.load(Ordering::Acquire) != 0
    }

    /// Marks the stream as unusable (a message was left half done) and wakes everyone.
    pub fn set_broken(&self) {
        self.ctl.flags.broken.store(1, Ordering::Release);
        self.wake_all();
    }
}

/// Copies `n` bytes from `src` to `dst`. Short copies (most queue messages, every record
/// header) are done inline: a call to `memcpy` costs more than the copy itself.
///
/// # Safety
/// As [`std::ptr::copy_nonoverlapping`]: `src` valid for `n` reads, `dst` for `n` writes, the
/// two not overlapping.
#[inline(always)]
unsafe fn copy_bytes(src: *const u8, dst: *mut u8, n: usize) {
    // SAFETY: every access below stays within the first `n` bytes of `src` and `dst`, which
    // the caller guarantees (each arm's word size fits `n` as the helper requires).
    unsafe {
        match n {
            8..=16 => copy_two_words::<u64>(src, dst, n),
            4..=7 => copy_two_words::<u32>(src, dst, n),
            1..=3 => {
                let (a, b, c) = (*src, *src.add(n / 2), *src.add(n - 1));
                *dst = a;
                *dst.add(n / 2) = b;
                *dst.add(n - 1) = c;
            }
            0 => {}
            _ => std::ptr::copy_nonoverlapping(src, dst, n),
        }
    }
}

/// Copies `n` bytes as two words of type `W`, the first at the start and the second ending at
/// byte `n` (they overlap when `n` is less than two words).
///
/// # Safety
/// As [`copy_bytes`], and `size_of::<W>() <= n`.
#[inline(always)]
unsafe fn copy_two_words<W: Copy>(src: *const u8, dst: *mut u8, n: usize) {
    let last = n - std::mem::size_of::<W>();
    // SAFETY: both words lie within the first `n` bytes of `src` and `dst` (the caller's
    // guarantee); unaligned accesses need no alignment.
    unsafe {
        let (a, b) = (
            src.cast::<W>().read_unaligned(),
            src.add(last).cast::<W>().read_unaligned(),
        );
        dst.cast::<W>().write_unaligned(a);
        dst.add(last).cast::<W>().write_unaligned(b);
    }
}

#[inline(always)]
fn lock(lock: &RawLock, deadline: Deadline) -> Result<(RawGuard<'_>, bool), Stop> {
    let result = match deadline {
        Deadline::Never => lock.acquire(),
        Deadline::At(at) => lock.acquire_until(Some(at)),
        // A `try_` still waits out another process's short critical section (a brief spin).
        Deadline::Now => match lock.try_acquire() {
            Err(LockError::WouldBlock) => lock.acquire_until(Some(Instant::now())),
            other => other,
        },
    };
    match result {
        Ok(guard) => Ok((guard, false)),
        Err(LockError::OwnerDied(guard)) => Ok((guard, true)),
        Err(LockError::Timeout) | Err(LockError::WouldBlock) => Err(Stop::expired(deadline)),
        Err(LockError::Deadlock) => Err(Stop::Io(std::io::Error::other(
            "this thread is already inside an operation on this channel",
        ))),
        Err(LockError::Io(e)) => Err(Stop::Io(e)),
        Err(_) => Err(Stop::Io(std::io::Error::other("unexpected lock error"))),
    }
}

#[cfg(test)]
mod tests {
    use super::copy_bytes;

    #[test]
    fn copy_bytes_copies_exactly_n_bytes_for_every_short_and_long_size() {
        let src: Vec<u8> = (1..=64).collect();
        for n in 0..=40 {
            let mut dst = [0u8; 64];
            // SAFETY: both buffers hold at least `n` bytes and do not overlap.
            unsafe { copy_bytes(src.as_ptr(), dst.as_mut_ptr(), n) };
            assert_eq!(&dst[..n], &src[..n], "n = {n}");
            assert!(
                dst[n..].iter().all(|&b| b == 0),
                "n = {n}: wrote past the end"
            );
        }
    }
}
