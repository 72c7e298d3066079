//! `SharedMap<K, V>`: a hash map in one shared segment.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use shmproc_shm::{Kind, OpenOptions, SegmentError};

use crate::codec::{decode, with_encoded};
use crate::layout::{type_info, Geometry, DEFAULT_BYTES_PER_ENTRY};
use crate::read::{Lookup, READ_BUF};
use crate::store::Store;
use crate::table::hash;
use crate::CollectionError;

/// A hash map shared by processes, in place of Python's `Manager().dict()`: keys and values
/// are stored serialized (postcard) in one shared segment, so an access is a lock and a copy,
/// not a round trip to a server process. Clones (and forked children, and spawned processes it
/// is passed to) share the same map.
///
/// Capacity is fixed at creation: `capacity` entries and an arena of bytes for their
/// serialized forms. Removing an entry frees its bytes for reuse. An insert that does not fit
/// fails with [`CollectionError::Full`] or [`CollectionError::OutOfSpace`] and changes nothing.
/// Keys are equal when their serialized bytes are (so `0.0` and `-0.0` are two keys).
///
/// # Examples
/// ```
/// use shmproc_collections::SharedMap;
/// use shmproc_process::Process;
///
/// let m: SharedMap<String, u64> = SharedMap::new(1024)?;
/// m.insert("a".into(), 1)?;
/// let child = {
///     let m = m.clone();
///     Process::fork(move || {
///         m.update("a".into(), |old| old.unwrap_or(0) + 10).unwrap();
///         m.insert("b".into(), 2).unwrap();
///     })?
/// };
/// assert!(child.join()?.success());
/// assert_eq!(m.get(&"a".into())?, Some(11));
/// let mut all = m.iter()?;
/// all.sort();
/// assert_eq!(all, [("a".to_string(), 11), ("b".to_string(), 2)]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # When a process dies
/// Every mutation is journaled: a process killed at any point inside `insert`, `remove`,
/// `update` or `clear` leaves the map as it was before that call or after it, never half
/// done. The next call from any process that takes the lock undoes the half-done call and
/// returns [`CollectionError::OwnerDied`] once, without doing its own operation: retry it.
/// (`get` and `contains_key` take the lock only when they must: while a mutation is under way,
/// or was left half done, they do.)
pub struct SharedMap<K, V> {
    pub(crate) store: Arc<Store>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) _types: PhantomData<Types<K, V>>,
}

/// Keys and values only cross as bytes: the handle is Send + Sync whatever `K` and `V` are.
type Types<K, V> = fn(K, V) -> (K, V);

impl<K, V> SharedMap<K, V> {
    /// A map of up to `capacity` entries, with [`DEFAULT_BYTES_PER_ENTRY`] bytes of arena per
    /// entry, in an anonymous segment shared with children forked afterwards.
    ///
    /// # Errors
    /// [`SegmentError::Io`] when the OS cannot provide the memory or the size is absurd.
    pub fn new(capacity: usize) -> Result<Self, SegmentError> {
        SharedMap::with_capacity(capacity, capacity.saturating_mul(DEFAULT_BYTES_PER_ENTRY))
    }

