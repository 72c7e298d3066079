//! Entry points: functions registered by `#[shmproc::entry]` under a key known at compile
//! time, so a spawned child (the same binary) can find them by name.
//!
//! A key names the entry's module path, name, signature and source location, so two entries can
//! share a name and signature (function-local entries in one module) and still be told apart.
//! Should two registrations ever share a key anyway (a hand-written [`Entry`] impl), looking the
//! key up is an error naming both: never the wrong function run.

use std::cell::Cell;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU8, Ordering};

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
    /// The registry key: module path, name, signature and where the function is defined, e.g.
    /// `app::math::square(u64) -> u64 @ src/math.rs:12:4`. Unique in a program (a key
    /// registered twice is refused when used); the same in every run of one build, which is all
    /// a spawned child (a re-run of the same executable) needs.
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
    /// The handle type's name, to tell registrations apart in errors.
    name: fn() -> &'static str,
    pub(crate) run: fn(Frame) -> Result<Frame, String>,
    pub(crate) run_many: fn(Frame) -> Result<Frame, String>,
}

impl Registered {
    /// The registration of `E`.
    pub const fn of<E: Entry>() -> Registered {
        Registered {
            key: E::KEY,
            name: std::any::type_name::<E>,
            run: run::<E>,
            run_many: run_many::<E>,
        }
    }

    /// The entry's name for messages: its handle type, without the macro's prefix.
    fn name(&self) -> String {
        (self.name)().replace("__shmproc_Entry_", "")
    }
}

/// Every entry in the program, collected at link time (no constructor needed to fill it, so a
/// child dispatching before `main` sees all of them).
#[doc(hidden)]
#[linkme::distributed_slice]
pub static ENTRIES: [Registered];

/// The entry registered as `key`.
///
/// # Errors
/// A message saying there is no such entry, or naming every registration of a key registered
/// more than once.
pub(crate) fn find(key: &str) -> Result<&'static Registered, String> {
    find_in(&ENTRIES, key)
}

/// Checks that `key` names exactly one entry in this program, before a job for it is sent: a
/// child (the same binary) then finds the same one. Cheap once the program is known to register
/// no key twice.
pub(crate) fn check_registered(key: &str) -> Result<(), ProcessError> {
    // 0: not checked yet, 1: every key is unique, 2: some key is registered twice. An atomic,
    // not a `OnceLock`: a forked worker must never wait for an initialisation that another
    // thread of its parent had begun at fork time.
    static UNIQUE: AtomicU8 = AtomicU8::new(0);
    let mut state = UNIQUE.load(Ordering::Relaxed);
    if state == 0 {
        state = if has_duplicates(&ENTRIES) { 2 } else { 1 };
        UNIQUE.store(state, Ordering::Relaxed);
    }
    if state == 1 {
        return Ok(());
    }
    find(key).map(drop).map_err(ProcessError::Failed)
}

fn has_duplicates(entries: &[Registered]) -> bool {
    let mut keys: Vec<&str> = entries.iter().map(|r| r.key).collect();
    keys.sort_unstable();
    keys.windows(2).any(|w| w[0] == w[1])
}

fn find_in<'a>(entries: &'a [Registered], key: &str) -> Result<&'a Registered, String> {
    let mut matches = entries.iter().filter(|r| r.key == key);
    let Some(first) = matches.next() else {
        return Err(format!(
            "no entry {key:?} in this binary (spawn re-runs the same executable; was it rebuilt?)"
        ));
    };
    let others: Vec<String> = matches.map(Registered::name).collect();
    if others.is_empty() {
        return Ok(first);
    }
    let count = match others.len() {
        1 => "two".to_owned(),
        n => (n + 1).to_string(),
    };
    Err(format!(
        "{count} entries registered as {key:?}: {} and {}; rename all but one (a hand-written \
         `Entry` impl needs a key of its own)",
        first.name(),
        others.join(" and ")
    ))
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
    encode_sized(value, recipient, 0)
}

/// [`encode_for`] into a buffer of `capacity` bytes to start with (a batch's results: no
/// regrowing and copying as it fills).
fn encode_sized<T: Serialize + ?Sized>(
    value: &T,
    recipient: Option<u32>,
    capacity: usize,
) -> Result<Frame, String> {
    let _stale = shmproc_shm::take_transfer_error();
    let (bytes, fds) = shmproc_shm::collect_fds_for(recipient, || {
        let mut bytes = Vec::with_capacity(capacity);
        append(value, &mut bytes).map(|()| bytes)
    });
    if fds.len() > crate::sys::MAX_FDS {
        return Err(too_many_fds(fds.len()));
    }
    Ok(Frame {
        bytes: bytes.map_err(explain)?,
        fds,
    })
}

