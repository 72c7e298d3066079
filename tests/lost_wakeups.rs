//! No lost wake-ups: untimed blocking calls return although the process that made their
//! condition true died between publishing and waking; `Event::wait` sees a `set` that a
//! `clear` followed at once; `unlock` releases only a lock the caller holds.
//!
//! Every blocking call under test runs where a watchdog bounds it: a lost wake-up fails the
//! test instead of hanging it. No other timing is asserted.

mod common;

use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};

use common::blocking::{assert_aborted, block_in_thread, join_bounded, wait_asleep, WATCHDOG};
use common::{assert_killed, die_now, flag, wait_for};
use shmproc::raw::test_hooks;
use shmproc::{
    Condition, Event, Lock, LockError, Pipe, Process, Queue, RawLock, RecvError, Semaphore,
};

// ---------------------------------------------------------------------------------------------
// 2–3. Channels: the writer aborts between its publication and its wake-up
// ---------------------------------------------------------------------------------------------

#[test]
fn a_queue_get_returns_though_the_putter_died_between_publish_and_wake() {
    for round in 0..20 {
        let q: Queue<u64> = Queue::new().unwrap();
        let getter = {
            let q = q.clone();
            block_in_thread(move || q.get())
        };
        getter.wait_asleep();
        let putter = {
            let q = q.clone();
            Process::fork(move || {
                test_hooks::die_between_publish_and_wake();
                let _ = q.put(&42);
            })
            .unwrap()
        };
        assert_aborted(join_bounded(&putter, "putter"));
        let got = getter.result(&format!("round {round}: q.get()"));
        assert_eq!(got.unwrap(), 42, "round {round}");
        // The queue still works (the putter died holding the producer lock).
        q.put_timeout(&43, WATCHDOG).unwrap();
        assert_eq!(q.get_timeout(WATCHDOG).unwrap(), 43);
    }
}

