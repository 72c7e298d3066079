//! Ring indices and record headers as `get`/`recv` (and `put`/`send`) find them.
//!
//! Each target keeps, per thread and ring capacity, one named [`Queue`] (or duplex [`Pipe`])
//! that is also mapped a second time as a raw segment — what a hostile process has — and
//! unlinked at once. An input overwrites the ring (control block, then data; pipes: both rings)
//! and then runs a short program of `try_` operations, which never wait: each must return `Ok`
//! or a typed error, never panic, touch memory out of bounds, or hang. An input whose ring
//! image is all zeroes (a fresh, empty ring) is also checked against a model: every operation
//! must give exactly what a FIFO of that capacity would.
//!
//! Input: `[config][ops][ring image]`. `config & 7` picks the capacity (`64 << (n % 5)`),
//! `config >> 3` the number of operation bytes that follow; the rest is the ring image (missing
//! bytes are zero).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use shmproc_shm::{Kind, Segment};

use crate::end::EndState;
use crate::error::{RecvError, SendError};
use crate::ring::{footprint, HEADER};
use crate::{codec, layout, Connection, Pipe, Queue};

use super::{unique_name, Msg};

/// Ring capacities an input picks from: `64 << 0..CLASSES`.
const CLASSES: usize = 5;

/// A channel under test with the raw mapping of its segment.
struct Harness<H> {
    handles: H,
    raw: Segment,
    cap: u64,
}

type QueueHarness = Harness<Queue<Msg>>;
type PipeHarness = Harness<(Connection<Msg>, Connection<Msg>)>;

thread_local! {
    static QUEUES: RefCell<[Option<QueueHarness>; CLASSES]> =
        const { RefCell::new([const { None }; CLASSES]) };
    static PIPES: RefCell<[Option<PipeHarness>; CLASSES]> =
        const { RefCell::new([const { None }; CLASSES]) };
}

/// A decoded input.
struct Input<'a> {
    class: usize,
    ops: &'a [u8],
    image: &'a [u8],
}

impl Input<'_> {
    fn parse(data: &[u8]) -> Option<Input<'_>> {
        let (&config, rest) = data.split_first()?;
        let (ops, image) = rest.split_at(usize::from(config >> 3).min(rest.len()));
        Some(Input {
            class: usize::from(config & 7) % CLASSES,
            ops,
            image,
        })
    }

    /// Whether the ring starts fresh (all zeroes), so the model applies.
    fn fresh(&self) -> bool {
        self.image.iter().all(|b| *b == 0)
    }
}

/// Overwrites a queue's ring with the input's image, then runs its operations on the queue.
///
/// # Panics
/// When the code under test misbehaves: a result the model (fresh ring) or the bounds (any
/// ring) rule out. Also when the queue cannot be created (no `/dev/shm`).
pub fn fuzz_queue(data: &[u8]) {
    let Some(input) = Input::parse(data) else {
        return;
    };
    with_queue(input.class, |h| {
        overwrite(&h.raw, queue_ring(), footprint(h.cap), input.image);
        let mut model = input.fresh().then(|| Fifo::new(h.cap));
        for (i, &op) in input.ops.iter().enumerate() {
            queue_op(&h.handles, h.cap, i, op, model.as_mut());
        }
    });
}

/// Overwrites both rings of a duplex pipe with the input's image, then runs its operations on
/// the two ends.
///
/// # Panics
/// As [`fuzz_queue`].
pub fn fuzz_pipe(data: &[u8]) {
    let Some(input) = Input::parse(data) else {
        return;
    };
    with_pipe(input.class, |h| {
        overwrite(
            &h.raw,
            pipe_ring(h.cap, 0),
            2 * footprint(h.cap),
            input.image,
        );
        let mut model = input.fresh().then(|| [Fifo::new(h.cap), Fifo::new(h.cap)]);
        for (i, &op) in input.ops.iter().enumerate() {
            pipe_op(&h.handles, h.cap, i, op, model.as_mut());
        }
    });
}

