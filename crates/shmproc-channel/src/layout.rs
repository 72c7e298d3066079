//! Sizes and segments shared by `Queue` and `Pipe`.

use std::sync::Arc;
use std::time::Duration;

use shmproc_shm::{Kind, Segment, SegmentError, Spec, TypeInfo};

use crate::ring::WaitPolicy;

/// Smallest ring (bytes of data).
pub(crate) const MIN_CAPACITY: usize = crate::ring::MIN_RING as usize;
/// Largest ring (bytes of data).
pub(crate) const MAX_CAPACITY: usize = 1 << 40;

/// Pause hints a blocked side spends polling before it sleeps (tens of microseconds: about
/// what a futex wake-up costs, so a peer that answers within that time is never slept on).
pub(crate) const SPIN_BUDGET: u32 = 4_096;

/// The fingerprint recorded for a channel of messages of type `T` (checked on `open`).
pub(crate) fn message_type<T>() -> TypeInfo {
    TypeInfo {
        name: std::any::type_name::<T>(),
        size: 0,
        align: 1,
    }
}

/// `bytes` rounded up to a power of two within the supported range.
pub(crate) fn ring_capacity(bytes: usize) -> Result<u64, SegmentError> {
    if bytes > MAX_CAPACITY {
        return Err(SegmentError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("channel capacity {bytes} exceeds the maximum of {MAX_CAPACITY} bytes"),
        )));
    }
    Ok(bytes.max(MIN_CAPACITY).next_power_of_two() as u64)
}

/// Creates a zeroed segment (an all-zero ring is empty and open), named if `name` is given.
pub(crate) fn create_segment(
    name: Option<&str>,
    kind: Kind,
    elem: TypeInfo,
    payload_len: usize,
) -> Result<Arc<Segment>, SegmentError> {
    let spec = Spec {
        kind,
        elem,
        payload_len,
    };
    let seg = match name {
        Some(name) => Segment::create_named(name, &spec, |_| Ok(()))?,
        None => Segment::create_anonymous(&spec, |_| Ok(()))?,
    };
    Ok(Arc::new(seg))
}

/// A wait policy with `spins` polls `pause` hints apart and naps of `nap`.
pub(crate) fn policy(spins: u32, pause: u32, nap: Duration) -> WaitPolicy {
    WaitPolicy { spins, pause, nap }
}
