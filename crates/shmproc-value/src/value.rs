//! `Value<T>`: one shared value with its own robust lock.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use shmproc_shm::{Kind, OpenOptions, SegmentError, Shareable};
use shmproc_sync::{LockError, RawLock};

use crate::region::{ArrayGuard, Region, Wait};
use crate::AccessError;

/// A `T` in shared memory guarded by a robust process-shared lock, like Python's
/// `multiprocessing.Value`. Clones (and forked children) share the same value.
///
/// `get` and `set` each take the lock, so two processes doing `set(get()? + 1)` lose updates
/// (the classic race) but never tear a value or cause undefined behaviour; hold
/// [`lock`](Value::lock)'s guard for a read-modify-write.
///
/// # Examples
/// ```
/// use shmproc_value::Value;
/// let balance = Value::new(400_i64)?;
/// balance.set(balance.get()? + 100)?;   // two locked steps: racy across processes
/// *balance.lock().unwrap() += 1;        // one locked step: exact
/// assert_eq!(balance.get()?, 501);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # When a process dies
/// If it dies holding the lock, the next `lock*` returns [`LockError::OwnerDied`] with the
/// guard, and the next `get`/`set` returns [`AccessError::OwnerDied`] once.
pub struct Value<T: Shareable> {
    region: Region<T>,
}

impl<T: Shareable> Value<T> {
    /// A new value in an anonymous segment, shared with children forked afterwards.
    ///
    /// # Errors
    /// [`SegmentError::Io`] when the OS cannot provide the memory.
    pub fn new(value: T) -> Result<Self, SegmentError> {
        Ok(Value {
            region: Region::create(None, Kind::Value, &[value])?,
        })
    }

    /// A new named value any process of this user can [`open`](Value::open).
    ///
    /// # Errors
    /// [`SegmentError::AlreadyExists`], [`SegmentError::InvalidName`], or OS errors.
    pub fn create(name: &str, value: T) -> Result<Self, SegmentError> {
        Ok(Value {
            region: Region::create(Some(name), Kind::Value, &[value])?,
        })
    }

