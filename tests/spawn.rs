//! Process::spawn: results, shared handles as arguments, panics and signals.

mod common;

use std::time::Duration;

use shmproc::{Array, Lock, Process, ProcessError, Value};

#[shmproc::entry]
fn square(n: u64) -> u64 {
    n * n
}

#[shmproc::entry]
fn describe((name, times): (String, usize)) -> Vec<String> {
    vec![name; times]
}

#[shmproc::entry]
fn deposit((balance, times): (Value<i64>, u32)) -> String {
    for _ in 0..times {
        *balance.lock().unwrap() += 1;
    }
    shmproc::current_process().name
}

#[shmproc::entry]
fn fill(arr: Array<u32>) {
    for (i, x) in arr.lock().unwrap().iter_mut().enumerate() {
        *x = i as u32 * 10;
    }
}

#[shmproc::entry]
fn hold_lock(lock: Lock) -> bool {
    let _held = lock.acquire().unwrap();
    common::die_now()
}

#[shmproc::entry]
fn make_value(start: i64) -> Value<i64> {
    Value::new(start).unwrap()
}

#[shmproc::entry]
fn explode(message: String) -> u64 {
    panic!("{message}")
}

#[shmproc::entry]
fn die_by_sigkill() -> u64 {
    common::die_now()
}

#[shmproc::entry]
fn exit_with(code: i32) {
    std::process::exit(code)
}

#[shmproc::entry]
fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[test]
fn spawn_returns_the_entry_value() {
    assert_eq!(square(3), 9, "the entry stays callable");
    let p: Process<u64> = Process::spawn(square, 7).unwrap();
    assert!(p.pid() > 0 && p.pid() != std::process::id());
    assert_eq!(p.join_result().unwrap(), 49);
    assert!(matches!(p.join_result(), Err(ProcessError::ResultTaken)));
    assert!(!p.is_alive());

    let p = Process::spawn(describe, ("ab".to_owned(), 3)).unwrap();
    assert_eq!(p.join_result().unwrap(), vec!["ab"; 3]);
}

#[test]
fn a_spawned_entry_mutates_a_value_it_received() {
    let balance = Value::new(400_i64).unwrap();
    let p = Process::spawn(deposit, (balance.clone(), 1000)).unwrap();
    let child_name = p.join_result().unwrap();
    assert_eq!(child_name, p.name());
    assert_eq!(balance.get().unwrap(), 1400);

    let arr = Array::<u32>::zeroed(4).unwrap();
    Process::spawn(fill, arr.clone())
        .unwrap()
        .join_result()
        .unwrap();
    assert_eq!(arr.to_vec().unwrap(), vec![0, 10, 20, 30]);
}

#[test]
fn a_lock_passed_to_a_child_that_dies_holding_it_reports_owner_died() {
    let lock = Lock::new().unwrap();
    let p = Process::spawn(hold_lock, lock.clone()).unwrap();
    assert!(matches!(
        p.join_result(),
        Err(ProcessError::Signaled {
            name: "SIGKILL",
            ..
        })
    ));
    let acquired = lock.acquire_timeout(Duration::from_secs(20));
    assert!(matches!(acquired, Err(shmproc::LockError::OwnerDied(_))));
}

#[test]
fn a_handle_made_by_the_child_comes_back() {
    let v = Process::spawn(make_value, 5)
        .unwrap()
        .join_result()
        .unwrap();
    assert_eq!(v.get().unwrap(), 5);
    v.set(6).unwrap();
    assert_eq!(v.get().unwrap(), 6);
}

#[test]
fn a_panic_comes_back_with_its_message() {
    let p = Process::spawn(explode, "kaboom 42".to_owned()).unwrap();
    match p.join_result() {
        Err(ProcessError::Panicked { message }) => assert_eq!(message, "kaboom 42"),
        other => panic!("expected a panic error, got {other:?}"),
    }
}

#[test]
fn death_by_signal_and_exit_codes_are_named() {
    let p = Process::spawn(die_by_sigkill, ()).unwrap();
    let err = p.join_result().unwrap_err();
    assert!(matches!(
        err,
        ProcessError::Signaled {
            signal: 9,
            name: "SIGKILL"
        }
    ));
    assert!(err.to_string().contains("SIGKILL"), "{err}");

    let p = Process::spawn(exit_with, 3).unwrap();
    assert!(matches!(
        p.join_result(),
        Err(ProcessError::Exited { code: 3 })
    ));
}

#[test]
fn join_result_timeout_leaves_the_result_waitable_and_kill_works() {
    let p = Process::spawn(sleep_ms, 300).unwrap();
    assert!(matches!(
        p.join_result_timeout(Duration::from_millis(1)),
        Err(ProcessError::Timeout)
    ));
    assert_eq!(p.join_result_timeout(Duration::from_secs(20)).unwrap(), 300);

    let p = Process::spawn(sleep_ms, 60_000).unwrap();
    assert!(p.is_alive());
    p.kill().unwrap();
    assert!(matches!(
        p.join_result(),
        Err(ProcessError::Signaled {
            name: "SIGKILL",
            ..
        })
    ));
}

#[test]
fn an_anonymous_handle_cannot_be_serialized_outside_spawn() {
    let v = Value::new(1_u32).unwrap();
    assert!(postcard::to_allocvec(&v).is_err());
    // postcard drops custom messages; ours is kept for the thread.
    let message = shmproc::raw::take_transfer_error().unwrap();
    assert!(message.contains("create it by name"), "{message}");
    let lock = Lock::new().unwrap();
    assert!(postcard::to_allocvec(&lock).is_err());
    // Bytes that name a descriptor nobody passed do not make a handle either.
    let forged = [1u8, 0]; // Wire::Passed(0)
    assert!(postcard::from_bytes::<Value<u32>>(&forged).is_err());
}

#[test]
fn a_named_handle_passes_by_name() {
    let name = common::unique("spawn-named");
    let v = Value::create(&name, 10_i64).unwrap();
    let bytes = postcard::to_allocvec(&v).unwrap();
    let again: Value<i64> = postcard::from_bytes(&bytes).unwrap();
    again.set(11).unwrap();
    assert_eq!(v.get().unwrap(), 11);
    assert_eq!(again.name(), Some(name.as_str()));

    let p = Process::spawn(deposit, (v.clone(), 5)).unwrap();
    p.join_result().unwrap();
    assert_eq!(v.get().unwrap(), 16);
    drop((v, again));
    assert!(common::leftovers("spawn-named").is_empty());
}
