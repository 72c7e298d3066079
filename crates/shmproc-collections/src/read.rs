//! Lock-free lookups (a sequence lock): a reader notes the sequence number, probes the active
//! table and copies the entry's words out with atomic loads, then checks the number again.
//! Writers make it odd before their first change and even (and different) after their last,
//! so an unchanged even number means the copy is a consistent snapshot. A reader that meets
//! an odd number, a change, or an entry too big for its buffer takes the lock instead — which
//! is also how it meets a writer that died mid-mutation (`OwnerDied`, after the repair).
//!
//! All shared accesses here are atomic, so racing a writer is never a data race; everything
//! read is bounds-checked before use, and only trusted once the number is confirmed.

use std::sync::atomic::{fence, Ordering};

use crate::layout::{Range, ENTRY_HEADER, UNIT};
use crate::store::Store;
use crate::table::{tag_of, EMPTY};

/// Bytes of the stack buffer a lock-free lookup copies an entry into.
pub(crate) const READ_BUF: usize = 256;
/// Attempts before a reader gives up and takes the lock.
const TRIES: u32 = 4;

/// What a lock-free lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// The entry, copied into the buffer: its value is `buf[start..end]`.
    Found { start: usize, end: usize },
    /// No such key.
    Absent,
    /// Could not tell without the lock.
    UseLock,
}

impl Store {
    /// Looks `key` (hashing to `h`) up without the lock, copying its entry into `buf`.
    pub fn lookup_lock_free(&self, h: u64, key: &[u8], buf: &mut [u8; READ_BUF]) -> Lookup {
        let seq = &self.ctl().seq;
        for _ in 0..TRIES {
            let before = seq.load(Ordering::Acquire);
            if before & 1 == 1 {
                return Lookup::UseLock;
            }
            let found = self.probe_copy(h, key, buf);
            fence(Ordering::Acquire);
            if seq.load(Ordering::Relaxed) == before {
                return found;
            }
        }
        Lookup::UseLock
    }

    /// One probe of the active table; its result means something only if the sequence number
    /// did not move meanwhile.
    fn probe_copy(&self, h: u64, key: &[u8], buf: &mut [u8; READ_BUF]) -> Lookup {
        let ctl = self.ctl();
        let buckets = self.geometry.buckets as usize;
        let active = (ctl.table_state.load(Ordering::Relaxed) & 1) as usize;
        let table = self.table_words();
        let tag = tag_of(h);
        for step in 0..buckets {
            let i = (h as usize).wrapping_add(step) & (buckets - 1);
            let at = (active * buckets + i) * 2;
            let found = table[at].load(Ordering::Relaxed);
            if found == EMPTY {
                return Lookup::Absent;
            }
            if found != tag {
                continue;
            }
            let Some(range) = Range::unpack(table[at + 1].load(Ordering::Relaxed)) else {
                return Lookup::UseLock;
            };
            match self.copy_entry(range, buf) {
                Some((start, end)) if &buf[ENTRY_HEADER..start] == key => {
                    return Lookup::Found { start, end };
                }
                Some(_) => {}
                None => return Lookup::UseLock,
            }
        }
        Lookup::UseLock
    }

    /// Copies the entry in `range` into `buf`; returns where its value starts (its key ends)
    /// and ends, or `None` if it does not fit or makes no sense.
    fn copy_entry(&self, range: Range, buf: &mut [u8; READ_BUF]) -> Option<(usize, usize)> {
        let (start, count) = (range.start as usize, range.count as usize);
        if count * UNIT > READ_BUF {
            return None;
        }
        let words = self.arena_words().get(start..start.checked_add(count)?)?;
        for (chunk, word) in buf.chunks_exact_mut(UNIT).zip(words) {
            chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
        }
        let len = |at: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&buf[at..at + 4]);
            u32::from_le_bytes(b) as usize
        };
        let key_end = ENTRY_HEADER.checked_add(len(0))?;
        let value_end = key_end.checked_add(len(4))?;
        (value_end <= count * UNIT).then_some((key_end, value_end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::with_encoded;
    use crate::table::hash;
    use crate::SharedMap;

    fn lookup(m: &SharedMap<u32, u64>, key: u32) -> Lookup {
        with_encoded(&key, |kb| {
            Ok(m.store().lookup_lock_free(hash(kb), kb, &mut [0; READ_BUF]))
        })
        .unwrap()
    }

    #[test]
    fn readers_take_the_lock_while_a_mutation_is_under_way() {
        let m: SharedMap<u32, u64> = SharedMap::new(8).unwrap();
        m.insert(1, 10).unwrap();
        assert!(matches!(lookup(&m, 1), Lookup::Found { .. }));
        assert_eq!(lookup(&m, 2), Lookup::Absent);
        let locked = m.store().lock(None).unwrap();
        locked.write_begin();
        assert_eq!(lookup(&m, 1), Lookup::UseLock);
        assert_eq!(lookup(&m, 2), Lookup::UseLock);
        locked.write_end();
        drop(locked);
        assert!(matches!(lookup(&m, 1), Lookup::Found { .. }));
        // Too big for the buffer: the lock path reads it.
        let big: SharedMap<u32, String> = SharedMap::new(8).unwrap();
        big.insert(1, "x".repeat(READ_BUF)).unwrap();
        let r = with_encoded(&1_u32, |kb| {
            Ok(big
                .store()
                .lookup_lock_free(hash(kb), kb, &mut [0; READ_BUF]))
        });
        assert_eq!(r.unwrap(), Lookup::UseLock);
        assert_eq!(big.get(&1).unwrap().map(|s| s.len()), Some(READ_BUF));
    }
}
