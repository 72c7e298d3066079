//! The sync family across processes: Semaphore, BoundedSemaphore, Event, Condition, Barrier,
//! RLock. Every wait is bounded so a bug fails instead of hanging.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{assert_killed, die_now, flag, unique, wait_for};
use shmproc::raw::{Segment, SharedRef, Spec, TypeInfo};
use shmproc::{
    Barrier, BoundedSemaphore, Condition, Event, Kind, LockError, Process, RLock, Semaphore,
    SyncError,
};

const PATIENCE: Duration = Duration::from_secs(20);

/// Shared atomics for test bookkeeping.
fn counters<const N: usize>() -> Vec<SharedRef<AtomicU64>> {
    let spec = Spec {
        kind: Kind::Raw,
        elem: TypeInfo::none(),
        payload_len: 64 * N,
    };
    let seg = Arc::new(Segment::create_anonymous(&spec, |_| Ok(())).unwrap());
    (0..N)
        .map(|i| SharedRef::new(Arc::clone(&seg), 64 * i).unwrap())
        .collect()
}

fn join_all(children: Vec<Process>) {
    for c in children {
        let status = c.join().unwrap();
        assert!(status.success(), "child {} failed: {status}", c.pid());
    }
}

#[test]
fn semaphore_of_3_admits_at_most_3_of_8_processes() {
    let sem = Semaphore::new(3).unwrap();
    let c = counters::<2>();
    let (inside, most) = (c[0].clone(), c[1].clone());
    let children = (0..8)
        .map(|_| {
            let (sem, inside, most) = (sem.clone(), inside.clone(), most.clone());
            Process::fork(move || {
                for _ in 0..200 {
                    sem.acquire_timeout(PATIENCE).unwrap();
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::yield_now();
                    inside.fetch_sub(1, Ordering::SeqCst);
                    sem.release().unwrap();
                }
            })
            .unwrap()
        })
        .collect();
    join_all(children);
    let most = most.load(Ordering::SeqCst);
    assert!((1..=3).contains(&most), "{most} processes inside at once");
    assert_eq!(sem.value(), 3);
}

#[test]
fn semaphore_try_timeout_and_bounded_over_release() {
    let sem = Semaphore::new(1).unwrap();
    sem.try_acquire().unwrap();
    assert!(matches!(sem.try_acquire(), Err(SyncError::WouldBlock)));
    assert!(matches!(
        sem.acquire_timeout(Duration::from_millis(5)),
        Err(SyncError::Timeout)
    ));
    sem.release().unwrap();
    sem.release().unwrap(); // a plain semaphore may grow
    assert_eq!(sem.value(), 2);

    let bounded = BoundedSemaphore::new(2).unwrap();
    bounded.acquire().unwrap();
    bounded.release().unwrap();
    assert!(matches!(
        bounded.release(),
        Err(SyncError::OverRelease { max: 2 })
    ));
    assert_eq!(bounded.value(), 2);
}

#[test]
fn event_wakes_a_waiting_process_and_times_out_when_unset() {
    let ev = Event::new().unwrap();
    assert!(!ev.wait_timeout(Duration::from_millis(5)).unwrap());
    let (started, e) = (flag(), ev.clone());
    let s = started.clone();
    let child = Process::fork(move || {
        s.store(1, Ordering::Release);
        assert!(e.wait_timeout(PATIENCE).unwrap(), "never set");
    })
    .unwrap();
    wait_for(&started, 1);
    ev.set().unwrap();
    assert!(ev.is_set());
    join_all(vec![child]);
    ev.clear().unwrap();
    assert!(!ev.is_set());
}

#[test]
fn condition_hands_off_100_000_items_without_a_lost_wakeup() {
    const ITEMS: u64 = 100_000;
    let cond = Condition::new().unwrap();
    let c = counters::<2>();
    let (slot, full) = (c[0].clone(), c[1].clone()); // protected by the condition's lock
    let (cc, cs, cf) = (cond.clone(), slot.clone(), full.clone());
    let producer = Process::fork(move || {
        for item in 1..=ITEMS {
            let g = cc.lock().unwrap();
            let (g, ok) = cc
                .wait_while_timeout(g, || cf.load(Ordering::Relaxed) == 1, PATIENCE)
                .unwrap();
            assert!(ok, "consumer never took item {}", item - 1);
            cs.store(item, Ordering::Relaxed);
            cf.store(1, Ordering::Relaxed);
            cc.notify_one().unwrap();
            drop(g);
        }
    })
    .unwrap();
    let mut sum = 0;
    for expected in 1..=ITEMS {
        let g = cond.lock().unwrap();
        let (g, ok) = cond
            .wait_while_timeout(g, || full.load(Ordering::Relaxed) == 0, PATIENCE)
            .unwrap();
        assert!(ok, "lost wake-up waiting for item {expected}");
        assert_eq!(slot.load(Ordering::Relaxed), expected);
        sum += expected;
        full.store(0, Ordering::Relaxed);
        cond.notify_one().unwrap();
        drop(g);
    }
    join_all(vec![producer]);
    assert_eq!(sum, ITEMS * (ITEMS + 1) / 2);
}