/// Appends the postcard encoding of `value` to `out` (without moving the buffer around).
fn append<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> postcard::Result<()> {
    value.serialize(&mut postcard::Serializer {
        output: AppendTo(out),
    })
}

/// A postcard output appending to a borrowed `Vec` (postcard's own `Extend` flavour goes byte
/// by byte through `Extend`, and its `Vec` flavour owns its buffer).
struct AppendTo<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for AppendTo<'_> {
    type Output = ();

    #[inline]
    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.push(byte);
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        if bytes.len() <= 16 {
            // A varint or a small field: byte by byte beats a call to `memcpy` (which a map of
            // trivial items otherwise spends a third of its time in).
            self.0.extend(bytes.iter().copied());
        } else {
            self.0.extend_from_slice(bytes);
        }
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
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
    // One pass: each argument decoded, run and its result appended, encoding the results as
    // the `Vec<E::Ret>` the caller decodes (postcard: length, then the items), with no list of
    // arguments or results in between.
    let _stale = shmproc_shm::take_transfer_error();
    let mut out = Vec::new();
    let mut failure = None;
    let (decoded, fds) = shmproc_shm::collect_fds_for(Some(requester()), || {
        decode_batch_each::<E::Arg, _>(
            args,
            &mut out,
            |out, count| {
                let hint = count
                    .min(1 << 20)
                    .saturating_mul(std::mem::size_of::<E::Ret>() + 1);
                out.reserve(10 + hint);
                append(&count, out).map_err(explain)
            },
            |out, arg| {
                append(&E::HANDLE.call(arg), out).map_err(|e| {
                    failure = Some(format!("result: {}", explain(e)));
                    String::new()
                })
            },
        )
    });
    if let Some(failure) = failure {
        return Err(failure);
    }
    decoded.map_err(|e| format!("argument: {e}"))?;
    if fds.len() > crate::sys::MAX_FDS {
        return Err(format!("result: {}", too_many_fds(fds.len())));
    }
    Ok(Frame { bytes: out, fds })
}

/// Serializes `items` into batches (the argument of a `CallMany` job) of at most `max_items`
/// items and at most [`MAX_FDS`](crate::sys::MAX_FDS) descriptors each, in order.
///
/// Each item is serialized once, on its own, so its descriptors are numbered from 0 and a batch
/// can be cut before any item without renumbering. A batch is the postcard encoding of
/// `(item count: u32, descriptors per item: Option<Vec<u32>>)` (`None` when no item carries
/// any), then the items' postcard encodings back to back; the descriptors travel in item order.
///
/// # Errors
/// The message of the first item that cannot be serialized, or that carries more than
/// `MAX_FDS` descriptors on its own.
pub(crate) fn encode_batches<T: Serialize>(
    items: &[T],
    max_items: usize,
) -> Result<Vec<Frame>, String> {
    let mut batches = Vec::new();
    let encoded = encode_batches_with(items, max_items, |batch| {
        batches.push(batch);
        Ok(())
    });
    match encoded {
        Ok(()) => Ok(batches),
        Err(ProcessError::Encode(message)) => Err(message),
        Err(other) => Err(other.to_string()),
    }
}

/// [`encode_batches`], handing each batch to `emit` as soon as it is complete (so a pool's
/// workers start on the first chunks while later ones are encoded).
///
/// # Errors
/// [`ProcessError::Encode`] as `encode_batches`, or the first error of `emit` (nothing more is
/// encoded after either).
pub(crate) fn encode_batches_with<T: Serialize>(
    items: &[T],
    max_items: usize,
    mut emit: impl FnMut(Frame) -> Result<(), ProcessError>,
) -> Result<(), ProcessError> {
    let max_items = max_items.max(1);
    let _stale = shmproc_shm::take_transfer_error();
    let encode_error = |e| ProcessError::Encode(explain(e));
    let mut batch = Batch::default();
    // Fast path: items serialized in one collector while none carries a handle (most maps);
    // it stops after the first item that does, whose descriptors are then numbered from 0
    // exactly as in a collector of its own.
    let (fast, first_fds) = shmproc_shm::collect_fds(|| {
        let none_yet = shmproc_shm::descriptors_collected();
        for (i, item) in items.iter().enumerate() {
            let start = batch.bodies.len();
            append(item, &mut batch.bodies).map_err(encode_error)?;
            if shmproc_shm::descriptors_collected() != none_yet {
                return Ok(Some((i, start)));
            }
            if batch.counts.len() == max_items {
                let next = Batch {
                    bodies: batch.bodies.split_off(start),
                    ..Batch::default()
                };
                emit(std::mem::replace(&mut batch, next).finish()?)?;
            }
            batch.counts.push(0);
        }
        Ok::<_, ProcessError>(None)
    });
    let rest = match fast? {
        None => &items[items.len()..],
        Some((i, start)) => {
            batch.add(start, first_fds, max_items, &mut emit)?;
            &items[i + 1..]
        }
    };
    // Slow path, once handles appear: one collector per item.
    for item in rest {
        let start = batch.bodies.len();
        let (appended, fds) = shmproc_shm::collect_fds(|| append(item, &mut batch.bodies));
        appended.map_err(encode_error)?;
        batch.add(start, fds, max_items, &mut emit)?;
    }
    if !batch.counts.is_empty() {
        emit(batch.finish()?)?;
    }
    Ok(())
}

