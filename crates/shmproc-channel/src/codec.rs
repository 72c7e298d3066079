//! Typed messages: postcard encoding on the stack when small (most messages), else through one
//! reusable buffer per thread (both in `scratch`).

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::handover;
use crate::scratch::{Landing, BUF, SMALL};

/// Encodes `msg` and hands the bytes to `f` (no allocation once the buffer has grown). If
/// that fails, pipe ends in `msg` are not in transit any more (see `handover`).
pub(crate) fn with_encoded<T: Serialize + ?Sized, R, E: From<postcard::Error>>(
    msg: &T,
    f: impl FnOnce(&[u8]) -> Result<R, E>,
) -> Result<R, E> {
    let mark = handover::begun_count();
    let result = encode_then(msg, mark, f);
    if handover::begun_count() != mark {
        handover::settle(mark, result.is_err());
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
            if handover::begun_count() != mark {
                // Pipe ends serialized by this attempt: revoke; the next one serializes anew.
                handover::settle(mark, true);
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

/// Takes a record with `fill` (which hands a [`Landing`] to the ring), then decodes it; the
/// record must be exactly one message.
pub(crate) fn decode_landed<T: DeserializeOwned, E: From<postcard::Error>>(
    fill: impl FnOnce(&mut Landing) -> Result<(), E>,
) -> Result<T, E> {
    let mut landing = Landing::new();
    fill(&mut landing)?;
    Ok(landing.with_bytes(decode::<T>)?)
}
