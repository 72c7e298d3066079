//! Unit tests of `Queue`: corrupt rings give errors, never crashes.

use std::sync::atomic::Ordering;

use super::Queue;
use crate::error::{RecvError, SendError};

fn corrupt_then(
    set: impl Fn(&crate::ring::RingCtl),
) -> (Result<Vec<u8>, RecvError>, Result<(), SendError>) {
    let q: Queue<u8> = Queue::with_capacity(256).unwrap();
    q.put_bytes(&[1, 2, 3]).unwrap();
    set(q.ring.ctl());
    (q.try_get_bytes(), q.try_put_bytes(&[4; 100]))
}

#[test]
fn a_tail_beyond_head_plus_capacity_is_corrupt() {
    let (got, put) = corrupt_then(|c| c.put.pos.store(1 << 40, Ordering::Relaxed));
    assert!(matches!(got, Err(RecvError::Corrupt(_))), "{got:?}");
    assert!(matches!(put, Err(SendError::Corrupt(_))), "{put:?}");
}

#[test]
fn a_head_beyond_tail_is_corrupt() {
    let (got, put) = corrupt_then(|c| {
        // The caches are stale-but-valid until refreshed: drop them so both sides re-read.
        c.get.pos.store(u64::MAX - 3, Ordering::Relaxed);
        c.get.peer_cache.store(0, Ordering::Relaxed);
        c.put.peer_cache.store(u64::MAX, Ordering::Relaxed);
    });
    assert!(matches!(got, Err(RecvError::Corrupt(_))), "{got:?}");
    assert!(matches!(put, Err(SendError::Corrupt(_))), "{put:?}");
}

#[test]
fn an_index_about_to_overflow_is_corrupt() {
    let (_, put) = corrupt_then(|c| {
        c.put.pos.store(u64::MAX - 8, Ordering::Relaxed);
        c.get.pos.store(u64::MAX - 8, Ordering::Relaxed);
        c.put.peer_cache.store(u64::MAX - 8, Ordering::Relaxed);
    });
    assert!(matches!(put, Err(SendError::Corrupt(_))), "{put:?}");
}

#[test]
fn a_record_longer_than_what_was_published_is_corrupt() {
    let (got, _) = corrupt_then(|c| c.put.pos.store(5, Ordering::Relaxed));
    assert!(matches!(got, Err(RecvError::Corrupt(_))), "{got:?}");
}

#[test]
fn garbage_everywhere_gives_errors_not_crashes() {
    for pattern in [0xA5_u64, 0x0101_0101_0101_0101, u64::MAX, 1 << 63] {
        let (got, put) = corrupt_then(|c| {
            for side in [&c.put, &c.get] {
                for (i, w) in [&side.pos, &side.peer_cache, &side.count]
                    .iter()
                    .enumerate()
                {
                    w.store(pattern.rotate_left(i as u32 * 7), Ordering::Relaxed);
                }
            }
        });
        // Either side may happen to see a consistent state; neither may crash or hang.
        let _ = (got, put);
    }
}
