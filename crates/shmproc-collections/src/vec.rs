//! `SharedVec<T>`: a growable list in one shared segment.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use shmproc_shm::{Kind, OpenOptions, SegmentError};

use crate::codec::{decode, encode, with_encoded};
use crate::layout::{type_info, Geometry, DEFAULT_BYTES_PER_ENTRY};
use crate::store::Store;
use crate::CollectionError;

/// A list shared by processes, in place of Python's `Manager().list()`: elements are stored
/// serialized (postcard) in one shared segment. Clones (and forked children, and spawned
/// processes it is passed to) share the same list.
///
/// Capacity is fixed at creation, in elements and in arena bytes; popped or replaced
/// elements' bytes are reused. A push that does not fit fails with [`CollectionError::Full`]
/// or [`CollectionError::OutOfSpace`] and changes nothing; so does an [`extend`](SharedVec::extend)
/// that does not fit entirely.
///
/// # Examples
/// ```
/// use shmproc_collections::SharedVec;
/// use shmproc_process::Process;
///
/// let list: SharedVec<u32> = SharedVec::new(16)?;
/// let children = (0..2)
///     .map(|_| {
///         let list = list.clone();
///         Process::fork(move || list.push(10).unwrap())
///     })
///     .collect::<Result<Vec<_>, _>>()?;
/// for child in children {
///     assert!(child.join()?.success());
/// }
/// assert_eq!(list.to_vec()?, [10, 10]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # When a process dies
/// A process killed at any point inside `push`, `extend`, `pop`, `set` or `clear` leaves the
/// list as it was before that call or after it. The next call undoes a half-done one and
/// returns [`CollectionError::OwnerDied`] once without doing its own operation: retry it.
pub struct SharedVec<T> {
    pub(crate) store: Arc<Store>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) _types: PhantomData<fn(T) -> T>,
}

impl<T> SharedVec<T> {
    /// A list of up to `capacity` elements, with
    /// [`DEFAULT_BYTES_PER_ENTRY`](crate::DEFAULT_BYTES_PER_ENTRY) arena bytes per element, in
    /// an anonymous segment shared with children forked afterwards.
    ///
    /// # Errors
    /// [`SegmentError::Io`] when the OS cannot provide the memory or the size is absurd.
    pub fn new(capacity: usize) -> Result<Self, SegmentError> {
        SharedVec::with_capacity(capacity, capacity.saturating_mul(DEFAULT_BYTES_PER_ENTRY))
    }

    /// A list of up to `entries` elements whose serialized forms take up to `bytes` bytes in
    /// all (each element takes 8 bytes more, rounded up to a multiple of 8).
    ///
    /// # Errors
    /// As [`new`](SharedVec::new).
    pub fn with_capacity(entries: usize, bytes: usize) -> Result<Self, SegmentError> {
        Self::made(None, entries, bytes, &OpenOptions::new())
    }

    /// A new named list (capacity as [`new`](SharedVec::new)) that any process of this user
    /// can [`open`](SharedVec::open).
    ///
    /// # Errors
    /// [`SegmentError::AlreadyExists`], [`SegmentError::InvalidName`], or OS errors.
    pub fn create(name: &str, capacity: usize) -> Result<Self, SegmentError> {
        let bytes = capacity.saturating_mul(DEFAULT_BYTES_PER_ENTRY);
        Self::made(Some(name), capacity, bytes, &OpenOptions::new())
    }

    /// Like [`create`](SharedVec::create), with capacity as
    /// [`with_capacity`](SharedVec::with_capacity) and sharing as `options` say.
    ///
    /// # Errors
    /// As [`create`](SharedVec::create).
    pub fn create_with(
        name: &str,
        entries: usize,
        bytes: usize,
        options: &OpenOptions,
    ) -> Result<Self, SegmentError> {
        Self::made(Some(name), entries, bytes, options)
    }

