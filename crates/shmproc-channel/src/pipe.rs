//! `Pipe`: two connected ends over one (simplex) or two (duplex) single-producer rings.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use shmproc_shm::{Kind, Segment, SegmentError};

use crate::codec;
use crate::error::{RecvError, SendError};
use crate::layout;
use crate::link::Link;
use crate::parts::Parts;
use crate::ring::Deadline;
use crate::transfer::{serde_end, Role};

/// Makes pipes (Python's `multiprocessing.Pipe`). `T` is the message type of both directions.
///
/// A pipe lives in one shared segment: per end, a roster of the processes holding it; per
/// direction, a ring of fixed capacity. Messages of **any** size go through: one that does not
/// fit is streamed in chunks while the receiver reads it.
///
/// # Examples
/// ```
/// use shmproc_channel::Pipe;
/// use shmproc_process::Process;
///
/// let (parent, child) = Pipe::<String>::duplex()?;
/// let p = Process::fork(move || {
///     let hello = child.recv().unwrap();
///     child.send(&format!("{hello}, parent")).unwrap();
/// })?;
/// parent.send(&"hello".to_string())?;
/// assert_eq!(parent.recv()?, "hello, parent");
/// assert!(p.join()?.success());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Endings
/// When every process holding one end has dropped it (or exited normally), the other end's
/// `recv` returns what is left, then [`RecvError::Disconnected`]; its `send` fails with
/// [`SendError::Disconnected`]. If a holder died instead (SIGKILL) and nobody else holds the
/// end, a blocked call reports [`RecvError::PeerDied`] / [`SendError::PeerDied`] within about
/// 10 ms plus a `/proc` check. A send into a ring with room does not look for a dead receiver
/// (like writing into a pipe buffer); the next send that has to wait does.
///
/// A call blocked without a deadline sleeps on a futex with no timer (a timer per sleep would
/// cost about a tenth of a sleeping round trip); the peers of such sleepers are checked every
/// 10 ms by one background thread per process, `shmproc-watch`, started by the first such
/// sleep (again in a forked child) and parked after about a second without sleepers. If it
/// cannot be started, blocked calls check for themselves between 10 ms naps. `_timeout` calls
/// always nap.
///
/// # Fork
/// A forked child gets a copy of every end its parent held at the fork, like inherited file
/// descriptors. The child is registered before `fork` returns in the parent, so a handle moved
/// into a `Process::fork` closure and dropped by the parent right
/// after never looks like "peer gone". A child that never uses an inherited copy delays the
/// verdict on that end only while it runs — and never for itself: a child blocked on its own
/// end sees the parent drop the other end, although it holds an unused copy of that one too.
/// At most [`ROSTER_SLOTS`](shmproc_sync::ROSTER_SLOTS) processes are tracked per end.
///
/// # Passing ends to other processes
/// [`Connection`], [`Sender`] and [`Receiver`] implement serde, so an end can be an argument
/// or result of `Process::spawn` or a `Pool` task (an anonymous pipe travels as a file
/// descriptor), or — for a named pipe only — a message on a queue or pipe to any process. The
/// receiving process becomes a holder of that end exactly like its creator: its exit
/// disconnects the other end, its death is reported as `PeerDied`.
///
/// While an end travels it is *in transit*: serializing it records, in the end's shared
/// state, a guarantor process — the recipient when known (a spawned child for its argument,
/// the parent for a result), else the sender — and the end counts as held while that process
/// lives. The receiver joins the end's holders before it clears that record, so dropping the
/// sent handle right after sending (as `Process::spawn(entry, end)` does) never looks like
/// "peer gone", and a spawned child killed before it took the end releases it. A hand-over
/// that never completes while its guarantor lives (bytes dropped, a Pool worker killed before
/// reading its task) keeps the end held until that process exits: use the `_timeout` forms.
/// A `put`/`send` carrying an end that fails revokes its hand-over. At most 8 hand-overs of
/// one end can be pending at once.
pub struct Pipe<T>(PhantomData<fn(T) -> T>);

