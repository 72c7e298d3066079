//! Slot tables: a map's two open-addressing hash tables (linear probing; one active, the other
//! the target of a rebuild that drops tombstones), and a vec's element locations.
//!
//! A map bucket is two words: `tag` (0 empty, 1 tombstone, else the key's hash with the top
//! bit set) and `loc` (a packed [`Range`] of the entry in the arena). Keys are compared by
//! their serialized bytes, hashed with [`hash`] — the same in every process.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::layout::Range;
use crate::store::{corrupt, Locked};
use crate::{test_hooks, CollectionError};

pub(crate) const EMPTY: u64 = 0;
pub(crate) const TOMBSTONE: u64 = 1;
const LIVE: u64 = 1 << 63;

/// The tag of a live bucket holding a key of hash `h`.
pub(crate) fn tag_of(h: u64) -> u64 {
    h | LIVE
}

/// A 64-bit hash of serialized key bytes (8 bytes per round, then a splitmix64 finish).
pub(crate) fn hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = (bytes.len() as u64).wrapping_mul(K);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h.rotate_left(23) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    let mut last = [0u8; 8];
    last[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    h = (h.rotate_left(23) ^ u64::from_le_bytes(last)).wrapping_mul(K);
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Where a key is, or where it would go.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Probe {
    /// The bucket holding the key, and its entry.
    pub found: Option<(usize, Range)>,
    /// The first free bucket (tombstone or empty) on the key's path, and whether it is a
    /// tombstone.
    pub free: Option<(usize, bool)>,
}

impl<'a> Locked<'a> {
    /// The active table (0 or 1) and its tombstone count.
    pub fn table_state(&self) -> (u64, u64) {
        let s = self.ctl().table_state.load(Ordering::Relaxed);
        (s & 1, s >> 1)
    }

    /// Bucket `i` (taken modulo the table size) of table `which`: its tag and loc words.
    pub fn bucket(&self, which: u64, i: usize) -> (&'a AtomicU64, &'a AtomicU64) {
        let buckets = self.geometry().buckets as usize;
        let at = ((which & 1) as usize * buckets + (i & (buckets - 1))) * 2;
        let table = self.table();
        (&table[at], &table[at + 1])
    }

    /// The location word of vec element `i`.
    pub fn element(&self, i: usize) -> Result<&'a AtomicU64, CollectionError> {
        self.table()
            .get(i)
            .ok_or_else(|| corrupt(format!("element index {i} out of bounds")))
    }

    /// Looks `key` (serialized, hashing to `h`) up in the active table.
    pub fn probe(&self, h: u64, key: &[u8]) -> Result<Probe, CollectionError> {
        let (active, _) = self.table_state();
        let buckets = self.geometry().buckets as usize;
        let tag = tag_of(h);
        let mut free = None;
        for step in 0..buckets {
            let i = (h as usize).wrapping_add(step) & (buckets - 1);
            let (t, loc) = self.bucket(active, i);
            match t.load(Ordering::Relaxed) {
                EMPTY => {
                    return Ok(Probe {
                        found: None,
                        free: free.or(Some((i, false))),
                    })
                }
                TOMBSTONE => {
                    free = free.or(Some((i, true)));
                }
                t if t == tag => {
                    let range = live_range(loc)?;
                    if self.entry(range)?.0 == key {
                        return Ok(Probe {
                            found: Some((i, range)),
                            free,
                        });
                    }
                }
                _ => {}
            }
        }
        Ok(Probe { found: None, free })
    }

    /// The live buckets' entries of the active table, in table order.
    pub fn live(&self) -> impl Iterator<Item = Result<Range, CollectionError>> + 'a {
        let (active, _) = self.table_state();
        let buckets = self.geometry().buckets as usize;
        let table = self.table();
        let base = active as usize * buckets * 2;
        (0..buckets).filter_map(move |i| {
            let (tag, loc) = (&table[base + 2 * i], &table[base + 2 * i + 1]);
            (tag.load(Ordering::Relaxed) & LIVE != 0).then(|| live_range(loc))
        })
    }

    /// Whether a new key should first rebuild the table: live entries plus tombstones would
    /// pass three quarters of the buckets. Live entries stay at most half the buckets, so a
    /// rebuild comes at most every quarter of the buckets of inserts, and a probe meets an
    /// empty bucket within a quarter of the table.
    pub fn needs_rebuild(&self) -> bool {
        let (_, tombstones) = self.table_state();
        let used = self.len().saturating_add(tombstones).saturating_add(1);
        used.saturating_mul(4) > self.geometry().buckets * 3
    }

    /// Copies the live buckets into the other table, dropping tombstones, then makes it the
    /// active one with a single store. A crash before that store leaves the active table as it
    /// was (the other one is scratch space, cleared at the start of every rebuild).
    pub fn rebuild(&self) -> Result<(), CollectionError> {
        let (active, _) = self.table_state();
        let other = active ^ 1;
        let buckets = self.geometry().buckets as usize;
        // A lock-free reader may still be probing the other table from before the last flip.
        self.write_begin();
        for i in 0..buckets {
            let (t, l) = self.bucket(other, i);
            t.store(EMPTY, Ordering::Relaxed);
            l.store(0, Ordering::Relaxed);
        }
        test_hooks::step();
        for i in 0..buckets {
            let (t, l) = self.bucket(active, i);
            let tag = t.load(Ordering::Relaxed);
            if tag & LIVE == 0 {
                continue;
            }
            let spot = (0..buckets)
                .map(|s| (tag as usize).wrapping_add(s) & (buckets - 1))
                .find(|j| self.bucket(other, *j).0.load(Ordering::Relaxed) == EMPTY)
                .ok_or_else(|| corrupt("more live buckets than buckets".into()))?;
            let (nt, nl) = self.bucket(other, spot);
            nt.store(tag, Ordering::Relaxed);
            nl.store(l.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        test_hooks::step();
        std::sync::atomic::compiler_fence(Ordering::SeqCst);
        self.ctl().table_state.store(other, Ordering::Release);
        self.write_end();
        Ok(())
    }
}

/// The entry range a live bucket's (or element's) location word holds.
pub(crate) fn live_range(loc: &AtomicU64) -> Result<Range, CollectionError> {
    Range::unpack(loc.load(Ordering::Relaxed)).ok_or_else(|| corrupt("empty entry location".into()))
}