/// One queue operation: `op & 3` is get bytes, get typed, put bytes, or (typed put | snapshot).
fn queue_op(q: &Queue<Msg>, cap: u64, i: usize, op: u8, model: Option<&mut Fifo>) {
    match op & 3 {
        0 => {
            let got = q.try_get_bytes();
            check_received(&got, cap);
            if let Some(m) = model {
                assert_same_bytes(&got, m.take());
            }
        }
        1 => {
            let got = q.try_get();
            check_error(got.as_ref().err());
            if let Some(m) = model {
                assert_same_msg(&got, m.take());
            }
        }
        2 => {
            let bytes = payload(i, usize::from(op >> 2) * 2);
            let put = q.try_put_bytes(&bytes);
            check_error(put.as_ref().err());
            if let Some(m) = model {
                assert_put(&put, m.put(bytes, true));
            }
        }
        _ if op & 4 == 0 => {
            let msg = message(i, op);
            let put = q.try_put(&msg);
            check_error(put.as_ref().err());
            if let Some(m) = model {
                let bytes = postcard::to_allocvec(&msg).expect("encodable");
                assert_put(&put, m.put(bytes, true));
            }
        }
        _ => {
            let (len, empty) = (q.len(), q.is_empty());
            assert_eq!(q.capacity() as u64, cap);
            assert_eq!(q.max_message_len() as u64, cap - HEADER);
            let _ = (q.is_closed(), q.is_shutdown());
            if let Some(m) = model {
                assert_eq!((len, empty), (m.msgs.len(), m.msgs.is_empty()));
            }
        }
    }
}

/// One pipe operation on end `op >> 7` (0 sends on ring 0, receives from ring 1; 1 the
/// reverse): `op & 3` is recv bytes, recv typed, send bytes, or (typed send | poll).
fn pipe_op(
    ends: &(Connection<Msg>, Connection<Msg>),
    cap: u64,
    i: usize,
    op: u8,
    model: Option<&mut [Fifo; 2]>,
) {
    let me = usize::from(op >> 7);
    let end = if me == 0 { &ends.0 } else { &ends.1 };
    // The rings (and their models) this end sends on and receives from.
    let (tx, rx) = (me, 1 - me);
    match op & 3 {
        0 => {
            let got = end.try_recv_bytes();
            check_received(&got, cap);
            if let Some(m) = model {
                assert_same_bytes(&got, m[rx].take());
            }
        }
        1 => {
            let got = end.try_recv();
            check_error(got.as_ref().err());
            if let Some(m) = model {
                assert_same_msg(&got, m[rx].take());
            }
        }
        2 => {
            let bytes = payload(i, usize::from((op >> 2) & 0x1f) * 5);
            let sent = end.try_send_bytes(&bytes);
            check_error(sent.as_ref().err());
            if let Some(m) = model {
                assert_put(&sent, m[tx].put(bytes, false));
            }
        }
        _ if op & 4 == 0 => {
            let msg = message(i, op);
            let sent = end.try_send(&msg);
            check_error(sent.as_ref().err());
            if let Some(m) = model {
                let bytes = postcard::to_allocvec(&msg).expect("encodable");
                assert_put(&sent, m[tx].put(bytes, false));
            }
        }
        _ => {
            let ready = end.poll(Duration::ZERO);
            let pending = end.pending_bytes() as u64;
            assert!(pending <= cap, "{pending} bytes pending in a ring of {cap}");
            if let Some(m) = model {
                let waiting = !m[rx].msgs.is_empty();
                assert!(matches!(ready, Ok(r) if r == waiting), "{ready:?}");
                assert_eq!(pending, m[rx].used);
            }
        }
    }
}

/// A FIFO of whole records in a ring of `cap` bytes: what a fresh ring must behave like.
struct Fifo {
    cap: u64,
    used: u64,
    msgs: VecDeque<Vec<u8>>,
}

/// What the model says a put/send must return.
#[derive(Debug, PartialEq)]
enum Expect {
    Ok,
    Full,
    TooLarge,
}

impl Fifo {
    fn new(cap: u64) -> Fifo {
        Fifo {
            cap,
            used: 0,
            msgs: VecDeque::new(),
        }
    }

    /// A record of `bytes`; `bounded`: refused outright if it can never fit (queues; pipes
    /// stream long messages, which a `try_send` reports as full).
    fn put(&mut self, bytes: Vec<u8>, bounded: bool) -> Expect {
        let need = HEADER + bytes.len() as u64;
        if bounded && need > self.cap {
            Expect::TooLarge
        } else if self.used + need <= self.cap {
            self.used += need;
            self.msgs.push_back(bytes);
            Expect::Ok
        } else {
            Expect::Full
        }
    }

    fn take(&mut self) -> Option<Vec<u8>> {
        let bytes = self.msgs.pop_front()?;
        self.used -= HEADER + bytes.len() as u64;
        Some(bytes)
    }
}