    /// Opens a named list, checking it is a `SharedVec` of exactly this `T` (full type name
    /// and layout) with a sane geometry.
    ///
    /// # Errors
    /// Any [`SegmentError`]: missing, not private, another kind or type, corrupt, …
    ///
    /// # Examples
    /// ```
    /// use shmproc_collections::SharedVec;
    /// # let name = format!("doc-vec-open-{}", std::process::id());
    /// let v: SharedVec<String> = SharedVec::create(&name, 4)?;
    /// v.push("hi".into())?;
    /// assert_eq!(SharedVec::<String>::open(&name)?.get(0)?, Some("hi".to_string()));
    /// assert!(SharedVec::<u64>::open(&name).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(name: &str) -> Result<Self, SegmentError> {
        Self::open_with(name, &OpenOptions::new())
    }

    /// Like [`open`](SharedVec::open), accepting what `options` allow.
    ///
    /// # Errors
    /// As [`open`](SharedVec::open).
    pub fn open_with(name: &str, options: &OpenOptions) -> Result<Self, SegmentError> {
        let store = Store::open(name, Kind::List, type_info::<T>(), options)?;
        Ok(Self::from_store(store))
    }

    fn made(
        name: Option<&str>,
        entries: usize,
        bytes: usize,
        options: &OpenOptions,
    ) -> Result<Self, SegmentError> {
        let geometry = Geometry::vec(entries, bytes)?;
        let store = Store::create(name, Kind::List, type_info::<T>(), geometry, options)?;
        Ok(Self::from_store(store))
    }

    /// The shared state, for the corruption tests.
    #[cfg(test)]
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn from_store(store: Arc<Store>) -> Self {
        SharedVec {
            store,
            timeout: None,
            _types: PhantomData,
        }
    }

    /// This handle gives up waiting for the list's lock after `timeout` with
    /// [`CollectionError::Timeout`] (`Duration::ZERO`: fail at once while another process
    /// holds it), as [`SharedMap::with_timeout`](crate::SharedMap::with_timeout).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Elements right now (a snapshot taken without the lock).
    ///
    /// # Examples
    /// ```
    /// use shmproc_collections::SharedVec;
    /// let v: SharedVec<u8> = SharedVec::new(4)?;
    /// assert!(v.is_empty());
    /// v.push(1)?;
    /// assert_eq!((v.len(), v.capacity()), (1, 4));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether the list is empty right now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most elements the list can hold.
    pub fn capacity(&self) -> usize {
        self.store.geometry.capacity as usize
    }

    /// Bytes of the arena that holds the serialized elements.
    pub fn arena_bytes(&self) -> usize {
        self.store.geometry.arena_bytes()
    }

    /// Removes every element.
    ///
    /// # Errors
    /// [`CollectionError::OwnerDied`] (once, nothing cleared), `Timeout`, `Deadlock`, `Io`.
    ///
    /// # Examples
    /// ```
    /// use shmproc_collections::SharedVec;
    /// let v: SharedVec<u8> = SharedVec::new(4)?;
    /// v.extend([1, 2])?;
    /// v.clear()?;
    /// assert!(v.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clear(&self) -> Result<(), CollectionError> {
        self.store.lock(self.timeout)?.clear_all();
        Ok(())
    }

    /// Removes the last element and returns its bytes decoded by `f`.
    fn pop_with<R>(
        &self,
        f: impl FnOnce(&[u8]) -> Result<R, CollectionError>,
    ) -> Result<Option<R>, CollectionError> {
        let mut locked = self.store.lock(self.timeout)?;
        let Some(last) = (locked.len() as usize).checked_sub(1) else {
            return Ok(None);
        };
        let Some(range) = locked.vec_range(last)? else {
            return Ok(None);
        };
        let value = f(locked.entry(range)?.1)?;
        locked.vec_pop(range)?;
        Ok(Some(value))
    }

    /// The segment's name, `None` when anonymous.
    pub fn name(&self) -> Option<&str> {
        self.store.segment().name()
    }

    /// Keeps a named list after its creator is done (remove it with `shmproc rm`).
    pub fn persist(&self) {
        self.store.segment().persist();
    }
}

