//! Validated shared-memory segments for shmproc, the platform seam (futex, memfd, `shm_open`)
//! and the liveness-and-membership layer the other shmproc crates build on: [`liveness`]
//! (who is alive, from kernel-held locks), [`Roster`] and [`Seat`] (who takes part, and
//! [`leave_all`] for leaving on exit), and [`watcher`] (untimed sleeps that cannot be lost).
//!
//! Every segment starts with a header (magic, layout version, kind, element type fingerprint,
//! payload length, creator pid and start time, ready flag). [`Segment::open_named`] validates
//! all of it and returns a typed [`SegmentError`]; payload access goes through bounds- and
//! alignment-checked accessors, so a corrupt peer can make an operation fail but never make this
//! process touch memory outside the mapping.
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
#[doc(hidden)]
pub mod fuzzing;
mod header;
mod hooks;
pub mod liveness;
mod membership;
mod roster;
mod segment;
mod shareable;
mod shared_ref;
pub mod sys;
mod transfer;
pub mod watcher;

pub use catalog::{clean, inspect, list, remove, HeaderSummary, SegmentInfo};
pub use error::SegmentError;
pub use header::{Kind, TypeInfo, PAYLOAD_OFFSET};
pub use hooks::register_once;
pub use membership::{leave_all, on_leave, Seat};
pub use roster::{Roster, RosterFull, ROSTER_SLOTS};
pub use segment::{validate_name, Segment, Spec, NAME_PREFIX};
pub use shareable::{AtomicShareable, Shareable};
pub use shared_ref::SharedRef;
pub use transfer::{
    collect_fds, collect_fds_for, take_transfer_error, transfer_recipient, with_received_fds,
};
