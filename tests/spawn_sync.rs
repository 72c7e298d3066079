//! The sync family as arguments of spawned entries: anonymous ones travel as descriptors.

mod common;

use std::time::Duration;

use shmproc::{
    Barrier, BoundedSemaphore, Condition, Event, Lock, Process, RLock, Semaphore, Value,
};

const PATIENCE: Duration = Duration::from_secs(20);

#[shmproc::entry]
fn signal_all((sem, bounded, event, rlock): (Semaphore, BoundedSemaphore, Event, RLock)) -> bool {
    sem.release().unwrap();
    bounded.acquire_timeout(PATIENCE).unwrap();
    event.set().unwrap();
    let outer = rlock.acquire().unwrap();
    let inner = rlock.acquire().unwrap();
    drop((inner, outer));
    !rlock.is_locked()
}

#[shmproc::entry]
fn meet((barrier, cond, flag): (Barrier, Condition, Value<u32>)) -> bool {
    let leader = barrier.wait_timeout(PATIENCE).unwrap().is_leader();
    let g = cond.lock().unwrap();
    flag.set(1).unwrap();
    cond.notify_all().unwrap();
    drop(g);
    leader
}

#[test]
fn sync_primitives_pass_to_spawned_entries() {
    let (sem, bounded, event, rlock) = (
        Semaphore::new(0).unwrap(),
        BoundedSemaphore::new(1).unwrap(),
        Event::new().unwrap(),
        RLock::new().unwrap(),
    );
    let p = Process::spawn(
        signal_all,
        (sem.clone(), bounded.clone(), event.clone(), rlock.clone()),
    )
    .unwrap();
    assert!(p.join_result_timeout(PATIENCE).unwrap());
    sem.acquire_timeout(Duration::from_millis(1)).unwrap();
    assert_eq!(bounded.value(), 0, "the child took the bounded permit");
    assert!(event.is_set());
}

#[test]
fn barrier_and_condition_over_a_given_lock_pass_to_spawned_entries() {
    let barrier = Barrier::new(2).unwrap();
    let lock = Lock::new().unwrap();
    let cond = Condition::with_lock(&lock).unwrap();
    let flag = Value::new(0_u32).unwrap();
    let p = Process::spawn(meet, (barrier.clone(), cond.clone(), flag.clone())).unwrap();
    let leader_here = barrier.wait_timeout(PATIENCE).unwrap().is_leader();
    let g = cond.lock().unwrap();
    let (g, in_time) = cond
        .wait_while_timeout(g, || flag.get().unwrap() == 0, PATIENCE)
        .unwrap();
    assert!(in_time, "the child's notify never arrived");
    drop(g);
    let leader_there = p.join_result_timeout(PATIENCE).unwrap();
    assert!(leader_here ^ leader_there, "exactly one leader per round");
}

#[test]
fn anonymous_sync_handles_cannot_be_serialized_outside_spawn() {
    let err = postcard::to_allocvec(&Event::new().unwrap());
    assert!(err.is_err());
    let named = Event::create(&common::unique("ser-event")).unwrap();
    let bytes = postcard::to_allocvec(&named).unwrap();
    let again: Event = postcard::from_bytes(&bytes).unwrap();
    again.set().unwrap();
    assert!(named.is_set());
}