impl<T: Serialize + DeserializeOwned> SharedVec<T> {
    /// Appends `value`.
    ///
    /// # Errors
    /// [`CollectionError::Full`], [`CollectionError::OutOfSpace`] or
    /// [`CollectionError::TooLarge`] (unchanged); `OwnerDied` (once, nothing done); `Encode`,
    /// `Corrupt`, `Timeout`, `Deadlock`, `Io`.
    ///
    /// # Examples
    /// ```
    /// use shmproc_collections::SharedVec;
    /// let v: SharedVec<String> = SharedVec::new(4)?;
    /// v.push("a".into())?;
    /// assert_eq!(v.to_vec()?, ["a"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn push(&self, value: T) -> Result<(), CollectionError> {
        with_encoded(&value, |bytes| {
            self.store.lock(self.timeout)?.vec_extend(&[bytes])
        })
    }

    /// Appends every element of `values`, all or none: if they do not all fit, nothing is
    /// appended (and a process killed midway appends none of them).
    ///
    /// # Errors
    /// As [`push`](SharedVec::push).
    ///
    /// # Examples
    /// ```
    /// use shmproc_collections::{CollectionError, SharedVec};
    /// let v: SharedVec<u8> = SharedVec::new(3)?;
    /// v.extend([1, 2])?;
    /// assert!(matches!(v.extend([3, 4]), Err(CollectionError::Full { .. })));
    /// assert_eq!(v.to_vec()?, [1, 2]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn extend(&self, values: impl IntoIterator<Item = T>) -> Result<(), CollectionError> {
        let items = values
            .into_iter()
            .map(|v| encode(&v))
            .collect::<Result<Vec<_>, _>>()?;
        let items: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
        self.store.lock(self.timeout)?.vec_extend(&items)
    }

    /// Removes and returns the last element (`None` when empty).
    ///
    /// # Errors
    /// `OwnerDied` (once, nothing done), `Decode`, `Corrupt`, `Timeout`, `Deadlock`, `Io`.
    ///
    /// # Examples
    /// ```
    /// use shmproc_collections::SharedVec;
    /// let v: SharedVec<u8> = SharedVec::new(4)?;
    /// v.push(1)?;
    /// assert_eq!(v.pop()?, Some(1));
    /// assert_eq!(v.pop()?, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pop(&self) -> Result<Option<T>, CollectionError> {
        self.pop_with(decode)
    }

    /// The element at `index` (`None` past the end).
    ///
    /// # Errors
    /// As [`pop`](SharedVec::pop).
    ///
    /// # Examples
    /// ```
    /// use shmproc_collections::SharedVec;
    /// let v: SharedVec<u8> = SharedVec::new(4)?;
    /// v.extend([5, 6])?;
    /// assert_eq!((v.get(1)?, v.get(2)?), (Some(6), None));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get(&self, index: usize) -> Result<Option<T>, CollectionError> {
        let locked = self.store.lock(self.timeout)?;
        match locked.vec_range(index)? {
            Some(range) => decode(locked.entry(range)?.1).map(Some),
            None => Ok(None),
        }
    }

    /// Replaces the element at `index`.
    ///
    /// # Errors
    /// [`CollectionError::OutOfBounds`] past the end; otherwise as [`push`](SharedVec::push).
    ///
    /// # Examples
    /// ```
    /// use shmproc_collections::SharedVec;
    /// let v: SharedVec<String> = SharedVec::new(4)?;
    /// v.push("a".into())?;
    /// v.set(0, "b".into())?;
    /// assert!(v.set(1, "c".into()).is_err());
    /// assert_eq!(v.to_vec()?, ["b"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set(&self, index: usize, value: T) -> Result<(), CollectionError> {
        with_encoded(&value, |bytes| {
            let mut locked = self.store.lock(self.timeout)?;
            let len = locked.len() as usize;
            if index >= len {
                return Err(CollectionError::OutOfBounds { index, len });
            }
            locked.vec_set(index, bytes)
        })
    }

    /// A snapshot of every element, in order, taken under the lock.
    ///
    /// # Errors
    /// As [`pop`](SharedVec::pop).
    pub fn to_vec(&self) -> Result<Vec<T>, CollectionError> {
        let locked = self.store.lock(self.timeout)?;
        let len = locked.len() as usize;
        let mut out = Vec::with_capacity(len.min(self.capacity()));
        for i in 0..len {
            let range = locked
                .vec_range(i)?
                .ok_or_else(|| CollectionError::Corrupt("length past the elements".into()))?;
            out.push(decode(locked.entry(range)?.1)?);
        }
        Ok(out)
    }
}
