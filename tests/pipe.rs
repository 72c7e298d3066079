//! Pipe: ping-pong across processes, messages far larger than the ring, poll, and the other
//! end going away (dropped, exited, SIGKILLed).

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{assert_killed, die_now, flag, unique, wait_for};
use shmproc::{Connection, Pipe, Process, RecvError, SendError};

const BOUND: Duration = Duration::from_secs(30);

#[test]
fn ten_thousand_ping_pongs_between_processes() {
    let (parent, child) = Pipe::<u64>::duplex().unwrap();
    let echo = Process::fork(move || {
        while let Ok(n) = child.recv_timeout(BOUND) {
            child.send(&(n + 1)).unwrap();
        }
    })
    .unwrap();
    let mut n = 0;
    for _ in 0..10_000 {
        parent.send(&n).unwrap();
        let back = parent.recv_timeout(BOUND).unwrap();
        assert_eq!(back, n + 1);
        n = back + 1;
    }
    drop(parent); // the echo's recv ends with Disconnected
    assert!(echo.join().unwrap().success());
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed ^ (i >> 12) as u8)
        .collect()
}

#[test]
fn a_16_mib_message_round_trips_intact_through_a_64_kib_pipe() {
    let (parent, child) = Pipe::<Vec<u8>>::duplex_with_capacity(64 << 10).unwrap();
    let echo = Process::fork(move || {
        let m = child.recv_bytes_timeout(BOUND).unwrap();
        child.send_bytes(&m).unwrap();
        let typed: Vec<u8> = child.recv().unwrap();
        child.send(&typed).unwrap();
    })
    .unwrap();
    let big = pattern(16 << 20, 7);
    parent.send_bytes(&big).unwrap();
    assert!(
        parent.recv_bytes_timeout(BOUND).unwrap() == big,
        "bytes corrupted"
    );
    let typed = pattern(3 << 20, 9);
    parent.send(&typed).unwrap();
    assert!(parent.recv().unwrap() == typed, "typed message corrupted");
    assert!(echo.join().unwrap().success());
}

#[test]
fn poll_is_false_on_empty_and_true_once_a_message_waits() {
    let (a, b) = Pipe::<String>::duplex().unwrap();
    assert!(!b.poll(Duration::from_millis(5)).unwrap());
    assert!(!b.poll(Duration::ZERO).unwrap());
    assert!(matches!(b.try_recv(), Err(RecvError::Empty)));
    a.send(&"x".to_string()).unwrap();
    assert!(b.poll(Duration::from_millis(5)).unwrap());
    assert!(b.pending_bytes() > 0);
    assert_eq!(b.recv().unwrap(), "x");
    assert!(matches!(
        b.recv_timeout(Duration::from_millis(5)),
        Err(RecvError::Timeout)
    ));
}

#[test]
fn recv_ends_with_disconnected_when_the_peer_process_exits() {
    let (parent, child) = Pipe::<u32>::duplex().unwrap();
    let p = Process::fork(move || child.send(&1).unwrap()).unwrap();
    assert!(p.join().unwrap().success());
    assert_eq!(
        parent.recv_timeout(BOUND).unwrap(),
        1,
        "sent data is drained first"
    );
    assert!(matches!(
        parent.recv_timeout(BOUND),
        Err(RecvError::Disconnected)
    ));
    assert!(matches!(parent.send(&2), Err(SendError::Disconnected)));
}

#[test]
fn recv_ends_with_peer_died_when_the_peer_process_is_killed() {
    let (parent, child) = Pipe::<u32>::duplex().unwrap();
    let ready = flag();
    let r = ready.clone();
    let p = Process::fork(move || {
        child.send(&1).unwrap();
        r.store(1, Ordering::Release);
        die_now();
    })
    .unwrap();
    wait_for(&ready, 1);
    assert_killed(p.join().unwrap());
    assert_eq!(parent.recv_timeout(BOUND).unwrap(), 1);
    match parent.recv_timeout(BOUND) {
        Err(RecvError::PeerDied { pid }) => assert_eq!(pid, p.pid()),
        other => panic!("expected PeerDied, got {other:?}"),
    }
}

#[test]
fn a_blocked_sender_sees_the_receiver_die() {
    let (tx, rx) = Pipe::<u8>::simplex_with_capacity(64).unwrap();
    let ready = flag();
    let r = ready.clone();
    let p = Process::fork(move || {
        assert!(matches!(rx.try_recv(), Err(RecvError::Empty))); // used: now a holder
        r.store(1, Ordering::Release);
        die_now();
    })
    .unwrap();
    wait_for(&ready, 1);
    assert_killed(p.join().unwrap());
    let result = (0..100).try_for_each(|_| tx.send_bytes_timeout(&[0; 40], BOUND));
    assert!(
        matches!(result, Err(SendError::PeerDied { .. })),
        "{result:?}"
    );
}

#[test]
fn a_child_blocked_on_its_end_sees_the_parent_drop_the_other_end() {
    let (parent, child) = Pipe::<u32>::duplex().unwrap();
    let started = flag();
    let s = started.clone();
    let p = Process::fork(move || {
        s.store(1, Ordering::Release);
        // The child also inherited a copy of `parent` (never used): it must not count.
        assert!(matches!(
            child.recv_timeout(BOUND),
            Err(RecvError::Disconnected)
        ));
    })
    .unwrap();
    wait_for(&started, 1);
    drop(parent);
    assert!(p.join().unwrap().success());
}

