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

/// A primitive's state type: what its segment holds and how the segment is labelled.
pub(crate) trait State: AtomicShareable + Sized {
    /// The segment kind.
    const KIND: Kind;
    /// The fingerprint name.
    const TYPE_NAME: &'static str;
}

/// The serde form of a primitive's state: a named segment travels by name, an anonymous one as
/// a file descriptor (only to spawned processes and Pool tasks; elsewhere it is an error).
pub(crate) struct Handle<S: State>(pub SharedRef<S>);

impl<S: State> serde::Serialize for Handle<S> {
    fn serialize<Z: serde::Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        self.0.segment().serialize_handle(serializer)
    }
}

impl<'de, S: State> serde::Deserialize<'de> for Handle<S> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let seg =
            Segment::deserialize_handle(deserializer, S::KIND, fingerprint::<S>(S::TYPE_NAME))?;
        SharedRef::new(Arc::new(seg), 0)
            .map(Handle)
            .map_err(serde::de::Error::custom)
    }
}

/// Implements serde for a primitive whose only shared part is `state: SharedRef<S>` built by
/// `from_state`.
macro_rules! serde_via_state {
    ($ty:ty, $from_state:expr) => {
        impl serde::Serialize for $ty {
            fn serialize<Z: serde::Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
                serde::Serialize::serialize(&$crate::shared::Handle(self.state.clone()), serializer)
            }
        }
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let handle: $crate::shared::Handle<_> =
                    serde::Deserialize::deserialize(deserializer)?;
                Ok($from_state(handle.0))
            }
        }
    };
}
pub(crate) use serde_via_state;
