//! Typed messages: postcard encoding on the stack when small (most messages), else through one
//! reusable buffer per thread.

use std::cell::RefCell;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Stop;
use crate::ring::{Ring, Sink};
use crate::transfer;

/// Encoded messages up to this many bytes are built and taken apart on the stack: no
/// thread-local access, no allocation.
const SMALL: usize = 128;

thread_local! {
    static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Encodes `msg` and hands the bytes to `f` (no allocation once the buffer has grown). If
/// that fails, pipe ends in `msg` are not in transit any more (see `transfer`).
pub(crate) fn with_encoded<T: Serialize + ?Sized, R, E: From<postcard::Error>>(
    msg: &T,
    f: impl FnOnce(&[u8]) -> Result<R, E>,
) -> Result<R, E> {
    let mark = transfer::begun_count();
    let result = encode_then(msg, mark, f);
    if transfer::begun_count() != mark {
        transfer::settle(mark, result.is_err());
    }
    result
}

/// Encodes on the stack, or in this thread's buffer when that is too small; `mark` is the
/// hand-over count before encoding began.
fn encode_then<T: Serialize + ?Sized, R, E: From<postcard::Error>>(
    msg: &T,
    mark: u64,
    f: impl FnOnce(&[u8]) -> Result<R, E>,
) -> Result<R, E> {
    let mut small = [0u8; SMALL];
    match postcard::to_slice(msg, &mut small) {
        Ok(bytes) => return f(bytes),
        Err(postcard::Error::SerializeBufferFull) => {
            if transfer::begun_count() != mark {
                // Pipe ends serialized by this attempt: revoke; the next one serializes anew.
                transfer::settle(mark, true);
            }
        }
        Err(e) => return Err(e.into()),
    }
    BUF.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            let taken = std::mem::take(&mut *buf);
            let bytes = postcard::to_extend(msg, taken)?;
            let result = f(&bytes);
            *buf = bytes;
            result
        }
        // Re-entered (a Serialize impl sending on a channel): use a fresh buffer.
        Err(_) => f(&postcard::to_stdvec(msg)?),
    })
}

/// Decodes one message that must take exactly `bytes`.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, postcard::Error> {
    let (msg, rest) = postcard::take_from_bytes(bytes)?;
    if rest.is_empty() {
        Ok(msg)
    } else {
        Err(postcard::Error::DeserializeBadEncoding)
    }
}

/// Reads a message into this thread's buffer with `fill`, then decodes it from there.
pub(crate) fn decode_with<T: DeserializeOwned, E: From<postcard::Error>>(
    fill: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<T, E> {
    BUF.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            fill(&mut buf)?;
            Ok(decode(&buf)?)
        }
        Err(_) => {
            let mut buf = Vec::new();
            fill(&mut buf)?;
            Ok(decode(&buf)?)
        }
    })
}

/// A record taken off a queue: on the stack when it is small, else in this thread's buffer.
pub(crate) struct Landing {
    small: [u8; SMALL],
    len: usize,
    big: Option<Vec<u8>>,
}

impl Sink for Landing {
    #[inline]
    fn take(&mut self, ring: &Ring, pos: u64, len: usize) -> Result<(), Stop> {
        if let Some(small) = self.small.get_mut(..len) {
            ring.read(pos, small)?;
            self.len = len;
            return Ok(());
        }
        let mut big = BUF
            .with(|cell| cell.try_borrow_mut().map(|mut b| std::mem::take(&mut *b)))
            .unwrap_or_default();
        big.clear();
        ring.read_append(pos, len, &mut big)?;
        self.big = Some(big);
        Ok(())
    }
}

/// Takes a record with `fill` (which hands a [`Landing`] to the ring), then decodes it; the
/// record must be exactly one message.
pub(crate) fn decode_landed<T: DeserializeOwned, E: From<postcard::Error>>(
    fill: impl FnOnce(&mut Landing) -> Result<(), E>,
) -> Result<T, E> {
    let mut landing = Landing {
        small: [0; SMALL],
        len: 0,
        big: None,
    };
    fill(&mut landing)?;
    match landing.big {
        None => Ok(decode(&landing.small[..landing.len])?),
        Some(big) => {
            let msg = decode(&big);
            // Give the buffer back for the next large message (unless one is there already).
            let _ = BUF.with(|cell| cell.try_borrow_mut().map(|mut b| *b = big));
            Ok(msg?)
        }
    }
}
