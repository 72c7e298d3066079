//! Fuzz target of this crate (not a public API): the frames a spawned child or pool worker
//! reads (jobs) and the parent reads back (replies), as they come off the socket.
//!
//! [`fuzz_frames`] writes the input's byte stream into one end of a socket pair — in pieces,
//! one of them carrying descriptors — closes it, and reads frames off the other end with the
//! transport's reader until the stream ends or is refused. Each frame is then taken apart the
//! way both sides do: as a job (`parse_job`, then the argument decoded by a registered entry's
//! runner, anonymous segment handles included) and as a reply (`decode_reply`). Nothing may
//! panic, leak a descriptor, or allocate without bound.
//!
//! Input: `[descriptors][piece size][descriptor piece][stream]`: how many descriptors (mod 65)
//! ride along, on which piece of the stream (mod the number of pieces), and how long the
//! pieces are (at least 1 + byte, at most 65 pieces).

use std::cell::OnceCell;
use std::os::fd::{AsFd, OwnedFd};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use shmproc_shm::{Kind, Segment, Spec, TypeInfo};

use crate::entry::{decode_reply, encode, Entry, Registered, REPLY_FAILED, REPLY_OK, REPLY_PANIC};
use crate::sys;
use crate::transport::{Channel, Frame};
use crate::worker::{job_head, parse_job, Op};

/// Longest stream an input writes (well under a socket's buffer, so writing never blocks).
pub const MAX_STREAM: usize = 16 << 10;

/// The argument type of the fuzz entry: numbers, text, lists, options and segment handles.
type Arg = (u8, String, Vec<u64>, Option<(i32, f64)>, Vec<Handle>);

/// A segment handle inside a message (what `Value`, `Queue`, … serialize to).
struct Handle(Segment);

impl Serialize for Handle {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_handle(serializer)
    }
}

impl<'de> Deserialize<'de> for Handle {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Segment::deserialize_handle(deserializer, Kind::Raw, TypeInfo::none()).map(Handle)
    }
}

/// An entry as `#[shmproc::entry]` would make it (never registered: the target calls its
/// runners directly, as a child does after finding it).
#[derive(Clone, Copy)]
struct FuzzEntry;

impl Entry for FuzzEntry {
    type Arg = Arg;
    type Ret = u64;
    const KEY: &'static str = "shmproc_process::fuzzing::entry(Arg) -> u64";
    const HANDLE: Self = FuzzEntry;
    fn call(self, arg: Arg) -> u64 {
        (arg.1.len() + arg.2.len() + arg.4.len()) as u64
    }
}

thread_local! {
    /// A valid anonymous segment whose descriptor the inputs send along.
    static SEGMENT: OnceCell<Segment> = const { OnceCell::new() };
}

/// Writes the input's stream into a socket (descriptors attached as it says), then reads and
/// takes apart every frame that comes out.
///
/// # Panics
/// When the code under test misbehaves (a check below fails), or when the OS refuses a socket
/// pair or a descriptor.
pub fn fuzz_frames(data: &[u8]) {
    let _ = read_frames(data);
}

/// How one frame went: decoded as a reply, and (if it parsed as a job) its argument decoded.
#[derive(Debug, PartialEq)]
struct Outcome {
    reply: bool,
    job: Option<bool>,
}

/// [`fuzz_frames`], returning how each frame went.
fn read_frames(data: &[u8]) -> Vec<Outcome> {
    let [nfds, piece, fd_piece, stream @ ..] = data else {
        return Vec::new();
    };
    let stream = &stream[..stream.len().min(MAX_STREAM)];
    let piece = (usize::from(*piece) + 1).max(stream.len() / 64 + 1);
    let pieces = stream.len().div_ceil(piece).max(1);
    let fd_piece = usize::from(*fd_piece) % pieces;
    let nfds = usize::from(*nfds) % (sys::MAX_FDS + 1);

    let (tx, rx) = Channel::pair().expect("a socket pair");
    for (i, bytes) in stream.chunks(piece).enumerate() {
        let fds = if i == fd_piece {
            descriptors(nfds)
        } else {
            Vec::new()
        };
        let mut sent = sys::send_with_fds(tx.as_fd(), bytes, &fds).expect("send to a socket");
        while sent < bytes.len() {
            sent += sys::send_with_fds(tx.as_fd(), &bytes[sent..], &[]).expect("send");
        }
    }
    if stream.is_empty() && nfds > 0 {
        // Descriptors with no bytes cannot be sent on a stream socket: send one zero byte.
        sys::send_with_fds(tx.as_fd(), &[0], &descriptors(nfds)).expect("send");
    }
    drop(tx);

    let (mut total, mut outcomes) = (0, Vec::new());
    while let Ok(Some(frame)) = rx.recv(None) {
        total += frame.bytes.len() + 8;
        assert!(total <= stream.len().max(1), "more bytes read than written");
        assert!(frame.fds.len() <= sys::MAX_FDS);
        outcomes.push(take_apart(frame));
    }
    outcomes
}

