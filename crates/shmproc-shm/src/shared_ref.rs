//! A typed, reference-counted pointer to an all-atomic object inside a segment.

use std::fmt;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::{AtomicShareable, Segment, SegmentError};

/// A shared reference to an all-atomic `U` living inside a [`Segment`]; keeps the segment
/// mapped. Clones point at the same object.
///
/// # Examples
/// ```
/// use std::sync::{atomic::{AtomicU32, Ordering}, Arc};
/// use shmproc_shm::{Kind, Segment, SharedRef, Spec, TypeInfo};
///
/// let spec = Spec { kind: Kind::Raw, elem: TypeInfo::none(), payload_len: 4 };
/// let seg = Arc::new(Segment::create_anonymous(&spec, |_| Ok(()))?);
/// let word: SharedRef<AtomicU32> = SharedRef::new(seg, 0)?;
/// word.store(7, Ordering::Relaxed);
/// assert_eq!(word.clone().load(Ordering::Relaxed), 7);
/// # Ok::<(), shmproc_shm::SegmentError>(())
/// ```
pub struct SharedRef<U: AtomicShareable> {
    ptr: NonNull<U>,
    seg: Arc<Segment>,
}

impl<U: AtomicShareable> SharedRef<U> {
    /// Points at the `U` at `offset` bytes into `seg`'s payload.
    ///
    /// # Errors
    /// [`SegmentError::Corrupt`] if it does not fit in the payload or is misaligned.
    pub fn new(seg: Arc<Segment>, offset: usize) -> Result<Self, SegmentError> {
        let ptr = seg.ptr::<U>(offset, 1)?;
        Ok(SharedRef { ptr, seg })
    }

    /// The segment this points into.
    pub fn segment(&self) -> &Arc<Segment> {
        &self.seg
    }
}

impl<U: AtomicShareable> Deref for SharedRef<U> {
    type Target = U;
    #[inline]
    fn deref(&self) -> &U {
        // SAFETY: `ptr` was bounds- and alignment-checked by `Segment::ptr`, the mapping lives as
        // long as `seg`, and U is all atomics, so a shared reference is sound across processes.
        unsafe { self.ptr.as_ref() }
    }
}

impl<U: AtomicShareable> Clone for SharedRef<U> {
    fn clone(&self) -> Self {
        SharedRef {
            ptr: self.ptr,
            seg: Arc::clone(&self.seg),
        }
    }
}

// SAFETY: the pointee is Sync (AtomicShareable: Sync) and the segment is owned via Arc; the raw
// pointer is only a cached, immutable address into that segment.
unsafe impl<U: AtomicShareable> Send for SharedRef<U> {}
// SAFETY: as above; `&SharedRef` only hands out `&U`, and U is Sync.
unsafe impl<U: AtomicShareable> Sync for SharedRef<U> {}

impl<U: AtomicShareable> fmt::Debug for SharedRef<U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedRef")
            .field("segment", &self.seg)
            .finish_non_exhaustive()
    }
}
