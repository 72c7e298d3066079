//! What shmproc's channels are measured against, in the same run: pipe(2) and a unix
//! socketpair (kernel copies, one syscall per message per side), ipc-channel, crossbeam-channel
//! between threads (in-process reference), and raw futex / cache-line ping-pongs (the physical
//! limits of a sleeping and of a spinning round trip between two processes).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
#[cfg(feature = "baselines")]
use std::time::Instant;

use shmproc::raw::{sys, AtomicShareable, Segment, SharedRef, Spec, TypeInfo};
use shmproc::Kind;

use crate::channels::{ping_pong, shared_word, stream};

/// A kernel byte channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fd {
    /// `pipe(2)`: one pipe per direction.
    Pipe,
    /// `socketpair(AF_UNIX, SOCK_STREAM)`.
    Socket,
}

impl Fd {
    /// The name used in tables.
    pub fn name(self) -> &'static str {
        match self {
            Fd::Pipe => "pipe(2)",
            Fd::Socket => "unix socketpair",
        }
    }

    /// A connected (reader, writer) pair.
    fn pair(self) -> io::Result<(File, File)> {
        match self {
            Fd::Pipe => {
                let mut fds = [0; 2];
                // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
                if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                // SAFETY: both descriptors are fresh and owned by nobody else.
                let (r, w) =
                    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
                Ok((File::from(r), File::from(w)))
            }
            Fd::Socket => {
                let (a, b) = UnixStream::pair()?;
                Ok((File::from(OwnedFd::from(a)), File::from(OwnedFd::from(b))))
            }
        }
    }
}

/// One writer process streams `msgs` messages of `size` bytes; the caller reads them whole.
///
/// # Errors
/// OS failures.
pub fn fd_stream(fd: Fd, size: usize, msgs: u64) -> io::Result<Duration> {
    let (mut r, mut w) = fd.pair()?;
    let writer = move || {
        let payload = vec![7u8; size];
        for _ in 0..msgs {
            w.write_all(&payload).expect("write");
        }
    };
    let mut buf = vec![0u8; size];
    stream(vec![writer], msgs, || r.read_exact(&mut buf))
}

/// Round trips of 8 bytes through two channels of kind `fd` (both sides block in the kernel).
///
/// # Errors
/// OS failures.
pub fn fd_ping_pong(fd: Fd, iters: usize) -> io::Result<Vec<Duration>> {
    let (mut there_r, mut there_w) = fd.pair()?;
    let (mut back_r, mut back_w) = fd.pair()?;
    let total = iters + iters / 10;
    let echo = move || {
        let mut m = [0u8; 8];
        for _ in 0..total {
            there_r.read_exact(&mut m).expect("echo read");
            back_w.write_all(&m).expect("echo write");
        }
    };
    let mut m = [1u8; 8];
    ping_pong(iters, echo, || {
        there_w.write_all(&m)?;
        back_r.read_exact(&mut m)
    })
}

#[cfg(feature = "baselines")]
/// One process streams through an `ipc-channel` bytes channel.
///
/// # Errors
/// ipc-channel or OS failures.
pub fn ipc_stream(size: usize, msgs: u64) -> io::Result<Duration> {
    let (tx, rx) = ipc_channel::ipc::bytes_channel()?;
    let sender = move || {
        let payload = vec![7u8; size];
        for _ in 0..msgs {
            tx.send(&payload).expect("ipc send");
        }
    };
    stream(vec![sender], msgs, || {
        rx.recv().map(drop).map_err(io::Error::other)
    })
}

#[cfg(feature = "baselines")]
/// Round trips of 8 bytes through two `ipc-channel` bytes channels.
///
/// # Errors
/// ipc-channel or OS failures.
pub fn ipc_ping_pong(iters: usize) -> io::Result<Vec<Duration>> {
    let (there_tx, there_rx) = ipc_channel::ipc::bytes_channel()?;
    let (back_tx, back_rx) = ipc_channel::ipc::bytes_channel()?;
    let total = iters + iters / 10;
    let echo = move || {
        for _ in 0..total {
            let m = there_rx.recv().expect("echo recv");
            back_tx.send(&m).expect("echo send");
        }
    };
    ping_pong(iters, echo, || {
        there_tx.send(&[1u8; 8])?;
        back_rx.recv().map(drop).map_err(io::Error::other)
    })
}

#[cfg(feature = "baselines")]
/// One thread streams `Vec<u8>` messages through a bounded crossbeam channel to the caller.
pub fn crossbeam_stream(size: usize, msgs: u64) -> Duration {
    let (tx, rx) = crossbeam_channel::bounded::<Vec<u8>>(1024);
    std::thread::scope(|s| {
        let start = Instant::now();
        s.spawn(move || {
            for _ in 0..msgs {
                tx.send(vec![7u8; size]).expect("send");
            }
        });
        for _ in 0..msgs {
            rx.recv().expect("recv");
        }
        start.elapsed()
    })
}

#[cfg(feature = "baselines")]
/// Round trips of a `u64` between two threads over crossbeam channels.
pub fn crossbeam_ping_pong(iters: usize) -> Vec<Duration> {
    crossbeam_ping_pong_on(iters, None)
}

