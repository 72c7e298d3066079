//! A pool worker's link: the shared-memory [`Pipe`] that carries its jobs and replies, next to
//! the unix socket that started it.
//!
//! The socket stays for what memory cannot carry: the spawned child's bootstrap (the pipe end
//! itself travels on it), descriptors of jobs and replies that carry some, liveness (end of
//! stream) and *notices*. A worker's reply goes into the pipe; if no thread of the pool's
//! process waits for it right then (the shared `waiting` count is zero), the worker also sends
//! a notice on the socket, so the manager thread (which polls sockets and pidfds) collects it.
//! A thread that waits for its task takes the reply from the pipe itself: no manager hop, and
//! with a hot worker no system call either.
//!
//! # Who takes a reply
//! Every reply is received, and its slot completed, under [`Link::receiving`], which also names
//! the job whose reply is next (`running`, with the job's sequence number): so a reply is
//! taken once, by whoever locks first, and always completes the right slot. A waiter or the
//! manager that finds another job running (or none) leaves the pipe alone. Notices name the
//! job's sequence number, so a stale one (its reply taken by a waiter) is discarded.
//!
//! | the reply is sent while …          | who takes it                                       |
//! |------------------------------------|----------------------------------------------------|
//! | a thread waits (`waiting` > 0)     | that thread (it re-checks the pipe after it stops waiting, so the worker's skipped notice loses nothing) |
//! | nobody waits                       | the manager, on the notice (or a waiter that comes first) |
//! | it is too long for the ring        | as above; the notice goes out first, so the stream always has a reader |
//! | the worker dies before or during it| nobody: the pipe reports the ending, the manager fails the task with `WorkerDied` |

use std::fmt;
use std::os::fd::OwnedFd;
use std::sync::atomic::{fence, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use shmproc_channel::{Connection, Pipe, RecvError, SendError};
use shmproc_shm::{Kind, Segment, SegmentError, Spec, TypeInfo};

use super::manager::Job;
use super::task::{Runner, Slot, Waited};
use crate::transport::{Channel, Frame};
use crate::worker::{pipe_job, Op};
use crate::ProcessError;

/// Set in a pipe message's first byte (job op or reply status): its descriptors follow on the
/// socket.
pub(crate) const WITH_FDS: u8 = 0x80;

/// Polls either side of a worker's pipe makes before it sleeps, when the other side last ran
/// on another CPU: about 15 µs on a machine whose `pause` takes 30 ns (a hot worker answers
/// within a few), and far fewer than the 1,024 after which a pipe's spin yields the CPU (on a
/// loaded machine a yield hands it away for a whole time slice). A side whose peer last ran on
/// its own CPU sleeps at once: spinning there only delays the peer.
pub(crate) const SPINS: u32 = 128;

/// Ring bytes per direction of a worker's pipe.
pub(crate) const RING: usize = Pipe::<()>::DEFAULT_CAPACITY;

/// Socket frames a worker sends: `[NOTICE][seq: u32 LE]` with the reply's descriptors, if any.
pub(crate) const NOTICE: u8 = 0;
/// `[INIT_FAILED][message]`: the initializer failed; the worker exits.
pub(crate) const INIT_FAILED: u8 = 1;

/// The shared count of threads waiting for a worker's reply (an anonymous segment).
pub(crate) struct Waiting(Arc<Segment>);

const WAITING_TYPE: TypeInfo = TypeInfo {
    name: "shmproc pool waiters",
    size: 4,
    align: 4,
};

impl Waiting {
    fn new() -> Result<Waiting, SegmentError> {
        let spec = Spec {
            kind: Kind::Raw,
            elem: WAITING_TYPE,
            payload_len: 64,
        };
        Ok(Waiting(Arc::new(Segment::create_anonymous(&spec, |_| {
            Ok(())
        })?)))
    }

    /// The count.
    pub fn count(&self) -> &AtomicU32 {
        self.word(0)
    }

    /// The CPU the worker last waited on, plus one (0: unknown).
    pub fn worker_cpu(&self) -> &AtomicU32 {
        self.word(1)
    }

    /// The CPU a waiting thread of the pool last ran on, plus one (0: unknown).
    pub fn pool_cpu(&self) -> &AtomicU32 {
        self.word(2)
    }

    fn word(&self, i: usize) -> &AtomicU32 {
        self.0
            .atomic::<AtomicU32>(4 * i)
            .expect("the payload holds three aligned u32s (checked on open)")
    }
}

/// Records the CPU this thread runs on in `mine`; whether the other side last ran there too
/// (`theirs`), where spinning for it would only delay it.
pub(crate) fn shares_cpu(mine: &AtomicU32, theirs: &AtomicU32) -> bool {
    let cpu = crate::sys::current_cpu().map_or(0, |c| c.wrapping_add(1));
    mine.store(cpu, Ordering::Relaxed);
    cpu != 0 && theirs.load(Ordering::Relaxed) == cpu
}

impl Serialize for Waiting {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_handle(serializer)
    }
}