impl<T> Pipe<T> {
    /// Ring bytes per direction of [`duplex`](Pipe::duplex) and [`simplex`](Pipe::simplex).
    pub const DEFAULT_CAPACITY: usize = 64 << 10;

    /// Two connected ends, each able to send and receive.
    ///
    /// # Errors
    /// [`SegmentError::Io`] when the OS cannot provide the memory.
    pub fn duplex() -> Result<(Connection<T>, Connection<T>), SegmentError> {
        Pipe::duplex_with_capacity(Self::DEFAULT_CAPACITY)
    }

    /// [`duplex`](Pipe::duplex) with rings of `bytes` each (a power of two, at least 64).
    ///
    /// # Errors
    /// As `duplex`.
    pub fn duplex_with_capacity(
        bytes: usize,
    ) -> Result<(Connection<T>, Connection<T>), SegmentError> {
        let parts = Parts::create::<T>(None, bytes, 2)?;
        Ok((connection(&parts, 0)?, connection(&parts, 1)?))
    }

    /// A one-way pipe: a sending and a receiving end.
    ///
    /// # Errors
    /// As `duplex`.
    pub fn simplex() -> Result<(Sender<T>, Receiver<T>), SegmentError> {
        Pipe::simplex_with_capacity(Self::DEFAULT_CAPACITY)
    }

    /// [`simplex`](Pipe::simplex) with a ring of `bytes`.
    ///
    /// # Errors
    /// As `duplex`.
    pub fn simplex_with_capacity(bytes: usize) -> Result<(Sender<T>, Receiver<T>), SegmentError> {
        let parts = Parts::create::<T>(None, bytes, 1)?;
        let tx = parts.link(0, Some(0), None)?;
        let rx = parts.link(1, None, Some(0))?;
        Ok((
            Sender {
                link: tx,
                _msg: PhantomData,
            },
            Receiver {
                link: rx,
                _msg: PhantomData,
            },
        ))
    }

    /// Creates a named duplex pipe and returns its first end; another process takes the second
    /// with [`open`](Pipe::open). Until then, sends are buffered and receives wait.
    ///
    /// # Errors
    /// [`SegmentError::AlreadyExists`], [`SegmentError::InvalidName`], or OS errors.
    pub fn create(name: &str) -> Result<Connection<T>, SegmentError> {
        Pipe::create_with_capacity(name, Self::DEFAULT_CAPACITY)
    }

    /// [`create`](Pipe::create) with rings of `bytes` each.
    ///
    /// # Errors
    /// As `create`.
    pub fn create_with_capacity(name: &str, bytes: usize) -> Result<Connection<T>, SegmentError> {
        connection(&Parts::create::<T>(Some(name), bytes, 2)?, 0)
    }

    /// Opens the second end of a named duplex pipe.
    ///
    /// # Errors
    /// Any [`SegmentError`]: missing, another kind or message type, corrupt, …
    pub fn open(name: &str) -> Result<Connection<T>, SegmentError> {
        let seg = Segment::open_named(name, Kind::Pipe, layout::message_type::<T>())?;
        connection(&Parts::opened(seg, 2)?, 1)
    }
}

/// End `me` of a duplex pipe: sends on ring `me`, receives on the other.
fn connection<T>(parts: &Parts, me: usize) -> Result<Connection<T>, SegmentError> {
    Ok(Connection {
        link: parts.link(me, Some(me), Some(1 - me))?,
        _msg: PhantomData,
    })
}

