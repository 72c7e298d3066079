//! The child side: a spawned (or forked) process serving jobs from its channel, and the
//! constructor that turns a re-executed binary into such a child before `main` runs.
//!
//! # Who may start a child, and when it ends
//! A re-executed binary serves jobs only if descriptor 3 is a socket created by its parent
//! (`SO_PEERCRED`) and it was not started setuid/setgid (`AT_SECURE`): otherwise any program
//! linking shmproc could be made to run entries for whoever forged the environment variable.
//! It then makes descriptor 3 close-on-exec, so programs an entry starts do not inherit it (the
//! parent sees the child's death even while they live), and reads `/dev/null` as stdin.
//!
//! | a child …                    | ends when                                              |
//! |------------------------------|--------------------------------------------------------|
//! | of `Process::spawn`          | its entry returned and the result is sent             |
//! | pool worker, idle            | told to exit, or its pipe's other end is gone: its     |
//! |                              | owner dropped it or died (only the owner holds it)     |
//! | pool worker, retiring        | after its last reply (`max_tasks_per_child`)           |
//! | pool worker, initializer     | at once (exit code 3), after saying why on its socket  |
//! | failed                       |                                                        |
//! | pool worker, busy            | at once when its owner dies (see `owner_watch`)        |
//! | pool worker whose owner died | at once, as its parent is no longer the owner          |
//! | before it started serving    |                                                        |
//! | started by a forged or       | at once, before `main`, with a message and exit code 2 |
//! | setuid start                 |                                                        |

use std::io::{self, Write};
use std::os::fd::AsFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{fence, Ordering};

use shmproc_channel::Connection;

use crate::entry::{REPLY_FAILED, REPLY_OK, REPLY_PANIC};
use crate::owner_watch::die_with;
use crate::pool::link::{
    shares_cpu, Bootstrap, Waiting, INIT_FAILED, NOTICE, RING, SPINS, WITH_FDS,
};
use crate::transport::{Channel, Frame};
use crate::{current, sys};

/// Environment variable telling a re-executed binary to serve jobs on descriptor 3; its
/// value is the process name.
pub const SPAWN_ENV: &str = "SHMPROC_SPAWN_CHILD";

/// Environment variable with which a spawned child learns it is a pool worker (`1`), which
/// dies with its owner, rather than the child of `Process::spawn` (`0`).
pub(crate) const WORKER_ENV: &str = "SHMPROC_SPAWN_WORKER";

/// Exit code of a re-executed binary that refuses to serve (see the module docs).
const REFUSED: i32 = 2;

/// What a job frame asks for.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Op {
    /// Run the entry on one argument.
    Call = 0,
    /// Run the entry on each argument of a list; reply with the list of results.
    CallMany = 1,
    /// Leave (flush, exit 0).
    Exit = 2,
    /// A pool worker's bootstrap (on the socket): its pipe and settings; jobs follow there.
    Link = 3,
    /// Run the pool's initializer (on the pipe, before any task); no reply unless it fails.
    Init = 4,
}

impl Op {
    fn from_byte(b: u8) -> Option<Op> {
        Some(match b {
            0 => Op::Call,
            1 => Op::CallMany,
            2 => Op::Exit,
            3 => Op::Link,
            4 => Op::Init,
            _ => return None,
        })
    }
}

/// The head of a job frame: `[op][key length: u16 LE][key]`, followed by the argument bytes.
pub(crate) fn job_head(op: Op, key: &str) -> Vec<u8> {
    let mut head = Vec::with_capacity(3 + key.len());
    head.push(op as u8);
    head.extend_from_slice(&(key.len() as u16).to_le_bytes());
    head.extend_from_slice(key.as_bytes());
    head
}

/// A job message on a pool worker's pipe: `[op (| WITH_FDS)][seq: u32 LE][key length: u16 LE]
/// [key][argument bytes]`; with `WITH_FDS`, the argument's descriptors come on the socket.
pub(crate) fn pipe_job(op: Op, with_fds: bool, seq: u32, key: &str, arg: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(7 + key.len() + arg.len());
    msg.push(op as u8 | if with_fds { WITH_FDS } else { 0 });
    msg.extend_from_slice(&seq.to_le_bytes());
    msg.extend_from_slice(&(key.len() as u16).to_le_bytes());
    msg.extend_from_slice(key.as_bytes());
    msg.extend_from_slice(arg);
    msg
}

/// The body of a forked pool worker (a child of `Process::fork`): dies with its owner (see
/// `owner_watch`), then serves jobs like a spawned one.
pub(crate) fn serve(channel: &Channel) -> ! {
    if let Some(owner) = current::forked_from() {
        if !die_with(owner) {
            finish(1);
        }
    }
    serve_jobs(channel)
}

