//! `Array<T>`: a fixed-length shared array with one robust lock.

use std::fmt;
use std::time::{Duration, Instant};

use shmproc_shm::{Kind, OpenOptions, SegmentError, Shareable};
use shmproc_sync::{LockError, RawLock};

pub use crate::region::ArrayGuard;
use crate::region::{Region, Wait};
use crate::AccessError;

/// A fixed-length `[T]` in shared memory guarded by one robust lock, like Python's
/// `multiprocessing.Array`. Clones (and forked children) share the same elements.
///
/// # Examples
/// ```
/// use shmproc_value::Array;
/// let arr = Array::from_slice(&[1_i32, 2, 3])?;
/// arr.set(0, 10)?;
/// arr.lock().unwrap()[1] = 20;         // guard derefs to [i32]
/// assert_eq!(arr.to_vec()?, vec![10, 20, 3]);
/// assert!(arr.get(3).is_err());         // out of bounds is an error, not a panic
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # When a process dies
/// As for `Value`: the next `lock*` gets `OwnerDied(guard)`, the next `get`/`set`/`to_vec`
/// [`AccessError::OwnerDied`] once.
pub struct Array<T: Shareable> {
    region: Region<T>,
}

impl<T: Shareable> Array<T> {
    /// A new anonymous array holding a copy of `items`.
    ///
    /// # Errors
    /// [`SegmentError::Io`] when the OS cannot provide the memory.
    pub fn from_slice(items: &[T]) -> Result<Self, SegmentError> {
        Ok(Array {
            region: Region::create(None, Kind::Array, items)?,
        })
    }

    /// A new anonymous array of `len` zeroed elements.
    ///
    /// # Errors
    /// As [`from_slice`](Array::from_slice).
    pub fn zeroed(len: usize) -> Result<Self, SegmentError> {
        Ok(Array {
            region: Region::zeroed(None, Kind::Array, len)?,
        })
    }

    /// A new named array holding a copy of `items`.
    ///
    /// # Errors
    /// [`SegmentError::AlreadyExists`], [`SegmentError::InvalidName`], or OS errors.
    pub fn create(name: &str, items: &[T]) -> Result<Self, SegmentError> {
        Ok(Array {
            region: Region::create(Some(name), Kind::Array, items)?,
        })
    }

    /// A new named array of `len` zeroed elements.
    ///
    /// # Errors
    /// As [`create`](Array::create).
    pub fn create_zeroed(name: &str, len: usize) -> Result<Self, SegmentError> {
        Ok(Array {
            region: Region::zeroed(Some(name), Kind::Array, len)?,
        })
    }

    /// Like [`create`](Array::create), shared as `options` say (see
    /// [`Value::create_with`](crate::Value::create_with)).
    ///
    /// # Errors
    /// As [`create`](Array::create).
    pub fn create_with(
        name: &str,
        items: &[T],
        options: &OpenOptions,
    ) -> Result<Self, SegmentError> {
        Ok(Array {
            region: Region::create_with(Some(name), Kind::Array, items, options)?,
        })
    }

    /// Opens a named array, checking the file is private to this user and holds an `Array` of
    /// exactly this `T`.
    ///
    /// # Errors
    /// Any [`SegmentError`].
    pub fn open(name: &str) -> Result<Self, SegmentError> {
        Array::open_with(name, &OpenOptions::new())
    }

    /// Like [`open`](Array::open), accepting what `options` allow (see
    /// [`Value::open_with`](crate::Value::open_with)).
    ///
    /// # Errors
    /// As [`open`](Array::open).
    pub fn open_with(name: &str, options: &OpenOptions) -> Result<Self, SegmentError> {
        Ok(Array {
            region: Region::open(name, Kind::Array, options)?,
        })
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.region.len()
    }

    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads element `index` under the lock.
    ///
    /// # Errors
    /// [`AccessError::OutOfBounds`], or as [`Value::get`](crate::Value::get).
    pub fn get(&self, index: usize) -> Result<T, AccessError> {
        let guard = self.lock()?;
        guard.get(index).copied().ok_or(AccessError::OutOfBounds {
            index,
            len: self.len(),
        })
    }

    /// Writes element `index` under the lock.
    ///
    /// # Errors
    /// As [`get`](Array::get).
    pub fn set(&self, index: usize, value: T) -> Result<(), AccessError> {
        let len = self.len();
        let mut guard = self.lock()?;
        let slot = guard
            .get_mut(index)
            .ok_or(AccessError::OutOfBounds { index, len })?;
        *slot = value;
        Ok(())
    }

    /// Copies all elements out under the lock.
    ///
    /// # Errors
    /// As [`Value::get`](crate::Value::get).
    pub fn to_vec(&self) -> Result<Vec<T>, AccessError> {
        Ok(self.lock()?.to_vec())
    }

    /// Locks the array; the guard derefs to `[T]`.
    ///
    /// # Errors
    /// [`LockError::OwnerDied`] (holding the guard) if the previous holder died;
    /// [`LockError::Deadlock`] if this thread holds it already.
    pub fn lock(&self) -> Result<ArrayGuard<'_, T>, LockError<ArrayGuard<'_, T>>> {
        self.region.acquire(Wait::Forever)
    }

    /// Locks the array if it is free right now.
    ///
    /// # Errors
    /// [`LockError::WouldBlock`] if held; otherwise as [`lock`](Array::lock).
    pub fn try_lock(&self) -> Result<ArrayGuard<'_, T>, LockError<ArrayGuard<'_, T>>> {
        self.region.acquire(Wait::Never)
    }

    /// Locks the array, giving up after `timeout` with [`LockError::Timeout`].
    ///
    /// # Errors
    /// As [`lock`](Array::lock), plus `Timeout`.
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<ArrayGuard<'_, T>, LockError<ArrayGuard<'_, T>>> {
        self.region.acquire(Wait::Until(Instant::now() + timeout))
    }

    /// The array's lock word (Python's `get_lock()`).
    pub fn raw_lock(&self) -> &RawLock {
        self.region.lock()
    }

    /// The segment's name, `None` when anonymous.
    pub fn name(&self) -> Option<&str> {
        self.region.segment().name()
    }

    /// Keeps a named array after its creator is done.
    pub fn persist(&self) {
        self.region.segment().persist();
    }
}

/// Passed like a [`Value`](crate::Value): by descriptor to spawned entries and Pool tasks when
/// anonymous, by name when named.
impl<T: Shareable> serde::Serialize for Array<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.region.segment().serialize_handle(serializer)
    }
}

impl<'de, T: Shareable> serde::Deserialize<'de> for Array<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Array {
            region: Region::deserialize(deserializer, Kind::Array)?,
        })
    }
}

impl<T: Shareable> Clone for Array<T> {
    fn clone(&self) -> Self {
        Array {
            region: self.region.clone(),
        }
    }
}

impl<T: Shareable + fmt::Debug> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Array");
        d.field("name", &self.name()).field("len", &self.len());
        match self.try_lock() {
            Ok(guard) => d.field("items", &&*guard),
            Err(_) => d.field("items", &format_args!("<locked>")),
        };
        d.finish()
    }
}