    /// Like [`create`](Value::create), shared as `options` say: with
    /// [`OpenOptions::allow_group`], the file is mode 0660 and processes of other users in its
    /// group can [`open_with`](Value::open_with) it.
    ///
    /// # Errors
    /// As [`create`](Value::create).
    ///
    /// # Examples
    /// ```
    /// use shmproc_value::{OpenOptions, Value};
    /// # let name = format!("doc-value-group-{}", std::process::id());
    /// let group = OpenOptions::new().allow_group(true);
    /// let v = Value::create_with(&name, 1_u32, &group)?;
    /// assert!(Value::<u32>::open(&name).is_err()); // not private: refused without the opt-in
    /// assert_eq!(Value::<u32>::open_with(&name, &group)?.get()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_with(name: &str, value: T, options: &OpenOptions) -> Result<Self, SegmentError> {
        Ok(Value {
            region: Region::create_with(Some(name), Kind::Value, &[value], options)?,
        })
    }

    /// Opens a named value, checking the file is private to this user and holds a `Value` of
    /// exactly this `T`.
    ///
    /// # Errors
    /// Any [`SegmentError`]: missing, not private, another kind or type, corrupt, …
    pub fn open(name: &str) -> Result<Self, SegmentError> {
        Value::open_with(name, &OpenOptions::new())
    }

    /// Like [`open`](Value::open), accepting what `options` allow (a file shared with the
    /// caller's group, with [`OpenOptions::allow_group`]).
    ///
    /// # Errors
    /// As [`open`](Value::open).
    pub fn open_with(name: &str, options: &OpenOptions) -> Result<Self, SegmentError> {
        Value::from_region(Region::open(name, Kind::Value, options)?)
    }

    fn from_region(region: Region<T>) -> Result<Self, SegmentError> {
        if region.len() != 1 {
            return Err(SegmentError::Corrupt {
                name: region.segment().name().unwrap_or("<anonymous>").to_owned(),
                reason: "a Value must hold exactly one element".into(),
            });
        }
        Ok(Value { region })
    }

    /// Reads the value under the lock.
    ///
    /// # Errors
    /// [`AccessError::OwnerDied`] once after a holder died; [`AccessError::Deadlock`] if this
    /// thread holds the lock through a guard.
    pub fn get(&self) -> Result<T, AccessError> {
        Ok(*self.lock()?)
    }

    /// Writes the value under the lock.
    ///
    /// # Errors
    /// As [`get`](Value::get).
    pub fn set(&self, value: T) -> Result<(), AccessError> {
        *self.lock()? = value;
        Ok(())
    }

    /// Locks the value; the guard derefs to `T`.
    ///
    /// # Errors
    /// [`LockError::OwnerDied`] (holding the guard) if the previous holder died;
    /// [`LockError::Deadlock`] if this thread holds it already.
    pub fn lock(&self) -> Result<ValueGuard<'_, T>, LockError<ValueGuard<'_, T>>> {
        self.acquire(Wait::Forever)
    }

    /// Locks the value if it is free right now.
    ///
    /// # Errors
    /// [`LockError::WouldBlock`] if held; otherwise as [`lock`](Value::lock).
    pub fn try_lock(&self) -> Result<ValueGuard<'_, T>, LockError<ValueGuard<'_, T>>> {
        self.acquire(Wait::Never)
    }

    /// Locks the value, giving up after `timeout` with [`LockError::Timeout`].
    ///
    /// # Errors
    /// As [`lock`](Value::lock), plus `Timeout`.
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<ValueGuard<'_, T>, LockError<ValueGuard<'_, T>>> {
        self.acquire(Wait::Until(Instant::now() + timeout))
    }

    fn acquire(&self, wait: Wait) -> Result<ValueGuard<'_, T>, LockError<ValueGuard<'_, T>>> {
        let wrap = |inner| ValueGuard { inner };
        self.region.acquire(wait).map(wrap).map_err(|e| e.map(wrap))
    }

    /// The value's lock word (Python's `get_lock()`), e.g. to build a `Condition` on it.
    pub fn raw_lock(&self) -> &RawLock {
        self.region.lock()
    }

    /// The segment's name, `None` when anonymous.
    pub fn name(&self) -> Option<&str> {
        self.region.segment().name()
    }

    /// Keeps a named value after its creator is done.
    pub fn persist(&self) {
        self.region.segment().persist();
    }
}

/// A `Value` can be an argument or result of a spawned entry or Pool task: an anonymous one
/// travels as a file descriptor (only there — elsewhere serializing it is an error), a named one
/// by name.
impl<T: Shareable> serde::Serialize for Value<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.region.segment().serialize_handle(serializer)
    }
}

impl<'de, T: Shareable> serde::Deserialize<'de> for Value<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let region = Region::deserialize(deserializer, Kind::Value)?;
        Value::from_region(region).map_err(serde::de::Error::custom)
    }
}

impl<T: Shareable> Clone for Value<T> {
    fn clone(&self) -> Self {
        Value {
            region: self.region.clone(),
        }
    }
}

impl<T: Shareable + fmt::Debug> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Value");
        d.field("name", &self.name());
        match self.try_lock() {
            Ok(guard) => d.field("value", &*guard),
            Err(_) => d.field("value", &format_args!("<locked>")),
        };
        d.finish()
    }
}

/// Holds a [`Value`]'s lock; derefs to the value.
pub struct ValueGuard<'a, T> {
    inner: ArrayGuard<'a, T>,
}

impl<T> Deref for ValueGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner[0]
    }
}

impl<T> DerefMut for ValueGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.inner[0]
    }
}

impl<T: fmt::Debug> fmt::Debug for ValueGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ValueGuard").field(&**self).finish()
    }
}
