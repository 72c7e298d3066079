//! A process killed inside a SharedMap / SharedVec mutation leaves the collection as it was
//! before or after that mutation; the next user gets `OwnerDied` once and finds it consistent.
//! One test kills a writer at random moments (SIGKILL); the others make a child abort at each
//! step of each mutation in turn (the fault-injection hook), so every step is covered.

mod common;

use std::fmt::Debug;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::Ordering;
use std::time::Duration;

use shmproc::raw::collection_hooks;
use shmproc::{CollectionError, Process, SharedMap, SharedVec};

const PATIENCE: Duration = Duration::from_secs(60);

fn value_of(key: u64) -> String {
    format!("value-{}", key * 7)
}

/// Microseconds 0..max from a fresh random seed.
fn random_below(max: u64) -> u64 {
    RandomState::new().hash_one(std::time::Instant::now()) % max
}

#[test]
fn a_writer_killed_at_random_moments_leaves_a_consistent_map() {
    let mut owner_died_seen = 0;
    for trial in 0..20 {
        let m: SharedMap<u64, String> = SharedMap::new(200_000).unwrap();
        let started = common::flag();
        let child = {
            let (m, started) = (m.clone(), started.clone());
            Process::fork(move || {
                for key in 0.. {
                    if trial % 2 == 0 {
                        m.insert(key, value_of(key)).unwrap();
                    } else {
                        // Most of the time inside the lock: the closure runs under it.
                        m.update(key, |_| {
                            let spin = std::time::Instant::now();
                            while spin.elapsed() < Duration::from_micros(20) {}
                            value_of(key)
                        })
                        .unwrap();
                    }
                    started.store(1, Ordering::Release);
                }
            })
            .unwrap()
        };
        common::wait_for(&started, 1);
        std::thread::sleep(Duration::from_micros(random_below(3_000)));
        child.kill().unwrap();
        common::assert_killed(child.join_timeout(PATIENCE).unwrap().expect("child hung"));

        let mut entries = match m.iter() {
            Err(CollectionError::OwnerDied) => {
                owner_died_seen += 1;
                m.iter().expect("owner-died is reported once")
            }
            other => other.unwrap(),
        };
        assert_eq!(
            entries.len(),
            m.len(),
            "trial {trial}: len matches iteration"
        );
        entries.sort();
        for (i, (key, value)) in entries.iter().enumerate() {
            assert_eq!(*key, i as u64, "trial {trial}: the keys are a prefix 0..n");
            assert_eq!(*value, value_of(*key), "trial {trial}");
            assert_eq!(m.get(key).unwrap().as_ref(), Some(value));
        }
        assert!(!entries.is_empty());
        // Still fully usable.
        m.insert(u64::MAX, "after".into()).unwrap();
        assert_eq!(m.len(), entries.len() + 1);
    }
    assert!(
        owner_died_seen > 0,
        "no kill landed while the writer held the lock"
    );
}

/// Runs `op` in a child told to abort at step 1, 2, … of it until it completes, and checks
/// after each death that the collection reads as `before` or as `after` (what `op` makes of a
/// twin), and that the first access reports `OwnerDied` and the second does not.
fn check_every_step<C, S>(
    label: &str,
    make: impl Fn() -> C,
    snapshot: impl Fn(&C) -> Result<S, CollectionError>,
    op: fn(&C),
) where
    C: Clone + Send + 'static,
    S: PartialEq + Debug,
{
    let twin = make();
    let before = snapshot(&twin).unwrap();
    op(&twin);
    let after = snapshot(&twin).unwrap();
    assert_ne!(before, after, "{label}: the operation changes something");
    for step in 1..100 {
        let c = make();
        let child = {
            let c = c.clone();
            Process::fork(move || {
                collection_hooks::die_at_step(step);
                op(&c);
                collection_hooks::die_at_step(0);
            })
            .unwrap()
        };
        let status = child.join_timeout(PATIENCE).unwrap().expect("child hung");
        if status.success() {
            assert_eq!(snapshot(&c).unwrap(), after, "{label}: completed");
            assert!(step > 2, "{label}: the operation has steps");
            return;
        }
        match snapshot(&c) {
            Err(CollectionError::OwnerDied) => {}
            other => panic!("{label} step {step}: expected OwnerDied, got {other:?}"),
        }
        let now = snapshot(&c).unwrap();
        assert!(
            now == before || now == after,
            "{label} step {step}: half done: {now:?}"
        );
    }
    panic!("{label}: never completed");
}

