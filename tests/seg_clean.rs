//! `clean` removes only segments nobody holds: never one still being initialised, never one a
//! live process has open after its creator died; unlinking by name never removes someone
//! else's new segment of the same name.
//!
//! Other tests of this binary may run `clean` at the same time: assertions are about the files,
//! not about which call removed them.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{assert_killed, die_now, flag, leftovers, unique, wait_for};
use shmproc::raw::{clean, list, remove, Segment, SegmentInfo, Spec, TypeInfo};
use shmproc::{Kind, Process, SegmentError, Value};

fn shm_path(name: &str) -> String {
    format!("/dev/shm/shmproc.{name}")
}

fn raw_spec() -> Spec {
    Spec {
        kind: Kind::Raw,
        elem: TypeInfo::none(),
        payload_len: 64,
    }
}

fn listed(name: &str) -> Option<SegmentInfo> {
    list().unwrap().into_iter().find(|s| s.name == name)
}

/// Runs `clean` until the named segment's file is gone (bounded): a process another test forks
/// while this one has the segment open inherits that descriptor, and holds the segment until it
/// exits.
fn cleaned_eventually(name: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&shm_path(name)).exists() {
        assert!(
            Instant::now() < deadline,
            "stale segment kept: {:?}",
            listed(name)
        );
        clean().unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn clean_during_a_slow_create_leaves_it() {
    let name = unique("slow");
    let initialising = Arc::new(AtomicBool::new(false));
    let creator = {
        let (name, initialising) = (name.clone(), initialising.clone());
        std::thread::spawn(move || {
            Segment::create_named(&name, &raw_spec(), |_| {
                initialising.store(true, Ordering::Release);
                std::thread::sleep(Duration::from_secs(1)); // a slow creator
                Ok(())
            })
        })
    };
    while !initialising.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut cleans = 0;
    while !creator.is_finished() {
        if let Some(info) = listed(&name) {
            assert!(
                !info.is_stale(),
                "listed stale while initialising: {info:?}"
            );
        }
        let removed = clean().unwrap();
        assert!(
            !removed.iter().any(|s| s.name == name),
            "clean removed a segment still being initialised"
        );
        cleans += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        cleans > 5,
        "clean ran only {cleans} times during the creation"
    );
    let seg = creator.join().unwrap().unwrap();
    assert!(
        Path::new(&shm_path(&name)).exists(),
        "removed during creation"
    );
    let again = Segment::open_named(&name, Kind::Raw, TypeInfo::none()).unwrap();
    assert!(!listed(&name).unwrap().is_stale());
    drop((seg, again));
    assert!(leftovers("slow").is_empty(), "{:?}", leftovers("slow"));
}

#[test]
fn clean_leaves_a_segment_held_by_a_live_process_whose_creator_died() {
    let name = unique("orphan");
    let step = flag();
    let creator = {
        let (name, step) = (name.clone(), step.clone());
        Process::fork(move || {
            let _v = Value::create(&name, 5_i64).unwrap();
            step.store(1, Ordering::Release);
            wait_for(&step, 2);
            die_now(); // no destructor runs: the creator is gone, the file stays
        })
        .unwrap()
    };
    wait_for(&step, 1);
    let holder = {
        let (name, step) = (name.clone(), step.clone());
        Process::fork(move || {
            let v = Value::<i64>::open(&name).unwrap();
            step.store(2, Ordering::Release);
            wait_for(&step, 3);
            assert_eq!(v.get().unwrap(), 5);
            v.set(6).unwrap();
        })
        .unwrap()
    };
    wait_for(&step, 2);
    assert_killed(creator.join().unwrap());

    // The creator is dead, the holder lives: in use, not stale, not removed.
    let info = listed(&name).expect("listed");
    assert!(info.in_use && !info.is_stale(), "{info:?}");
    let h = info.status.as_ref().unwrap();
    assert!(!h.creator_alive && h.in_use, "{h:?}");
    clean().unwrap();
    assert!(
        Path::new(&shm_path(&name)).exists(),
        "clean removed a segment a live process holds"
    );

    // Once the last holder is gone (here: it returns), the segment is stale and cleaned.
    step.store(3, Ordering::Release);
    assert!(holder.join().unwrap().success());
    cleaned_eventually(&name);
}

#[test]
fn creator_dying_mid_initialisation_is_reported_at_once_and_cleaned() {
    let name = unique("halfmade");
    let child = {
        let name = name.clone();
        Process::fork(move || {
            let _ = Segment::create_named(&name, &raw_spec(), |_| die_now());
        })
        .unwrap()
    };
    assert_killed(child.join().unwrap());
    // Nobody holds the initialisation lock any more: no half-second wait for a dead creator.
    let started = Instant::now();
    let err = Segment::open_named(&name, Kind::Raw, TypeInfo::none()).unwrap_err();
    assert!(matches!(err, SegmentError::NotReady { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "open waited {:?} for a dead creator",
        started.elapsed()
    );
    let info = listed(&name).expect("listed");
    assert!(info.status.is_err(), "{info:?}");
    cleaned_eventually(&name);
}

#[test]
fn creator_drop_spares_a_new_segment_that_took_the_name() {
    let name = unique("reuse");
    let first = Value::create(&name, 1_u32).unwrap();
    remove(&name).unwrap(); // `shmproc rm` while its creator still runs
    let other = {
        let name = name.clone();
        Process::fork(move || {
            let second = Value::create(&name, 2_u32).unwrap();
            second.persist(); // outlives this process
        })
        .unwrap()
    };
    assert!(other.join().unwrap().success());
    drop(first); // must not unlink the other process's file
    assert_eq!(Value::<u32>::open(&name).unwrap().get().unwrap(), 2);
    remove(&name).unwrap();
    assert!(leftovers("reuse").is_empty(), "{:?}", leftovers("reuse"));
}