/// Serves jobs until told to exit or the parent goes away, then leaves the process. A pool
/// worker's first job is its [`Bootstrap`]: from then on it serves its pipe.
fn serve_jobs(channel: &Channel) -> ! {
    while let Ok(Some(job)) = channel.recv(None) {
        let Some((op, key, arg)) = parse_job(job) else {
            break;
        };
        match op {
            Op::Exit | Op::Init => break,
            Op::Link => match crate::entry::decode::<Bootstrap>(&arg.bytes, arg.fds) {
                Ok(boot) => serve_pipe(channel, boot),
                Err(_) => finish(1),
            },
            Op::Call | Op::CallMany => {}
        }
        let (status, reply) = run_job(op, &key, arg);
        if channel
            .send(&[&[status], &reply.bytes], &reply.fds)
            .is_err()
        {
            break;
        }
    }
    finish(0)
}

/// Exit code of a pool worker whose initializer failed (after it said why on the socket).
const INIT_FAILED_EXIT: i32 = 3;

/// A pool worker's loop: jobs from the pipe, replies into it (see `pool::link`).
fn serve_pipe(channel: &Channel, boot: Bootstrap) -> ! {
    let Bootstrap {
        mut pipe,
        waiting,
        max_tasks,
    } = boot;
    pipe.set_spins(SPINS);
    // Its owner, asked once (it dies with the owner, so the answer never changes).
    crate::entry::serve_requests_for(std::os::unix::process::parent_id());
    let mut quiet = pipe.clone();
    quiet.set_spins(0);
    let mut done = 0u64;
    loop {
        let shared = shares_cpu(waiting.worker_cpu(), waiting.pool_cpu());
        let Ok(msg) = (if shared { &quiet } else { &pipe }).recv_bytes() else {
            break;
        };
        let Some((op, seq, key, arg)) = read_pipe_job(channel, msg) else {
            break;
        };
        match op {
            Op::Call | Op::CallMany => {}
            Op::Init => {
                let (status, reply) = run_job(Op::Call, &key, arg);
                if status == REPLY_OK {
                    continue;
                }
                let why = String::from_utf8_lossy(&reply.bytes).into_owned();
                let _ = channel.send(&[&[INIT_FAILED], why.as_bytes()], &[]);
                finish(INIT_FAILED_EXIT);
            }
            _ => break,
        }
        let (status, reply) = run_job(op, &key, arg);
        if send_reply(channel, &pipe, &waiting, seq, status, reply).is_err() {
            break;
        }
        done += 1;
        if max_tasks.is_some_and(|n| done >= n) {
            break;
        }
    }
    finish(0)
}

/// A job from the pipe, its descriptors read from the socket if it has any.
fn read_pipe_job(channel: &Channel, mut msg: Vec<u8>) -> Option<(Op, u32, String, Frame)> {
    let head = *msg.first()?;
    let op = Op::from_byte(head & !WITH_FDS)?;
    let seq = u32::from_le_bytes(msg.get(1..5)?.try_into().ok()?);
    let key_len = u16::from_le_bytes([*msg.get(5)?, *msg.get(6)?]) as usize;
    let key = String::from_utf8(msg.get(7..7 + key_len)?.to_vec()).ok()?;
    msg.drain(..7 + key_len);
    let fds = if head & WITH_FDS != 0 {
        channel.recv(None).ok()??.fds
    } else {
        Vec::new()
    };
    Some((op, seq, key, Frame { bytes: msg, fds }))
}

/// Sends a reply into the pipe; its descriptors, and a notice when no thread of the pool's
/// process waits for it (or when it is streamed), go on the socket (see `pool::link`).
fn send_reply(
    channel: &Channel,
    pipe: &Connection<()>,
    waiting: &Waiting,
    seq: u32,
    status: u8,
    reply: Frame,
) -> io::Result<()> {
    let with_fds = !reply.fds.is_empty();
    let streamed = reply.bytes.len() + 1 + 8 > RING;
    let notice = [&[NOTICE][..], &seq.to_le_bytes()[..]].concat();
    let noticed_first = with_fds || streamed;
    if noticed_first {
        channel.send(&[&notice], &reply.fds)?;
    }
    let mut msg = Vec::with_capacity(1 + reply.bytes.len());
    msg.push(status | if with_fds { WITH_FDS } else { 0 });
    msg.extend_from_slice(&reply.bytes);
    drop(reply);
    pipe.send_bytes(&msg).map_err(io::Error::other)?;
    // Pairs with the waiter's fence after it stops waiting (see `Runner for Link`).
    fence(Ordering::SeqCst);
    if !noticed_first && !waiter_comes(waiting) {
        channel.send(&[&notice], &[])?;
    }
    Ok(())
}

/// Polls of [`waiter_comes`]: a microsecond or two.
const WAITER_GRACE: u32 = 256;

/// Whether a thread of the pool's process waits for the reply, allowing it a moment to
/// arrive: a task submitted and then waited for is often done before its waiter gets there,
/// and a notice costs a system call here and wakes the manager thread. Yields only to a
/// waiter on our own CPU: on a loaded machine a yield may give the CPU away for a whole time
/// slice.
fn waiter_comes(waiting: &Waiting) -> bool {
    let count = waiting.count();
    if count.load(Ordering::SeqCst) > 0 {
        return true;
    }
    if shares_cpu(waiting.worker_cpu(), waiting.pool_cpu()) {
        // A waiter on our CPU cannot come while we spin; it may have been preempted by our
        // wake-up right before it waits: let it run once.
        std::thread::yield_now();
        return count.load(Ordering::SeqCst) > 0;
    }
    for _ in 0..WAITER_GRACE {
        if count.load(Ordering::SeqCst) > 0 {
            return true;
        }
        std::hint::spin_loop();
    }
    count.load(Ordering::SeqCst) > 0
}