/// [`crossbeam_ping_pong`] with the echo thread pinned to `echo_cpu` (if given).
#[cfg(feature = "baselines")]
pub fn crossbeam_ping_pong_on(iters: usize, echo_cpu: Option<usize>) -> Vec<Duration> {
    let (there_tx, there_rx) = crossbeam_channel::bounded::<u64>(1);
    let (back_tx, back_rx) = crossbeam_channel::bounded::<u64>(1);
    std::thread::scope(|s| {
        s.spawn(move || {
            crate::channels::pin_here(echo_cpu);
            while let Ok(m) = there_rx.recv() {
                back_tx.send(m).expect("echo");
            }
        });
        let mut samples = Vec::with_capacity(iters);
        for i in 0..iters + iters / 10 {
            let t = Instant::now();
            there_tx.send(i as u64).expect("send");
            back_rx.recv().expect("recv");
            if i >= iters / 10 {
                samples.push(t.elapsed());
            }
        }
        drop(there_tx);
        samples
    })
}

/// How a side of [`word_ping_pong`] waits for its turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Spins on the cache line: the floor for actively waiting sides.
    Spin,
    /// Sleeps in `FUTEX_WAIT` until woken: the floor for sleeping sides.
    Futex,
    /// Sleeps in `FUTEX_WAIT` with this timeout, as a side that must also notice a dead peer.
    FutexNap(Duration),
}

/// Round trips over one shared word between two processes, each side waiting for its turn as
/// `how` says.
///
/// # Errors
/// When the segment or the process cannot be made.
pub fn word_ping_pong(iters: usize, how: Wake) -> io::Result<Vec<Duration>> {
    let word = shared_word()?;
    let w = word.clone();
    let total = iters + iters / 10;
    let echo = move || {
        for _ in 0..total {
            wait_while(&w, 0, how);
            w.store(0, Ordering::Release);
            if how != Wake::Spin {
                sys::futex_wake(&w, 1);
            }
        }
    };
    ping_pong(iters, echo, || {
        word.store(1, Ordering::Release);
        if how != Wake::Spin {
            sys::futex_wake(&word, 1);
        }
        wait_while(&word, 1, how);
        Ok(())
    })
}

fn wait_while(word: &AtomicU32, value: u32, how: Wake) {
    while word.load(Ordering::Acquire) == value {
        match how {
            Wake::Spin => std::hint::spin_loop(),
            Wake::Futex => drop(sys::futex_wait(word, value, None)),
            Wake::FutexNap(nap) => drop(sys::futex_wait(word, value, Some(nap))),
        }
    }
}

/// Records in [`spsc_stream`]'s ring: 16 bytes each (a length word and an 8-byte payload, the
/// footprint of an 8-byte queue record), 1 MiB in all like the channels' rings.
const SPSC_SLOTS: usize = 1 << 16;

/// One cache line holding one index.
#[repr(C, align(64))]
struct Index(AtomicU64);

/// The raw single-producer single-consumer ring of [`spsc_stream`].
#[repr(C)]
struct Spsc {
    tail: Index,
    head: Index,
    slots: [[AtomicU64; 2]; SPSC_SLOTS],
}

// SAFETY: made only of atomics in repr(C) structs; all zeroes is an empty ring and the indices
// are only ever compared, slots indexed modulo their number (no trust needed in a benchmark
// between our own processes, and still no out-of-bounds access possible).
unsafe impl AtomicShareable for Spsc {}

/// The physical limit of a shared-memory queue of 8-byte messages: one producer process
/// streams `msgs` through a bare SPSC ring of fixed 16-byte records (no lock, no framing
/// checks, no wake-ups: both sides spin), each side caching the other's index and publishing
/// its own per record; the caller consumes.
///
/// # Errors
/// When the segment or the process cannot be made.
pub fn spsc_stream(msgs: u64) -> io::Result<Duration> {
    let spec = Spec {
        kind: Kind::Raw,
        elem: TypeInfo::none(),
        payload_len: std::mem::size_of::<Spsc>(),
    };
    let seg = Arc::new(Segment::create_anonymous(&spec, |_| Ok(()))?);
    let ring: SharedRef<Spsc> = SharedRef::new(seg, 0)?;
    let tx = ring.clone();
    let n = SPSC_SLOTS as u64;
    let producer = move || {
        let (mut tail, mut head) = (0u64, 0u64);
        for v in 0..msgs {
            while tail - head >= n {
                std::hint::spin_loop();
                head = tx.head.0.load(Ordering::Acquire);
            }
            let slot = &tx.slots[(tail % n) as usize];
            slot[0].store(8, Ordering::Relaxed);
            slot[1].store(v, Ordering::Relaxed);
            tail += 1;
            tx.tail.0.store(tail, Ordering::Release);
        }
    };
    let (mut head, mut tail) = (0u64, 0u64);
    let mut sum = 0u64;
    let elapsed = stream(vec![producer], msgs, || {
        while head == tail {
            std::hint::spin_loop();
            tail = ring.tail.0.load(Ordering::Acquire);
        }
        let slot = &ring.slots[(head % n) as usize];
        sum = sum.wrapping_add(slot[0].load(Ordering::Relaxed) + slot[1].load(Ordering::Relaxed));
        head += 1;
        ring.head.0.store(head, Ordering::Release);
        Ok(())
    })?;
    std::hint::black_box(sum);
    Ok(elapsed)
}
