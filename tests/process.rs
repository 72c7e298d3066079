//! Process::fork: exit statuses, timeouts, signals, names.

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use shmproc::{cpu_count, current_process, Array, Process, PANIC_EXIT_CODE};

#[test]
fn child_exit_codes_follow_the_closure() {
    let ok = Process::fork(|| {}).unwrap();
    assert_eq!(ok.join().unwrap().code(), Some(0));
    let panics = Process::fork(|| panic!("boom")).unwrap();
    assert_eq!(panics.join().unwrap().code(), Some(PANIC_EXIT_CODE));
    assert!(!panics.is_alive());
}

#[test]
fn join_timeout_kill_and_terminate() {
    let sleeper = Process::fork(|| std::thread::sleep(Duration::from_secs(60))).unwrap();
    assert!(sleeper.is_alive());
    assert_eq!(
        sleeper.join_timeout(Duration::from_millis(20)).unwrap(),
        None
    );
    sleeper.kill().unwrap();
    assert_eq!(sleeper.join().unwrap().signal(), Some(libc::SIGKILL));
    sleeper.kill().unwrap(); // already reaped: no effect, no error

    let polite = Process::fork(|| std::thread::sleep(Duration::from_secs(60))).unwrap();
    polite.terminate().unwrap();
    let status = polite
        .join_timeout(Duration::from_secs(20))
        .unwrap()
        .unwrap();
    assert_eq!(status.signal(), Some(libc::SIGTERM));
}

#[test]
fn children_know_their_name_and_the_parent_sees_their_writes() {
    let seen = Array::<u8>::zeroed(32).unwrap();
    let s = seen.clone();
    let p = Process::fork_named("worker-7", move || {
        let me = current_process();
        let mut g = s.lock().unwrap();
        g[..me.name.len()].copy_from_slice(me.name.as_bytes());
        g[31] = u8::from(me.pid != 0);
    })
    .unwrap();
    assert_eq!(p.name(), "worker-7");
    assert!(p.pid() > 0);
    assert!(p.join().unwrap().success());
    let bytes = seen.to_vec().unwrap();
    assert_eq!(&bytes[..8], b"worker-7");
    assert_eq!(bytes[31], 1);
    assert_eq!(current_process().name, "MainProcess");
    assert!(cpu_count() >= 1);
}

#[test]
fn default_names_count_up() {
    let a = Process::fork(|| {}).unwrap();
    let b = Process::fork(|| {}).unwrap();
    assert!(a.name().starts_with("Process-") && b.name().starts_with("Process-"));
    assert_ne!(a.name(), b.name());
    a.join().unwrap();
    b.join().unwrap();
}