/// Leaves the process: shared objects, then stdio, then `_exit(code)`.
fn finish(code: i32) -> ! {
    shmproc_shm::leave_all(); // a handle kept past its entry leaves, not dies
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    sys::exit_now(code)
}

pub(crate) fn parse_job(job: Frame) -> Option<(Op, String, Frame)> {
    let Frame { mut bytes, fds } = job;
    let op = Op::from_byte(*bytes.first()?)?;
    let key_len = u16::from_le_bytes([*bytes.get(1)?, *bytes.get(2)?]) as usize;
    let key = String::from_utf8(bytes.get(3..3 + key_len)?.to_vec()).ok()?;
    bytes.drain(..3 + key_len);
    Some((op, key, Frame { bytes, fds }))
}

fn run_job(op: Op, key: &str, arg: Frame) -> (u8, Frame) {
    let failed = |msg: String| {
        let bytes = msg.into_bytes();
        (
            REPLY_FAILED,
            Frame {
                bytes,
                fds: Vec::new(),
            },
        )
    };
    let entry = match crate::entry::find(key) {
        Ok(entry) => entry,
        Err(msg) => return failed(msg),
    };
    let run = if op == Op::CallMany {
        entry.run_many
    } else {
        entry.run
    };
    match catch_unwind(AssertUnwindSafe(|| run(arg))) {
        Ok(Ok(reply)) => (REPLY_OK, reply),
        Ok(Err(msg)) => failed(msg),
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic with a non-string payload".to_owned());
            (
                REPLY_PANIC,
                Frame {
                    bytes: message.into_bytes(),
                    fds: Vec::new(),
                },
            )
        }
    }
}

/// Runs before `main` in every program that uses `spawn` (referenced from there so the linker
/// keeps it): in a re-executed child it serves jobs and exits, so the program's own `main` —
/// or the test harness — never runs there. In any other process it returns at once.
extern "C" fn dispatch_before_main() {
    let Some(name) = std::env::var_os(SPAWN_ENV) else {
        return;
    };
    let worker = std::env::var_os(WORKER_ENV).is_some_and(|v| v == "1");
    // Not inherited by processes the entry starts itself.
    std::env::remove_var(SPAWN_ENV);
    std::env::remove_var(WORKER_ENV);
    let channel = adopt_channel();
    current::set_spawned_by(channel.peer);
    if worker && !die_with(channel.peer) {
        refuse(&format!(
            "its parent (pid {}) exited before it could start",
            channel.peer
        ));
    }
    current::set_current_name(Box::new(name.to_string_lossy().into_owned()));
    serve_jobs(&channel.channel)
}

/// The channel at descriptor 3 and the pid of the process that made it (our parent).
struct Adopted {
    channel: Channel,
    peer: u32,
}

/// Takes descriptor 3 if this start is genuine (see the module docs); refuses otherwise.
fn adopt_channel() -> Adopted {
    if sys::is_secure_start() {
        refuse("this program runs setuid/setgid or with added capabilities (AT_SECURE)");
    }
    if !sys::is_socket(sys::CHILD_FD) {
        refuse("descriptor 3 is no channel");
    }
    // SAFETY: descriptor 3 is open (a socket, checked above). A genuine parent installed it
    // before exec, so no code in this process can have opened another file at that number; in
    // a forged start it may be anyone's, but then we `_exit` below without closing or using
    // it beyond the checks. Nothing else in this process uses descriptor 3 by number.
    let channel = Channel::from_fd(unsafe { sys::own_fd(sys::CHILD_FD) });
    if let Err(e) = sys::set_cloexec(channel.as_fd()) {
        refuse(&format!("descriptor 3 cannot be made close-on-exec: {e}"));
    }
    let peer = match sys::peer_pid(channel.as_fd()) {
        Ok(pid) => pid,
        Err(e) => refuse(&format!("descriptor 3 has no peer credentials: {e}")),
    };
    let parent = sys::parent_pid().unwrap_or(0);
    if peer != parent {
        refuse(&format!(
            "descriptor 3 was made by pid {peer}, not by this process's parent (pid {parent})"
        ));
    }
    Adopted { channel, peer }
}

/// Explains why this process does not serve, and exits with [`REFUSED`] before `main`.
fn refuse(why: &str) -> ! {
    eprintln!("shmproc: {SPAWN_ENV} is set but {why}: refusing to run entries; exiting");
    sys::exit_now(REFUSED)
}

#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
pub(crate) static DISPATCH: extern "C" fn() = dispatch_before_main;

#[cfg(not(target_os = "linux"))]
pub(crate) static DISPATCH: extern "C" fn() = dispatch_before_main;
