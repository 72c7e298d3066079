//! Validated shared-memory segments for shmproc, the platform seam (futex, memfd, `shm_open`)
//! and the liveness-and-membership layer the other shmproc crates build on: [`liveness`]
//! (who is alive, from kernel-held locks), [`Roster`] and [`Seat`] (who takes part, and
//! [`leave_all`] for leaving on exit), and [`watcher`] (untimed sleeps that cannot be lost).
//!
//! Every segment starts with a header (magic, layout version, kind, element type fingerprint,
//! payload length, creator pid and start time, ready flag). [`Segment::open_named`] checks the
//! file is private to this user, then validates all of the header and returns a typed
//! [`SegmentError`]; payload access goes through bounds- and alignment-checked accessors, so a
//! corrupt peer can make an operation fail but never make this process touch memory outside the
//! mapping. Memory is reserved at creation, so a full `/dev/shm` is an error from `create`,
//! never a SIGBUS later; every process holding a named segment holds a lock on its file, so
//! [`clean`] removes only segments nobody holds.
//!
//! # Examples
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use shmproc_shm::{Kind, Segment, Spec, TypeInfo};
//!
//! let spec = Spec { kind: Kind::Raw, elem: TypeInfo::none(), payload_len: 64 };
//! let seg = Segment::create_anonymous(&spec, |_| Ok(()))?;
//! let counter: &AtomicU64 = seg.atomic(0)?;
//! counter.fetch_add(1, Ordering::Relaxed);
//! assert_eq!(counter.load(Ordering::Relaxed), 1);
//! # Ok::<(), shmproc_shm::SegmentError>(())
//! ```

mod catalog;
mod error;
mod fork_lock;
#[doc(hidden)]
pub mod fuzzing;
mod header;
mod hooks;
pub mod liveness;
mod membership;
mod named;
mod roster;
mod segment;
mod shareable;
mod shared_ref;
pub mod sys;
mod transfer;
mod validate;
pub mod watcher;

pub use catalog::{clean, inspect, list, remove, HeaderSummary, SegmentInfo};
pub use error::SegmentError;
pub use fork_lock::{ForkLock, ForkLockGuard};
pub use header::{Kind, TypeInfo, PAYLOAD_OFFSET};
pub use hooks::register_once;
pub use membership::{leave_all, on_leave, Seat};
pub use named::OpenOptions;
pub use roster::{Roster, RosterFull, ROSTER_SLOTS};
pub use segment::{Segment, Spec, NAME_PREFIX};
pub use shareable::{AtomicShareable, Shareable};
pub use shared_ref::SharedRef;
pub use transfer::{
    collect_fds, collect_fds_for, descriptors_collected, deserialize_off_host, serialize_off_host,
    take_transfer_error, transfer_recipient, with_received_fds,
};
pub use validate::validate_name;
