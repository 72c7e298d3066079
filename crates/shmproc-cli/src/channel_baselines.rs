//! What shmproc's channels are measured against, in the same run: pipe(2) and a unix
//! socketpair (kernel copies, one syscall per message per side), ipc-channel, crossbeam-channel
//! between threads (in-process reference), and raw futex / cache-line ping-pongs (the physical
//! limits of a sleeping and of a spinning round trip between two processes).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use shmproc::raw::sys;

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

/// Round trips of a `u64` between two threads over crossbeam channels.
pub fn crossbeam_ping_pong(iters: usize) -> Vec<Duration> {
    let (there_tx, there_rx) = crossbeam_channel::bounded::<u64>(1);
    let (back_tx, back_rx) = crossbeam_channel::bounded::<u64>(1);
    std::thread::scope(|s| {
        s.spawn(move || {
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