    /// A map of up to `entries` entries whose serialized keys and values take up to `bytes`
    /// bytes in all (each entry takes 8 bytes more, rounded up to a multiple of 8).
    ///
    /// # Errors
    /// As [`new`](SharedMap::new).
    ///
    /// # Examples
    /// ```
    /// use shmproc_collections::{CollectionError, SharedMap};
    /// let m: SharedMap<u32, String> = SharedMap::with_capacity(8, 64)?;
    /// let big = "x".repeat(100);
    /// assert!(matches!(m.insert(1, big), Err(CollectionError::TooLarge { .. })));
    /// assert!(m.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_capacity(entries: usize, bytes: usize) -> Result<Self, SegmentError> {
        Self::made(None, entries, bytes, &OpenOptions::new())
    }

    /// A new named map (capacity as [`new`](SharedMap::new)) that any process of this user
    /// can [`open`](SharedMap::open).
    ///
    /// # Errors
    /// [`SegmentError::AlreadyExists`], [`SegmentError::InvalidName`], or OS errors.
    pub fn create(name: &str, capacity: usize) -> Result<Self, SegmentError> {
        let bytes = capacity.saturating_mul(DEFAULT_BYTES_PER_ENTRY);
        Self::made(Some(name), capacity, bytes, &OpenOptions::new())
    }

    /// Like [`create`](SharedMap::create), with capacity as
    /// [`with_capacity`](SharedMap::with_capacity) and sharing as `options` say.
    ///
    /// # Errors
    /// As [`create`](SharedMap::create).
    pub fn create_with(
        name: &str,
        entries: usize,
        bytes: usize,
        options: &OpenOptions,
    ) -> Result<Self, SegmentError> {
        Self::made(Some(name), entries, bytes, options)
    }

    /// Opens a named map, checking it is a `SharedMap` of exactly these `K` and `V` (full
    /// type names and layout) with a sane geometry.
    ///
    /// # Errors
    /// Any [`SegmentError`]: missing, not private, another kind or type
    /// ([`SegmentError::WrongType`]), corrupt, …
    ///
    /// # Examples
    /// ```
    /// use shmproc_collections::SharedMap;
    /// # let name = format!("doc-map-open-{}", std::process::id());
    /// let m: SharedMap<String, u64> = SharedMap::create(&name, 16)?;
    /// m.insert("k".into(), 7)?;
    /// let same: SharedMap<String, u64> = SharedMap::open(&name)?;
    /// assert_eq!(same.get(&"k".into())?, Some(7));
    /// assert!(SharedMap::<String, i64>::open(&name).is_err()); // another value type
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(name: &str) -> Result<Self, SegmentError> {
        Self::open_with(name, &OpenOptions::new())
    }

    /// Like [`open`](SharedMap::open), accepting what `options` allow.
    ///
    /// # Errors
    /// As [`open`](SharedMap::open).
    pub fn open_with(name: &str, options: &OpenOptions) -> Result<Self, SegmentError> {
        let store = Store::open(name, Kind::Map, type_info::<(K, V)>(), options)?;
        Ok(Self::from_store(store))
    }

    fn made(
        name: Option<&str>,
        entries: usize,
        bytes: usize,
        options: &OpenOptions,
    ) -> Result<Self, SegmentError> {
        let geometry = Geometry::map(entries, bytes)?;
        let store = Store::create(name, Kind::Map, type_info::<(K, V)>(), geometry, options)?;
        Ok(Self::from_store(store))
    }

    /// The shared state, for the corruption tests.
    #[cfg(test)]
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn from_store(store: Arc<Store>) -> Self {
        SharedMap {
            store,
            timeout: None,
            _types: PhantomData,
        }
    }

    /// This handle gives up waiting for the map's lock after `timeout` with
    /// [`CollectionError::Timeout`] (by default it waits as long as the holder lives; a dead
    /// holder is noticed either way). `Duration::ZERO` makes every call a `try_` call: it fails
    /// at once while another process holds the lock.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use shmproc_collections::SharedMap;
    /// let m: SharedMap<u8, u8> = SharedMap::new(4)?.with_timeout(Duration::from_secs(1));
    /// m.insert(1, 2)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Entries right now (a snapshot taken without the lock).
    ///
    /// # Examples
    /// ```
    /// use shmproc_collections::SharedMap;
    /// let m: SharedMap<u8, u8> = SharedMap::new(4)?;
    /// assert!(m.is_empty());
    /// m.insert(1, 1)?;
    /// assert_eq!((m.len(), m.capacity()), (1, 4));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether the map holds no entry right now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most entries the map can hold.
    pub fn capacity(&self) -> usize {
        self.store.geometry.capacity as usize
    }

    /// Bytes of the arena that holds the serialized entries.
    pub fn arena_bytes(&self) -> usize {
        self.store.geometry.arena_bytes()
    }

    /// Removes every entry.
    ///
    /// # Errors
    /// [`CollectionError::OwnerDied`] (once, nothing cleared), `Timeout`, `Deadlock`, `Io`.
    ///
    /// # Examples
    /// ```
    /// use shmproc_collections::SharedMap;
    /// let m: SharedMap<u8, u8> = SharedMap::new(4)?;
    /// m.insert(1, 1)?;
    /// m.clear()?;
    /// assert!(m.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clear(&self) -> Result<(), CollectionError> {
        self.store.lock(self.timeout)?.clear_all();
        Ok(())
    }

    /// The segment's name, `None` when anonymous.
    pub fn name(&self) -> Option<&str> {
        self.store.segment().name()
    }

    /// Keeps a named map after its creator is done (remove it with `shmproc rm`).
    pub fn persist(&self) {
        self.store.segment().persist();
    }
}

