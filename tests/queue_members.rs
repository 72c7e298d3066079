//! Queue membership: a queue ends for a waiting process once every other process has left it
//! (or died), and never while one of them still holds it.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::blocking::{block_in_thread, WATCHDOG};
use common::{assert_killed, die_now};
use shmproc::{Process, Queue, RecvError};

/// An untimed `get` on a clone of `q`, in a thread under the watchdog (a hang fails the test).
fn in_thread<T>(q: &Queue<T>) -> Result<T, RecvError>
where
    T: serde::de::DeserializeOwned + Send + 'static,
{
    let q = q.clone();
    block_in_thread(move || q.get()).result("an untimed get")
}

#[test]
fn hundred_forked_holders_every_message_counted_then_disconnected_after_all_left() {
    const CHILDREN: u64 = 100;
    const EACH: u64 = 20;
    let q: Queue<u64> = Queue::with_capacity(1 << 12).unwrap(); // small: producers block too
    let children: Vec<Process> = (0..CHILDREN)
        .map(|c| {
            let q = q.clone();
            Process::fork(move || {
                for i in 0..EACH {
                    q.put(&(c * EACH + i)).unwrap();
                }
            })
            .unwrap()
        })
        .collect();
    let mut seen = HashSet::new();
    while (seen.len() as u64) < CHILDREN * EACH {
        // An ending here, while children still hold the queue, fails the test.
        let n = q
            .get_timeout(WATCHDOG)
            .expect("no ending while a holder lives");
        assert!(n < CHILDREN * EACH, "unknown message {n}");
        assert!(seen.insert(n), "message {n} delivered twice");
    }
    for child in &children {
        assert!(child.join().unwrap().success());
    }
    // Every child left (returned from its closure): an empty queue is now an ending, for a
    // blocking get (watched sleep) and a timed one (naps) alike.
    assert!(matches!(in_thread(&q), Err(RecvError::Disconnected)));
    assert!(matches!(
        q.get_timeout(WATCHDOG),
        Err(RecvError::Disconnected)
    ));
}

#[test]
fn a_holder_killed_without_leaving_is_reported_after_its_messages() {
    let q: Queue<String> = Queue::new().unwrap();
    let q2 = q.clone();
    let child = Process::fork(move || {
        q2.put(&"last words".to_string()).unwrap();
        die_now();
    })
    .unwrap();
    assert_eq!(q.get_timeout(WATCHDOG).unwrap(), "last words");
    assert!(matches!(in_thread(&q), Err(RecvError::PeerDied { pid }) if pid == child.pid()));
    assert_killed(child.join().unwrap());
}

#[test]
fn a_queue_only_this_process_ever_held_does_not_end() {
    let q: Queue<u8> = Queue::new().unwrap();
    assert!(matches!(
        q.get_timeout(Duration::from_millis(300)),
        Err(RecvError::Timeout)
    ));
}

#[test]
fn a_holder_that_has_not_put_yet_keeps_the_queue_open() {
    let q: Queue<u8> = Queue::new().unwrap();
    let (q2, go) = (q.clone(), shmproc::Event::new().unwrap());
    let go2 = go.clone();
    let child = Process::fork(move || {
        go2.wait().unwrap(); // holds the queue (inherited) but uses it only later
        q2.put(&7).unwrap();
    })
    .unwrap();
    // While the child lives, an empty queue is a timeout, not an ending.
    assert!(matches!(
        q.get_timeout(Duration::from_millis(300)),
        Err(RecvError::Timeout)
    ));
    go.set().unwrap();
    assert_eq!(q.get_timeout(WATCHDOG).unwrap(), 7);
    assert!(child.join().unwrap().success());
    assert!(matches!(in_thread(&q), Err(RecvError::Disconnected)));
}