#[test]
fn a_pipe_recv_returns_though_the_sender_died_between_publish_and_wake() {
    for round in 0..20 {
        // Even rounds: this process keeps a copy of the sending end, so the sender's death
        // is no ending and only the moved index can end the receiver's sleep. Odd rounds: the
        // dying child holds the only copy: the message first, then `PeerDied`.
        let keep_sender = round % 2 == 0;
        let (tx, rx) = Pipe::<u64>::simplex().unwrap();
        let receiver = block_in_thread(move || {
            let first = rx.recv();
            let second = (!keep_sender).then(|| rx.recv());
            (first, second, rx)
        });
        receiver.wait_asleep();
        let kept = keep_sender.then(|| tx.clone());
        let sender = Process::fork(move || {
            test_hooks::die_between_publish_and_wake();
            let _ = tx.send(&42);
        })
        .unwrap(); // the closure took `tx`: in odd rounds the child holds the only copy
        assert_aborted(join_bounded(&sender, "sender"));
        let (first, second, rx) = receiver.result(&format!("round {round}: rx.recv()"));
        assert_eq!(first.unwrap(), 42, "round {round}");
        match second {
            None => {}
            Some(Err(RecvError::PeerDied { pid })) => assert_eq!(pid, sender.pid()),
            Some(other) => panic!("round {round}: expected PeerDied, got {other:?}"),
        }
        if let Some(tx) = kept {
            // The pipe still works for the surviving holder.
            tx.send_timeout(&43, WATCHDOG).unwrap();
            assert_eq!(rx.recv_timeout(WATCHDOG).unwrap(), 43, "round {round}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Event: set then clear at once still releases the waiters blocked at the set
// ---------------------------------------------------------------------------------------------

/// `wait()` (as `true`) or `wait_timeout(WATCHDOG)`.
fn wait_event(ev: &Event, timed: bool) -> bool {
    if timed {
        ev.wait_timeout(WATCHDOG).unwrap()
    } else {
        ev.wait().unwrap();
        true
    }
}

#[test]
fn event_set_then_clear_releases_a_blocked_thread() {
    for trial in 0..100 {
        let timed = trial % 2 == 1;
        let ev = Event::new().unwrap();
        let waiter = {
            let ev = ev.clone();
            block_in_thread(move || wait_event(&ev, timed))
        };
        waiter.wait_asleep();
        ev.set().unwrap();
        ev.clear().unwrap();
        assert!(
            waiter.result(&format!("trial {trial}: wait (timed: {timed})")),
            "trial {trial}: wait_timeout returned false although set() happened"
        );
        assert!(!ev.is_set());
    }
}

#[test]
fn event_set_then_clear_releases_a_blocked_process() {
    for trial in 0..100 {
        let timed = trial % 2 == 1;
        let ev = Event::new().unwrap();
        let started = flag();
        let waiter = {
            let (ev, started) = (ev.clone(), started.clone());
            Process::fork(move || {
                started.store(1, Ordering::Release);
                if !wait_event(&ev, timed) {
                    std::process::exit(3); // wait_timeout said false
                }
            })
            .unwrap()
        };
        wait_for(&started, 1);
        wait_asleep(waiter.pid(), waiter.pid() as i32);
        ev.set().unwrap();
        ev.clear().unwrap();
        let status = join_bounded(&waiter, &format!("trial {trial} (timed: {timed})"));
        assert!(status.success(), "trial {trial} (timed: {timed}): {status}");
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Semaphore: every released permit reaches a sleeper
// ---------------------------------------------------------------------------------------------

#[test]
fn two_releases_wake_both_processes_blocked_in_acquire() {
    for round in 0..20 {
        let sem = Semaphore::new(0).unwrap();
        let started = flag();
        let children: Vec<Process> = (0..2)
            .map(|_| {
                let (sem, started) = (sem.clone(), started.clone());
                Process::fork(move || {
                    started.fetch_add(1, Ordering::AcqRel);
                    sem.acquire().unwrap();
                })
                .unwrap()
            })
            .collect();
        wait_for(&started, 2);
        for c in &children {
            wait_asleep(c.pid(), c.pid() as i32);
        }
        sem.release().unwrap();
        sem.release().unwrap();
        for c in &children {
            let status = join_bounded(c, &format!("round {round}: acquire"));
            assert!(status.success(), "round {round}: {status}");
        }
        assert_eq!(sem.value(), 0);
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Condition: a notify deferred to an unlock that never comes
// ---------------------------------------------------------------------------------------------

#[test]
fn a_condition_wait_returns_though_the_notifier_died_holding_the_lock() {
    for round in 0..10 {
        let cond = Condition::new().unwrap();
        let waiter = {
            let cond = cond.clone();
            block_in_thread(move || {
                let guard = cond.lock().expect("waiter: lock");
                match cond.wait(guard) {
                    Ok(_) => Ok("notified, lock taken cleanly"),
                    Err(LockError::OwnerDied(_)) => Ok("notified, lock taken from its dead holder"),
                    Err(e) => Err(e.to_string()),
                }
            })
        };
        waiter.wait_asleep(); // it released the lock and sleeps
        let notifier = {
            let cond = cond.clone();
            Process::fork(move || {
                let _guard = cond.lock().unwrap();
                cond.notify_all().unwrap(); // its wake is deferred to the unlock...
                die_now(); // ...which never comes
            })
            .unwrap()
        };
        assert_killed(join_bounded(&notifier, "notifier"));
        // Woken by the notify, it finds the lock held by a dead process.
        assert_eq!(
            waiter.result(&format!("round {round}: cond.wait()")),
            Ok("notified, lock taken from its dead holder"),
            "round {round}"
        );
        drop(
            cond.lock_timeout(WATCHDOG)
                .map_err(LockError::without_guard)
                .expect("lock after recovery"),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 7. unlock releases only a lock the caller holds
// ---------------------------------------------------------------------------------------------

#[test]
fn unlock_by_another_thread_is_refused_and_the_holder_keeps_the_lock() {
    let lock = Arc::new(RawLock::new());
    let (held_tx, held_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let holder = {
        let lock = Arc::clone(&lock);
        std::thread::spawn(move || {
            std::mem::forget(lock.acquire().unwrap());
            held_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            // SAFETY: this thread holds the lock through the guard it forgot above.
            unsafe { lock.unlock() }
        })
    };
    held_rx.recv().unwrap();

    // Uncontended word (fast path).
    // SAFETY: this thread does not hold the lock: the call under test must refuse (it only
    // touches an atomic, so a wrong answer is a logic error, not memory unsafety).
    let released = unsafe { lock.unlock() };
    assert!(!released, "released a lock held by another thread");
    assert!(lock.is_locked());
    assert!(matches!(lock.try_acquire(), Err(LockError::WouldBlock)));

    // Contended word (a sleeper set CONTENDED: the slow path).
    let sleeper = {
        let lock = Arc::clone(&lock);
        block_in_thread(move || {
            lock.acquire_timeout(WATCHDOG)
                .map(drop)
                .map_err(LockError::without_guard)
        })
    };
    sleeper.wait_asleep();
    // SAFETY: as above.
    let released = unsafe { lock.unlock() };
    assert!(
        !released,
        "released a contended lock held by another thread"
    );
    assert!(lock.is_locked());
    assert!(sleeper.still_blocked(), "the sleeper got a lock still held");

    go_tx.send(()).unwrap();
    assert!(holder.join().unwrap(), "the holder's own unlock failed");
    let got = sleeper.result("acquire after the holder's unlock");
    assert!(got.is_ok(), "{got:?}");
    assert!(!lock.is_locked());
}

#[test]
fn unlock_by_another_process_is_refused_and_the_holder_keeps_the_lock() {
    let lock = Lock::new().unwrap();
    let (held, go) = (flag(), flag());
    let holder = {
        let (lock, held, go) = (lock.clone(), held.clone(), go.clone());
        Process::fork(move || {
            std::mem::forget(lock.raw().acquire().unwrap());
            held.store(1, Ordering::Release);
            wait_for(&go, 1);
            // SAFETY: this thread holds the lock through the guard it forgot above.
            let released = unsafe { lock.raw().unlock() };
            std::process::exit(if released { 0 } else { 3 });
        })
        .unwrap()
    };
    wait_for(&held, 1);
    // SAFETY: this process does not hold the lock: the call under test must refuse (it only
    // touches an atomic).
    let released = unsafe { lock.raw().unlock() };
    assert!(!released, "released another process's lock");
    assert!(lock.is_locked());
    assert!(matches!(lock.try_acquire(), Err(LockError::WouldBlock)));
    go.store(1, Ordering::Release);
    let status = join_bounded(&holder, "holder");
    assert!(status.success(), "the holder's own unlock failed: {status}");
    drop(lock.try_acquire().expect("free after the holder's unlock"));
}
