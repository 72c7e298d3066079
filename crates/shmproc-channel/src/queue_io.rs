//! `Queue`'s puts and gets: typed (serde + postcard) and raw bytes, each blocking, `_timeout`
//! and `try_`.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::Queue;
use crate::codec;
use crate::error::{RecvError, SendError, Stop};
use crate::record;
use crate::ring::Deadline;
use crate::scratch::Landing;

impl<T> Queue<T> {
    /// Appends `bytes` as one message, blocking while the queue is full.
    ///
    /// # Errors
    /// [`SendError::TooLarge`], [`SendError::Closed`] (this process closed the queue),
    /// [`SendError::Disconnected`] (shut down), [`SendError::Corrupt`].
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<(), SendError> {
        Ok(self.put_raw(bytes, Deadline::Never)?)
    }

    /// Like [`put_bytes`](Queue::put_bytes), failing with [`SendError::Timeout`] after `timeout`.
    ///
    /// # Errors
    /// As `put_bytes`, plus `Timeout`.
    pub fn put_bytes_timeout(&self, bytes: &[u8], timeout: Duration) -> Result<(), SendError> {
        Ok(self.put_raw(bytes, Deadline::after(timeout))?)
    }

    /// Like [`put_bytes`](Queue::put_bytes) without waiting: [`SendError::Full`] if no room.
    ///
    /// # Errors
    /// As `put_bytes`, plus `Full`.
    pub fn try_put_bytes(&self, bytes: &[u8]) -> Result<(), SendError> {
        Ok(self.put_raw(bytes, Deadline::Now)?)
    }

    /// Takes the oldest message's bytes, blocking while the queue is empty.
    ///
    /// # Errors
    /// [`RecvError::Disconnected`] once shut down and drained; [`RecvError::Corrupt`].
    pub fn get_bytes(&self) -> Result<Vec<u8>, RecvError> {
        self.get_vec(Deadline::Never)
    }

    /// Like [`get_bytes`](Queue::get_bytes), failing with [`RecvError::Timeout`] after `timeout`.
    ///
    /// # Errors
    /// As `get_bytes`, plus `Timeout`.
    pub fn get_bytes_timeout(&self, timeout: Duration) -> Result<Vec<u8>, RecvError> {
        self.get_vec(Deadline::after(timeout))
    }

    /// Like [`get_bytes`](Queue::get_bytes) without waiting: [`RecvError::Empty`] if none.
    ///
    /// # Errors
    /// As `get_bytes`, plus `Empty`.
    pub fn try_get_bytes(&self) -> Result<Vec<u8>, RecvError> {
        self.get_vec(Deadline::Now)
    }

    fn get_vec(&self, deadline: Deadline) -> Result<Vec<u8>, RecvError> {
        let mut out = Vec::new();
        self.get_into(deadline, &mut out)?;
        Ok(out)
    }

    fn put_raw(&self, bytes: &[u8], deadline: Deadline) -> Result<(), Stop> {
        record::put(&self.ring, Some(&self.me), self.policy, bytes, deadline)
    }

    fn get_into(&self, deadline: Deadline, out: &mut Vec<u8>) -> Result<(), Stop> {
        record::take_into_vec(&self.ring, Some(&self.me), self.policy, deadline, out)
    }

    fn get_landed(&self, deadline: Deadline, out: &mut Landing) -> Result<(), Stop> {
        record::take_into_landing(&self.ring, Some(&self.me), self.policy, deadline, out)
    }
}

impl<T: Serialize> Queue<T> {
    /// Appends `msg`, blocking while the queue is full.
    ///
    /// # Errors
    /// [`SendError::TooLarge`] (nothing written), [`SendError::Closed`] (this process closed
    /// the queue), [`SendError::Disconnected`] (shut down), [`SendError::Encode`],
    /// [`SendError::Corrupt`]. `msg` is borrowed: it stays the caller's.
    pub fn put(&self, msg: &T) -> Result<(), SendError> {
        codec::with_encoded(msg, |b| Ok(self.put_raw(b, Deadline::Never)?))
    }

    /// Like [`put`](Queue::put), failing with [`SendError::Timeout`] after `timeout`.
    ///
    /// # Errors
    /// As `put`, plus `Timeout`.
    pub fn put_timeout(&self, msg: &T, timeout: Duration) -> Result<(), SendError> {
        let deadline = Deadline::after(timeout);
        codec::with_encoded(msg, |b| Ok(self.put_raw(b, deadline)?))
    }

    /// Like [`put`](Queue::put) without waiting: [`SendError::Full`] if there is no room.
    ///
    /// # Errors
    /// As `put`, plus `Full`.
    pub fn try_put(&self, msg: &T) -> Result<(), SendError> {
        codec::with_encoded(msg, |b| Ok(self.put_raw(b, Deadline::Now)?))
    }
}

impl<T: DeserializeOwned> Queue<T> {
    /// Takes the oldest message, blocking while the queue is empty.
    ///
    /// # Errors
    /// [`RecvError::Disconnected`] once shut down and drained; [`RecvError::Decode`] (the message
    /// is consumed); [`RecvError::Corrupt`].
    pub fn get(&self) -> Result<T, RecvError> {
        codec::decode_landed(|l| Ok(self.get_landed(Deadline::Never, l)?))
    }

    /// Like [`get`](Queue::get), failing with [`RecvError::Timeout`] after `timeout`.
    ///
    /// # Errors
    /// As `get`, plus `Timeout`.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, RecvError> {
        let deadline = Deadline::after(timeout);
        codec::decode_landed(|l| Ok(self.get_landed(deadline, l)?))
    }

    /// Like [`get`](Queue::get) without waiting: [`RecvError::Empty`] if there is none.
    ///
    /// # Errors
    /// As `get`, plus `Empty`.
    pub fn try_get(&self) -> Result<T, RecvError> {
        codec::decode_landed(|l| Ok(self.get_landed(Deadline::Now, l)?))
    }
}
