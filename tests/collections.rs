//! SharedMap and SharedVec across real processes: concurrent inserts, exact counting with
//! `update`, refusals when full, handles passed to spawned entries, named create/open with the
//! type checked.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use shmproc::{CollectionError, Process, SegmentError, SharedMap, SharedVec};

const PATIENCE: Duration = Duration::from_secs(60);
const PER_CHILD: u64 = 3_000;
const INCREMENTS: u64 = 100_000;

fn join_ok(p: Process) {
    let status = p.join_timeout(PATIENCE).unwrap().expect("child hung");
    assert!(status.success(), "child failed: {status}");
}

#[test]
fn two_processes_insert_disjoint_ranges_and_all_are_there() {
    let m: SharedMap<String, u64> = SharedMap::new(2 * PER_CHILD as usize).unwrap();
    let children: Vec<_> = (0..2_u64)
        .map(|c| {
            let m = m.clone();
            Process::fork(move || {
                for i in c * PER_CHILD..(c + 1) * PER_CHILD {
                    assert_eq!(m.insert(format!("key-{i}"), i * 3).unwrap(), None);
                }
            })
            .unwrap()
        })
        .collect();
    children.into_iter().for_each(join_ok);
    assert_eq!(m.len(), 2 * PER_CHILD as usize);
    for i in 0..2 * PER_CHILD {
        assert_eq!(m.get(&format!("key-{i}")).unwrap(), Some(i * 3), "key-{i}");
    }
    let mut all = m.iter().unwrap();
    assert_eq!(all.len(), m.len());
    all.sort_by_key(|(_, v)| *v);
    assert!(all.iter().enumerate().all(|(i, (_, v))| *v == i as u64 * 3));
}

#[shmproc::entry]
fn count_up((m, times): (SharedMap<String, u64>, u64)) -> u64 {
    let mut last = 0;
    for _ in 0..times {
        last = m.update("hits".into(), |n| n.unwrap_or(0) + 1).unwrap();
    }
    last
}

#[test]
fn two_processes_updating_one_counter_never_lose_an_increment() {
    let m: SharedMap<String, u64> = SharedMap::new(4).unwrap();
    // One spawned (the handle travels as a descriptor), one forked.
    let spawned = Process::spawn(count_up, (m.clone(), INCREMENTS)).unwrap();
    let forked = {
        let m = m.clone();
        Process::fork(move || {
            count_up((m, INCREMENTS));
        })
        .unwrap()
    };
    let last = spawned.join_result_timeout(PATIENCE).unwrap();
    assert!((INCREMENTS..=2 * INCREMENTS).contains(&last));
    join_ok(forked);
    assert_eq!(m.get(&"hits".into()).unwrap(), Some(2 * INCREMENTS));
    assert_eq!(m.len(), 1);
}

#[test]
fn two_processes_push_to_one_list_in_order() {
    let v: SharedVec<(u8, u32)> = SharedVec::new(2_000).unwrap();
    let children: Vec<_> = (0..2_u8)
        .map(|c| {
            let v = v.clone();
            Process::fork(move || (0..1_000).for_each(|i| v.push((c, i)).unwrap())).unwrap()
        })
        .collect();
    children.into_iter().for_each(join_ok);
    let all = v.to_vec().unwrap();
    assert_eq!(all.len(), 2_000);
    for c in 0..2 {
        let mine: Vec<u32> = all
            .iter()
            .filter(|(o, _)| *o == c)
            .map(|(_, i)| *i)
            .collect();
        assert_eq!(
            mine,
            (0..1_000).collect::<Vec<_>>(),
            "child {c}'s pushes in order"
        );
    }
}

#[test]
fn a_full_collection_refuses_in_a_child_and_stays_unchanged() {
    let m: SharedMap<u32, String> = SharedMap::new(8).unwrap();
    let v: SharedVec<u32> = SharedVec::new(8).unwrap();
    let (mc, vc) = (m.clone(), v.clone());
    join_ok(
        Process::fork(move || {
            for i in 0..8 {
                mc.insert(i, i.to_string()).unwrap();
                vc.push(i).unwrap();
            }
            assert!(matches!(
                mc.insert(8, "8".into()),
                Err(CollectionError::Full { .. })
            ));
            assert!(matches!(vc.push(8), Err(CollectionError::Full { .. })));
            assert!(matches!(
                vc.extend([8, 9]),
                Err(CollectionError::Full { .. })
            ));
        })
        .unwrap(),
    );
    assert_eq!((m.len(), v.len()), (8, 8));
    assert_eq!(v.to_vec().unwrap(), (0..8).collect::<Vec<_>>());
    assert_eq!(m.remove(&3).unwrap().as_deref(), Some("3"));
    assert_eq!(v.pop().unwrap(), Some(7));
    let (mc, vc) = (m.clone(), v.clone());
    join_ok(
        Process::fork(move || {
            mc.insert(8, "8".into()).unwrap();
            vc.push(8).unwrap();
        })
        .unwrap(),
    );
    assert_eq!(m.get(&8).unwrap().as_deref(), Some("8"));
    assert_eq!(v.get(7).unwrap(), Some(8));
}

