//! The channel benchmark: one-way throughput and round-trip latency of shmproc's `Queue` and
//! `Pipe`, measured with the same harness as the baselines in [`crate::channel_baselines`].

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shmproc::raw::{Segment, SharedRef, Spec, TypeInfo};
use shmproc::{Kind, Pipe, Process, Queue, Sender};

/// Ring bytes used for throughput runs (both `Queue` and `Pipe`).
pub const RING: usize = 1 << 20;
/// Polls before sleeping when a side is meant to wait actively.
pub const SPIN_FOREVER: u32 = u32::MAX;

/// A one-way streaming result.
#[derive(Debug, Clone)]
pub struct Throughput {
    /// What was measured.
    pub name: String,
    /// Bytes per message.
    pub size: usize,
    /// Sending processes (or threads).
    pub producers: usize,
    /// Messages received in all.
    pub msgs: u64,
    /// From the start signal until the last message arrived.
    pub elapsed: Duration,
}

impl Throughput {
    /// Messages per second.
    pub fn msgs_per_sec(&self) -> f64 {
        self.msgs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Payload gigabytes (10^9 B) per second.
    pub fn gb_per_sec(&self) -> f64 {
        self.msgs_per_sec() * self.size as f64 / 1e9
    }
}

/// A round-trip latency result.
#[derive(Debug, Clone)]
pub struct Latency {
    /// What was measured.
    pub name: String,
    /// Median round trip.
    pub median: Duration,
    /// 99th percentile round trip.
    pub p99: Duration,
}

impl Latency {
    /// Median and p99 of `samples` (sorted in place).
    pub fn of(name: impl Into<String>, samples: &mut [Duration]) -> Latency {
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
        Latency {
            name: name.into(),
            median: at(0.5),
            p99: at(0.99),
        }
    }
}

/// A zeroed word in its own anonymous segment, shared with children forked afterwards.
///
/// # Errors
/// When the segment cannot be created.
pub fn shared_word() -> io::Result<SharedRef<AtomicU32>> {
    let spec = Spec {
        kind: Kind::Raw,
        elem: TypeInfo::none(),
        payload_len: 64,
    };
    let seg = Arc::new(Segment::create_anonymous(&spec, |_| Ok(()))?);
    Ok(SharedRef::new(seg, 0)?)
}

/// A start signal in shared memory: children report ready, the parent opens it.
#[derive(Clone)]
pub struct Gate {
    open: SharedRef<AtomicU32>,
    ready: SharedRef<AtomicU32>,
}

impl Gate {
    /// A closed gate.
    ///
    /// # Errors
    /// When the segment cannot be created.
    pub fn new() -> io::Result<Gate> {
        Ok(Gate {
            open: shared_word()?,
            ready: shared_word()?,
        })
    }

    /// In a child: reports ready, then waits for the gate to open.
    pub fn pass(&self) {
        self.ready.fetch_add(1, Ordering::AcqRel);
        while self.open.load(Ordering::Acquire) == 0 {
            std::thread::yield_now();
        }
    }

    /// In the parent: waits (bounded) until `n` are ready, then opens.
    ///
    /// # Errors
    /// When they are not ready within 30 s.
    pub fn open_when_ready(&self, n: u32) -> io::Result<Instant> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.ready.load(Ordering::Acquire) < n {
            if Instant::now() > deadline {
                return Err(io::Error::other("benchmark children did not start"));
            }
            std::thread::yield_now();
        }
        let start = Instant::now();
        self.open.store(1, Ordering::Release);
        Ok(start)
    }
}

/// Forks one process per sender (each passes the gate first), runs `receive` in the caller
/// `msgs` times, and returns the time from the gate opening to the last message. The receiver
/// and the senders are placed as [`set_placement`] says (all senders share the second CPU).
///
/// # Errors
/// When a process cannot be forked, fails, or `receive` fails.
pub fn stream<S>(
    senders: Vec<S>,
    msgs: u64,
    mut receive: impl FnMut() -> io::Result<()>,
) -> io::Result<Duration>
where
    S: FnOnce() + Send + 'static,
{
    placed(|child_cpu| {
        let gate = Gate::new()?;
        let n = senders.len() as u32;
        let children = senders
            .into_iter()
            .map(|send| {
                let gate = gate.clone();
                Process::fork(move || {
                    pin_here(child_cpu);
                    gate.pass();
                    send();
                })
            })
            .collect::<io::Result<Vec<_>>>()?;
        let start = gate.open_when_ready(n)?;
        for _ in 0..msgs {
            receive()?;
        }
        let elapsed = start.elapsed();
        join_all(&children)?;
        Ok(elapsed)
    })
}

/// Where the two processes of a round trip run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Wherever the scheduler puts them. On a VM it may keep them on one CPU for a while, then
    /// move one away (a wake-up across CPUs costs several times one on the same CPU), so a run
    /// measures mostly where they happened to be.
    Free,
    /// Both pinned to one CPU: every hand-over is a context switch there.
    SameCpu,
    /// Pinned to two different CPUs: every hand-over wakes a process on the other CPU.
    TwoCpus,
}

