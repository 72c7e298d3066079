//! `Queue`'s `Clone`, `Debug` and serde impls.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;

use super::Queue;
use crate::transfer;

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            ring: self.ring.clone(),
            me: Arc::clone(&self.me),
            policy: self.policy,
            _msg: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.name())
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .field("closed", &self.is_closed())
            .field("shut_down", &self.is_shutdown())
            .finish()
    }
}

/// A `Queue` can be an argument or result of a spawned entry or Pool task, or a message: an
/// anonymous one travels as a file descriptor (only to spawned processes and Pool tasks;
/// serializing it anywhere else is an error), a named one by name. A queue has no peers to
/// track, so the received handle is simply another handle to the same ring.
impl<T> Serialize for Queue<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        transfer::serialize_queue(self.me.state(), serializer)
    }
}

impl<'de, T> serde::Deserialize<'de> for Queue<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let received = transfer::deserialize_queue::<T, D>(deserializer)?;
        Queue::received(received, 0).map_err(serde::de::Error::custom)
    }
}