fn assert_put(got: &Result<(), SendError>, want: Expect) {
    let same = matches!(
        (got, &want),
        (Ok(()), Expect::Ok)
            | (Err(SendError::Full), Expect::Full)
            | (Err(SendError::TooLarge { .. }), Expect::TooLarge)
    );
    assert!(same, "put gave {got:?}, the model {want:?}");
}

fn assert_same_bytes(got: &Result<Vec<u8>, RecvError>, want: Option<Vec<u8>>) {
    match (got, want) {
        (Ok(bytes), Some(w)) => assert_eq!(*bytes, w),
        (Err(RecvError::Empty), None) => {}
        (got, want) => panic!("get gave {got:?}, the model {want:?}"),
    }
}

fn assert_same_msg(got: &Result<Msg, RecvError>, want: Option<Vec<u8>>) {
    let want = want.map(|bytes| codec::decode::<Msg>(&bytes));
    match (got, want) {
        (Ok(msg), Some(Ok(w))) => assert_eq!(*msg, w),
        (Err(RecvError::Decode(_)), Some(Err(_))) | (Err(RecvError::Empty), None) => {}
        (got, want) => panic!("typed get gave {got:?}, the model {want:?}"),
    }
}

/// A received record can never be longer than the ring minus its header.
fn check_received(got: &Result<Vec<u8>, RecvError>, cap: u64) {
    match got {
        Ok(bytes) => assert!(
            bytes.len() as u64 <= cap - HEADER,
            "a record of {} bytes out of a ring of {cap}",
            bytes.len()
        ),
        Err(e) => check_error(Some(e)),
    }
}

/// Every error explains itself.
fn check_error(e: Option<&impl std::fmt::Display>) {
    if let Some(e) = e {
        assert!(!e.to_string().is_empty());
    }
}

/// `len` bytes that tell operation `i`'s message apart from the others.
fn payload(i: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| (j as u8).wrapping_mul(31).wrapping_add(i as u8))
        .collect()
}

fn message(i: usize, op: u8) -> Msg {
    let text = "x".repeat(usize::from(op >> 3) & 7);
    (op, text, vec![i as u32; usize::from(op >> 5)])
}

/// Where a queue's ring starts: after the queue's membership state.
fn queue_ring() -> usize {
    std::mem::size_of::<EndState>()
}

/// Where ring `i` of a pipe of capacity `cap` starts: after both ends' state.
fn pipe_ring(cap: u64, i: usize) -> usize {
    2 * std::mem::size_of::<EndState>() + i * footprint(cap)
}

/// Writes `image` (zero-padded, truncated) over `len` bytes at `off` in `raw`'s payload, one
/// atomic word at a time (the ring is all 8-byte aligned words).
fn overwrite(raw: &Segment, off: usize, len: usize, image: &[u8]) {
    for (i, at) in (off..off + len).step_by(8).enumerate() {
        let mut word = [0u8; 8];
        if let Some(src) = image.get(i * 8..) {
            let n = src.len().min(8);
            word[..n].copy_from_slice(&src[..n]);
        }
        let cell = raw
            .atomic::<AtomicU64>(at)
            .expect("the ring lies in its segment");
        cell.store(u64::from_le_bytes(word), Ordering::Relaxed);
    }
}

/// The `len` bytes at `off` in `raw`'s payload.
fn snapshot(raw: &Segment, off: usize, len: usize) -> Vec<u8> {
    (off..off + len)
        .step_by(8)
        .flat_map(|at| {
            let cell = raw
                .atomic::<AtomicU64>(at)
                .expect("the ring lies in its segment");
            cell.load(Ordering::Relaxed).to_le_bytes()
        })
        .collect()
}

fn with_queue<R>(class: usize, f: impl FnOnce(&QueueHarness) -> R) -> R {
    QUEUES.with(|cell| {
        let mut all = cell.borrow_mut();
        let h = all[class].get_or_insert_with(|| {
            let name = unique_name();
            let queue = Queue::<Msg>::create_with_capacity(&name, 64 << class);
            let queue = queue.expect("a fuzz queue");
            let raw = Segment::open_named(&name, Kind::Queue, layout::message_type::<Msg>());
            let _ = shmproc_shm::remove(&name);
            let cap = queue.capacity() as u64;
            Harness {
                handles: queue,
                raw: raw.expect("the fuzz queue's segment"),
                cap,
            }
        });
        f(h)
    })
}