#[test]
fn simplex_receiver_drains_then_sees_the_sender_dropped() {
    let (tx, rx) = Pipe::<String>::simplex().unwrap();
    let p = Process::fork(move || {
        for i in 0..100 {
            tx.send(&format!("m{i}")).unwrap();
        }
    })
    .unwrap();
    for i in 0..100 {
        assert_eq!(rx.recv_timeout(BOUND).unwrap(), format!("m{i}"));
    }
    assert!(matches!(
        rx.recv_timeout(BOUND),
        Err(RecvError::Disconnected)
    ));
    assert!(p.join().unwrap().success());
}

#[test]
fn named_pipe_ends_meet_by_name() {
    let name = unique("pipe-named");
    let a = Pipe::<u64>::create(&name).unwrap();
    a.send(&41).unwrap(); // buffered until someone opens the other end
    let n = name.clone();
    let p = Process::fork(move || {
        let b = Pipe::<u64>::open(&n).unwrap();
        let x = b.recv_timeout(BOUND).unwrap();
        b.send(&(x + 1)).unwrap();
    })
    .unwrap();
    assert_eq!(a.recv_timeout(BOUND).unwrap(), 42);
    assert!(p.join().unwrap().success());
    assert!(Pipe::<String>::open(&name).is_err(), "another message type");
    drop(a);
    common::assert_no_leftovers("pipe-named");
}

#[test]
fn a_recv_without_deadline_sees_the_peer_die() {
    blocked_call_sees_the_peer_die(|a| matches!(a.recv(), Err(RecvError::PeerDied { .. })));
}

#[test]
fn a_send_without_deadline_sees_the_receiver_die() {
    blocked_call_sees_the_peer_die(|a| {
        let full = (0..10_000).try_for_each(|_| a.send(&7));
        matches!(full, Err(SendError::PeerDied { .. }))
    });
}

#[test]
fn a_child_forked_by_a_process_whose_watcher_runs_starts_its_own() {
    // A blocking recv with nothing there yet sleeps untimed: that starts this process's
    // watcher thread, which the children forked below do not inherit.
    sleep_untimed_once();
    blocked_call_sees_the_peer_die(|a| matches!(a.recv(), Err(RecvError::PeerDied { .. })));
}

#[test]
fn a_watcher_that_parked_wakes_up_for_the_next_sleeper() {
    // An untimed sleep here starts this process's watcher; a second and a half without
    // sleepers lets it park (unless other tests in this binary keep it busy meanwhile).
    sleep_untimed_once();
    std::thread::sleep(Duration::from_millis(1_500));
    // Now a thread of this very process blocks without a deadline on a peer that dies.
    let (c, d) = Pipe::<u32>::duplex().unwrap();
    let victim = use_then_die(d);
    let (tx, rx) = std::sync::mpsc::channel();
    // A bug leaves this thread blocked; the test then fails on the bound below.
    std::thread::spawn(move || tx.send(c.recv()).unwrap());
    assert_killed(victim.join().unwrap());
    let got = rx
        .recv_timeout(BOUND)
        .expect("the blocked recv never returned");
    assert!(matches!(got, Err(RecvError::PeerDied { .. })), "{got:?}");
}

/// A recv that has to wait for a message sleeps untimed, which starts this process's watcher.
fn sleep_untimed_once() {
    let (a, b) = Pipe::<u32>::duplex().unwrap();
    let echo = Process::fork(move || {
        std::thread::sleep(Duration::from_millis(30));
        b.send(&1).unwrap();
    })
    .unwrap();
    assert_eq!(a.recv().unwrap(), 1);
    assert!(echo.join().unwrap().success());
}

/// Forks a process that uses `end` (so it holds it), then SIGKILLs itself 30 ms later (time
/// for the caller to block on the other end); returns once the end is used.
fn use_then_die(end: Connection<u32>) -> Process {
    let used = flag();
    let u = used.clone();
    let victim = Process::fork(move || {
        assert!(matches!(end.try_recv(), Err(RecvError::Empty))); // used: a holder now
        u.store(1, Ordering::Release);
        std::thread::sleep(Duration::from_millis(30));
        die_now();
    })
    .unwrap();
    wait_for(&used, 1);
    victim
}

/// Forks a process that uses one end of a pipe, then dies while another forked process is
/// blocked, without a deadline, in `blocked` on the other end; `blocked` must report it.
fn blocked_call_sees_the_peer_die(blocked: fn(&Connection<u32>) -> bool) {
    let (a, b) = Pipe::<u32>::duplex_with_capacity(64).unwrap();
    let victim = use_then_die(b);
    // The blocked call runs in its own process, so a bug fails this test instead of hanging it.
    let waiter = Process::fork(move || assert!(blocked(&a))).unwrap();
    assert_killed(victim.join().unwrap());
    let status = waiter.join_timeout(BOUND).unwrap();
    if status.is_none() {
        waiter.kill().unwrap();
    }
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}
