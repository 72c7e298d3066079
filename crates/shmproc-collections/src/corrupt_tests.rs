//! Never trust a mapping: with random words of a collection's shared state overwritten (as a
//! buggy or hostile peer could), every operation returns — `Ok` or an error — without a panic,
//! a hang, or an access outside the segment.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::store::Store;
use crate::{SharedMap, SharedVec};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Overwrites `n` random words after the lock (control block, tables, bitmap, arena) with
/// random, small, or range-like values.
fn scribble(store: &Store, rng: &mut Rng, n: usize) {
    let seg = store.segment();
    let words = (seg.payload_len() - 64) / 8;
    for _ in 0..n {
        let at = 64 + rng.below(words as u64) as usize * 8;
        let value = match rng.below(4) {
            0 => rng.next(),
            1 => rng.below(64),
            2 => rng.below(1 << 10) << 32 | rng.below(8),
            _ => 1 << 63 | rng.next(),
        };
        let word: &AtomicU64 = seg.atomic(at).expect("in bounds");
        word.store(value, Ordering::Relaxed);
    }
}

#[test]
fn a_scribbled_map_fails_cleanly() {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    for round in 0..300 {
        let m: SharedMap<String, Vec<u8>> = SharedMap::with_capacity(16, 512)
            .unwrap()
            .with_timeout(Duration::from_secs(5));
        for i in 0..10 {
            m.insert(format!("k{i}"), vec![i as u8; i]).unwrap();
        }
        scribble(m.store(), &mut rng, 1 + round % 8);
        for i in 0..20 {
            let key = format!("k{}", rng.below(14));
            let _ = match i % 7 {
                0 => m.get(&key).map(drop),
                1 => m.insert(key, vec![7; rng.below(40) as usize]).map(drop),
                2 => m.remove(&key).map(drop),
                3 => m.update(key, |v| v.unwrap_or_default()).map(drop),
                4 => m.iter().map(drop),
                5 => m.contains_key(&key).map(drop),
                _ if rng.below(10) == 0 => m.clear(),
                _ => m.keys().map(drop),
            };
            assert!(m.len() <= m.capacity());
        }
    }
}

#[test]
fn a_scribbled_vec_fails_cleanly() {
    let mut rng = Rng(0x0dd_ba11_cafe_f00d);
    for round in 0..300 {
        let v: SharedVec<String> = SharedVec::with_capacity(16, 512)
            .unwrap()
            .with_timeout(Duration::from_secs(5));
        v.extend((0..10).map(|i| "x".repeat(i))).unwrap();
        scribble(v.store(), &mut rng, 1 + round % 8);
        for i in 0..20 {
            let index = rng.below(20) as usize;
            let _ = match i % 6 {
                0 => v.get(index).map(drop),
                1 => v.push("y".repeat(rng.below(30) as usize)),
                2 => v.pop().map(drop),
                3 => v.set(index, "z".into()),
                4 => v.extend(["a".to_string(), "b".to_string()]),
                _ => v.to_vec().map(drop),
            };
            assert!(v.len() <= v.capacity());
        }
    }
}
