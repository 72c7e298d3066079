//! Pipe ends as serde values: how an end moves to another process and keeps peer-death
//! detection right on the way.
//!
//! # Wire form
//! `(segment, role, end, slot, guarantor)`: the segment as every shmproc handle writes it
//! ([`Segment::serialize_handle`]: a name, or inside `Process::spawn`/`Pool` a passed
//! descriptor), which kind of handle it is (`Connection`, `Sender`, `Receiver`), which end of
//! the pipe, and the hand-over record below. The receiver checks the role against the type it
//! deserializes and the ring sizes against the segment, so a mix-up is an error.
//!
//! # Hand-over
//! Serializing an end records a hand-over in the end's shared state: a slot holding the
//! identity (pid + start time) of a *guarantor* process. While the slot is set and the
//! guarantor lives, the end counts as held — even after the sender drops its own handle — so
//! the other end never sees "peer gone" in the window before the receiver registers.
//! Deserializing joins the end's holders first and clears the slot after, so at every moment
//! the end is held by the receiver or in transit. From then on the receiver is a holder like
//! the creator: its exit (dropping the end) disconnects the other side, its death (SIGKILL)
//! makes the other side's blocked calls fail with `PeerDied`.
//!
//! The guarantor is the recipient when the sender knows it — a `Process::spawn` argument (the
//! child is started before its argument is serialized) or a spawned entry's result (the
//! parent) — so a recipient killed before it took the end releases it too. Otherwise (Pool
//! task arguments, which wait for whichever worker is free; messages through a queue or pipe;
//! bytes serialized by hand) it is the sending process: a hand-over that never completes
//! (bytes dropped, or a Pool worker killed before it read its task) keeps the end held until
//! the sender exits, and the other end waits as for a live holder (use the `_timeout` forms).
//! A queue `put` or pipe `send` that fails after serializing an end revokes its hand-over
//! (the message never arrives; this thread's hand-overs are remembered in `handover` for
//! that). At most [`TRANSIT_SLOTS`] hand-overs of one end can be
//! pending at once; a slot whose guarantor died is reused.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde::ser::{self, SerializeTuple};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use shmproc_shm::{Kind, Segment, SharedRef};

use crate::end::{end_index, EndLocal, EndState, TRANSIT_SLOTS};
use crate::handover;
use crate::layout;
use crate::link::Link;
use crate::parts::Parts;

/// Which handle type an end travels as.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Role {
    /// A duplex [`Connection`](crate::Connection), end 0 or 1.
    Connection = 0,
    /// The simplex [`Sender`](crate::Sender) (end 0).
    Sender = 1,
    /// The simplex [`Receiver`](crate::Receiver) (end 1).
    Receiver = 2,
}

impl Role {
    /// Rings of the pipe, and the ring end `me` sends on and receives from.
    fn layout(self, me: usize) -> (usize, Option<usize>, Option<usize>) {
        match self {
            Role::Connection => (2, Some(me), Some(1 - me)),
            Role::Sender => (1, Some(0), None),
            Role::Receiver => (1, None, Some(0)),
        }
    }

    /// Whether `me` is an end this role can be.
    fn allows(self, me: usize) -> bool {
        match self {
            Role::Connection => me < 2,
            Role::Sender => me == 0,
            Role::Receiver => me == 1,
        }
    }
}

/// serde for an end type travelling as `role` (see `crate::transfer` for the hand-over).
macro_rules! serde_end {
    ($name:ident, $role:expr) => {
        impl<T> serde::Serialize for $name<T> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                $crate::transfer::serialize_end(&self.link, $role, serializer)
            }
        }

        impl<'de, T> serde::Deserialize<'de> for $name<T> {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                Ok($name {
                    link: $crate::transfer::deserialize_end::<T, D>(deserializer, $role)?,
                    _msg: std::marker::PhantomData,
                })
            }
        }
    };
}
pub(crate) use serde_end;

/// A segment handle as a tuple element.
struct SegmentHandle<'a>(&'a Segment);

impl Serialize for SegmentHandle<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_handle(serializer)
    }
}

/// Serializes the end `link` holds as a `role`, recording the hand-over.
pub(crate) fn serialize_end<S: Serializer>(
    link: &Link,
    role: Role,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let state = link.me.state();
    let me = end_index(state).ok_or_else(|| ser::Error::custom("pipe end outside its segment"))?;
    let mut tuple = serializer.serialize_tuple(5)?;
    // The segment first: an anonymous one outside spawn/Pool fails here, before any record.
    tuple.serialize_element(&SegmentHandle(state.segment()))?;
    let (slot, guarantor) = begin_handover(state, me).map_err(ser::Error::custom)?;
    tuple.serialize_element(&(role as u8))?;
    tuple.serialize_element(&(me as u8))?;
    tuple.serialize_element(&(slot as u8))?;
    tuple.serialize_element(&guarantor)?;
    tuple.end()
}

