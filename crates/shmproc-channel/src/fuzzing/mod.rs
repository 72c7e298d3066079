//! Fuzz targets of this crate (not a public API; the stable driver is `crates/shmproc-fuzz`, the
//! libFuzzer harness `fuzz/`): ring indices and record headers as `get`/`recv` find them
//! ([`fuzz_queue`], [`fuzz_pipe`]), and channel segments as `open` finds them ([`fuzz_open`]).

use std::sync::atomic::{AtomicUsize, Ordering};

mod open;
mod rings;

pub use open::{fuzz_open, open_seeds};
pub use rings::{fuzz_pipe, fuzz_queue, pipe_seeds, queue_seeds};

/// The message type of the typed operations.
type Msg = (u8, String, Vec<u32>);

/// A segment name no other process uses.
fn unique_name() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("fuzz-{}-{n}", std::process::id())
}
