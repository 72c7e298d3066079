//! Entry points: functions registered by `#[shmproc::entry]` under a key known at compile
//! time, so a spawned child (the same binary) can find them by name.

use std::os::fd::OwnedFd;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::transport::Frame;
use crate::ProcessError;

/// A function registered with `#[shmproc::entry]`, as a typed, zero-sized handle.
///
/// The macro implements it; `Process::spawn` and `Pool` take any `E: Entry`, so the argument
/// and result types are checked at compile time.
pub trait Entry: Copy + Send + Sync + 'static {
    /// The argument (a tuple for several; `()` for none).
    type Arg: Serialize + DeserializeOwned;
    /// The return value.
    type Ret: Serialize + DeserializeOwned;
    /// The registry key: module path, name and signature, e.g. `app::math::square(u64) -> u64`.
    const KEY: &'static str;
    /// The handle itself (how a child calls it without one being sent).
    const HANDLE: Self;
    /// Runs the function in this process.
    fn call(self, arg: Self::Arg) -> Self::Ret;
}

/// One registered entry, as stored in [`ENTRIES`] by the macro.
#[doc(hidden)]
#[derive(Debug)]
pub struct Registered {
    pub(crate) key: &'static str,
    pub(crate) run: fn(Frame) -> Result<Frame, String>,
    pub(crate) run_many: fn(Frame) -> Result<Frame, String>,
}

impl Registered {
    /// The registration of `E`.
    pub const fn of<E: Entry>() -> Registered {
        Registered {
            key: E::KEY,
            run: run::<E>,
            run_many: run_many::<E>,
        }
    }
}

/// Every entry in the program, collected at link time (no constructor needed to fill it, so a
/// child dispatching before `main` sees all of them).
#[doc(hidden)]
#[linkme::distributed_slice]
pub static ENTRIES: [Registered];

pub(crate) fn lookup(key: &str) -> Option<&'static Registered> {
    ENTRIES.iter().find(|r| r.key == key)
}

/// Serializes `value`, collecting the descriptors of anonymous handles in it.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Frame, String> {
    encode_for(value, None)
}

/// [`encode`] for a message to process `recipient`, when known (pipe ends register it).
pub(crate) fn encode_for<T: Serialize + ?Sized>(
    value: &T,
    recipient: Option<u32>,
) -> Result<Frame, String> {
    let _stale = shmproc_shm::take_transfer_error();
    let (bytes, fds) = shmproc_shm::collect_fds_for(recipient, || postcard::to_allocvec(value));
    if fds.len() > crate::sys::MAX_FDS {
        return Err(format!(
            "{} anonymous handles in one message; at most {} (pass fewer, or named ones)",
            fds.len(),
            crate::sys::MAX_FDS
        ));
    }
    Ok(Frame {
        bytes: bytes.map_err(explain)?,
        fds,
    })
}

/// Deserializes `bytes`, giving handles in it the descriptors `fds` that came along.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], fds: Vec<OwnedFd>) -> Result<T, String> {
    let _stale = shmproc_shm::take_transfer_error();
    shmproc_shm::with_received_fds(fds, || postcard::from_bytes(bytes)).map_err(explain)
}

/// postcard drops our handles' error messages; get them back.
fn explain(e: postcard::Error) -> String {
    shmproc_shm::take_transfer_error().unwrap_or_else(|| e.to_string())
}

fn run<E: Entry>(arg: Frame) -> Result<Frame, String> {
    let arg: E::Arg = decode(&arg.bytes, arg.fds).map_err(|e| format!("argument: {e}"))?;
    let ret = E::HANDLE.call(arg);
    encode_for(&ret, Some(requester())).map_err(|e| format!("result: {e}"))
}

fn run_many<E: Entry>(args: Frame) -> Result<Frame, String> {
    let args: Vec<E::Arg> = decode(&args.bytes, args.fds).map_err(|e| format!("argument: {e}"))?;
    let rets: Vec<E::Ret> = args.into_iter().map(|a| E::HANDLE.call(a)).collect();
    encode_for(&rets, Some(requester())).map_err(|e| format!("result: {e}"))
}

/// The process a worker's replies go to: the one that started it (spawn or Pool).
fn requester() -> u32 {
    std::os::unix::process::parent_id()
}

/// Maps a child's reply to the entry's result.
pub(crate) fn decode_reply<R: DeserializeOwned>(reply: Frame) -> Result<R, ProcessError> {
    let Frame { bytes, fds } = reply;
    match bytes.split_first() {
        Some((&REPLY_OK, rest)) => decode(rest, fds).map_err(ProcessError::Decode),
        Some((&REPLY_PANIC, rest)) => Err(ProcessError::Panicked {
            message: String::from_utf8_lossy(rest).into_owned(),
        }),
        Some((&REPLY_FAILED, rest)) => Err(ProcessError::Failed(
            String::from_utf8_lossy(rest).into_owned(),
        )),
        _ => Err(ProcessError::Decode("malformed reply".to_owned())),
    }
}

pub(crate) const REPLY_OK: u8 = 0;
pub(crate) const REPLY_PANIC: u8 = 1;
pub(crate) const REPLY_FAILED: u8 = 2;
