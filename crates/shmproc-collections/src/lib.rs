//! Process-shared collections in place of Python's `multiprocessing.Manager`:
//! [`SharedMap<K, V>`] (`Manager().dict()`) and [`SharedVec<T>`] (`Manager().list()`).
//!
//! Python's manager keeps the collection in a server process and proxies every access over a
//! socket. Here the collection itself lives in one shared-memory segment: a hash table (or an
//! element table) over an arena of postcard-serialized entries, guarded by one robust
//! process-shared lock. A mutation is a lock acquisition and a copy; a lookup (`get`,
//! `contains_key`) is a copy checked against a sequence number, without the lock, whenever no
//! mutation is under way.
//!
//! # Examples
//! ```
//! use shmproc_collections::{SharedMap, SharedVec};
//! use shmproc_process::Process;
//!
//! let scores: SharedMap<String, u64> = SharedMap::new(1024)?;
//! let log: SharedVec<String> = SharedVec::new(1024)?;
//! let (s, l) = (scores.clone(), log.clone());
//! let child = Process::fork(move || {
//!     s.update("alice".into(), |old| old.unwrap_or(0) + 5).unwrap();
//!     l.push("alice scored".into()).unwrap();
//! })?;
//! assert!(child.join()?.success());
//! assert_eq!(scores.get(&"alice".into())?, Some(5));
//! assert_eq!(log.to_vec()?, ["alice scored"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Capacity
//! Fixed at creation, in entries and in arena bytes (`with_capacity`). Removed entries' bytes
//! are reused (a bitmap allocator: freed neighbours merge by themselves). A collection that
//! cannot take an entry refuses it with [`CollectionError::Full`] /
//! [`CollectionError::OutOfSpace`] and stays unchanged.
//!
//! # Who holds a collection, and how each one leaves
//! | holder | leaves by | effect |
//! |---|---|---|
//! | the creator | dropping its last handle | a named segment is unlinked (unless persisted); others keep their mapping |
//! | a forked child | returning, `_exit` | nothing (the mapping goes with the process) |
//! | a spawned process / Pool task | dropping the received handle | nothing |
//! | any holder | SIGKILL or abort, at any point | if inside a mutation: the next user rolls it back and gets [`CollectionError::OwnerDied`] once |
//!
//! # Crash consistency
//! Each mutation writes an undo record into the segment and publishes it before its first
//! change, and retires it after its last. A process killed in between leaves the record; the
//! next process to take the lock (from the dead holder) applies it, so the collection is as it
//! was before that mutation or after it, never half, and `len` always matches the entries.

mod arena;
mod codec;
#[cfg(test)]
mod corrupt_tests;
mod error;
mod impls;
mod journal;
mod layout;
mod map;
mod ops;
mod read;
mod store;
mod table;
#[doc(hidden)]
pub mod test_hooks;
mod vec;

pub use error::CollectionError;
pub use layout::DEFAULT_BYTES_PER_ENTRY;
pub use map::SharedMap;
pub use shmproc_shm::OpenOptions;
pub use vec::SharedVec;