/// Records a hand-over of end `me` (0 for a queue) of `state`: the slot and its guarantor.
fn begin_handover(state: &SharedRef<EndState>, me: usize) -> Result<(usize, u64), String> {
    // Vouched for by the recipient when known (it can only die, not forget), else by us.
    let guarantor = shmproc_shm::transfer_recipient().map_or_else(
        shmproc_sync::process_identity,
        shmproc_sync::process_identity_of,
    );
    let slot = state.begin_transit(guarantor).ok_or_else(|| {
        format!(
            "{TRANSIT_SLOTS} hand-overs of this pipe end or queue are already in progress; let \
             their receivers deserialize them first"
        )
    })?;
    handover::remember(state.segment(), me, slot, guarantor);
    Ok((slot, guarantor))
}

/// Serializes a queue handle as `(segment, slot, guarantor)`, recording the hand-over (a queue
/// is an end of its own: see `crate::end`).
pub(crate) fn serialize_queue<S: Serializer>(
    state: &SharedRef<EndState>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut tuple = serializer.serialize_tuple(3)?;
    tuple.serialize_element(&SegmentHandle(state.segment()))?;
    let (slot, guarantor) = begin_handover(state, 0).map_err(ser::Error::custom)?;
    tuple.serialize_element(&(slot as u8))?;
    tuple.serialize_element(&guarantor)?;
    tuple.end()
}

/// A received queue handle: its segment and hand-over record. The caller takes hold of the
/// queue, then calls [`EndState::end_transit`] with them.
pub(crate) struct ReceivedQueue {
    pub seg: Segment,
    pub slot: usize,
    pub guarantor: u64,
}

/// Reads what [`serialize_queue`] wrote, for messages of type `T`.
pub(crate) fn deserialize_queue<'de, T, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<ReceivedQueue, D::Error> {
    deserializer.deserialize_tuple(3, QueueVisitor::<T>(PhantomData))
}

struct QueueVisitor<T>(PhantomData<fn(T) -> T>);

impl<'de, T> Visitor<'de> for QueueVisitor<T> {
    type Value = ReceivedQueue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a serialized queue")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ReceivedQueue, A::Error> {
        let seg = seq
            .next_element_seed(SegmentSeed::<T>(Kind::Queue, PhantomData))?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let slot = usize::from(next::<_, u8>(&mut seq, 1)?);
        let guarantor: u64 = next(&mut seq, 2)?;
        Ok(ReceivedQueue {
            seg,
            slot,
            guarantor,
        })
    }
}

/// Deserializes an end serialized as a `role` for messages of type `T`, taking hold of it in
/// this process and completing the hand-over.
pub(crate) fn deserialize_end<'de, T, D: Deserializer<'de>>(
    deserializer: D,
    role: Role,
) -> Result<Link, D::Error> {
    deserializer.deserialize_tuple(
        5,
        EndVisitor::<T> {
            role,
            _msg: PhantomData,
        },
    )
}

struct EndVisitor<T> {
    role: Role,
    _msg: PhantomData<fn(T) -> T>,
}

/// Reads the segment element with the given kind and the message type.
struct SegmentSeed<T>(Kind, PhantomData<fn(T) -> T>);

impl<'de, T> DeserializeSeed<'de> for SegmentSeed<T> {
    type Value = Segment;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Segment, D::Error> {
        Segment::deserialize_handle(deserializer, self.0, layout::message_type::<T>())
    }
}

fn next<'de, A: SeqAccess<'de>, V: Deserialize<'de>>(seq: &mut A, i: usize) -> Result<V, A::Error> {
    seq.next_element()?
        .ok_or_else(|| de::Error::invalid_length(i, &"a pipe end or queue"))
}

impl<'de, T> Visitor<'de> for EndVisitor<T> {
    type Value = Link;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a serialized pipe {:?}", self.role)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Link, A::Error> {
        let seg = seq
            .next_element_seed(SegmentSeed::<T>(Kind::Pipe, PhantomData))?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let role: u8 = next(&mut seq, 1)?;
        let me = usize::from(next::<_, u8>(&mut seq, 2)?);
        let slot = usize::from(next::<_, u8>(&mut seq, 3)?);
        let guarantor: u64 = next(&mut seq, 4)?;
        if role != self.role as u8 || !self.role.allows(me) {
            return Err(de::Error::custom(format!(
                "expected a pipe {:?}, got role {role} end {me}",
                self.role
            )));
        }
        let (rings, tx, rx) = self.role.layout(me);
        let parts = Parts::opened(seg, rings).map_err(de::Error::custom)?;
        // Hold first, then end the hand-over: the end is never unheld in between.
        let link = parts
            .link_as(me, tx, rx, EndLocal::adopt)
            .map_err(de::Error::custom)?;
        link.me.state().end_transit(slot, guarantor);
        Ok(link)
    }
}