/// A frame as a reply (the parent's side) and as a job (the child's side).
fn take_apart(frame: Frame) -> Outcome {
    let copy = Frame {
        bytes: frame.bytes.clone(),
        fds: frame
            .fds
            .iter()
            .map(|fd| fd.try_clone().expect("dup a received descriptor"))
            .collect(),
    };
    let reply = match decode_reply::<Arg>(copy) {
        Ok(_) => {
            assert_eq!(frame.bytes.first(), Some(&REPLY_OK));
            true
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            false
        }
    };

    let original = frame.bytes.clone();
    let Some((op, key, arg)) = parse_job(frame) else {
        return Outcome { reply, job: None };
    };
    // The head the parent would have written for this job is exactly what was parsed.
    let mut again = job_head(op, &key);
    again.extend_from_slice(&arg.bytes);
    assert_eq!(again, original, "job head does not round-trip");
    let runner = Registered::of::<FuzzEntry>();
    let run = match op {
        Op::Call => runner.run,
        Op::CallMany => runner.run_many,
        Op::Exit | Op::Link | Op::Init => return Outcome { reply, job: None },
    };
    let ran = run(arg);
    if let Err(e) = &ran {
        assert!(!e.is_empty());
    }
    Outcome {
        reply,
        job: Some(ran.is_ok()),
    }
}

/// `n` descriptors of the valid anonymous segment (duplicates).
fn descriptors(n: usize) -> Vec<OwnedFd> {
    SEGMENT.with(|cell| {
        let seg = cell.get_or_init(anonymous_segment);
        (0..n)
            .map(|_| OwnedFd::from(seg.file().try_clone().expect("dup a memfd")))
            .collect()
    })
}

/// `[len][fd count][bytes]`, as the transport writes a frame.
fn framed(bytes: &[u8], fds: usize) -> Vec<u8> {
    let mut out = (bytes.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&(fds as u32).to_le_bytes());
    out.extend_from_slice(bytes);
    out
}

/// Seed inputs for [`fuzz_frames`]: jobs (call, call-many, with a segment handle, exit) and
/// replies (result, panic, failure) as a parent and a child write them.
pub fn frame_seeds() -> Vec<Vec<u8>> {
    let seed = |fds: usize, piece: u8, frames: &[Vec<u8>]| {
        let mut out = vec![fds as u8, piece, 0];
        frames.iter().for_each(|f| out.extend_from_slice(f));
        out
    };
    let arg = || -> Arg {
        (
            7,
            "seven".into(),
            vec![1, 300, 1 << 40],
            Some((-3, 0.5)),
            vec![],
        )
    };
    let job = |op: Op, body: &Frame| {
        let mut bytes = job_head(op, FuzzEntry::KEY);
        bytes.extend_from_slice(&body.bytes);
        framed(&bytes, body.fds.len())
    };
    let call = encode(&arg()).expect("encodable");
    let many = crate::entry::encode_batches(&[arg(), arg()], 2)
        .expect("encodable")
        .pop()
        .expect("one batch");
    let with_handle: Arg = (
        1,
        String::new(),
        vec![],
        None,
        vec![Handle(anonymous_segment())],
    );
    let handle = encode(&with_handle).expect("encodable");
    let reply = |status: u8, body: &[u8]| {
        let mut bytes = vec![status];
        bytes.extend_from_slice(body);
        framed(&bytes, 0)
    };
    let result: Arg = (2, "two".into(), vec![2], None, vec![]);
    let result = encode(&result).expect("encodable");
    vec![
        seed(0, 255, &[job(Op::Call, &call)]),
        seed(
            0,
            3,
            &[job(Op::CallMany, &many), job(Op::Exit, &Frame::default())],
        ),
        seed(handle.fds.len(), 255, &[job(Op::Call, &handle)]),
        seed(0, 255, &[reply(REPLY_OK, &result.bytes)]),
        seed(
            0,
            255,
            &[reply(REPLY_PANIC, b"boom"), reply(REPLY_FAILED, b"no")],
        ),
        seed(0, 255, &[framed(&[], 0), framed(&[2, 0, 0], 0)]),
    ]
}

fn anonymous_segment() -> Segment {
    let spec = Spec {
        kind: Kind::Raw,
        elem: TypeInfo::none(),
        payload_len: 8,
    };
    Segment::create_anonymous(&spec, |_| Ok(())).expect("an anonymous segment")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_decode_as_jobs_and_replies() {
        let outcome = |reply, job| Outcome { reply, job };
        let (job, reply) = (outcome(false, Some(true)), outcome(true, None));
        let want = [
            vec![job],
            vec![outcome(false, Some(true)), outcome(false, None)],
            vec![outcome(false, Some(true))],
            vec![reply],
            vec![outcome(false, None), outcome(false, None)],
            vec![outcome(false, None), outcome(false, None)],
        ];
        for (seed, want) in frame_seeds().iter().zip(want) {
            assert_eq!(read_frames(seed), want);
        }
        fuzz_frames(&[3, 0, 0]); // descriptors and no bytes
        fuzz_frames(&[0, 0, 0, 255, 255, 255, 127, 0, 0, 0, 0]); // a 2 GiB frame announced
    }
}
