//! Where message bytes are put together and taken apart: a stack area for small messages, one
//! reusable buffer per thread for the others, and [`Landing`], which a record taken off a ring
//! lands in. Below both `codec` (which encodes and decodes in them) and `record` (which fills
//! a `Landing`).

use std::cell::RefCell;

use crate::error::Stop;
use crate::ring::{Ring, Sink};

/// Encoded messages up to this many bytes are built and taken apart on the stack: no
/// thread-local access, no allocation.
pub(crate) const SMALL: usize = 128;

thread_local! {
    /// This thread's buffer for messages larger than [`SMALL`] (kept between messages so it
    /// is allocated once; borrowed, so a re-entrant use finds it taken).
    pub(crate) static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A record taken off a queue: on the stack when it is small, else in this thread's buffer.
pub(crate) struct Landing {
    small: [u8; SMALL],
    len: usize,
    big: Option<Vec<u8>>,
}

impl Landing {
    /// An empty landing, ready for [`Sink::take`].
    #[inline]
    pub(crate) fn new() -> Landing {
        Landing {
            small: [0; SMALL],
            len: 0,
            big: None,
        }
    }

    /// Hands the landed bytes to `f`; a large record's buffer then goes back to this thread
    /// for the next large message (unless one is there already).
    #[inline]
    pub(crate) fn with_bytes<R>(self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self.big {
            None => f(&self.small[..self.len]),
            Some(big) => {
                let result = f(&big);
                let _ = BUF.with(|cell| cell.try_borrow_mut().map(|mut b| *b = big));
                result
            }
        }
    }
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
