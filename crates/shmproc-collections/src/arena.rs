//! The byte arena: a bitmap allocator over 8-byte units (first fit from a moving hint; a freed
//! run merges with free neighbours by itself, since only bits record what is in use), and
//! entries stored as `[key_len u32][value_len u32][key][value]`.

use std::sync::atomic::Ordering;

use crate::layout::{Range, ENTRY_HEADER, UNIT};
use crate::store::{corrupt, Locked};
use crate::CollectionError;

impl Locked<'_> {
    /// A run of `count` free units, searched from the hint onwards, then from the start.
    pub fn find_free(&self, count: usize) -> Option<Range> {
        let units = self.geometry().units as usize;
        if count == 0 || count > units {
            return None;
        }
        let hint = (self.ctl().hint.load(Ordering::Relaxed) % units as u64) as usize;
        let start = self
            .scan(hint, units, count)
            .or_else(|| self.scan(0, units, count))?;
        Some(Range {
            start: start as u32,
            count: count as u32,
        })
    }

    /// The start of the first run of `count` clear bits inside `[lo, hi)`.
    fn scan(&self, lo: usize, hi: usize, count: usize) -> Option<usize> {
        let bitmap = self.bitmap();
        let mut run = 0;
        let mut i = lo;
        while i < hi {
            let word = bitmap[i / 64].load(Ordering::Relaxed);
            let bit = i % 64;
            // A whole run of equal bits at once (within this word and below `hi`).
            let rest = word >> bit;
            let left = (64 - bit).min(hi - i);
            if rest & 1 == 0 {
                let zeros = (rest.trailing_zeros() as usize).min(left);
                run += zeros;
                i += zeros;
                if run >= count {
                    return Some(i - run);
                }
            } else {
                run = 0;
                i += (rest.trailing_ones() as usize).min(left);
            }
        }
        None
    }

    /// Marks `range` used or free in the bitmap.
    pub fn mark(&self, range: Range, used: bool) -> Result<(), CollectionError> {
        let start = range.start as usize;
        let end = start + range.count as usize;
        if end > self.geometry().units as usize {
            return Err(corrupt(format!("unit range {range:?} out of bounds")));
        }
        let bitmap = self.bitmap();
        let mut i = start;
        while i < end {
            let bit = i % 64;
            let take = (64 - bit).min(end - i);
            let mask = if take == 64 {
                u64::MAX
            } else {
                ((1u64 << take) - 1) << bit
            };
            // Under the lock: a plain load and store (no read-modify-write needed).
            let word = &bitmap[i / 64];
            let old = word.load(Ordering::Relaxed);
            let new = if used { old | mask } else { old & !mask };
            word.store(new, Ordering::Relaxed);
            i += take;
        }
        Ok(())
    }

    /// Allocates `range` (found by [`find_free`](Locked::find_free)) and moves the hint past it.
    pub fn take(&self, range: Range) -> Result<(), CollectionError> {
        self.mark(range, true)?;
        let next = u64::from(range.start) + u64::from(range.count);
        self.ctl().hint.store(next, Ordering::Relaxed);
        Ok(())
    }

    /// Free arena bytes, in all pieces together.
    pub fn free_bytes(&self) -> usize {
        let used: u64 = self
            .bitmap()
            .iter()
            .map(|w| u64::from(w.load(Ordering::Relaxed).count_ones()))
            .sum();
        (self.geometry().units.saturating_sub(used)) as usize * UNIT
    }

    /// The key and value bytes of the entry stored in `range`.
    pub fn entry(&self, range: Range) -> Result<(&[u8], &[u8]), CollectionError> {
        let bytes = self.arena(range.start as usize * UNIT, range.count as usize * UNIT)?;
        let word = |at: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&bytes[at..at + 4]);
            u32::from_le_bytes(b) as usize
        };
        let (key_len, value_len) = (word(0), word(4));
        let end = ENTRY_HEADER
            .checked_add(key_len)
            .and_then(|n| n.checked_add(value_len))
            .filter(|n| *n <= bytes.len())
            .ok_or_else(|| corrupt(format!("entry lengths overflow its range {range:?}")))?;
        let key = &bytes[ENTRY_HEADER..ENTRY_HEADER + key_len];
        Ok((key, &bytes[ENTRY_HEADER + key_len..end]))
    }

    /// Writes an entry into `range` (which must have room: see [`Range::units_for`]), whole
    /// words at a time (the tail of the last one zeroed).
    pub fn write_entry(
        &mut self,
        range: Range,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), CollectionError> {
        let total = ENTRY_HEADER + key.len() + value.len();
        let (Ok(key_len), Ok(value_len)) = (u32::try_from(key.len()), u32::try_from(value.len()))
        else {
            let arena = self.geometry().arena_bytes();
            return Err(CollectionError::TooLarge {
                needed: total,
                arena,
            });
        };
        let mut header = [0u8; ENTRY_HEADER];
        header[..4].copy_from_slice(&key_len.to_le_bytes());
        header[4..].copy_from_slice(&value_len.to_le_bytes());
        let mut bytes = header.iter().chain(key).chain(value).copied();
        let words = (0..total.div_ceil(UNIT)).map(|_| {
            let mut word = [0u8; UNIT];
            for (b, byte) in word.iter_mut().zip(&mut bytes) {
                *b = byte;
            }
            u64::from_le_bytes(word)
        });
        self.write_units(range.start as usize, words)
    }

    /// A range for an entry of `key` + `value` bytes, or why there is none (nothing changed).
    pub fn room_for(&self, key: usize, value: usize) -> Result<Range, CollectionError> {
        let units = Range::units_for(key, value);
        let needed = units * UNIT;
        let arena = self.geometry().arena_bytes();
        if needed > arena || units > u32::MAX as usize {
            return Err(CollectionError::TooLarge { needed, arena });
        }
        self.find_free(units)
            .ok_or_else(|| CollectionError::OutOfSpace {
                needed,
                free: self.free_bytes(),
            })
    }
}