/// `send`, `send_bytes` and their `_timeout` / `try_` forms.
macro_rules! send_methods {
    () => {
        /// Sends `bytes` as one message, blocking while the ring is full (any size: a long
        /// message is streamed while the receiver reads it).
        ///
        /// # Errors
        /// [`SendError::Disconnected`] / [`SendError::PeerDied`] when the other end is gone,
        /// [`SendError::Broken`], [`SendError::Corrupt`].
        pub fn send_bytes(&self, bytes: &[u8]) -> Result<(), SendError> {
            Ok(self.link.send(bytes, Deadline::Never)?)
        }

        /// Like `send_bytes`, failing with [`SendError::Timeout`] after `timeout`. A message
        /// longer than the free space that times out half sent breaks this direction
        /// ([`SendError::Broken`] from then on).
        ///
        /// # Errors
        /// As `send_bytes`, plus `Timeout`.
        pub fn send_bytes_timeout(&self, bytes: &[u8], timeout: Duration) -> Result<(), SendError> {
            Ok(self.link.send(bytes, Deadline::after(timeout))?)
        }

        /// Like `send_bytes` without waiting: [`SendError::Full`] unless the whole message fits
        /// now.
        ///
        /// # Errors
        /// As `send_bytes`, plus `Full`.
        pub fn try_send_bytes(&self, bytes: &[u8]) -> Result<(), SendError> {
            Ok(self.link.send(bytes, Deadline::Now)?)
        }

        /// Sets how many times a blocked call polls before sleeping (0: sleep at once).
        pub fn set_spins(&mut self, spins: u32) {
            self.link.policy.spins = spins;
        }
    };
}

/// `recv`, `recv_bytes`, `poll` and their `_timeout` / `try_` forms.
macro_rules! recv_methods {
    () => {
        /// Receives one message's bytes, blocking until one arrives.
        ///
        /// # Errors
        /// [`RecvError::Disconnected`] / [`RecvError::PeerDied`] once the other end is gone and
        /// everything was received; [`RecvError::Broken`], [`RecvError::Corrupt`].
        pub fn recv_bytes(&self) -> Result<Vec<u8>, RecvError> {
            let mut out = Vec::new();
            self.link.recv(Deadline::Never, &mut out)?;
            Ok(out)
        }

        /// Like `recv_bytes`, failing with [`RecvError::Timeout`] if no message *starts*
        /// arriving within `timeout` (one that has started is received whole).
        ///
        /// # Errors
        /// As `recv_bytes`, plus `Timeout`.
        pub fn recv_bytes_timeout(&self, timeout: Duration) -> Result<Vec<u8>, RecvError> {
            let mut out = Vec::new();
            self.link.recv(Deadline::after(timeout), &mut out)?;
            Ok(out)
        }

        /// Like `recv_bytes` without waiting: [`RecvError::Empty`] unless a whole message is
        /// there.
        ///
        /// # Errors
        /// As `recv_bytes`, plus `Empty`.
        pub fn try_recv_bytes(&self) -> Result<Vec<u8>, RecvError> {
            let mut out = Vec::new();
            self.link.recv(Deadline::Now, &mut out)?;
            Ok(out)
        }

        /// Waits up to `timeout` for a message; `Ok(true)` when `recv` would not block (a
        /// message is there, or the other end is gone and `recv` would report it).
        ///
        /// # Errors
        /// [`RecvError::Broken`], [`RecvError::Io`].
        pub fn poll(&self, timeout: Duration) -> Result<bool, RecvError> {
            let deadline = if timeout.is_zero() {
                Deadline::Now
            } else {
                Deadline::after(timeout)
            };
            Ok(self.link.poll(deadline)?)
        }

        /// Bytes waiting to be received, headers included (a snapshot).
        pub fn pending_bytes(&self) -> usize {
            self.link.pending() as usize
        }
    };
}

/// Typed `send` through postcard.
macro_rules! send_typed {
    () => {
        /// Sends `msg` (postcard-encoded), blocking while the ring is full.
        ///
        /// # Errors
        /// As `send_bytes`, plus [`SendError::Encode`]. `msg` is borrowed: it stays yours.
        pub fn send(&self, msg: &T) -> Result<(), SendError> {
            codec::with_encoded(msg, |b| Ok(self.link.send(b, Deadline::Never)?))
        }

        /// Like `send`, failing with [`SendError::Timeout`] after `timeout`.
        ///
        /// # Errors
        /// As `send_bytes_timeout`, plus [`SendError::Encode`].
        pub fn send_timeout(&self, msg: &T, timeout: Duration) -> Result<(), SendError> {
            let deadline = Deadline::after(timeout);
            codec::with_encoded(msg, |b| Ok(self.link.send(b, deadline)?))
        }

        /// Like `send` without waiting: [`SendError::Full`] unless it fits now.
        ///
        /// # Errors
        /// As `try_send_bytes`, plus [`SendError::Encode`].
        pub fn try_send(&self, msg: &T) -> Result<(), SendError> {
            codec::with_encoded(msg, |b| Ok(self.link.send(b, Deadline::Now)?))
        }
    };
}

