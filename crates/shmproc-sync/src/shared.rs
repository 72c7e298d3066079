//! Creating and opening the segment that holds one synchronisation primitive's state.

use std::sync::Arc;

use shmproc_shm::{AtomicShareable, Kind, Segment, SegmentError, SharedRef, Spec, TypeInfo};

/// The fingerprint of a state type: its name, size and alignment (so a layout change or a
/// mix-up between primitives fails on open).
fn fingerprint<S>(name: &'static str) -> TypeInfo {
    TypeInfo {
        name,
        size: std::mem::size_of::<S>() as u32,
        align: std::mem::align_of::<S>() as u32,
    }
}

/// A new segment of `kind` holding one `S` (zeroed, then `init`), named if `name` is given.
pub(crate) fn create<S: AtomicShareable>(
    kind: Kind,
    type_name: &'static str,
    name: Option<&str>,
    init: impl FnOnce(&S),
) -> Result<SharedRef<S>, SegmentError> {
    let spec = Spec {
        kind,
        elem: fingerprint::<S>(type_name),
        payload_len: std::mem::size_of::<S>(),
    };
    let fill = |seg: &Segment| {
        init(seg.atomic::<S>(0)?);
        Ok(())
    };
    let seg = match name {
        Some(name) => Segment::create_named(name, &spec, fill)?,
        None => Segment::create_anonymous(&spec, fill)?,
    };
    SharedRef::new(Arc::new(seg), 0)
}

/// Opens the named segment, checking it holds an `S` of `kind`.
pub(crate) fn open<S: AtomicShareable>(
    kind: Kind,
    type_name: &'static str,
    name: &str,
) -> Result<SharedRef<S>, SegmentError> {
    let seg = Segment::open_named(name, kind, fingerprint::<S>(type_name))?;
    SharedRef::new(Arc::new(seg), 0)
}
