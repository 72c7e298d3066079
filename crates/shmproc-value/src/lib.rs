//! Process-shared [`Value<T>`] and [`Array<T>`], each guarded by a robust lock — Python's
//! `multiprocessing.Value` and `multiprocessing.Array` for Rust.
//!
//! # Examples
//! ```
//! use shmproc_value::{Array, Value};
//! let counter = Value::new(0_u64)?;
//! *counter.lock().unwrap() += 1; // see `LockError` for handling a dead holder
//! let arr = Array::<f64>::zeroed(4)?;
//! arr.set(2, 1.5)?;
//! assert_eq!((counter.get()?, arr.get(2)?), (1, 1.5));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod array;
mod error;
mod region;
mod value;

pub use array::{Array, ArrayGuard};
pub use error::AccessError;
pub use shmproc_shm::OpenOptions;
pub use value::{Value, ValueGuard};