/// The placement [`ping_pong`] applies (a `Placement` as `u8`).
static PLACEMENT: AtomicU32 = AtomicU32::new(0);

/// Makes every following [`ping_pong`] and [`stream`] in this process place its processes as
/// `placement` says (all the process benchmarks here and in `channel_baselines` go through
/// them).
pub fn set_placement(placement: Placement) {
    PLACEMENT.store(placement as u32, Ordering::Relaxed);
}

fn placement() -> Placement {
    match PLACEMENT.load(Ordering::Relaxed) {
        1 => Placement::SameCpu,
        2 => Placement::TwoCpus,
        _ => Placement::Free,
    }
}

/// Forks `echo`, then times `iters` calls of `round` (after a warm-up of a tenth as many),
/// the two processes placed as [`set_placement`] said.
///
/// # Errors
/// When the process cannot be forked or placed, fails, or `round` fails.
pub fn ping_pong<E>(
    iters: usize,
    echo: E,
    mut round: impl FnMut() -> io::Result<()>,
) -> io::Result<Vec<Duration>>
where
    E: FnOnce() + Send + 'static,
{
    placed(|child_cpu| time_rounds(iters, echo, &mut round, child_cpu))
}

/// Runs `f` with the calling thread pinned as [`set_placement`] says, passing the CPU its
/// children should pin themselves to (`None`: no pinning).
///
/// # Errors
/// When the placement needs more CPUs than allowed, or `f` fails.
pub fn placed<R>(f: impl FnOnce(Option<usize>) -> io::Result<R>) -> io::Result<R> {
    let (mine, theirs) = match placement() {
        Placement::Free => return f(None),
        Placement::SameCpu => (0, 0),
        Placement::TwoCpus => (0, 1),
    };
    let allowed = cpu::allowed()?;
    let nth = |n: usize| {
        allowed.get(n).copied().ok_or_else(|| {
            let msg = format!("placement needs {} CPUs, {} allowed", n + 1, allowed.len());
            io::Error::new(io::ErrorKind::Unsupported, msg)
        })
    };
    let theirs = nth(theirs)?;
    let saved = cpu::pin(nth(mine)?)?;
    let result = f(Some(theirs));
    cpu::restore(&saved)?;
    result
}

/// Pins the calling thread (a child, or a thread starting one) to `cpu`, if given.
///
/// # Panics
/// When the CPU cannot be pinned to.
pub fn pin_here(cpu: Option<usize>) {
    if let Some(cpu) = cpu {
        cpu::pin(cpu).expect("pin a benchmark process");
    }
}

fn time_rounds<E>(
    iters: usize,
    echo: E,
    round: &mut impl FnMut() -> io::Result<()>,
    child_cpu: Option<usize>,
) -> io::Result<Vec<Duration>>
where
    E: FnOnce() + Send + 'static,
{
    let child = Process::fork(move || {
        pin_here(child_cpu);
        echo();
    })?;
    for _ in 0..iters / 10 {
        round()?;
    }
    let mut samples = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        round()?;
        samples.push(t.elapsed());
    }
    join_all(std::slice::from_ref(&child))?;
    Ok(samples)
}

/// Pinning the calling thread to one CPU (benchmark placement only).
mod cpu {
    use std::io;

    /// The calling thread's CPU set, to [`restore`].
    #[cfg(target_os = "linux")]
    pub struct Saved(libc::cpu_set_t);
    #[cfg(not(target_os = "linux"))]
    pub struct Saved;

    /// The CPUs the calling thread may run on.
    #[cfg(target_os = "linux")]
    pub fn allowed() -> io::Result<Vec<usize>> {
        let set = get()?;
        // SAFETY: CPU_ISSET reads bit `c` of a valid set (c < CPU_SETSIZE).
        let on = |c: &usize| unsafe { libc::CPU_ISSET(*c, &set) };
        Ok((0..libc::CPU_SETSIZE as usize).filter(on).collect())
    }

    /// Pins the calling thread to `cpu`; returns the set it had.
    #[cfg(target_os = "linux")]
    pub fn pin(cpu: usize) -> io::Result<Saved> {
        let had = get()?;
        // SAFETY: cpu_set_t is plain bits; all zeroes is the empty set.
        let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        if cpu >= libc::CPU_SETSIZE as usize {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no such CPU"));
        }
        // SAFETY: `cpu` < CPU_SETSIZE, checked above.
        unsafe { libc::CPU_SET(cpu, &mut one) };
        set(&one)?;
        Ok(Saved(had))
    }

    #[cfg(target_os = "linux")]
    fn get() -> io::Result<libc::cpu_set_t> {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: cpu_set_t is plain bits; all zeroes is the empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid cpu_set_t of `size` bytes.
        if unsafe { libc::sched_getaffinity(0, size, &mut set) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(set)
    }

    /// Gives the calling thread back the CPU set `saved`.
    #[cfg(target_os = "linux")]
    pub fn restore(saved: &Saved) -> io::Result<()> {
        set(&saved.0)
    }

    #[cfg(target_os = "linux")]
    fn set(cpus: &libc::cpu_set_t) -> io::Result<()> {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: `cpus` is a valid cpu_set_t of `size` bytes.
        if unsafe { libc::sched_setaffinity(0, size, cpus) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    #[cfg(not(target_os = "linux"))]
    pub fn allowed() -> io::Result<Vec<usize>> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "CPU pinning is Linux-only here",
        ))
    }

