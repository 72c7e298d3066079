//! The mutations, each one journaled (see `journal`): a map's put and remove, a vec's extend,
//! pop and set. Each checks everything that could refuse it (capacity, room) before it
//! publishes its record, so a refusal changes nothing; an error after that is rolled back when
//! the lock guard drops.

use std::sync::atomic::Ordering;

use crate::journal::{Record, EXTEND};
use crate::layout::Range;
use crate::store::{corrupt, Locked};
use crate::table::{live_range, tag_of, Probe, TOMBSTONE};
use crate::{test_hooks, CollectionError};

/// One tombstone in the packed table state.
const ONE_TOMBSTONE: u64 = 2;

impl Locked<'_> {
    /// Sets `key` (hashing to `h`, found as `probe` says) to `value`.
    pub fn map_put(
        &mut self,
        h: u64,
        key: &[u8],
        value: &[u8],
        mut probe: Probe,
    ) -> Result<(), CollectionError> {
        if probe.found.is_none() {
            if self.len() >= self.geometry().capacity {
                return Err(CollectionError::Full {
                    capacity: self.geometry().capacity as usize,
                });
            }
            if self.needs_rebuild() {
                self.rebuild()?;
                probe = self.probe(h, key)?;
            }
        }
        let alloc = self.room_for(key.len(), value.len())?;
        let (slot, tombstone) = match (probe.found, probe.free) {
            (Some((i, _)), _) => (i, false),
            (None, Some(free)) => free,
            (None, None) => return Err(corrupt("no free bucket in the table".into())),
        };
        let (active, _) = self.table_state();
        let (tag, loc) = self.bucket(active, slot);
        let old = (
            slot,
            tag.load(Ordering::Relaxed),
            loc.load(Ordering::Relaxed),
        );
        self.begin(Record {
            slot: Some(old),
            alloc: Some(alloc),
            free: probe.found.map(|(_, r)| r),
            ..Record::undo()
        });
        self.take(alloc)?;
        test_hooks::step();
        self.write_entry(alloc, key, value)?;
        test_hooks::step();
        loc.store(alloc.pack(), Ordering::Relaxed);
        test_hooks::step();
        tag.store(tag_of(h), Ordering::Relaxed);
        test_hooks::step();
        let ctl = self.ctl();
        match probe.found {
            Some((_, old)) => self.mark(old, false)?,
            None => {
                ctl.len.store(self.len() + 1, Ordering::Release);
                if tombstone {
                    test_hooks::step();
                    let state = ctl.table_state.load(Ordering::Relaxed);
                    let state = state.saturating_sub(ONE_TOMBSTONE);
                    ctl.table_state.store(state, Ordering::Relaxed);
                }
            }
        }
        self.commit();
        Ok(())
    }

    /// Removes the entry in `bucket` (stored in `range`).
    pub fn map_remove(&mut self, bucket: usize, range: Range) -> Result<(), CollectionError> {
        let (active, _) = self.table_state();
        let (tag, loc) = self.bucket(active, bucket);
        let old = (
            bucket,
            tag.load(Ordering::Relaxed),
            loc.load(Ordering::Relaxed),
        );
        self.begin(Record {
            slot: Some(old),
            free: Some(range),
            ..Record::undo()
        });
        tag.store(TOMBSTONE, Ordering::Relaxed);
        test_hooks::step();
        let ctl = self.ctl();
        ctl.len
            .store(self.len().saturating_sub(1), Ordering::Release);
        test_hooks::step();
        let state = ctl.table_state.load(Ordering::Relaxed);
        ctl.table_state
            .store(state.saturating_add(ONE_TOMBSTONE), Ordering::Relaxed);
        test_hooks::step();
        self.mark(range, false)?;
        self.commit();
        Ok(())
    }

    /// Empties a map or vec.
    pub fn clear_all(&mut self) {
        self.begin(Record {
            kind: crate::journal::CLEAR,
            ..Record::undo()
        });
        self.redo_clear();
        self.commit();
    }

    /// Appends every element of `items` (encoded), all or none.
    pub fn vec_extend(&mut self, items: &[&[u8]]) -> Result<(), CollectionError> {
        let len = self.len() as usize;
        let capacity = self.geometry().capacity as usize;
        if items.len() > capacity - len.min(capacity) {
            return Err(CollectionError::Full { capacity });
        }
        if items.is_empty() {
            return Ok(());
        }
        // Refuse a lone element that cannot fit before publishing anything.
        let first = self.room_for(0, items[0].len())?;
        self.begin(Record {
            kind: EXTEND,
            ..Record::undo()
        });
        for (n, item) in items.iter().enumerate() {
            let range = match n {
                0 => first,
                // Rolled back by the guard's drop: the vec stays unchanged.
                _ => self.room_for(0, item.len())?,
            };
            self.extending(Some(range));
            self.take(range)?;
            test_hooks::step();
            self.write_entry(range, &[], item)?;
            test_hooks::step();
            self.element(len + n)?
                .store(range.pack(), Ordering::Relaxed);
            test_hooks::step();
            self.extended(n + 1);
            self.extending(None);
        }
        self.ctl()
            .len
            .store((len + items.len()) as u64, Ordering::Release);
        self.commit();
        Ok(())
    }

    /// Removes the last element (stored in `range`).
    pub fn vec_pop(&mut self, range: Range) -> Result<(), CollectionError> {
        self.begin(Record {
            free: Some(range),
            ..Record::undo()
        });
        self.ctl()
            .len
            .store(self.len().saturating_sub(1), Ordering::Release);
        test_hooks::step();
        self.mark(range, false)?;
        self.commit();
        Ok(())
    }

    /// Replaces element `index` with `item` (encoded).
    pub fn vec_set(&mut self, index: usize, item: &[u8]) -> Result<(), CollectionError> {
        let slot = self.element(index)?;
        let old_loc = slot.load(Ordering::Relaxed);
        let old = live_range(slot)?;
        let alloc = self.room_for(0, item.len())?;
        self.begin(Record {
            slot: Some((index, 0, old_loc)),
            alloc: Some(alloc),
            free: Some(old),
            ..Record::undo()
        });
        self.take(alloc)?;
        test_hooks::step();
        self.write_entry(alloc, &[], item)?;
        test_hooks::step();
        slot.store(alloc.pack(), Ordering::Relaxed);
        test_hooks::step();
        self.mark(old, false)?;
        self.commit();
        Ok(())
    }

    /// The range of vec element `index`, if it is below the length.
    pub fn vec_range(&self, index: usize) -> Result<Option<Range>, CollectionError> {
        if index as u64 >= self.len() {
            return Ok(None);
        }
        live_range(self.element(index)?).map(Some)
    }
}
