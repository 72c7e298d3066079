//! The referee's tools: constants, a seeded random source, a ledger of shared atomic
//! counters that children write and the parent reads, the faults a child reports, and
//! checksummed frames.
//!
//! The ledger is a raw anonymous segment of `AtomicU64`s, not one of the primitives under test:
//! the referee must keep counting correctly whatever the primitives do.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shmproc::raw::{Segment, Spec, TypeInfo};
use shmproc::{Kind, LockError, SegmentError};

/// Longest any one blocking call may take before it counts as a hang.
pub(crate) const PATIENCE: Duration = Duration::from_secs(5);
/// How long the parent waits for a trial's children after the kill. Longer than `PATIENCE`, so
/// a child whose own `_timeout` call expired reports that first.
pub(crate) const GRACE: Duration = Duration::from_secs(8);
/// How long the children of a trial work (unless killed or stopped by a count first): longer
/// than the latest kill (`kids::MAX_KILL_DELAY`), so the kill finds them busy.
const WORK: Duration = Duration::from_millis(30);

/// The error of a scenario's set-up (the OS refused a segment or a process).
pub(crate) type Setup = Result<(), Box<dyn std::error::Error>>;

/// A small seeded generator (splitmix64): the same seed replays the same choices.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    /// True `percent` times in a hundred.
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    pub(crate) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize]
    }

    /// An independent generator (for a child).
    pub(crate) fn split(&mut self) -> Rng {
        Rng(self.next())
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The end of a child's working time, from now.
pub(crate) fn work_until() -> Instant {
    Instant::now() + WORK
}

/// Busy work for about `us` microseconds (to widen the windows a kill can land in).
pub(crate) fn spin_for(us: u64) {
    let until = Instant::now() + Duration::from_micros(us);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// Shared counters: slot `i` is one `AtomicU64` every process of the trial sees.
#[derive(Clone)]
pub(crate) struct Ledger {
    seg: Arc<Segment>,
    slots: usize,
}

impl Ledger {
    pub(crate) fn new(slots: usize) -> Result<Ledger, SegmentError> {
        let spec = Spec {
            kind: Kind::Raw,
            elem: TypeInfo::none(),
            payload_len: slots * 8,
        };
        let seg = Segment::create_anonymous(&spec, |_| Ok(()))?;
        Ok(Ledger {
            seg: Arc::new(seg),
            slots,
        })
    }

    fn at(&self, i: usize) -> &AtomicU64 {
        assert!(i < self.slots, "ledger slot {i} of {}", self.slots);
        self.seg
            .atomic::<AtomicU64>(i * 8)
            .expect("an in-bounds, aligned ledger slot")
    }

    pub(crate) fn get(&self, i: usize) -> u64 {
        self.at(i).load(Ordering::SeqCst)
    }

    pub(crate) fn set(&self, i: usize, v: u64) {
        self.at(i).store(v, Ordering::SeqCst);
    }

    pub(crate) fn add(&self, i: usize, v: u64) -> u64 {
        self.at(i).fetch_add(v, Ordering::SeqCst)
    }

    pub(crate) fn sub(&self, i: usize, v: u64) -> u64 {
        self.at(i).fetch_sub(v, Ordering::SeqCst)
    }

    pub(crate) fn min(&self, i: usize, v: u64) -> u64 {
        self.at(i).fetch_min(v, Ordering::SeqCst)
    }

    pub(crate) fn swap(&self, i: usize, v: u64) -> u64 {
        self.at(i).swap(v, Ordering::SeqCst)
    }

    pub(crate) fn sum(&self, slots: std::ops::Range<usize>) -> u64 {
        slots.map(|i| self.get(i)).sum()
    }
}

/// How a child's own work went wrong (it reports this, then leaves normally).
#[derive(Debug)]
pub(crate) enum Fault {
    /// A `_timeout` call expired: a hang.
    Hang(String),
    /// An error the scenario does not allow.
    Bad(String),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Hang(what) => write!(f, "timed out ({} s): {what}", PATIENCE.as_secs()),
            Fault::Bad(what) => f.write_str(what),
        }
    }
}

/// `Fault::Bad` for an error the scenario did not expect.
pub(crate) fn bad(what: &str, e: impl fmt::Display) -> Fault {
    Fault::Bad(format!("{what}: {e}"))
}

/// The guard of a lock acquisition, and whether its previous owner died (`OwnerDied`).
///
/// # Errors
/// `Hang` on `Timeout`, `Bad` on anything else.
pub(crate) fn held<G>(r: Result<G, LockError<G>>, what: &str) -> Result<(G, bool), Fault> {
    match r {
        Ok(g) => Ok((g, false)),
        Err(LockError::OwnerDied(g)) => Ok((g, true)),
        Err(LockError::Timeout) => Err(Fault::Hang(format!("acquiring {what}"))),
        Err(e) => Err(bad(&format!("acquiring {what}"), e)),
    }
}

/// A message of `body` bytes from `who`, number `seq`: header, body derived from both, and a
/// checksum of everything before it. [`check_frame`] recognises any tearing or mix-up.
pub(crate) fn frame(who: u32, seq: u32, body: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(body + 16);
    out.extend_from_slice(&who.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    fill_body(&mut out, who, seq, body);
    let sum = fnv(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

fn fill_body(out: &mut Vec<u8>, who: u32, seq: u32, body: usize) {
    let mut state = (u64::from(who) << 32) | u64::from(seq);
    for chunk in 0..body.div_ceil(8) {
        state = mix(state.wrapping_add(chunk as u64));
        let bytes = state.to_le_bytes();
        out.extend_from_slice(&bytes[..(body - chunk * 8).min(8)]);
    }
}

/// `(who, seq)` of an intact frame; `None` if it is torn, truncated or mixed.
pub(crate) fn check_frame(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.len() < 16 {
        return None;
    }
    let (head, sum) = bytes.split_at(bytes.len() - 8);
    if fnv(head).to_le_bytes() != sum {
        return None;
    }
    let who = u32::from_le_bytes(head[0..4].try_into().ok()?);
    let seq = u32::from_le_bytes(head[4..8].try_into().ok()?);
    let mut expect = Vec::with_capacity(head.len());
    expect.extend_from_slice(&head[..8]);
    fill_body(&mut expect, who, seq, head.len() - 8);
    (expect == head).then_some((who, seq))
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01B3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_tearing_is_seen() {
        for body in [0, 1, 7, 8, 9, 100, 1000] {
            let f = frame(3, 41, body);
            assert_eq!(f.len(), body + 16);
            assert_eq!(check_frame(&f), Some((3, 41)));
            let mut torn = f.clone();
            torn[f.len() / 2] ^= 1;
            assert_eq!(check_frame(&torn), None);
            assert_eq!(check_frame(&f[..f.len() - 1]), None);
        }
        let (a, b) = (frame(1, 1, 64), frame(1, 2, 64));
        let mixed: Vec<u8> = a[..40].iter().chain(&b[40..]).copied().collect();
        assert_eq!(check_frame(&mixed), None);
    }

    #[test]
    fn rng_is_reproducible() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..100 {
            let x = a.range(3, 5);
            assert!((3..=5).contains(&x));
            assert_eq!(x, b.range(3, 5));
        }
    }
}