/// Opens the named collections with the right and the wrong types; returns what it saw.
#[shmproc::entry]
fn open_named((map, list): (String, String)) -> (bool, bool, bool, bool) {
    let right = SharedMap::<String, u64>::open(&map).unwrap();
    right.insert("child".into(), 2).unwrap();
    let wrong_map = matches!(
        SharedMap::<String, u32>::open(&map),
        Err(SegmentError::WrongType { .. })
    );
    let list_as_map = matches!(
        SharedMap::<String, u64>::open(&list),
        Err(SegmentError::WrongKind { .. })
    );
    let v = SharedVec::<String>::open(&list).unwrap();
    v.push("from the child".into()).unwrap();
    let wrong_list = matches!(
        SharedVec::<u64>::open(&list),
        Err(SegmentError::WrongType { .. })
    );
    (true, wrong_map, list_as_map, wrong_list)
}

#[test]
fn named_collections_open_across_processes_and_refuse_another_type() {
    let (map, list) = (common::unique("coll-map"), common::unique("coll-list"));
    {
        let m: SharedMap<String, u64> = SharedMap::create(&map, 16).unwrap();
        let v: SharedVec<String> = SharedVec::create(&list, 16).unwrap();
        assert!(SharedMap::<String, u64>::create(&map, 16)
            .unwrap_err()
            .to_string()
            .contains("exists"));
        m.insert("parent".into(), 1).unwrap();
        let p = Process::spawn(open_named, (map.clone(), list.clone())).unwrap();
        let seen = p.join_result_timeout(PATIENCE).unwrap();
        assert_eq!(seen, (true, true, true, true));
        assert_eq!(m.get(&"child".into()).unwrap(), Some(2));
        assert_eq!(v.to_vec().unwrap(), ["from the child"]);
    }
    common::assert_no_leftovers("coll-map");
    common::assert_no_leftovers("coll-list");
}

#[test]
fn handles_are_clone_send_sync_and_debug() {
    fn check<T: Clone + Send + Sync + std::fmt::Debug + serde::Serialize>() {}
    check::<SharedMap<String, Vec<u8>>>();
    check::<SharedVec<String>>();
    let m: SharedMap<u8, u8> = SharedMap::new(2).unwrap();
    assert!(format!("{m:?}").contains("capacity: 2"));
}

/// A value that names its key, of a length that changes with `round`.
fn tagged(key: u32, round: u32) -> String {
    format!("{key}:{round}:{}", "x".repeat((round % 40) as usize))
}

/// Whether `v` is exactly what [`tagged`] made for `key` in some round.
fn is_tagged(key: u32, v: &str) -> bool {
    let mut parts = v.split(':');
    let (k, round, xs) = (parts.next(), parts.next(), parts.next());
    let round: Option<u32> = round.and_then(|r| r.parse().ok());
    k == Some(&key.to_string()) && round.is_some_and(|r| tagged(key, r) == v) && xs.is_some()
}

#[test]
fn lock_free_readers_never_see_a_torn_or_foreign_value() {
    const KEYS: u32 = 32;
    // A small arena, so freed entries are soon overwritten while readers may be copying them.
    let m: SharedMap<u32, String> = SharedMap::with_capacity(64, 32 * 80).unwrap();
    for k in 0..KEYS {
        m.insert(k, tagged(k, 0)).unwrap();
    }
    let (reading, done) = (common::flag(), common::flag());
    let reader = {
        let (m, reading, done) = (m.clone(), reading.clone(), done.clone());
        Process::fork(move || {
            let mut seen = 0_u64;
            reading.store(1, Ordering::Release);
            while done.load(Ordering::Acquire) == 0 && seen < 50_000_000 {
                for k in 0..KEYS {
                    if let Some(v) = m.get(&k).unwrap() {
                        assert!(is_tagged(k, &v), "key {k} read {v:?}");
                        seen += 1;
                    }
                    m.contains_key(&k).unwrap();
                }
            }
            assert!(seen > 0);
        })
        .unwrap()
    };
    common::wait_for(&reading, 1);
    let writer = {
        let (m, done) = (m.clone(), done.clone());
        // Replaces, removes and re-inserts (tombstones, table rebuilds, arena reuse).
        Process::fork(move || {
            let room = |r: Result<(), CollectionError>| match r {
                Ok(()) | Err(CollectionError::OutOfSpace { .. }) => {}
                Err(e) => panic!("{e}"),
            };
            for round in 1..=20_000 {
                let k = round % KEYS;
                match round % 3 {
                    0 => room(m.insert(k, tagged(k, round)).map(drop)),
                    1 => {
                        if m.remove(&k).unwrap().is_some() {
                            room(m.insert(k, tagged(k, round)).map(drop));
                        }
                    }
                    _ => room(m.update(k, |_| tagged(k, round)).map(drop)),
                }
            }
            done.store(1, Ordering::Release);
        })
        .unwrap()
    };
    join_ok(writer);
    join_ok(reader);
    let all = m.iter().unwrap();
    assert_eq!(all.len(), m.len());
    assert!(all.iter().all(|(k, v)| is_tagged(*k, v)));
}
