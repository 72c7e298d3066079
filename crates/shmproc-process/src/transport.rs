//! Length-prefixed frames with attached descriptors over a unix stream socket: how the parent
//! talks to spawned children and pool workers. Private, so it can later be swapped for
//! shmproc's shared-memory `Pipe` (descriptors would then travel on a side socket).
//!
//! A frame is `[len: u32 LE][fd count: u32 LE][len bytes]`; its descriptors ride on the first
//! `sendmsg` (`SCM_RIGHTS`), so they arrive with (or before) the header that counts them.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::sys;

const HEADER: usize = 8;
/// Largest frame accepted: guards against a corrupt peer asking for absurd allocations.
const MAX_FRAME: usize = 1 << 31;

/// One message: bytes and the descriptors sent with them.
#[derive(Debug, Default)]
pub(crate) struct Frame {
    pub bytes: Vec<u8>,
    pub fds: Vec<OwnedFd>,
}

/// One end of a connected socket pair.
#[derive(Debug)]
pub(crate) struct Channel {
    fd: OwnedFd,
}

impl Channel {
    /// Two connected ends.
    pub fn pair() -> io::Result<(Channel, Channel)> {
        let (a, b) = sys::socketpair()?;
        Ok((Channel { fd: a }, Channel { fd: b }))
    }

    pub fn from_fd(fd: OwnedFd) -> Channel {
        Channel { fd }
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Sends one frame made of `parts` (concatenated) with `fds` attached.
    ///
    /// A peer that is gone gives `BrokenPipe`/`ConnectionReset`, never SIGPIPE.
    pub fn send(&self, parts: &[&[u8]], fds: &[OwnedFd]) -> io::Result<()> {
        if fds.len() > sys::MAX_FDS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("at most {} shared handles per message", sys::MAX_FDS),
            ));
        }
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > MAX_FRAME {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "message too large",
            ));
        }
        let mut buf = Vec::with_capacity(HEADER + len);
        buf.extend_from_slice(&(len as u32).to_le_bytes());
        buf.extend_from_slice(&(fds.len() as u32).to_le_bytes());
        for part in parts {
            buf.extend_from_slice(part);
        }
        let mut sent = sys::send_with_fds(self.fd.as_fd(), &buf, fds)?;
        while sent < buf.len() {
            sent += sys::send_with_fds(self.fd.as_fd(), &buf[sent..], &[])?;
        }
        Ok(())
    }

    /// Receives one frame; `Ok(None)` when the peer closed its end between frames. With a
    /// timeout, waits at most that long for the frame to *start* (`TimedOut` error); once it
    /// has started the rest follows (or the peer's death ends the stream).
    pub fn recv(&self, timeout: Option<Duration>) -> io::Result<Option<Frame>> {
        if let Some(timeout) = timeout {
            let deadline = Instant::now() + timeout;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if sys::poll_readable(&[self.raw_fd()], Some(left))?[0] {
                    break;
                }
                if left.is_zero() {
                    return Err(io::ErrorKind::TimedOut.into());
                }
            }
        }
        let mut frame = Frame::default();
        let mut header = [0u8; HEADER];
        if !self.read_exact(&mut header, &mut frame.fds, true)? {
            return Ok(None);
        }
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let nfds = u32::from_le_bytes(header[4..].try_into().expect("4 bytes")) as usize;
        if len > MAX_FRAME || nfds > sys::MAX_FDS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "corrupt frame header",
            ));
        }
        // Grown as the bytes arrive (doubling from 64 KiB): the header is the peer's word, and
        // must not make us allocate up to MAX_FRAME before any of the body is there.
        while frame.bytes.len() < len {
            let got = frame.bytes.len();
            let more = (len - got).min(got.max(64 << 10));
            frame.bytes.resize(got + more, 0);
            self.read_exact(&mut frame.bytes[got..], &mut frame.fds, false)?;
        }
        if frame.fds.len() != nfds {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "frame descriptors missing",
            ));
        }
        Ok(Some(frame))
    }

    /// Whether the stream has ended (a zero-byte peek), without consuming anything.
    pub fn peek_eof(&self) -> bool {
        sys::peek_eof(self.fd.as_fd())
    }

    /// Fills `buf`; `Ok(false)` if the stream ended before the first byte and `eof_ok`.
    fn read_exact(&self, buf: &mut [u8], fds: &mut Vec<OwnedFd>, eof_ok: bool) -> io::Result<bool> {
        let mut got = 0;
        while got < buf.len() {
            let n = sys::recv_with_fds(self.fd.as_fd(), &mut buf[got..], fds)?;
            if n == 0 {
                if got == 0 && eof_ok {
                    return Ok(false);
                }
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            got += n;
        }
        Ok(true)
    }
}

impl AsFd for Channel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
