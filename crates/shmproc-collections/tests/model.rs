//! Single-process checks of SharedMap and SharedVec against std's HashMap and Vec, driven by a
//! seeded pseudo-random sequence of operations (including full and out-of-space refusals).

use std::collections::HashMap;

use shmproc_collections::{CollectionError, SharedMap, SharedVec};

/// xorshift64*: a small deterministic generator, so a failure replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn is_refusal(e: &CollectionError) -> bool {
    matches!(
        e,
        CollectionError::Full { .. } | CollectionError::OutOfSpace { .. }
    )
}

#[test]
fn map_behaves_like_a_hashmap() {
    for seed in 1..=6_u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        // Small, so that full tables, full arenas, tombstones and rebuilds all happen.
        let m: SharedMap<u16, String> = SharedMap::with_capacity(48, 1200).unwrap();
        let mut model: HashMap<u16, String> = HashMap::new();
        for _ in 0..4_000 {
            let key = rng.below(80) as u16;
            match rng.below(10) {
                0..=3 => {
                    let value = "v".repeat(rng.below(40) as usize);
                    match m.insert(key, value.clone()) {
                        Ok(old) => assert_eq!(old, model.insert(key, value)),
                        Err(e) => assert!(is_refusal(&e), "{e}"),
                    }
                }
                4 => {
                    let r = m.update(key, |old| format!("{}u", old.unwrap_or_default()));
                    match r {
                        Ok(new) => {
                            let e = model.entry(key).or_default();
                            e.push('u');
                            assert_eq!(&new, e);
                        }
                        Err(e) => assert!(is_refusal(&e), "{e}"),
                    }
                }
                5..=6 => assert_eq!(m.remove(&key).unwrap(), model.remove(&key)),
                7 => assert_eq!(m.contains_key(&key).unwrap(), model.contains_key(&key)),
                8 if rng.below(50) == 0 => {
                    m.clear().unwrap();
                    model.clear();
                }
                _ => assert_eq!(m.get(&key).unwrap().as_ref(), model.get(&key)),
            }
            assert_eq!(m.len(), model.len());
        }
        let mut all = m.iter().unwrap();
        all.sort();
        let mut expected: Vec<_> = model.into_iter().collect();
        expected.sort();
        assert_eq!(all, expected);
    }
}

#[test]
fn vec_behaves_like_a_vec() {
    for seed in 1..=6_u64 {
        let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d));
        let v: SharedVec<Vec<u8>> = SharedVec::with_capacity(40, 900).unwrap();
        let mut model: Vec<Vec<u8>> = Vec::new();
        for _ in 0..4_000 {
            let item = vec![rng.below(256) as u8; rng.below(30) as usize];
            match rng.below(9) {
                0..=2 => match v.push(item.clone()) {
                    Ok(()) => model.push(item),
                    Err(e) => assert!(is_refusal(&e), "{e}"),
                },
                3 => {
                    let items = vec![item; rng.below(4) as usize];
                    match v.extend(items.clone()) {
                        Ok(()) => model.extend(items),
                        Err(e) => assert!(is_refusal(&e), "{e}"),
                    }
                }
                4..=5 => assert_eq!(v.pop().unwrap(), model.pop()),
                6 => {
                    let i = rng.below(model.len() as u64 + 1) as usize;
                    match v.set(i, item.clone()) {
                        Ok(()) => model[i] = item,
                        Err(CollectionError::OutOfBounds { index, len }) => {
                            assert_eq!((index, len), (i, model.len()))
                        }
                        Err(e) => assert!(is_refusal(&e), "{e}"),
                    }
                }
                7 if rng.below(50) == 0 => {
                    v.clear().unwrap();
                    model.clear();
                }
                _ => {
                    let i = rng.below(model.len() as u64 + 2) as usize;
                    assert_eq!(v.get(i).unwrap().as_ref(), model.get(i));
                }
            }
            assert_eq!(v.len(), model.len());
        }
        assert_eq!(v.to_vec().unwrap(), model);
    }
}

#[test]
fn a_full_map_refuses_unchanged_and_removing_frees_room() {
    let m: SharedMap<u32, u32> = SharedMap::new(4).unwrap();
    for k in 0..4 {
        m.insert(k, k).unwrap();
    }
    let before = m.iter().unwrap();
    assert!(matches!(
        m.insert(9, 9),
        Err(CollectionError::Full { capacity: 4 })
    ));
    assert!(matches!(
        m.update(9, |_| 9),
        Err(CollectionError::Full { .. })
    ));
    assert_eq!(m.iter().unwrap(), before);
    assert_eq!(
        m.insert(0, 100).unwrap(),
        Some(0),
        "replacing needs no new slot"
    );
    assert_eq!(m.remove(&1).unwrap(), Some(1));
    m.insert(9, 9).unwrap();
    assert_eq!(m.get(&9).unwrap(), Some(9));

    // Bytes: an arena of 64 bytes takes two 24-byte entries, then refuses a third.
    let b: SharedMap<u8, String> = SharedMap::with_capacity(10, 64).unwrap();
    let v = "x".repeat(14); // 8 header + 1 key + 15 value = 24 bytes
    b.insert(1, v.clone()).unwrap();
    b.insert(2, v.clone()).unwrap();
    let err = b.insert(3, v.clone()).unwrap_err();
    assert!(
        matches!(
            err,
            CollectionError::OutOfSpace {
                needed: 24,
                free: 16
            }
        ),
        "{err}"
    );
    assert_eq!(b.len(), 2);
    b.remove(&1).unwrap();
    b.insert(3, v).unwrap();
}

#[test]
fn a_full_vec_refuses_unchanged_and_popping_frees_room() {
    let v: SharedVec<String> = SharedVec::with_capacity(3, 64).unwrap();
    v.push("a".into()).unwrap();
    v.push("b".into()).unwrap();
    let big = "y".repeat(60);
    assert!(matches!(
        v.push(big.clone()),
        Err(CollectionError::TooLarge { .. })
    ));
    assert!(matches!(
        v.push("z".repeat(40)),
        Err(CollectionError::OutOfSpace { .. })
    ));
    v.push("c".into()).unwrap();
    assert!(matches!(
        v.push("d".into()),
        Err(CollectionError::Full { capacity: 3 })
    ));
    assert_eq!(v.to_vec().unwrap(), ["a", "b", "c"]);
    assert_eq!(v.pop().unwrap().as_deref(), Some("c"));
    v.push("d".into()).unwrap();
    assert!(matches!(
        v.set(5, "e".into()),
        Err(CollectionError::OutOfBounds { index: 5, len: 3 })
    ));
    assert_eq!(v.to_vec().unwrap(), ["a", "b", "d"]);
}

#[test]
fn update_closure_that_panics_changes_nothing() {
    let m: SharedMap<u8, u8> = SharedMap::new(4).unwrap();
    m.insert(1, 1).unwrap();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = m.update(1, |_| panic!("boom"));
    }));
    assert!(panicked.is_err());
    assert_eq!(m.get(&1).unwrap(), Some(1));
}

#[test]
fn update_using_the_same_map_is_a_deadlock_error() {
    let m: SharedMap<u8, u8> = SharedMap::new(4).unwrap();
    let inner = m.clone();
    let mut seen = None;
    let r = m.update(1, |_| {
        assert_eq!(inner.get(&1).unwrap(), None, "lookups need no lock");
        seen = Some(inner.insert(1, 1).map(|_| ()).unwrap_err());
        0
    });
    assert!(r.is_ok());
    assert!(matches!(seen, Some(CollectionError::Deadlock)), "{seen:?}");
}
