//! The child side: a spawned (or forked) process serving jobs from its channel, and the
//! constructor that turns a re-executed binary into such a child before `main` runs.

use std::io::{self, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::entry::{lookup, REPLY_FAILED, REPLY_OK, REPLY_PANIC};
use crate::transport::{Channel, Frame};
use crate::{current, sys};

/// Environment variable telling a re-executed binary to serve jobs on descriptor 3; its
/// value is the process name.
pub const SPAWN_ENV: &str = "SHMPROC_SPAWN_CHILD";

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

/// Serves jobs until told to exit or the parent goes away, then leaves the process.
pub(crate) fn serve(channel: &Channel) -> ! {
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
    shmproc_shm::leave_all(); // a handle kept past its entry leaves, not dies
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    sys::exit_now(0)
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
    let Some(entry) = lookup(key) else {
        return failed(format!(
            "no entry {key:?} in this binary (spawn re-runs the same executable; was it rebuilt?)"
        ));
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
    // Not inherited by processes the entry starts itself.
    std::env::remove_var(SPAWN_ENV);
    if !sys::is_socket(sys::CHILD_FD) {
        eprintln!("shmproc: {SPAWN_ENV} is set but descriptor 3 is no channel; not a child");
        sys::exit_now(2);
    }
    current::set_current_name(Box::new(name.to_string_lossy().into_owned()));
    // SAFETY: the parent installed our channel at CHILD_FD (checked to be a socket) and nothing
    // in this process has touched it yet.
    let channel = Channel::from_fd(unsafe { sys::own_fd(sys::CHILD_FD) });
    serve(&channel)
}

#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
pub(crate) static DISPATCH: extern "C" fn() = dispatch_before_main;

#[cfg(not(target_os = "linux"))]
pub(crate) static DISPATCH: extern "C" fn() = dispatch_before_main;