/// Typed `recv` through postcard.
macro_rules! recv_typed {
    () => {
        /// Receives one message, blocking until one arrives.
        ///
        /// # Errors
        /// As `recv_bytes`, plus [`RecvError::Decode`] (the message is consumed).
        pub fn recv(&self) -> Result<T, RecvError> {
            codec::decode_with(|buf| Ok(self.link.recv(Deadline::Never, buf)?))
        }

        /// Like `recv`, failing with [`RecvError::Timeout`] if nothing starts arriving in time.
        ///
        /// # Errors
        /// As `recv_bytes_timeout`, plus [`RecvError::Decode`].
        pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvError> {
            let deadline = Deadline::after(timeout);
            codec::decode_with(|buf| Ok(self.link.recv(deadline, buf)?))
        }

        /// Like `recv` without waiting: [`RecvError::Empty`] unless a whole message is there.
        ///
        /// # Errors
        /// As `try_recv_bytes`, plus [`RecvError::Decode`].
        pub fn try_recv(&self) -> Result<T, RecvError> {
            codec::decode_with(|buf| Ok(self.link.recv(Deadline::Now, buf)?))
        }
    };
}

/// Clone, Debug for a handle type.
macro_rules! handle_impls {
    ($name:ident) => {
        impl<T> Clone for $name<T> {
            fn clone(&self) -> Self {
                $name {
                    link: self.link.clone(),
                    _msg: PhantomData,
                }
            }
        }

        impl<T> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("peer_closed", &self.link.peer.is_closed())
                    .finish_non_exhaustive()
            }
        }
    };
}

/// One end of a duplex pipe: sends to and receives from the other end. Clones are the same
/// end; so is the copy a forked child gets.
pub struct Connection<T> {
    link: Link,
    _msg: PhantomData<fn(T) -> T>,
}

impl<T> Connection<T> {
    send_methods!();
    recv_methods!();
}

impl<T: Serialize> Connection<T> {
    send_typed!();
}

impl<T: DeserializeOwned> Connection<T> {
    recv_typed!();
}

/// The sending end of a [`Pipe::simplex`].
pub struct Sender<T> {
    link: Link,
    _msg: PhantomData<fn(T) -> T>,
}

impl<T> Sender<T> {
    send_methods!();
}

impl<T: Serialize> Sender<T> {
    send_typed!();
}

/// The receiving end of a [`Pipe::simplex`].
pub struct Receiver<T> {
    link: Link,
    _msg: PhantomData<fn(T) -> T>,
}

impl<T> Receiver<T> {
    recv_methods!();
}

impl<T: DeserializeOwned> Receiver<T> {
    recv_typed!();
}

handle_impls!(Connection);
handle_impls!(Sender);
handle_impls!(Receiver);

serde_end!(Connection, Role::Connection);
serde_end!(Sender, Role::Sender);
serde_end!(Receiver, Role::Receiver);

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    #[test]
    fn a_corrupt_tail_or_length_is_an_error_not_a_crash() {
        let (a, b) = Pipe::<u8>::duplex_with_capacity(256).unwrap();
        a.send_bytes(&[1, 2, 3]).unwrap();
        let ring = b.link.rx.clone().unwrap();
        ring.ctl().put.pos.store(1 << 40, Ordering::Relaxed);
        assert!(matches!(b.try_recv_bytes(), Err(RecvError::Corrupt(_))));
        // A length that would run past the end of the index space.
        ring.ctl().put.pos.store(11, Ordering::Relaxed);
        ring.write(0, &(u64::MAX - 4).to_le_bytes()).unwrap();
        assert!(matches!(b.try_recv_bytes(), Err(RecvError::Corrupt(_))));
    }
}