#[test]
fn barrier_of_4_processes_for_1000_rounds() {
    const ROUNDS: u64 = 1000;
    let barrier = Barrier::new(4).unwrap();
    let c = counters::<2>();
    let (arrivals, leaders) = (c[0].clone(), c[1].clone());
    let children = (0..4)
        .map(|_| {
            let (b, arrivals, leaders) = (barrier.clone(), arrivals.clone(), leaders.clone());
            Process::fork(move || {
                for round in 0..ROUNDS {
                    arrivals.fetch_add(1, Ordering::SeqCst);
                    let r = b.wait_timeout(PATIENCE).unwrap();
                    // Nobody passes before all 4 arrived in this round.
                    assert!(arrivals.load(Ordering::SeqCst) >= 4 * (round + 1));
                    if r.is_leader() {
                        leaders.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
            .unwrap()
        })
        .collect();
    join_all(children);
    assert_eq!(leaders.load(Ordering::SeqCst), ROUNDS);
    assert_eq!(barrier.n_waiting(), 0);
}

#[test]
fn barrier_participant_killed_before_a_round_gives_the_others_an_error() {
    let barrier = Barrier::new(3).unwrap();
    let outcome = counters::<1>().remove(0);
    let b = barrier.clone();
    let victim = Process::fork(move || {
        for _ in 0..3 {
            b.wait_timeout(PATIENCE).unwrap();
        }
        die_now();
    })
    .unwrap();
    let survivors = (0..2)
        .map(|_| {
            let (b, outcome) = (barrier.clone(), outcome.clone());
            Process::fork(move || {
                for _ in 0..3 {
                    b.wait_timeout(PATIENCE).unwrap();
                }
                match b.wait_timeout(PATIENCE) {
                    Err(SyncError::ParticipantDied { .. } | SyncError::Broken) => {
                        outcome.fetch_add(1, Ordering::SeqCst);
                    }
                    other => panic!("expected a participant-died error, got {other:?}"),
                }
            })
            .unwrap()
        })
        .collect();
    assert_killed(victim.join().unwrap());
    join_all(survivors);
    assert_eq!(outcome.load(Ordering::SeqCst), 2);
    assert!(barrier.is_broken());
    barrier.reset();
    assert!(!barrier.is_broken());
}

#[test]
fn barrier_timeout_withdraws_the_arrival() {
    let barrier = Barrier::new(2).unwrap();
    assert!(matches!(
        barrier.wait_timeout(Duration::from_millis(5)),
        Err(SyncError::Timeout)
    ));
    assert_eq!(barrier.n_waiting(), 0);
}

#[test]
fn rlock_reenters_refuses_over_release_and_survives_owner_death() {
    let rlock = RLock::new().unwrap();
    {
        let a = rlock.acquire().unwrap();
        let b = rlock.try_acquire().unwrap();
        let c = rlock.acquire_timeout(Duration::from_millis(1)).unwrap();
        drop((c, b));
        assert!(rlock.is_locked());
        drop(a);
    }
    assert!(!rlock.is_locked());
    assert!(matches!(rlock.release(), Err(SyncError::NotOwner)));

    let holding = flag();
    let (r, h) = (rlock.clone(), holding.clone());
    let child = Process::fork(move || {
        let _a = r.acquire().unwrap();
        let _b = r.acquire().unwrap();
        h.store(1, Ordering::Release);
        die_now();
    })
    .unwrap();
    wait_for(&holding, 1);
    match rlock.acquire_timeout(PATIENCE) {
        Err(LockError::OwnerDied(g)) => drop(g),
        other => panic!("expected OwnerDied, got {:?}", other.map(drop)),
    }
    assert_killed(child.join().unwrap());
    assert!(
        !rlock.is_locked(),
        "one release frees it, whatever the dead owner's depth"
    );
    drop(rlock.try_acquire().unwrap());
}

#[test]
fn named_sync_primitives_open_in_another_process() {
    let names: Vec<String> = ["sem", "ev", "cond", "bar", "rlock"]
        .iter()
        .map(|n| unique(&format!("sync-{n}")))
        .collect();
    let sem = Semaphore::create(&names[0], 0).unwrap();
    let ev = Event::create(&names[1]).unwrap();
    let _cond = Condition::create(&names[2]).unwrap();
    let _bar = Barrier::create(&names[3], 1).unwrap();
    let _rlock = RLock::create(&names[4]).unwrap();
    let n = names.clone();
    let child = Process::fork(move || {
        Semaphore::open(&n[0]).unwrap().release().unwrap();
        Event::open(&n[1]).unwrap().set().unwrap();
        Condition::open(&n[2]).unwrap().notify_all().unwrap();
        assert!(Barrier::open(&n[3]).unwrap().wait().unwrap().is_leader());
        drop(RLock::open(&n[4]).unwrap().acquire().unwrap());
        assert!(
            Event::open(&n[0]).is_err(),
            "a semaphore opened as an event"
        );
    })
    .unwrap();
    join_all(vec![child]);
    sem.acquire_timeout(PATIENCE).unwrap();
    assert!(ev.is_set());
    drop((sem, ev, _cond, _bar, _rlock));
    assert!(common::leftovers("sync").is_empty());
}

#[test]
fn try_acquire_reports_would_block_while_another_process_holds_the_rlock() {
    let rlock = RLock::new().unwrap();
    let (holding, release) = (flag(), flag());
    let (r, h, rel) = (rlock.clone(), holding.clone(), release.clone());
    let child = Process::fork(move || {
        let _g = r.acquire().unwrap();
        h.store(1, Ordering::Release);
        wait_for(&rel, 1);
    })
    .unwrap();
    wait_for(&holding, 1);
    assert!(matches!(rlock.try_acquire(), Err(LockError::WouldBlock)));
    assert!(matches!(rlock.release(), Err(SyncError::NotOwner)));
    release.store(1, Ordering::Release);
    join_all(vec![child]);
}
