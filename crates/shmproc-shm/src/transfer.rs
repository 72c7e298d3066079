//! Passing segments to other processes inside serialized handles.
//!
//! A named segment travels as its name and is re-opened (and validated) on the other side. An
//! anonymous segment has no name: it travels as a file descriptor. While a handle is serialized
//! inside [`collect_fds`] (what `Process::spawn` and `Pool` do), the segment's memfd is
//! duplicated into the collector and only its index is written; the receiver runs
//! [`with_received_fds`] with the descriptors that came along (inherited or `SCM_RIGHTS`) and
//! maps them again, validating the header. Serializing an anonymous handle anywhere else is an
//! error, never a handle that silently points nowhere.

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::os::fd::OwnedFd;

use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::segment::PASSED_LABEL;
use crate::validate::check_kind_and_type;
use crate::{sys, Kind, Segment, SegmentError, TypeInfo};

thread_local! {
    static OUTGOING: RefCell<Option<Vec<OwnedFd>>> = const { RefCell::new(None) };
    static INCOMING: RefCell<Option<Vec<OwnedFd>>> = const { RefCell::new(None) };
    static LAST_ERROR: RefCell<Option<String>> = const { RefCell::new(None) };
    static RECIPIENT: Cell<Option<u32>> = const { Cell::new(None) };
    static OFF_HOST: Cell<bool> = const { Cell::new(false) };
    static FROM_OFF_HOST: Cell<bool> = const { Cell::new(false) };
    /// Descriptors ever collected on this thread (see [`descriptors_collected`]).
    static COLLECTED: Cell<u64> = const { Cell::new(0) };
}

/// The message of the last handle (de)serialization error on this thread, taken. Formats such
/// as postcard drop custom error messages; call this after one fails to get ours back.
pub fn take_transfer_error() -> Option<String> {
    LAST_ERROR.with(|e| e.borrow_mut().take())
}

fn remember(message: String) -> String {
    LAST_ERROR.with(|e| *e.borrow_mut() = Some(message.clone()));
    message
}

/// What is written for a segment inside a serialized handle.
#[derive(Serialize, Deserialize)]
enum Wire {
    /// A named segment: open it by name.
    Named(String),
    /// An anonymous segment: descriptor number `.0` of those sent along.
    Passed(u32),
}

const NOT_PASSABLE: &str = "an anonymous shared segment (made by `new`) can only be passed as an \
     argument or result of Process::spawn or a Pool task; to share it with an unrelated process, \
     create it by name (`create(name, ..)`) and pass that";

const OFF_HOST_MESSAGE: &str = "a shared-memory handle (a Value, Array, Lock, Queue, Pipe end, \
     SharedMap, … named or not) cannot leave its host: this message may be read on another \
     machine, where the name would open another segment or none; pass the data itself";

/// Runs `f` (which serializes a message that may be read on another host, such as a broker
/// pool's task) so that any shared-memory handle in it fails to serialize, with an error saying
/// it cannot leave its host, instead of travelling as a name that means another segment there.
pub fn serialize_off_host<R>(f: impl FnOnce() -> R) -> R {
    /// Puts the outer setting back, also when `f` unwinds.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            OFF_HOST.with(|o| o.set(self.0));
        }
    }
    let _restore = Restore(OFF_HOST.with(|o| o.replace(true)));
    f()
}

/// Runs `f` (which deserializes a message that may come from another host, such as a broker
/// pool's result) so that any shared-memory handle in it fails to deserialize, instead of
/// opening whatever segment has that name on this host.
pub fn deserialize_off_host<R>(f: impl FnOnce() -> R) -> R {
    /// Puts the outer setting back, also when `f` unwinds.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            FROM_OFF_HOST.with(|o| o.set(self.0));
        }
    }
    let _restore = Restore(FROM_OFF_HOST.with(|o| o.replace(true)));
    f()
}

/// Runs `f` (which serializes handles) with a descriptor collector installed on this thread, and
/// returns its result with the descriptors of the anonymous segments it serialized, in index
/// order. Nested calls get their own collector.
pub fn collect_fds<R>(f: impl FnOnce() -> R) -> (R, Vec<OwnedFd>) {
    collect_fds_for(None, f)
}

/// How many descriptors [`collect_fds`] collectors have collected on this thread so far, in
/// all: a caller serializing many values in one collector compares it before and after each
/// value to tell which of them carried handles, without a collector per value (a cheap
/// thread-local read, done once per value).
pub fn descriptors_collected() -> u64 {
    COLLECTED.with(Cell::get)
}

/// Like [`collect_fds`], for a message going to the process `recipient` (when known): handles
/// that track their holders (pipe ends) can register it before the message leaves.
pub fn collect_fds_for<R>(recipient: Option<u32>, f: impl FnOnce() -> R) -> (R, Vec<OwnedFd>) {
    let mut scope = Outgoing {
        outer: OUTGOING.with(|c| c.replace(Some(Vec::new()))),
        outer_recipient: RECIPIENT.with(|r| r.replace(recipient)),
        restored: false,
    };
    let result = f();
    let fds = scope.restore().unwrap_or_default();
    (result, fds)
}

/// Puts back the collector and recipient that were installed before a [`collect_fds_for`],
/// also when `f` unwinds (its descriptors are then closed): a panicking `Serialize` impl must
/// not leave this thread collecting, or a later serialization outside any transfer would
/// succeed and hand its descriptors to nobody.
struct Outgoing {
    outer: Option<Vec<OwnedFd>>,
    outer_recipient: Option<u32>,
    restored: bool,
}