type MapState = (usize, Vec<(u32, String)>);
type MapOp = fn(&SharedMap<u32, String>);
type VecOp = fn(&SharedVec<String>);

fn map_state(m: &SharedMap<u32, String>) -> Result<MapState, CollectionError> {
    let mut all = m.iter()?;
    all.sort();
    assert_eq!(all.len(), m.len(), "len matches iteration");
    Ok((m.len(), all))
}

/// A small map with tombstones, so inserts reuse them and soon rebuild the table.
fn small_map() -> SharedMap<u32, String> {
    let m = SharedMap::with_capacity(4, 256).unwrap();
    for k in 0..4 {
        m.insert(k, format!("v{k}")).unwrap();
    }
    m.remove(&1).unwrap();
    m.remove(&2).unwrap();
    m
}

#[test]
fn map_mutations_killed_at_every_step() {
    let ops: [(&str, MapOp); 5] = [
        ("insert new", |m| {
            m.insert(10, "ten".into()).unwrap();
        }),
        ("insert replace", |m| {
            m.insert(0, "zero".into()).unwrap();
        }),
        ("update", |m| {
            m.update(3, |v| v.unwrap_or_default() + "!").unwrap();
        }),
        ("remove", |m| {
            m.remove(&0).unwrap();
        }),
        ("clear", |m| m.clear().unwrap()),
    ];
    for (label, op) in ops {
        check_every_step(label, small_map, map_state, op);
    }
    // Tombstones at the rebuild threshold: the insert rebuilds the table first.
    let churned = || {
        let m = small_map();
        for k in 20..23 {
            m.insert(k, "x".into()).unwrap();
            m.remove(&k).unwrap();
        }
        m
    };
    let insert_30: MapOp = |m| {
        m.insert(30, "thirty".into()).unwrap();
    };
    let steps = move |m: SharedMap<u32, String>| {
        collection_hooks::die_at_step(u32::MAX);
        insert_30(&m);
        let taken = collection_hooks::steps_taken();
        collection_hooks::die_at_step(0);
        taken
    };
    // Counted in a child: the hook's counter is per process, and other tests run in threads.
    let counted = Process::fork(move || {
        assert!(
            steps(churned()) > steps(small_map()),
            "the churned insert rebuilds"
        );
    })
    .unwrap();
    let status = counted.join_timeout(PATIENCE).unwrap().expect("child hung");
    assert!(status.success(), "{status}");
    check_every_step("insert with rebuild", churned, map_state, insert_30);
}

fn small_vec() -> SharedVec<String> {
    let v = SharedVec::with_capacity(8, 256).unwrap();
    v.extend(["a", "b", "c"].map(String::from)).unwrap();
    v
}

fn vec_state(v: &SharedVec<String>) -> Result<(usize, Vec<String>), CollectionError> {
    let all = v.to_vec()?;
    assert_eq!(all.len(), v.len(), "len matches the elements");
    Ok((v.len(), all))
}

#[test]
fn vec_mutations_killed_at_every_step() {
    let ops: [(&str, VecOp); 5] = [
        ("push", |v| v.push("d".into()).unwrap()),
        ("extend", |v| {
            v.extend(["d", "e", "f"].map(String::from)).unwrap()
        }),
        ("pop", |v| {
            v.pop().unwrap();
        }),
        ("set", |v| v.set(1, "B".into()).unwrap()),
        ("clear", |v| v.clear().unwrap()),
    ];
    for (label, op) in ops {
        check_every_step(label, small_vec, vec_state, op);
    }
}
