//! Crash consistency: every mutation first writes a complete undo record into the control
//! block and publishes it (one store of its kind), then changes the collection, then commits
//! (the kind back to `NONE`). Whoever next takes the lock from a dead holder — or finds a record
//! still published — rolls the change back with [`Locked::recover`], so the collection is as it
//! was before that operation, or (once committed) after it; never in between.
//!
//! Every undo step is idempotent and right whether or not the change it reverses happened:
//! - the changed slot gets back the words it had;
//! - allocated units were free before, so their bits are cleared;
//! - freed units were in use before, so their bits are set;
//! - the length and table state get back their old values.
//!
//! `clear` is the exception: its record is a redo record (recovery finishes the clear).
//! `extend` records how many elements are fully written; undo frees their units.
//!
//! A crash can only come between two stores of this process; the compiler fences keep the
//! record's stores before the first change (the CPU retires stores in order, and a killed
//! process's retired stores all reach memory).
//!
//! The sequence number lock-free readers check (see `read`) is odd from just after the record
//! is published until just after it is retired, and during recovery: a reader never keeps a
//! copy of a state that recovery could still undo.

use std::sync::atomic::{compiler_fence, fence, Ordering};

use crate::layout::Range;
use crate::store::{corrupt, Locked};
use crate::table::live_range;
use crate::{test_hooks, CollectionError};

/// No mutation in progress.
const NONE: u64 = 0;
/// An undo record.
pub(crate) const UNDO: u64 = 1;
/// A `clear` (redo).
pub(crate) const CLEAR: u64 = 2;
/// A vec `extend` (undo by progress).
pub(crate) const EXTEND: u64 = 3;

/// What one mutation will change.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record {
    pub kind: u64,
    /// The one slot changed, with its tag and loc words before (a vec slot has no tag).
    pub slot: Option<(usize, u64, u64)>,
    pub alloc: Option<Range>,
    pub free: Option<Range>,
}

impl Record {
    pub fn undo() -> Record {
        Record {
            kind: UNDO,
            slot: None,
            alloc: None,
            free: None,
        }
    }
}