fn with_pipe<R>(class: usize, f: impl FnOnce(&PipeHarness) -> R) -> R {
    PIPES.with(|cell| {
        let mut all = cell.borrow_mut();
        let h = all[class].get_or_insert_with(|| {
            let name = unique_name();
            let a = Pipe::<Msg>::create_with_capacity(&name, 64 << class).expect("a fuzz pipe");
            let b = Pipe::<Msg>::open(&name);
            let raw = Segment::open_named(&name, Kind::Pipe, layout::message_type::<Msg>());
            let _ = shmproc_shm::remove(&name);
            Harness {
                handles: (a, b.expect("the fuzz pipe's second end")),
                raw: raw.expect("the fuzz pipe's segment"),
                cap: 64 << class,
            }
        });
        f(h)
    })
}

/// Operation bytes for the seeds (see [`queue_op`] and [`pipe_op`]).
const GET: u8 = 0;
const GET_TYPED: u8 = 1;
const fn put(len_halves: u8) -> u8 {
    2 | len_halves << 2
}
const PUT_TYPED: u8 = 3 | 1 << 3;
const SNAPSHOT: u8 = 7;

fn seed(class: usize, ops: &[u8], image: &[u8]) -> Vec<u8> {
    assert!(ops.len() < 32 && class < CLASSES);
    let mut seed = vec![(ops.len() as u8) << 3 | class as u8];
    seed.extend_from_slice(ops);
    seed.extend_from_slice(image);
    seed
}

/// Seed inputs for [`fuzz_queue`]: programs on fresh rings (checked against the model), and
/// rings left by real traffic — wrapped around, with records pending — to corrupt from there.
pub fn queue_seeds() -> Vec<Vec<u8>> {
    let program = [
        put(4),
        put(10),
        GET,
        PUT_TYPED,
        SNAPSHOT,
        GET_TYPED,
        GET,
        GET,
    ];
    let mut seeds = vec![seed(0, &program, &[]), seed(2, &program, &[])];
    for class in [0, 1] {
        with_queue(class, |h| {
            overwrite(&h.raw, queue_ring(), footprint(h.cap), &[]);
            for i in 0..5 {
                h.handles.try_put_bytes(&payload(i, 20)).expect("room");
                h.handles.try_get_bytes().expect("a record");
            }
            h.handles.try_put_bytes(&payload(9, 11)).expect("room");
            h.handles.try_put(&message(7, 0xff)).expect("room");
            let image = snapshot(&h.raw, queue_ring(), footprint(h.cap));
            seeds.push(seed(class, &[GET, GET_TYPED, put(8), GET], &image));
        });
    }
    seeds
}

/// Seed inputs for [`fuzz_pipe`], as [`queue_seeds`] (`0x80 |`: the second end).
pub fn pipe_seeds() -> Vec<Vec<u8>> {
    let program = [put(2), 0x80 | put(3), 0x80 | GET, SNAPSHOT, GET, PUT_TYPED];
    let mut seeds = vec![seed(0, &program, &[]), seed(2, &program, &[])];
    for class in [0, 1] {
        with_pipe(class, |h| {
            overwrite(&h.raw, pipe_ring(h.cap, 0), 2 * footprint(h.cap), &[]);
            let (a, b) = &h.handles;
            for i in 0..5 {
                a.try_send_bytes(&payload(i, 20)).expect("room");
                b.try_recv_bytes().expect("a message");
            }
            a.try_send_bytes(&payload(9, 11)).expect("room");
            b.try_send(&message(7, 0xff)).expect("room");
            let image = snapshot(&h.raw, pipe_ring(h.cap, 0), 2 * footprint(h.cap));
            let ops = [0x80 | GET, GET_TYPED, 0x80 | put(8), SNAPSHOT];
            seeds.push(seed(class, &ops, &image));
        });
    }
    seeds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_run_and_a_fresh_ring_follows_the_model() {
        for seed in queue_seeds() {
            fuzz_queue(&seed);
        }
        for seed in pipe_seeds() {
            fuzz_pipe(&seed);
        }
        // Wrap around a 64-byte ring many times under the model.
        let ops: Vec<u8> = (0..30)
            .map(|i| [put(6), GET, put(13), GET][i % 4])
            .collect();
        fuzz_queue(&seed(0, &ops, &[]));
        fuzz_pipe(&seed(0, &ops, &[]));
    }
}
