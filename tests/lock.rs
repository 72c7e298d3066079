//! Robust Lock: owner death is reported (never a hang), timeouts, re-entry errors, exclusion.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{assert_killed, die_now, flag, wait_for};
use shmproc::{AccessError, Lock, LockError, Process, Value};

const PATIENCE: Duration = Duration::from_secs(20);

#[test]
fn sigkilled_lock_holder_gives_owner_died_then_lock_works() {
    for round in 0..20 {
        let lock = Lock::new().unwrap();
        let holding = flag();
        let (l, h) = (lock.clone(), holding.clone());
        let child = Process::fork(move || {
            let _guard = l.acquire().unwrap();
            h.store(1, Ordering::Release);
            if round % 2 == 1 {
                // Let the parent block in acquire first: a blocked waiter must notice too.
                std::thread::sleep(Duration::from_millis(20));
            }
            die_now();
        })
        .unwrap();
        wait_for(&holding, 1);
        match lock.acquire_timeout(PATIENCE) {
            Err(LockError::OwnerDied(guard)) => drop(guard),
            Ok(_) => panic!("round {round}: expected OwnerDied, got a clean guard"),
            Err(e) => panic!("round {round}: expected OwnerDied, got {e}"),
        }
        assert_killed(child.join().unwrap());
        // Recovery is one-shot: the lock is consistent again.
        drop(
            lock.acquire_timeout(PATIENCE)
                .expect("plain acquire after recovery"),
        );
        drop(lock.try_acquire().expect("try_acquire after recovery"));
    }
}

#[test]
fn sigkilled_value_holder_gives_owner_died_with_the_half_done_data() {
    for round in 0..20 {
        let balance = Value::new(400_i64).unwrap();
        let holding = flag();
        let (b, h) = (balance.clone(), holding.clone());
        let child = Process::fork(move || {
            let mut guard = b.lock().unwrap();
            *guard = -1; // half-done update
            h.store(1, Ordering::Release);
            die_now();
        })
        .unwrap();
        wait_for(&holding, 1);
        if round % 2 == 0 {
            let mut guard = balance
                .lock_timeout(PATIENCE)
                .err()
                .and_then(LockError::into_guard)
                .expect("OwnerDied with a guard");
            assert_eq!(
                *guard, -1,
                "the dead holder's write is visible to the repairer"
            );
            *guard = 400;
        } else {
            assert!(matches!(balance.get(), Err(AccessError::OwnerDied)));
            balance.set(400).unwrap();
        }
        assert_killed(child.join().unwrap());
        assert_eq!(balance.get().unwrap(), 400);
        *balance.lock().unwrap() += 1;
        assert_eq!(balance.get().unwrap(), 401);
    }
}

#[test]
fn acquire_timeout_times_out_while_a_live_process_holds_the_lock() {
    let lock = Lock::new().unwrap();
    let (holding, release) = (flag(), flag());
    let (l, h, r) = (lock.clone(), holding.clone(), release.clone());
    let child = Process::fork(move || {
        let _guard = l.acquire().unwrap();
        h.store(1, Ordering::Release);
        wait_for(&r, 1);
    })
    .unwrap();
    wait_for(&holding, 1);
    assert!(matches!(
        lock.acquire_timeout(Duration::from_millis(30)),
        Err(LockError::Timeout)
    ));
    assert!(matches!(lock.try_acquire(), Err(LockError::WouldBlock)));
    assert!(lock.is_locked());
    release.store(1, Ordering::Release);
    drop(
        lock.acquire_timeout(PATIENCE)
            .expect("free after the holder released"),
    );
    assert!(child.join().unwrap().success());
}

#[test]
fn reentry_from_the_holding_thread_fails_instead_of_deadlocking() {
    let lock = Lock::new().unwrap();
    let _guard = lock.acquire().unwrap();
    assert!(matches!(lock.try_acquire(), Err(LockError::WouldBlock)));
    assert!(matches!(
        lock.acquire_timeout(Duration::from_secs(5)),
        Err(LockError::Deadlock)
    ));
    assert!(matches!(lock.acquire(), Err(LockError::Deadlock)));

    let v = Value::new(1_u8).unwrap();
    let _g = v.lock().unwrap();
    assert!(matches!(v.get(), Err(AccessError::Deadlock)));
}

#[test]
fn lock_excludes_across_processes() {
    let lock = Lock::new().unwrap();
    let counter = Value::new(0_u64).unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            let (lock, counter) = (lock.clone(), counter.clone());
            Process::fork(move || {
                for _ in 0..50_000 {
                    let _g = lock.acquire().unwrap();
                    let v = counter.get().unwrap();
                    counter.set(v + 1).unwrap();
                }
            })
            .unwrap()
        })
        .collect();
    for c in children {
        assert!(c.join().unwrap().success());
    }
    assert_eq!(counter.get().unwrap(), 100_000);
}

#[test]
fn owner_died_error_text_says_what_happened() {
    let e: LockError<()> = LockError::OwnerDied(());
    assert!(e.to_string().contains("owner process died"));
    assert!(LockError::<()>::Timeout.to_string().contains("timed out"));
}
