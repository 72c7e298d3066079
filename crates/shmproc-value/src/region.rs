//! The layout both `Value` and `Array` use: a robust lock, then `len` elements of `T`.

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Instant;

use shmproc_shm::{Kind, OpenOptions, Segment, SegmentError, Shareable, SharedRef, Spec, TypeInfo};
use shmproc_sync::{LockError, RawGuard, RawLock};

/// Elements start one lock (one cache line) into the payload.
const DATA_OFFSET: usize = std::mem::size_of::<RawLock>();

/// Lock + `len` elements in one segment.
pub(crate) struct Region<T: Shareable> {
    lock: SharedRef<RawLock>,
    data: NonNull<T>,
    len: usize,
}

// SAFETY: the elements are only touched under the lock (or copied out by value), T is
// Send + Sync plain data, and the segment is kept alive by `lock`'s Arc.
unsafe impl<T: Shareable> Send for Region<T> {}
// SAFETY: as above.
unsafe impl<T: Shareable> Sync for Region<T> {}

impl<T: Shareable> Clone for Region<T> {
    fn clone(&self) -> Self {
        Region {
            lock: self.lock.clone(),
            data: self.data,
            len: self.len,
        }
    }
}

/// How long to wait for the lock.
#[derive(Clone, Copy)]
pub(crate) enum Wait {
    Forever,
    Never,
    Until(Instant),
}

impl<T: Shareable> Region<T> {
    /// Creates a segment (named if `name` is given) whose elements are copied from `init`.
    pub fn create(name: Option<&str>, kind: Kind, init: &[T]) -> Result<Self, SegmentError> {
        Region::create_with(name, kind, init, &OpenOptions::new())
    }

    /// As [`create`](Region::create), a named segment shared as `options` say.
    pub fn create_with(
        name: Option<&str>,
        kind: Kind,
        init: &[T],
        options: &OpenOptions,
    ) -> Result<Self, SegmentError> {
        let spec = spec::<T>(kind, init.len())?;
        let fill = |seg: &Segment| {
            let data = seg.ptr::<T>(DATA_OFFSET, init.len())?;
            // SAFETY: `data` is checked to hold `init.len()` aligned elements; nobody else can
            // see the segment before it is published as ready.
            unsafe { std::ptr::copy_nonoverlapping(init.as_ptr(), data.as_ptr(), init.len()) };
            Ok(())
        };
        let seg = match name {
            Some(name) => Segment::create_named_with(name, &spec, options, fill)?,
            None => Segment::create_anonymous(&spec, fill)?,
        };
        Region::from_segment(seg)
    }

    /// Creates a segment of `len` zeroed elements (a fresh segment is zero-filled by the OS).
    pub fn zeroed(name: Option<&str>, kind: Kind, len: usize) -> Result<Self, SegmentError> {
        let spec = spec::<T>(kind, len)?;
        let seg = match name {
            Some(name) => Segment::create_named(name, &spec, |_| Ok(()))?,
            None => Segment::create_anonymous(&spec, |_| Ok(()))?,
        };
        Region::from_segment(seg)
    }

    /// Opens and validates a named segment that `options` allow.
    pub fn open(name: &str, kind: Kind, options: &OpenOptions) -> Result<Self, SegmentError> {
        let seg = Segment::open_named_with(name, kind, TypeInfo::of::<T>(), options)?;
        Region::from_segment(seg)
    }

    /// Deserializes a handle written by [`Segment::serialize_handle`].
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
        kind: Kind,
    ) -> Result<Self, D::Error> {
        let seg = Segment::deserialize_handle(deserializer, kind, TypeInfo::of::<T>())?;
        Region::from_segment(seg).map_err(serde::de::Error::custom)
    }

    fn from_segment(seg: Segment) -> Result<Self, SegmentError> {
        // The length comes from a header another process wrote: bounded below by the lock and
        // above by the payload (checked against the file when the segment was opened), and a
        // whole number of elements.
        let size = std::mem::size_of::<T>();
        let bytes = seg
            .payload_len()
            .checked_sub(DATA_OFFSET)
            .filter(|b| size == 0 || b % size == 0);
        let Some(bytes) = bytes else {
            return Err(SegmentError::Corrupt {
                name: seg.name().unwrap_or("<anonymous>").to_owned(),
                reason: format!(
                    "payload of {} bytes is not a lock plus whole elements of {size} bytes",
                    seg.payload_len()
                ),
            });
        };
        let len = bytes / size.max(1);
        let data = seg.ptr::<T>(DATA_OFFSET, len)?;
        let lock = SharedRef::new(Arc::new(seg), 0)?;
        Ok(Region { lock, data, len })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn segment(&self) -> &Arc<Segment> {
        self.lock.segment()
    }

    pub fn lock(&self) -> &RawLock {
        &self.lock
    }

    pub fn acquire(&self, wait: Wait) -> Result<ArrayGuard<'_, T>, LockError<ArrayGuard<'_, T>>> {
        let raw = match wait {
            Wait::Forever => self.lock.acquire(),
            Wait::Never => self.lock.try_acquire(),
            Wait::Until(deadline) => self.lock.acquire_until(Some(deadline)),
        };
        let wrap = |raw| ArrayGuard {
            _raw: raw,
            data: self.data,
            len: self.len,
            _data: PhantomData,
        };
        raw.map(wrap).map_err(|e| e.map(wrap))
    }
}

fn spec<T: Shareable>(kind: Kind, len: usize) -> Result<Spec, SegmentError> {
    let payload_len = std::mem::size_of::<T>()
        .checked_mul(len)
        .and_then(|b| b.checked_add(DATA_OFFSET))
        .ok_or_else(|| {
            SegmentError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "array too large",
            ))
        })?;
    Ok(Spec {
        kind,
        elem: TypeInfo::of::<T>(),
        payload_len,
    })
}

/// Holds an [`Array`](crate::Array)'s lock; derefs to `[T]`, the elements.
pub struct ArrayGuard<'a, T> {
    _raw: RawGuard<'a>,
    data: NonNull<T>,
    len: usize,
    _data: PhantomData<&'a mut [T]>,
}

impl<T> Deref for ArrayGuard<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `data` points at `len` aligned elements inside the mapping (checked when the
        // region was made); the lock is held, so no cooperating process writes them now.
        unsafe { std::slice::from_raw_parts(self.data.as_ptr(), self.len) }
    }
}

impl<T> DerefMut for ArrayGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and the held lock makes this the only access anywhere.
        unsafe { std::slice::from_raw_parts_mut(self.data.as_ptr(), self.len) }
    }
}
