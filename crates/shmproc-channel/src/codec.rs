//! Typed messages: postcard encoding through one reusable buffer per thread.

use std::cell::RefCell;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::transfer;

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
    let result = encode_then(msg, f);
    if transfer::begun_count() != mark {
        transfer::settle(mark, result.is_err());
    }
    result
}

fn encode_then<T: Serialize + ?Sized, R, E: From<postcard::Error>>(
    msg: &T,
    f: impl FnOnce(&[u8]) -> Result<R, E>,
) -> Result<R, E> {
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