impl<'de> Deserialize<'de> for Waiting {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let seg = Segment::deserialize_handle(deserializer, Kind::Raw, WAITING_TYPE)?;
        if seg.payload_len() < 12 {
            return Err(serde::de::Error::custom("pool waiters segment too small"));
        }
        Ok(Waiting(Arc::new(seg)))
    }
}

/// What a worker gets first, on its socket: its end of the pipe and its settings.
#[derive(Serialize, Deserialize)]
pub(crate) struct Bootstrap {
    pub pipe: Connection<()>,
    pub waiting: Waiting,
    /// Exit after this many replies.
    pub max_tasks: Option<u64>,
}

/// The pool's side of one worker's link.
pub(crate) struct Link {
    pipe: Connection<()>,
    /// The same end, sleeping at once (used when the worker shares our CPU).
    pipe_quiet: Connection<()>,
    socket: Channel,
    waiting: Waiting,
    receiving: Mutex<Receiving>,
}

/// Guarded by [`Link::receiving`]: whose reply is next, and what came on the socket for it.
#[derive(Default)]
struct Receiving {
    /// The job running on the worker: its sequence number and slot.
    running: Option<(u32, Arc<Slot>)>,
    next_seq: u32,
    /// Jobs the worker takes before it exits (`None`: no limit).
    tasks_left: Option<usize>,
    /// Descriptors that arrived for the reply of job `.0`.
    fds: Option<(u32, Vec<OwnedFd>)>,
    /// The socket ended: the worker is gone.
    ended: bool,
    /// The worker's initializer failed with this message.
    init_failed: Option<String>,
}

/// What the manager learned from a worker's socket.
pub(crate) enum Heard {
    /// Nothing that ends the worker.
    Nothing,
    /// End of stream: the worker is gone.
    Ended,
    /// Its initializer failed.
    InitFailed(String),
}

