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
//! | pool worker, idle            | told to exit, or end-of-stream: its owner dropped the  |
//! |                              | channel or died (only the owner holds the other end)   |
//! | pool worker, busy            | at once when its owner dies (see `owner_watch`)        |
//! | pool worker whose owner died | at once, as its parent is no longer the owner          |
//! | before it started serving    |                                                        |
//! | started by a forged or       | at once, before `main`, with a message and exit code 2 |
//! | setuid start                 |                                                        |

use std::io::{self, Write};
use std::os::fd::AsFd;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::entry::{REPLY_FAILED, REPLY_OK, REPLY_PANIC};
use crate::owner_watch::die_with;
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
}

/// The head of a job frame: `[op][key length: u16 LE][key]`, followed by the argument bytes.
pub(crate) fn job_head(op: Op, key: &str) -> Vec<u8> {
    let mut head = Vec::with_capacity(3 + key.len());
    head.push(op as u8);
    head.extend_from_slice(&(key.len() as u16).to_le_bytes());
    head.extend_from_slice(key.as_bytes());
    head
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

/// Serves jobs until told to exit or the parent goes away, then leaves the process.
fn serve_jobs(channel: &Channel) -> ! {
    while let Ok(Some(job)) = channel.recv(None) {
        let Some((op, key, arg)) = parse_job(job) else {
            break;
        };
        if op == Op::Exit {
            break;
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

/// Leaves the process: shared objects, then stdio, then `_exit(code)`.
fn finish(code: i32) -> ! {
    shmproc_shm::leave_all(); // a handle kept past its entry leaves, not dies
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    sys::exit_now(code)
}

pub(crate) fn parse_job(job: Frame) -> Option<(Op, String, Frame)> {
    let Frame { mut bytes, fds } = job;
    let op = match *bytes.first()? {
        0 => Op::Call,
        1 => Op::CallMany,
        2 => Op::Exit,
        _ => return None,
    };
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
