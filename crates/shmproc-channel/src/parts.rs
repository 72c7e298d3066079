//! A pipe's segment and rings, before they are handed out as ends: how a pipe segment is laid
//! out (the two ends' shared state, then one ring per direction) and how a [`Link`] is made
//! for one end. Used by `pipe` for new pipes and by `transfer` for received ends.

use std::sync::Arc;

use shmproc_shm::{Kind, Segment, SegmentError, SharedRef};
use shmproc_sync::LIVENESS_POLL;

use crate::end::{EndLocal, EndState, Hold};
use crate::layout::{self, SPIN_BUDGET};
use crate::link::Link;
use crate::ring::{self, Ring};

/// Pause between polls of a waiting pipe side: short, a round trip is latency bound.
const PIPE_PAUSE: u32 = 4;
/// Bytes of one end's shared state at the start of a pipe segment.
const END_SIZE: usize = std::mem::size_of::<EndState>();

/// A pipe segment and its rings, before they are handed out as ends.
pub(crate) struct Parts {
    seg: Arc<Segment>,
    rings: Vec<Ring>,
}

impl Parts {
    /// The parts of an opened segment holding `rings` rings (2: duplex, 1: simplex).
    pub(crate) fn opened(seg: Segment, rings: usize) -> Result<Parts, SegmentError> {
        let per_ring = seg.payload_len().saturating_sub(2 * END_SIZE) / rings;
        let cap = per_ring.saturating_sub(ring::footprint(0)) as u64;
        Parts::from_segment(Arc::new(seg), cap, rings)
    }

    /// A new pipe segment for messages of type `T` (named if `name` is given) holding `rings`
    /// rings of `bytes` each (rounded up to a supported capacity).
    pub(crate) fn create<T>(
        name: Option<&str>,
        bytes: usize,
        rings: usize,
    ) -> Result<Parts, SegmentError> {
        let cap = layout::ring_capacity(bytes)?;
        let len = 2 * END_SIZE + rings * ring::footprint(cap);
        let seg = layout::create_segment(name, Kind::Pipe, layout::message_type::<T>(), len)?;
        Parts::from_segment(seg, cap, rings)
    }

    /// The `rings` rings of capacity `cap` after the ends' state in `seg`.
    fn from_segment(seg: Arc<Segment>, cap: u64, rings: usize) -> Result<Parts, SegmentError> {
        let rings = (0..rings)
            .map(|i| {
                Ring::new(
                    Arc::clone(&seg),
                    2 * END_SIZE + i * ring::footprint(cap),
                    cap,
                )
            })
            .collect::<Result<_, _>>()?;
        Ok(Parts { seg, rings })
    }

    /// New end `me`, sending on ring `tx` and receiving on `rx`, held by this process.
    pub(crate) fn link(
        &self,
        me: usize,
        tx: Option<usize>,
        rx: Option<usize>,
    ) -> Result<Link, SegmentError> {
        self.link_as(me, tx, rx, EndLocal::hold)
    }

    /// End `me`, sending on ring `tx` and receiving on `rx`, this process's hold taken by
    /// `hold` ([`EndLocal::hold`] for a new end, [`EndLocal::adopt`] for a received one).
    pub(crate) fn link_as(
        &self,
        me: usize,
        tx: Option<usize>,
        rx: Option<usize>,
        hold: Hold,
    ) -> Result<Link, SegmentError> {
        let state = SharedRef::new(Arc::clone(&self.seg), me * END_SIZE)?;
        Ok(Link {
            tx: tx.map(|i| self.rings[i].clone()),
            rx: rx.map(|i| self.rings[i].clone()),
            me: hold(state, self.rings.clone()).map_err(SegmentError::TooManyProcesses)?,
            peer: SharedRef::new(Arc::clone(&self.seg), (1 - me) * END_SIZE)?,
            policy: layout::policy(SPIN_BUDGET / PIPE_PAUSE, PIPE_PAUSE, LIVENESS_POLL),
        })
    }
}