impl<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> SharedMap<K, V> {
    /// Sets `key` to `value`; returns the value it had.
    ///
    /// # Errors
    /// [`CollectionError::Full`], [`CollectionError::OutOfSpace`] or
    /// [`CollectionError::TooLarge`] (the map unchanged); `OwnerDied` (once, nothing done);
    /// `Encode`, `Decode`, `Corrupt`, `Timeout`, `Deadlock`, `Io`.
    ///
    /// # Examples
    /// ```
    /// use shmproc_collections::SharedMap;
    /// let m: SharedMap<String, u64> = SharedMap::new(4)?;
    /// assert_eq!(m.insert("a".into(), 1)?, None);
    /// assert_eq!(m.insert("a".into(), 2)?, Some(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn insert(&self, key: K, value: V) -> Result<Option<V>, CollectionError> {
        self.write(&key, |old| Ok((old, value))).map(|(old, _)| old)
    }

    /// Atomically replaces the value of `key` with `f(old value)` (`None` if absent) and
    /// returns the new value: no other process reads or writes the map in between, so two
    /// processes counting with `update` never lose an increment. `f` runs under the map's lock:
    /// keep it short and do not use this map inside it ([`CollectionError::Deadlock`]). If `f`
    /// panics, the map is unchanged.
    ///
    /// # Errors
    /// As [`insert`](SharedMap::insert).
    ///
    /// # Examples
    /// ```
    /// use shmproc_collections::SharedMap;
    /// let hits: SharedMap<String, u64> = SharedMap::new(16)?;
    /// hits.update("/".into(), |n| n.unwrap_or(0) + 1)?;
    /// assert_eq!(hits.update("/".into(), |n| n.unwrap_or(0) + 1)?, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn update(&self, key: K, f: impl FnOnce(Option<V>) -> V) -> Result<V, CollectionError> {
        self.write(&key, |old| Ok((None, f(old))))
            .map(|(_, new)| new)
    }

    /// Looks `key` up, computes `(returned old, new value)` from its old value, stores the new
    /// value; returns both.
    fn write(
        &self,
        key: &K,
        f: impl FnOnce(Option<V>) -> Result<(Option<V>, V), CollectionError>,
    ) -> Result<(Option<V>, V), CollectionError> {
        with_encoded(key, |kb| {
            let h = hash(kb);
            let mut locked = self.store.lock(self.timeout)?;
            let probe = locked.probe(h, kb)?;
            let old = match probe.found {
                Some((_, range)) => Some(decode::<V>(locked.entry(range)?.1)?),
                None => None,
            };
            let (old, new) = f(old)?;
            with_encoded(&new, |vb| locked.map_put(h, kb, vb, probe))?;
            Ok((old, new))
        })
    }

    /// The value of `key`, if present. No allocation besides the value for a small key, and no
    /// lock while no mutation is under way: the entry (up to 256 bytes) is copied out under a
    /// sequence number and the copy kept only if no writer changed anything meanwhile;
    /// otherwise one lock acquisition.
    ///
    /// # Errors
    /// `OwnerDied` (once), `Encode`, `Decode`, `Corrupt`, `Timeout`, `Deadlock`, `Io`.
    ///
    /// # Examples
    /// ```
    /// use shmproc_collections::SharedMap;
    /// let m: SharedMap<String, u64> = SharedMap::new(4)?;
    /// m.insert("a".into(), 1)?;
    /// assert_eq!(m.get(&"a".into())?, Some(1));
    /// assert_eq!(m.get(&"b".into())?, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get(&self, key: &K) -> Result<Option<V>, CollectionError> {
        with_encoded(key, |kb| {
            let h = hash(kb);
            let mut buf = [0u8; READ_BUF];
            match self.store.lookup_lock_free(h, kb, &mut buf) {
                Lookup::Found { start, end } => return decode(&buf[start..end]).map(Some),
                Lookup::Absent => return Ok(None),
                Lookup::UseLock => {}
            }
            let locked = self.store.lock(self.timeout)?;
            match locked.probe(h, kb)?.found {
                Some((_, range)) => decode(locked.entry(range)?.1).map(Some),
                None => Ok(None),
            }
        })
    }

    /// Whether `key` is present.
    ///
    /// # Errors
    /// As [`get`](SharedMap::get).
    ///
    /// # Examples
    /// ```
    /// use shmproc_collections::SharedMap;
    /// let m: SharedMap<u32, ()> = SharedMap::new(4)?;
    /// m.insert(7, ())?;
    /// assert!(m.contains_key(&7)? && !m.contains_key(&8)?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn contains_key(&self, key: &K) -> Result<bool, CollectionError> {
        with_encoded(key, |kb| {
            let h = hash(kb);
            match self.store.lookup_lock_free(h, kb, &mut [0u8; READ_BUF]) {
                Lookup::Found { .. } => return Ok(true),
                Lookup::Absent => return Ok(false),
                Lookup::UseLock => {}
            }
            let locked = self.store.lock(self.timeout)?;
            Ok(locked.probe(h, kb)?.found.is_some())
        })
    }

    /// Removes `key`; returns its value. Its bytes are free for new entries at once.
    ///
    /// # Errors
    /// As [`get`](SharedMap::get).
    ///
    /// # Examples
    /// ```
    /// use shmproc_collections::SharedMap;
    /// let m: SharedMap<u32, String> = SharedMap::new(4)?;
    /// m.insert(1, "one".into())?;
    /// assert_eq!(m.remove(&1)?.as_deref(), Some("one"));
    /// assert_eq!(m.remove(&1)?, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remove(&self, key: &K) -> Result<Option<V>, CollectionError> {
        with_encoded(key, |kb| {
            let mut locked = self.store.lock(self.timeout)?;
            let Some((bucket, range)) = locked.probe(hash(kb), kb)?.found else {
                return Ok(None);
            };
            let value = decode(locked.entry(range)?.1)?;
            locked.map_remove(bucket, range)?;
            Ok(Some(value))
        })
    }

    /// A snapshot of every entry (in no particular order), taken under the lock: its length
    /// is the map's length at that moment.
    ///
    /// # Errors
    /// As [`get`](SharedMap::get).
    pub fn iter(&self) -> Result<Vec<(K, V)>, CollectionError> {
        self.snapshot(|k, v| Ok((decode(k)?, decode(v)?)))
    }

    /// A snapshot of the keys (in no particular order).
    ///
    /// # Errors
    /// As [`get`](SharedMap::get).
    ///
    /// # Examples
    /// ```
    /// use shmproc_collections::SharedMap;
    /// let m: SharedMap<u32, u32> = SharedMap::new(4)?;
    /// m.insert(1, 10)?;
    /// m.insert(2, 20)?;
    /// let (mut keys, mut values) = (m.keys()?, m.values()?);
    /// keys.sort();
    /// values.sort();
    /// assert_eq!((keys, values), (vec![1, 2], vec![10, 20]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn keys(&self) -> Result<Vec<K>, CollectionError> {
        self.snapshot(|k, _| decode(k))
    }

    /// A snapshot of the values (in no particular order).
    ///
    /// # Errors
    /// As [`get`](SharedMap::get).
    pub fn values(&self) -> Result<Vec<V>, CollectionError> {
        self.snapshot(|_, v| decode(v))
    }

    fn snapshot<T>(
        &self,
        each: impl Fn(&[u8], &[u8]) -> Result<T, CollectionError>,
    ) -> Result<Vec<T>, CollectionError> {
        let locked = self.store.lock(self.timeout)?;
        let mut out = Vec::with_capacity(locked.len() as usize);
        for range in locked.live() {
            let (k, v) = locked.entry(range?)?;
            out.push(each(k, v)?);
        }
        Ok(out)
    }
}