/// A batch being built by [`encode_batches`].
#[derive(Default)]
struct Batch {
    /// The items' encodings, back to back.
    bodies: Vec<u8>,
    /// Descriptors per item.
    counts: Vec<u32>,
    fds: Vec<OwnedFd>,
}

impl Batch {
    /// Counts the item just appended at `start` with its descriptors `fds`, first moving it to
    /// a new batch (pushing this one to `batches`) if this one is full.
    fn add(
        &mut self,
        start: usize,
        fds: Vec<OwnedFd>,
        max_items: usize,
        emit: &mut impl FnMut(Frame) -> Result<(), ProcessError>,
    ) -> Result<(), ProcessError> {
        if fds.len() > crate::sys::MAX_FDS {
            return Err(ProcessError::Encode(too_many_fds(fds.len())));
        }
        let full = self.counts.len() == max_items;
        if !self.counts.is_empty() && (full || self.fds.len() + fds.len() > crate::sys::MAX_FDS) {
            // This item starts the next batch.
            let next = Batch {
                bodies: self.bodies.split_off(start),
                ..Batch::default()
            };
            emit(std::mem::replace(self, next).finish()?)?;
        }
        self.counts.push(fds.len() as u32);
        self.fds.extend(fds);
        Ok(())
    }

    fn finish(self) -> Result<Frame, ProcessError> {
        let count = self.counts.len() as u32;
        let counts = (!self.fds.is_empty()).then_some(self.counts);
        let mut bytes = Vec::with_capacity(16 + self.bodies.len());
        append(&(count, counts), &mut bytes).map_err(|e| ProcessError::Encode(e.to_string()))?;
        bytes.extend_from_slice(&self.bodies);
        Ok(Frame {
            bytes,
            fds: self.fds,
        })
    }
}

/// Deserializes a batch made by [`encode_batches`].
#[cfg(test)]
fn decode_batch<T: DeserializeOwned>(batch: Frame) -> Result<Vec<T>, String> {
    let mut items = Vec::new();
    decode_batch_each(
        batch,
        &mut items,
        // Untrusted count: room for at most a page's worth of items up front.
        |items, count| {
            items.reserve(count.min(4096));
            Ok(())
        },
        |items, item| {
            items.push(item);
            Ok(())
        },
    )?;
    Ok(items)
}

/// Decodes a batch made by [`encode_batches`] item by item into `state`: `begin` gets the item
/// count (not to be trusted for allocation), then `each` every item, in order.
fn decode_batch_each<T: DeserializeOwned, S>(
    batch: Frame,
    state: &mut S,
    begin: impl FnOnce(&mut S, usize) -> Result<(), String>,
    mut each: impl FnMut(&mut S, T) -> Result<(), String>,
) -> Result<(), String> {
    let malformed = |what: &str| format!("malformed batch: {what}");
    let _stale = shmproc_shm::take_transfer_error();
    let Frame { bytes, fds } = batch;
    let ((count, counts), mut rest) = postcard::take_from_bytes::<(u32, Option<Vec<u32>>)>(&bytes)
        .map_err(|_| malformed("bad head"))?;
    match &counts {
        None if !fds.is_empty() => return Err(malformed("descriptors nobody counted")),
        Some(counts) => {
            let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
            if counts.len() != count as usize || total != fds.len() as u64 {
                return Err(malformed("descriptor counts do not add up"));
            }
        }
        None => {}
    }
    begin(state, count as usize)?;
    let mut take = |rest: &mut &[u8]| -> Result<(), String> {
        let (item, tail) = postcard::take_from_bytes(rest).map_err(explain)?;
        *rest = tail;
        each(state, item)
    };
    match counts {
        // No item carries a descriptor: one (empty) set of them serves all.
        None => shmproc_shm::with_received_fds(Vec::new(), || {
            (0..count).try_for_each(|_| take(&mut rest))
        })?,
        Some(counts) => {
            let mut fds = fds.into_iter();
            for n in counts {
                let mine = fds.by_ref().take(n as usize).collect();
                shmproc_shm::with_received_fds(mine, || take(&mut rest))?;
            }
        }
    }
    if !rest.is_empty() {
        return Err(malformed("bytes left over"));
    }
    Ok(())
}