impl Link {
    /// Makes the link of a started worker (pid `pid`, socket `socket`) and sends it the
    /// bootstrap, then the initializer job if there is one.
    pub fn start(
        socket: Channel,
        pid: u32,
        max_tasks: Option<usize>,
        init: Option<(&'static str, &Frame)>,
    ) -> Result<Link, ProcessError> {
        let seg_err = |e: SegmentError| ProcessError::Io(std::io::Error::other(e.to_string()));
        let (mut ours, theirs) = Pipe::<()>::duplex_with_capacity(RING).map_err(seg_err)?;
        ours.set_spins(SPINS);
        let mut quiet = ours.clone();
        quiet.set_spins(0);
        let waiting = Waiting::new().map_err(seg_err)?;
        let boot = Bootstrap {
            pipe: theirs,
            waiting,
            max_tasks: max_tasks.map(|n| n as u64),
        };
        let frame = crate::entry::encode_for(&boot, Some(pid)).map_err(ProcessError::Encode)?;
        let waiting = boot.waiting;
        drop(boot.pipe);
        crate::spawn::send_job(&socket, Op::Link, "", &frame)?;
        let link = Link {
            pipe: ours,
            pipe_quiet: quiet,
            socket,
            waiting,
            receiving: Mutex::new(Receiving {
                tasks_left: max_tasks,
                ..Receiving::default()
            }),
        };
        if let Some((key, arg)) = init {
            let fds = arg
                .fds
                .iter()
                .map(OwnedFd::try_clone)
                .collect::<Result<Vec<_>, _>>()?;
            let arg = Frame {
                bytes: arg.bytes.clone(),
                fds,
            };
            link.send(Op::Init, u32::MAX, key, &arg)?;
        }
        Ok(link)
    }

    fn lock(&self) -> MutexGuard<'_, Receiving> {
        self.receiving.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn socket(&self) -> &Channel {
        &self.socket
    }

    /// Whether the worker can take a job now (not running one, not about to retire).
    pub fn is_idle(&self) -> bool {
        let r = self.lock();
        r.running.is_none() && r.tasks_left != Some(0) && !r.ended
    }

    /// Whether it runs a job.
    pub fn is_busy(&self) -> bool {
        self.lock().running.is_some()
    }

    /// The slot of the running job.
    pub fn running(&self) -> Option<Arc<Slot>> {
        self.lock().running.as_ref().map(|(_, s)| Arc::clone(s))
    }

    /// Sends `job` to the (idle) worker; the job's slot learns this link, so its waiter can
    /// take the reply itself. A worker found gone is no error here: the manager reports it.
    pub fn run(self: &Arc<Self>, job: Job) {
        let seq = {
            let mut r = self.lock();
            let seq = r.next_seq;
            r.next_seq = seq.wrapping_add(1) % u32::MAX; // u32::MAX: the initializer
            r.running = Some((seq, Arc::clone(&job.slot)));
            if let Some(left) = r.tasks_left.as_mut() {
                *left = left.saturating_sub(1);
            }
            seq
        };
        job.slot.set_runner(Arc::clone(self) as Arc<dyn Runner>);
        if let Err(e) = self.send(job.op, seq, job.key, &job.arg) {
            let mut r = self.lock();
            if r.running.as_ref().is_some_and(|(s, _)| *s == seq) {
                r.running = None;
            }
            drop(r);
            job.slot.complete(Err(e));
        }
    }

    /// Puts a job message in the pipe (its descriptors first on the socket).
    fn send(&self, op: Op, seq: u32, key: &str, arg: &Frame) -> Result<(), ProcessError> {
        let with_fds = !arg.fds.is_empty();
        if with_fds {
            match self.socket.send(&[], &arg.fds) {
                Err(e) if !crate::spawn::is_gone(&e) => return Err(e.into()),
                _ => {}
            }
        }
        let msg = pipe_job(op, with_fds, seq, key, &arg.bytes);
        match self.pipe.send_bytes(&msg) {
            Ok(()) | Err(SendError::Disconnected | SendError::PeerDied { .. }) => Ok(()),
            Err(e) => Err(ProcessError::Io(std::io::Error::other(e.to_string()))),
        }
    }

    /// Asks an idle worker to exit (never blocks).
    pub fn send_exit(&self) {
        let _ = self
            .pipe
            .try_send_bytes(&pipe_job(Op::Exit, false, u32::MAX, "", &[]));
    }

    /// The manager's part: reads what the worker sent on its socket (a notice, descriptors,
    /// an initializer failure, end of stream) and takes the reply a notice announced.
    pub fn hear(&self) -> Heard {
        let mut r = self.lock();
        let due = self.read_socket(&mut r, None);
        if due {
            self.take(&mut r, true);
        }
        self.verdict(&r)
    }

    /// Takes the running job's reply if it has arrived (the worker exited or is being
    /// stopped), after reading the socket. `true` if it did.
    pub fn take_leftover(&self) -> bool {
        let mut r = self.lock();
        self.read_socket(&mut r, None);
        matches!(self.take(&mut r, false), Taken::Reply)
    }

    /// What ended the worker, as far as its socket tells.
    fn verdict(&self, r: &Receiving) -> Heard {
        match (&r.init_failed, r.ended) {
            (Some(msg), _) => Heard::InitFailed(msg.clone()),
            (None, true) => Heard::Ended,
            (None, false) => Heard::Nothing,
        }
    }

    /// The initializer's failure message, if the worker reported one.
    pub fn init_failure(&self) -> Option<String> {
        self.lock().init_failed.clone()
    }

    /// Reads socket frames: all that are there now, or (with `until`) until the descriptors of
    /// job `until` arrived. `true` if a notice for the running job came.
    fn read_socket(&self, r: &mut Receiving, until: Option<u32>) -> bool {
        let mut due = false;
        loop {
            if let Some(seq) = until {
                if r.fds.as_ref().is_some_and(|(s, _)| *s == seq) {
                    return due;
                }
            } else if !crate::sys::poll_readable(&[self.socket.raw_fd()], Some(Duration::ZERO))
                .is_ok_and(|ready| ready[0])
            {
                return due;
            }
            if r.ended {
                return due;
            }
            let frame = match self.socket.recv(None) {
                Ok(Some(frame)) => frame,
                _ => {
                    r.ended = true;
                    return due;
                }
            };
            match frame.bytes.first() {
                Some(&NOTICE) if frame.bytes.len() == 5 => {
                    let seq = u32::from_le_bytes(frame.bytes[1..5].try_into().expect("4 bytes"));
                    if r.running.as_ref().is_some_and(|(s, _)| *s == seq) {
                        due = true;
                        if !frame.fds.is_empty() {
                            r.fds = Some((seq, frame.fds));
                        }
                    }
                }
                Some(&INIT_FAILED) => {
                    let msg = String::from_utf8_lossy(&frame.bytes[1..]).into_owned();
                    r.init_failed = Some(msg);
                }
                _ => {
                    // A worker that says anything else is broken: treat it as gone.
                    r.ended = true;
                    return due;
                }
            }
        }
    }

    /// Takes the running job's reply from the pipe and completes its slot: waiting for it to
    /// arrive only if `block` (a notice said it comes), else only if it has started arriving.
    fn take(&self, r: &mut Receiving, block: bool) -> Taken {
        let Some((seq, _)) = r.running else {
            return Taken::Nothing;
        };
        let ready = block || self.pipe.poll(Duration::ZERO).unwrap_or(true);
        if !ready {
            return Taken::Nothing;
        }
        let mut bytes = match self.pipe.recv_bytes() {
            Ok(bytes) => bytes,
            Err(RecvError::Empty | RecvError::Timeout) => return Taken::Nothing,
            Err(_) => return Taken::Gone,
        };
        let mut fds = Vec::new();
        if bytes.first().is_some_and(|b| b & WITH_FDS != 0) {
            bytes[0] &= !WITH_FDS;
            self.read_socket(r, Some(seq));
            match r.fds.take() {
                Some((s, got)) if s == seq => fds = got,
                _ => {
                    let slot = r.running.take().map(|(_, s)| s);
                    if let Some(slot) = slot {
                        slot.complete(Err(ProcessError::Decode(
                            "the reply's descriptors never arrived".to_owned(),
                        )));
                    }
                    return Taken::Reply;
                }
            }
        }
        if let Some((_, slot)) = r.running.take() {
            slot.complete(Ok(Frame { bytes, fds }));
        }
        Taken::Reply
    }

    /// Takes the running job's reply if it is there — `slot`'s or another's: a registered
    /// waiter made the worker skip its notice, so whoever was registered takes what arrived
    /// (see `wait_reply`). The outcome for `slot`'s waiter: `None` while its reply is due.
    fn take_for(&self, slot: &Arc<Slot>) -> Option<Waited> {
        let mut r = self.lock();
        let mine = r
            .running
            .as_ref()
            .is_some_and(|(_, s)| Arc::ptr_eq(s, slot));
        let taken = self.take(&mut r, false);
        if !mine {
            // Taken by someone else (or failed): the slot says how.
            return Some(Waited::Collected);
        }
        match taken {
            Taken::Reply => Some(Waited::Collected),
            Taken::Gone => Some(Waited::Gone),
            Taken::Nothing => None,
        }
    }
}

enum Taken {
    Reply,
    Nothing,
    /// The pipe ended without a reply: the worker is gone.
    Gone,
}

impl Runner for Link {
    fn wait_reply(&self, slot: &Arc<Slot>, nap: Duration) -> Waited {
        let count = self.waiting.count();
        count.fetch_add(1, Ordering::SeqCst);
        let shared = shares_cpu(self.waiting.pool_cpu(), self.waiting.worker_cpu());
        let pipe = if shared { &self.pipe_quiet } else { &self.pipe };
        let deadline = Instant::now() + nap;
        let outcome = loop {
            if let Some(done) = self.take_for(slot) {
                break done;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break Waited::Pending;
            }
            if pipe.poll(left).is_err() {
                break Waited::Gone;
            }
        };
        count.fetch_sub(1, Ordering::SeqCst);
        // Pairs with the worker's fence between publishing its reply and reading the count:
        // either it saw us (and skipped its notice), and then we see its reply here, or it
        // sent the notice.
        fence(Ordering::SeqCst);
        // Always, also when our own reply was taken: the worker may have skipped the notice
        // for the next job's reply because it saw us registered.
        let last = self.take_for(slot);
        match outcome {
            Waited::Pending => last.unwrap_or(Waited::Pending),
            done => done,
        }
    }
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("socket", &self.socket.raw_fd())
            .finish_non_exhaustive()
    }
}
