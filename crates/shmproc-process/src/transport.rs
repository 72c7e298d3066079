//! Length-prefixed frames with attached descriptors over a unix stream socket: how the parent
//! talks to spawned children, and how a pool worker is started and sends what shared memory
//! cannot carry (descriptors, notices; its tasks and replies go over a `Pipe`: see
//! `pool::link`).
//!
//! A frame is `[len: u32 LE][fd count: u32 LE][len bytes]`; its descriptors ride on the first
//! `sendmsg` (`SCM_RIGHTS`), so they arrive with (or before) the header that counts them.
//!
//! A frame is read either whole, blocking ([`Channel::recv`]: workers and the pool), or a piece
//! at a time without ever blocking ([`Channel::read_ready`] into a [`Partial`]): `Process`
//! reads a spawned child's result that way while it waits for the child to exit, so a result
//! larger than the socket buffer never leaves the child blocked in `send` while `join` waits.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::owner_ends::{self, Listed};
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
    /// Set on an owner end (see `owner_ends`). Declared before `fd`, so it is unlisted before
    /// the descriptor closes.
    _listed: Option<Listed>,
    fd: OwnedFd,
}

impl Channel {
    /// Two connected ends: the owner's (listed in `owner_ends`, so fork children do not keep
    /// it) and the child's.
    pub fn pair() -> io::Result<(Channel, Channel)> {
        let (ours, theirs) = sys::socketpair()?;
        let ours = Channel {
            _listed: owner_ends::list(ours.as_fd()),
            fd: ours,
        };
        Ok((ours, Channel::from_fd(theirs)))
    }

    pub fn from_fd(fd: OwnedFd) -> Channel {
        Channel { _listed: None, fd }
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
        let (len, nfds) = parse_header(&header)?;
        while frame.bytes.len() < len {
            let got = frame.bytes.len();
            grow(&mut frame.bytes, len);
            self.read_exact(&mut frame.bytes[got..], &mut frame.fds, false)?;
        }
        check_fds(frame, nfds).map(Some)
    }

    /// Reads whatever has arrived into `partial`, never blocking: [`Ready::Frame`] once a
    /// frame is complete (`partial` starts over), [`Ready::More`] while the rest has yet to
    /// come, [`Ready::Ended`] if the stream ended between frames.
    ///
    /// # Errors
    /// `UnexpectedEof` if the stream ended inside a frame; `InvalidData` for a corrupt header
    /// or missing descriptors; the OS error of `recvmsg`.
    pub fn read_ready(&self, partial: &mut Partial) -> io::Result<Ready> {
        loop {
            if let Some(done) = partial.take_complete() {
                return done.map(Ready::Frame);
            }
            let (room, fds) = partial.room();
            let n = match sys::recv_with_fds(self.fd.as_fd(), room, fds, false) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Ready::More),
                Err(e) => return Err(e),
            };
            if n == 0 {
                if partial.is_empty() {
                    return Ok(Ready::Ended);
                }
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            partial.advance(n)?;
        }
    }

    /// Fills `buf`; `Ok(false)` if the stream ended before the first byte and `eof_ok`.
    fn read_exact(&self, buf: &mut [u8], fds: &mut Vec<OwnedFd>, eof_ok: bool) -> io::Result<bool> {
        let mut got = 0;
        while got < buf.len() {
            let n = sys::recv_with_fds(self.fd.as_fd(), &mut buf[got..], fds, true)?;
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

/// `(body length, descriptor count)` from a frame header, both checked against the limits.
fn parse_header(header: &[u8; HEADER]) -> io::Result<(usize, usize)> {
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    let nfds = u32::from_le_bytes(header[4..].try_into().expect("4 bytes")) as usize;
    if len > MAX_FRAME || nfds > sys::MAX_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "corrupt frame header",
        ));
    }
    Ok((len, nfds))
}

/// `frame`, if it carries the `nfds` descriptors its header announced.
fn check_fds(frame: Frame, nfds: usize) -> io::Result<Frame> {
    if frame.fds.len() != nfds {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "frame descriptors missing",
        ));
    }
    Ok(frame)
}

/// What [`Channel::read_ready`] found.
#[derive(Debug)]
pub(crate) enum Ready {
    /// A whole frame.
    Frame(Frame),
    /// Nothing more for now; the frame (if one started) is kept in the [`Partial`].
    More,
    /// The peer closed the stream between frames.
    Ended,
}

