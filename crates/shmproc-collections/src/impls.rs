//! What every handle has: `Clone` (same segment), `Debug`, and serde, so a map or vec can be
//! an argument or result of a spawned entry or Pool task — an anonymous one travels as a file
//! descriptor (only there), a named one by name; the receiver validates kind, types and
//! geometry.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use shmproc_shm::Kind;

use crate::layout::type_info;
use crate::store::Store;
use crate::{SharedMap, SharedVec};

impl<K, V> Clone for SharedMap<K, V> {
    fn clone(&self) -> Self {
        SharedMap {
            store: Arc::clone(&self.store),
            timeout: self.timeout,
            _types: PhantomData,
        }
    }
}

impl<K, V> fmt::Debug for SharedMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedMap")
            .field("name", &self.name())
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("arena_bytes", &self.arena_bytes())
            .finish()
    }
}

impl<K, V> Serialize for SharedMap<K, V> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.store.segment().serialize_handle(serializer)
    }
}

impl<'de, K, V> serde::Deserialize<'de> for SharedMap<K, V> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let store = Store::deserialize(deserializer, Kind::Map, type_info::<(K, V)>())?;
        Ok(Self::from_store(store))
    }
}

impl<T> Clone for SharedVec<T> {
    fn clone(&self) -> Self {
        SharedVec {
            store: Arc::clone(&self.store),
            timeout: self.timeout,
            _types: PhantomData,
        }
    }
}

impl<T> fmt::Debug for SharedVec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedVec")
            .field("name", &self.name())
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("arena_bytes", &self.arena_bytes())
            .finish()
    }
}

impl<T> Serialize for SharedVec<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.store.segment().serialize_handle(serializer)
    }
}

impl<'de, T> serde::Deserialize<'de> for SharedVec<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let store = Store::deserialize(deserializer, Kind::List, type_info::<T>())?;
        Ok(Self::from_store(store))
    }
}
