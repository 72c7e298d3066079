//! Keys and values as postcard bytes: encoded on the stack when small (no allocation for a
//! small key lookup), decoded straight from the arena.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::CollectionError;

/// Bytes encoded on the stack before falling back to a heap buffer.
const SMALL: usize = 128;

/// Encodes `value` and hands the bytes to `f`.
pub(crate) fn with_encoded<T: Serialize + ?Sized, R>(
    value: &T,
    f: impl FnOnce(&[u8]) -> Result<R, CollectionError>,
) -> Result<R, CollectionError> {
    let mut small = [0u8; SMALL];
    match postcard::to_slice(value, &mut small) {
        Ok(bytes) => f(bytes),
        Err(postcard::Error::SerializeBufferFull) => {
            f(&postcard::to_stdvec(value).map_err(CollectionError::Encode)?)
        }
        Err(e) => Err(CollectionError::Encode(e)),
    }
}

/// Encodes `value` into a new buffer.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CollectionError> {
    postcard::to_stdvec(value).map_err(CollectionError::Encode)
}

/// Decodes one value that must take exactly `bytes`.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CollectionError> {
    match postcard::take_from_bytes(bytes) {
        Ok((value, [])) => Ok(value),
        Ok(_) => Err(CollectionError::Decode(
            postcard::Error::DeserializeBadEncoding,
        )),
        Err(e) => Err(CollectionError::Decode(e)),
    }
}