    #[cfg(not(target_os = "linux"))]
    pub fn pin(_cpu: usize) -> io::Result<Saved> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "CPU pinning is Linux-only here",
        ))
    }

    #[cfg(not(target_os = "linux"))]
    pub fn restore(_saved: &Saved) -> io::Result<()> {
        Ok(())
    }
}

/// Waits for every child and fails if one did not succeed.
///
/// # Errors
/// The first failure.
pub fn join_all(children: &[Process]) -> io::Result<()> {
    for c in children {
        let status = c
            .join_timeout(Duration::from_secs(60))?
            .ok_or_else(|| io::Error::other("benchmark child hung"))?;
        if !status.success() {
            return Err(io::Error::other(format!(
                "benchmark child failed: {status}"
            )));
        }
    }
    Ok(())
}

/// How many messages of `size` bytes one run sends (about 0.1–0.5 s of work each).
pub fn messages_for(size: usize) -> u64 {
    match size {
        0..=64 => 2_000_000,
        65..=4096 => 400_000,
        _ => 20_000,
    }
}

/// `producers` processes stream `msgs` messages of `size` bytes through a `Queue` (bytes API).
///
/// # Errors
/// When the queue or a process fails.
pub fn queue_stream(size: usize, producers: usize, msgs: u64) -> io::Result<Duration> {
    let q: Queue<()> = Queue::with_capacity(RING)?;
    let put = |q: &Queue<()>, m: &[u8]| q.put_bytes(m).expect("put");
    let rx = q.clone();
    stream_bytes(size, producers, msgs, q, put, || {
        rx.get_bytes().map(drop).map_err(io::Error::other)
    })
}

/// One producer process streams `msgs` typed 8-byte messages (`[u8; 8]`, which postcard
/// encodes as exactly 8 bytes) through a `Queue` with `put`/`get`: the serde API, which needs
/// no allocation per message (`get_bytes` returns a fresh `Vec` each time).
///
/// # Errors
/// When the queue or a process fails.
pub fn queue_stream_typed(msgs: u64) -> io::Result<Duration> {
    let q: Queue<[u8; 8]> = Queue::with_capacity(RING)?;
    let tx = q.clone();
    let producer = move || {
        for i in 0..msgs {
            tx.put(&i.to_le_bytes()).expect("put");
        }
    };
    stream(vec![producer], msgs, || {
        q.get().map(drop).map_err(io::Error::other)
    })
}

/// `producers` processes stream through one `Pipe::simplex` sender (bytes API).
///
/// # Errors
/// When the pipe or a process fails.
pub fn pipe_stream(size: usize, producers: usize, msgs: u64) -> io::Result<Duration> {
    let (tx, rx) = Pipe::<()>::simplex_with_capacity(RING)?;
    let send = |tx: &Sender<()>, m: &[u8]| tx.send_bytes(m).expect("send");
    stream_bytes(size, producers, msgs, tx, send, || {
        rx.recv_bytes().map(drop).map_err(io::Error::other)
    })
}

/// Forks `producers` processes that each send their share of `msgs` messages of `size` bytes
/// through a clone of `tx` (dropped here once they have theirs), timing `receive` as in
/// [`stream`].
fn stream_bytes<H: Clone + Send + 'static>(
    size: usize,
    producers: usize,
    msgs: u64,
    tx: H,
    send: fn(&H, &[u8]),
    receive: impl FnMut() -> io::Result<()>,
) -> io::Result<Duration> {
    let per = msgs / producers as u64;
    let senders: Vec<_> = (0..producers)
        .map(|_| {
            let tx = tx.clone();
            move || {
                let payload = vec![7u8; size];
                for _ in 0..per {
                    send(&tx, &payload);
                }
            }
        })
        .collect();
    drop(tx);
    stream(senders, per * producers as u64, receive)
}

/// Round trips of an 8-byte message over a duplex `Pipe`, both sides polling `spins` times
/// before sleeping (`SPIN_FOREVER`: actively waiting; 0: sleeping at once; `None`: the
/// default).
///
/// # Errors
/// When the pipe or the echo process fails.
pub fn pipe_round_trips(iters: usize, spins: Option<u32>) -> io::Result<Vec<Duration>> {
    let (mut a, mut b) = Pipe::<()>::duplex()?;
    if let Some(spins) = spins {
        a.set_spins(spins);
        b.set_spins(spins);
    }
    let total = iters + iters / 10;
    let echo = move || {
        for _ in 0..total {
            let m = b.recv_bytes().expect("echo recv");
            b.send_bytes(&m).expect("echo send");
        }
    };
    let msg = [1u8; 8];
    ping_pong(iters, echo, || {
        a.send_bytes(&msg).map_err(io::Error::other)?;
        a.recv_bytes().map_err(io::Error::other)?;
        Ok(())
    })
}