fn too_many_fds(n: usize) -> String {
    format!(
        "{n} anonymous handles in one message; at most {} (pass fewer, or named ones)",
        crate::sys::MAX_FDS
    )
}

thread_local! {
    /// The process this thread's entry results go to, when named by [`serve_requests_for`].
    static REQUESTER: Cell<Option<u32>> = const { Cell::new(None) };
}

/// Names `pid` as the process every entry run on this thread returns its results to: a pool
/// thread's own process, or a worker's owner. Saves a system call per task (`getppid`), and on
/// a thread pool names the right process (pipe ends in results register their recipient).
pub(crate) fn serve_requests_for(pid: u32) {
    REQUESTER.with(|r| r.set(Some(pid)));
}

/// The process a worker's replies go to: as named by [`serve_requests_for`], else the one that
/// started it (spawn or Pool).
fn requester() -> u32 {
    REQUESTER
        .with(Cell::get)
        .unwrap_or_else(std::os::unix::process::parent_id)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy)]
    struct One;
    #[derive(Clone, Copy)]
    struct Two;

    impl Entry for One {
        type Arg = u32;
        type Ret = u32;
        const KEY: &'static str = "tests::twin(u32) -> u32";
        const HANDLE: Self = One;
        fn call(self, x: u32) -> u32 {
            x + 1
        }
    }

    impl Entry for Two {
        type Arg = u32;
        type Ret = u32;
        const KEY: &'static str = "tests::twin(u32) -> u32";
        const HANDLE: Self = Two;
        fn call(self, x: u32) -> u32 {
            x * 2
        }
    }

    #[test]
    fn a_key_registered_twice_is_an_error_naming_both() {
        let entries = [Registered::of::<One>(), Registered::of::<Two>()];
        assert!(has_duplicates(&entries));
        let message = find_in(&entries, One::KEY).unwrap_err();
        assert!(message.contains("two entries"), "{message}");
        assert!(message.contains("tests::One and "), "{message}");
        assert!(message.contains("tests::Two"), "{message}");
        let message = find_in(&entries[..1], "nope").unwrap_err();
        assert!(message.contains("no entry"), "{message}");
        assert!(!has_duplicates(&entries[..1]));
        assert!(std::ptr::eq(
            find_in(&entries[1..], Two::KEY).unwrap(),
            &entries[1]
        ));
    }

    #[test]
    fn batches_split_by_count_and_round_trip() {
        let items: Vec<u64> = (0..10).collect();
        let batches = encode_batches(&items, 4).unwrap();
        assert_eq!(batches.len(), 3);
        let decoded: Vec<Vec<u64>> = batches
            .into_iter()
            .map(|b| decode_batch(b).unwrap())
            .collect();
        assert_eq!(decoded, [vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9]]);
        assert!(encode_batches::<u64>(&[], 4).unwrap().is_empty());
    }

    #[test]
    fn a_malformed_batch_is_an_error_never_a_panic() {
        let good = encode_batches(&[7_u64, 300], 10)
            .unwrap()
            .pop()
            .unwrap()
            .bytes;
        assert_eq!(good, [2, 0, 7, 172, 2]); // 2 items, no descriptors, 7, 300
        let cases: [&[u8]; 7] = [
            &[],                          // no head
            &good[..3],                   // the second item missing
            &good[..4],                   // the second item torn
            &[2, 0, 7, 172, 2, 9],        // a byte left over
            &[2, 1, 2, 0, 3, 7, 9],       // descriptors counted that did not come
            &[2, 1, 1, 0, 7, 9],          // a count per item missing
            &[255, 255, 255, 255, 15, 0], // four billion items that are not there
        ];
        for bytes in cases {
            let batch = Frame {
                bytes: bytes.to_vec(),
                fds: Vec::new(),
            };
            assert!(decode_batch::<u64>(batch).is_err(), "{bytes:?}");
        }
    }
}