impl Outgoing {
    /// Reinstates the outer collector and recipient; returns ours.
    fn restore(&mut self) -> Option<Vec<OwnedFd>> {
        self.restored = true;
        RECIPIENT.with(|r| r.set(self.outer_recipient));
        OUTGOING.with(|c| c.replace(self.outer.take()))
    }
}

impl Drop for Outgoing {
    fn drop(&mut self) {
        if !self.restored {
            drop(self.restore()); // unwinding out of `f`: close what it collected
        }
    }
}

/// The pid of the process the handles being serialized on this thread go to, if known: inside
/// [`collect_fds_for`] with a recipient (`Process::spawn` arguments, spawned entries' results).
pub fn transfer_recipient() -> Option<u32> {
    RECIPIENT.with(Cell::get)
}

/// Runs `f` (which deserializes handles) with `fds` — the descriptors sent along by the peer's
/// [`collect_fds`] — available to the handles; they are closed afterwards (each handle keeps
/// its own duplicate).
pub fn with_received_fds<R>(fds: Vec<OwnedFd>, f: impl FnOnce() -> R) -> R {
    /// Puts back the outer descriptors (and closes ours), also when `f` unwinds.
    struct Incoming(Option<Vec<OwnedFd>>);
    impl Drop for Incoming {
        fn drop(&mut self) {
            let outer = self.0.take();
            drop(INCOMING.with(|c| c.replace(outer)));
        }
    }
    let _scope = Incoming(INCOMING.with(|c| c.replace(Some(fds))));
    f()
}

impl Segment {
    /// Serializes a handle to this segment: its name, or (inside [`collect_fds`]) the index of
    /// its descriptor.
    ///
    /// # Errors
    /// Any handle inside [`serialize_off_host`]; an anonymous segment outside [`collect_fds`];
    /// an OS error duplicating its descriptor.
    pub fn serialize_handle<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if OFF_HOST.with(Cell::get) {
            return Err(S::Error::custom(remember(OFF_HOST_MESSAGE.to_owned())));
        }
        if let Some(name) = self.name() {
            return Wire::Named(name.to_owned()).serialize(serializer);
        }
        let fd = self.file().try_clone().map_err(S::Error::custom)?;
        let index = OUTGOING.with(|c| {
            c.borrow_mut().as_mut().map(|fds| {
                fds.push(OwnedFd::from(fd));
                COLLECTED.with(|n| n.set(n.get() + 1));
                fds.len() - 1
            })
        });
        match index {
            Some(i) => Wire::Passed(i as u32).serialize(serializer),
            None => Err(S::Error::custom(remember(NOT_PASSABLE.to_owned()))),
        }
    }

    /// Deserializes what [`serialize_handle`](Segment::serialize_handle) wrote, opening the
    /// segment by name or from a received descriptor, and checks its kind and element type.
    ///
    /// # Errors
    /// Any [`SegmentError`] of opening it, a descriptor index that was not sent along, or any
    /// handle inside [`deserialize_off_host`].
    pub fn deserialize_handle<'de, D: Deserializer<'de>>(
        deserializer: D,
        kind: Kind,
        elem: TypeInfo,
    ) -> Result<Segment, D::Error> {
        let wire = Wire::deserialize(deserializer)?;
        if FROM_OFF_HOST.with(Cell::get) {
            return Err(D::Error::custom(remember(OFF_HOST_MESSAGE.to_owned())));
        }
        match wire {
            Wire::Named(name) => Segment::open_named(&name, kind, elem)
                .map_err(|e| D::Error::custom(remember(e.to_string()))),
            Wire::Passed(index) => {
                let file = INCOMING
                    .with(|c| {
                        let fds = c.borrow();
                        let fd = fds.as_ref()?.get(index as usize)?;
                        Some(fd.try_clone().map(File::from))
                    })
                    .ok_or_else(|| {
                        D::Error::custom(remember(format!(
                            "anonymous segment #{index} was not passed along: anonymous handles \
                             can only be received by a spawned process or Pool task"
                        )))
                    })?
                    .map_err(D::Error::custom)?;
                Segment::open_fd(file, kind, elem)
                    .map_err(|e| D::Error::custom(remember(e.to_string())))
            }
        }
    }

    /// Maps an anonymous segment from a descriptor received from another process: it must be a
    /// size-sealed memfd (so no peer can shrink it under the mapping), and its header, kind and
    /// element type are validated as [`open_named`](Segment::open_named) does.
    ///
    /// # Errors
    /// [`SegmentError::Corrupt`] for an unsealed file, or any error of header validation.
    pub fn open_fd(file: File, kind: Kind, elem: TypeInfo) -> Result<Segment, SegmentError> {
        let sealed = sys::seals(&file).is_ok_and(|s| s & sys::SEAL_SHRINK != 0);
        if !sealed {
            return Err(SegmentError::Corrupt {
                name: PASSED_LABEL.to_owned(),
                reason: "not a size-sealed memfd".to_owned(),
            });
        }
        let (seg, fields) = Segment::open_file(file, None)?;
        check_kind_and_type(PASSED_LABEL, &fields, kind, elem)?;
        Ok(seg)
    }
}