impl Locked<'_> {
    /// Whether a mutation was published and not committed.
    pub fn journal_active(&self) -> bool {
        self.ctl().journal.kind.load(Ordering::Relaxed) != NONE
    }

    /// Writes `record` (with the current length and table state) and publishes it.
    pub fn begin(&self, record: Record) {
        let j = &self.ctl().journal;
        let pack = |r: Option<Range>| r.map_or(0, Range::pack);
        j.old_len.store(self.len(), Ordering::Relaxed);
        let state = self.ctl().table_state.load(Ordering::Relaxed);
        j.old_table_state.store(state, Ordering::Relaxed);
        let (slot, tag, loc) = record
            .slot
            .map_or((0, 0, 0), |(i, t, l)| (i as u64 + 1, t, l));
        j.slot.store(slot, Ordering::Relaxed);
        j.slot_tag.store(tag, Ordering::Relaxed);
        j.slot_loc.store(loc, Ordering::Relaxed);
        j.alloc.store(pack(record.alloc), Ordering::Relaxed);
        j.free.store(pack(record.free), Ordering::Relaxed);
        j.progress.store(0, Ordering::Relaxed);
        compiler_fence(Ordering::SeqCst);
        j.kind.store(record.kind, Ordering::Relaxed);
        compiler_fence(Ordering::SeqCst);
        self.write_begin();
        test_hooks::step();
    }

    /// Makes the published mutation permanent, then lets lock-free readers in again (in that
    /// order: a reader never sees a change that recovery could still undo).
    pub fn commit(&self) {
        compiler_fence(Ordering::SeqCst);
        test_hooks::step();
        self.ctl().journal.kind.store(NONE, Ordering::Relaxed);
        compiler_fence(Ordering::SeqCst);
        test_hooks::step();
        self.write_end();
    }

    /// Whether a mutation (or recovery, or rebuild) is under way for lock-free readers.
    pub fn seq_odd(&self) -> bool {
        self.ctl().seq.load(Ordering::Relaxed) & 1 == 1
    }

    /// Marks the start of changes lock-free readers could see (the sequence number goes odd).
    pub fn write_begin(&self) {
        let seq = &self.ctl().seq;
        let s = seq.load(Ordering::Relaxed);
        if s & 1 == 0 {
            seq.store(s.wrapping_add(1), Ordering::Relaxed);
        }
        // Keeps the changes after the odd number (for readers on other CPUs).
        fence(Ordering::Release);
    }

    /// Marks the end of those changes (the sequence number goes even, and differs from before).
    pub fn write_end(&self) {
        let seq = &self.ctl().seq;
        let s = seq.load(Ordering::Relaxed);
        seq.store((s | 1).wrapping_add(1), Ordering::Release);
    }

    /// Rolls back (or, for `clear`, finishes) a published mutation, then retires its record.
    pub fn recover(&self) -> Result<(), CollectionError> {
        // Everything the dead holder stored is in memory by now; see it all.
        fence(Ordering::SeqCst);
        self.write_begin();
        let j = &self.ctl().journal;
        let kind = j.kind.load(Ordering::Relaxed);
        let outcome = match kind {
            NONE => Ok(()),
            UNDO => self.undo(),
            CLEAR => {
                self.redo_clear();
                Ok(())
            }
            EXTEND => self.undo_extend(),
            other => Err(corrupt(format!("unknown journal record kind {other}"))),
        };
        j.kind.store(NONE, Ordering::Relaxed);
        compiler_fence(Ordering::SeqCst);
        self.write_end();
        outcome
    }

    fn undo(&self) -> Result<(), CollectionError> {
        let j = &self.ctl().journal;
        let old_state = j.old_table_state.load(Ordering::Relaxed);
        if let Some(i) = j.slot.load(Ordering::Relaxed).checked_sub(1) {
            let (tag, loc) = (
                j.slot_tag.load(Ordering::Relaxed),
                j.slot_loc.load(Ordering::Relaxed),
            );
            if self.geometry().buckets == 0 {
                self.element(i as usize)?.store(loc, Ordering::Relaxed);
            } else {
                let (t, l) = self.bucket(old_state & 1, i as usize);
                t.store(tag, Ordering::Relaxed);
                l.store(loc, Ordering::Relaxed);
            }
        }
        if let Some(r) = Range::unpack(j.alloc.load(Ordering::Relaxed)) {
            self.mark(r, false)?;
        }
        if let Some(r) = Range::unpack(j.free.load(Ordering::Relaxed)) {
            self.mark(r, true)?;
        }
        self.restore_len_and_state();
        Ok(())
    }

    fn undo_extend(&self) -> Result<(), CollectionError> {
        let j = &self.ctl().journal;
        let old_len = j.old_len.load(Ordering::Relaxed) as usize;
        let done = j.progress.load(Ordering::Relaxed) as usize;
        for i in old_len..old_len.saturating_add(done) {
            self.mark(live_range(self.element(i)?)?, false)?;
        }
        if let Some(r) = Range::unpack(j.alloc.load(Ordering::Relaxed)) {
            self.mark(r, false)?;
        }
        self.restore_len_and_state();
        Ok(())
    }

    fn restore_len_and_state(&self) {
        let j = &self.ctl().journal;
        let ctl = self.ctl();
        ctl.len
            .store(j.old_len.load(Ordering::Relaxed), Ordering::Release);
        ctl.table_state
            .store(j.old_table_state.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// Empties the collection (idempotent: also the redo of a `clear` record).
    pub fn redo_clear(&self) {
        let active = self.ctl().journal.old_table_state.load(Ordering::Relaxed) & 1;
        if self.geometry().buckets != 0 {
            for i in 0..self.geometry().buckets as usize {
                let (t, l) = self.bucket(active, i);
                t.store(0, Ordering::Relaxed);
                l.store(0, Ordering::Relaxed);
            }
        }
        test_hooks::step();
        for w in self.bitmap() {
            w.store(0, Ordering::Relaxed);
        }
        let ctl = self.ctl();
        ctl.len.store(0, Ordering::Release);
        ctl.table_state.store(active, Ordering::Relaxed);
        ctl.hint.store(0, Ordering::Relaxed);
    }

    /// `extend`: record that `alloc` is about to be taken for the next element.
    pub fn extending(&self, alloc: Option<Range>) {
        let word = alloc.map_or(0, Range::pack);
        self.ctl().journal.alloc.store(word, Ordering::Relaxed);
        compiler_fence(Ordering::SeqCst);
    }

    /// `extend`: one more element is fully written (its slot holds its range).
    pub fn extended(&self, done: usize) {
        compiler_fence(Ordering::SeqCst);
        self.ctl()
            .journal
            .progress
            .store(done as u64, Ordering::Relaxed);
        compiler_fence(Ordering::SeqCst);
    }
}