/// Grows a frame body being received towards its announced `len`, doubling from 64 KiB: the
/// length is the peer's word, and must not make us allocate up to `MAX_FRAME` before any of
/// the body is there (found by fuzzing).
fn grow(body: &mut Vec<u8>, len: usize) {
    let got = body.len();
    let more = (len - got).min(got.max(64 << 10));
    body.resize(got + more, 0);
}

/// A frame read so far by [`Channel::read_ready`].
#[derive(Debug, Default)]
pub(crate) struct Partial {
    header: [u8; HEADER],
    header_got: usize,
    /// `(body length, descriptor count)` once the header is complete.
    sizes: Option<(usize, usize)>,
    body: Vec<u8>,
    body_got: usize,
    fds: Vec<OwnedFd>,
}

impl Partial {
    fn is_empty(&self) -> bool {
        self.header_got == 0
    }

    /// Where the next bytes (and descriptors) go.
    fn room(&mut self) -> (&mut [u8], &mut Vec<OwnedFd>) {
        let room = match self.sizes {
            None => &mut self.header[self.header_got..],
            Some((len, _)) => {
                if self.body_got == self.body.len() {
                    grow(&mut self.body, len);
                }
                &mut self.body[self.body_got..]
            }
        };
        (room, &mut self.fds)
    }

    fn advance(&mut self, n: usize) -> io::Result<()> {
        if self.sizes.is_some() {
            self.body_got += n;
            return Ok(());
        }
        self.header_got += n;
        if self.header_got == HEADER {
            let (len, nfds) = parse_header(&self.header)?;
            self.body = Vec::new(); // grown as the bytes arrive (see `grow`)
            self.sizes = Some((len, nfds));
        }
        Ok(())
    }

    /// The frame once complete (and `self` starts over).
    fn take_complete(&mut self) -> Option<io::Result<Frame>> {
        let (len, nfds) = self.sizes?;
        if self.body_got < len {
            return None;
        }
        let Partial { body, fds, .. } = std::mem::take(self);
        Some(check_fds(Frame { bytes: body, fds }, nfds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads one frame with `read_ready`, waiting with `poll` in between.
    fn read_one(channel: &Channel, partial: &mut Partial) -> io::Result<Ready> {
        loop {
            match channel.read_ready(partial)? {
                Ready::More => {
                    sys::poll_readable(&[channel.raw_fd()], None)?;
                }
                done => return Ok(done),
            }
        }
    }

    #[test]
    fn read_ready_assembles_frames_larger_than_the_socket_buffer() {
        let (a, b) = Channel::pair().unwrap();
        let big: Vec<u8> = (0..3_000_000).map(|i| (i % 253) as u8).collect();
        let sent = big.clone();
        let writer = std::thread::spawn(move || {
            a.send(&[&sent[..10], &sent[10..]], &[]).unwrap();
            a.send(&[], &[]).unwrap();
            a.send(&[b"tail"], &[]).unwrap();
            drop(a);
        });
        let mut partial = Partial::default();
        let Ready::Frame(frame) = read_one(&b, &mut partial).unwrap() else {
            panic!("expected the big frame");
        };
        assert_eq!(frame.bytes, big);
        let Ready::Frame(empty) = read_one(&b, &mut partial).unwrap() else {
            panic!("expected the empty frame");
        };
        assert!(empty.bytes.is_empty());
        let Ready::Frame(tail) = read_one(&b, &mut partial).unwrap() else {
            panic!("expected the tail");
        };
        assert_eq!(tail.bytes, b"tail");
        writer.join().unwrap();
        assert!(matches!(read_one(&b, &mut partial).unwrap(), Ready::Ended));
    }

    #[test]
    fn a_stream_ending_inside_a_frame_is_unexpected_eof() {
        let (a, b) = Channel::pair().unwrap();
        // A header announcing 100 bytes, then only 3 of them.
        let mut torn = 100u32.to_le_bytes().to_vec();
        torn.extend_from_slice(&0u32.to_le_bytes());
        torn.extend_from_slice(b"abc");
        sys::send_with_fds(a.as_fd(), &torn, &[]).unwrap();
        drop(a);
        let mut partial = Partial::default();
        let err = read_one(&b, &mut partial).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
