//! Process extras: `Process::builder()` (names, daemons), `exit_code`, `active_children`,
//! `parent_process`.
//!
//! This test process makes itself a child subreaper: a child orphaned by one of our children
//! becomes *our* child instead of init's. So "a daemon was stopped (and reaped) by its parent
//! before the parent exited" is checked exactly: afterwards the daemon is no child of ours.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use common::blocking::join_bounded;
use shmproc::{active_children, current_process, parent_process, Array, Process, Value};

/// A child ours to `waitpid`, as far as `waitpid(WNOHANG)` tells (it reaps an exited one).
#[derive(Debug, PartialEq)]
enum Seen {
    Running,
    Exited(std::process::ExitStatus),
    /// Not (or no longer) a child of this process: reaped by whoever started it.
    NotOurs,
}

fn look(pid: u32) -> Seen {
    let mut status = 0;
    // SAFETY: waitpid with WNOHANG on a pid; `status` is a valid out-pointer.
    match unsafe { libc::waitpid(pid as i32, &mut status, libc::WNOHANG) } {
        0 => Seen::Running,
        -1 => {
            let e = std::io::Error::last_os_error();
            assert_eq!(e.raw_os_error(), Some(libc::ECHILD), "waitpid({pid}): {e}");
            Seen::NotOurs
        }
        _ => Seen::Exited(std::process::ExitStatus::from_raw(status)),
    }
}

/// Waits (bounded) until `pid`, an orphan re-parented to this test process, exits; its status.
fn reap_orphan(pid: u32) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match look(pid) {
            Seen::Exited(status) => return status,
            Seen::NotOurs => panic!("{pid} is not a child of this process"),
            Seen::Running => {
                if Instant::now() > deadline {
                    // SAFETY: our unreaped child, so the pid names it; then reap it.
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                    let _ = reap_orphan(pid);
                    panic!("{pid} still running after 20 s");
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
}

fn become_subreaper() {
    // SAFETY: prctl with an integer argument; affects only this process.
    let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(r, 0, "prctl: {}", std::io::Error::last_os_error());
}

fn sleep_long() {
    std::thread::sleep(Duration::from_secs(60));
}

#[shmproc::entry]
fn exit_with(code: i32) {
    std::process::exit(code)
}

#[shmproc::entry]
fn sleeper(secs: u64) {
    std::thread::sleep(Duration::from_secs(secs))
}

#[shmproc::entry]
fn who_am_i(_: ()) -> (String, Option<(u32, String)>) {
    let parent = parent_process().map(|p| (p.pid, p.name));
    (current_process().name, parent)
}

/// How the parent of a daemon ends in [`parent_of_daemon`].
#[derive(serde::Serialize, serde::Deserialize)]
enum Ending {
    /// Returns from the entry (the handle forgotten, so only the exit path can stop it).
    Return,
    /// `std::process::exit(0)` (the `atexit` path).
    Exit,
    /// Waits to be killed.
    BeKilled,
}

/// Waits (bounded) until `value` is set; its value.
fn wait_set(value: &Value<u32>) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match value.get().unwrap() {
            0 => assert!(Instant::now() < deadline, "not set after 20 s"),
            set => return set,
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Starts a daemon child (fork) that publishes its pid once it runs (and so watches its
/// parent), waits for that, then ends as told.
#[shmproc::entry]
fn parent_of_daemon((pid_out, ending): (Value<u32>, Ending)) {
    let out = pid_out.clone();
    let daemon = Process::builder()
        .daemon(true)
        .fork(move || {
            out.set(std::process::id()).unwrap();
            sleep_long()
        })
        .unwrap();
    assert_eq!(wait_set(&pid_out), daemon.pid());
    std::mem::forget(daemon);
    match ending {
        Ending::Return => {}
        Ending::Exit => std::process::exit(0),
        Ending::BeKilled => sleep_long(),
    }
}

#[test]
fn exit_code_is_none_while_running_then_the_code() {
    let p = Process::spawn(exit_with, 3).unwrap();
    assert_eq!(join_bounded(&p, "exit_with").code(), Some(3));
    assert_eq!(p.exit_code(), Some(3));

    let forked = Process::fork(|| {
        // SAFETY: `_exit` has no preconditions; it ends the (child) process at once.
        unsafe { libc::_exit(7) }
    })
    .unwrap();
    assert_eq!(join_bounded(&forked, "_exit(7)").code(), Some(7));
    assert_eq!(forked.exit_code(), Some(7));
}

#[test]
fn exit_code_after_sigkill_is_minus_nine_and_join_agrees() {
    let p = Process::fork(sleep_long).unwrap();
    assert_eq!(p.exit_code(), None);
    p.kill().unwrap();
    // exit_code reaps the child; join then reports the same status.
    let deadline = Instant::now() + Duration::from_secs(20);
    while p.exit_code().is_none() {
        assert!(Instant::now() < deadline, "not dead 20 s after SIGKILL");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(p.exit_code(), Some(-libc::SIGKILL));
    assert_eq!(join_bounded(&p, "killed").signal(), Some(libc::SIGKILL));
}

#[test]
fn builder_names_reach_the_child() {
    let seen = Array::<u8>::zeroed(16).unwrap();
    let s = seen.clone();
    let p = Process::builder()
        .name("worker-1")
        .fork(move || {
            let name = current_process().name;
            s.lock().unwrap()[..name.len()].copy_from_slice(name.as_bytes());
        })
        .unwrap();
    assert_eq!(p.name(), "worker-1");
    assert!(!p.is_daemon());
    assert!(join_bounded(&p, "worker-1").success());
    assert_eq!(&seen.to_vec().unwrap()[..8], b"worker-1");

    let spawned = Process::builder()
        .name("spawned-1")
        .spawn(who_am_i, ())
        .unwrap();
    assert_eq!(spawned.name(), "spawned-1");
    let (name, _) = spawned
        .join_result_timeout(Duration::from_secs(20))
        .unwrap();
    assert_eq!(name, "spawned-1");
}

#[test]
fn parent_process_names_whoever_started_us() {
    assert_eq!(
        parent_process(),
        None,
        "the test harness was not started by shmproc"
    );
    let me = std::process::id();

    let p = Process::spawn(who_am_i, ()).unwrap();
    let (_, parent) = p.join_result_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(parent, Some((me, "MainProcess".to_owned())));

    // A fork child, and a fork child of a named fork child (a panic fails its exit status).
    let outer = Process::builder()
        .name("outer")
        .fork(move || {
            let parent = parent_process().unwrap();
            assert_eq!((parent.pid, parent.name.as_str()), (me, "MainProcess"));
            let outer_pid = std::process::id();
            let inner = Process::fork(move || {
                let parent = parent_process().unwrap();
                assert_eq!((parent.pid, parent.name.as_str()), (outer_pid, "outer"));
            })
            .unwrap();
            assert!(join_bounded(&inner, "inner").success());
        })
        .unwrap();
    assert!(join_bounded(&outer, "outer").success());
}

#[test]
fn active_children_lists_running_children_only() {
    let running = Process::fork(sleep_long).unwrap();
    let done = Process::fork(|| {}).unwrap();
    assert!(join_bounded(&done, "done").success());
    let pids: Vec<u32> = active_children().iter().map(|c| c.pid).collect();
    assert!(pids.contains(&running.pid()), "{pids:?}");
    assert!(!pids.contains(&done.pid()), "{pids:?}");
    let listed = active_children()
        .into_iter()
        .find(|c| c.pid == running.pid())
        .unwrap();
    assert_eq!(listed.name, running.name());

    // Reaped by active_children: the handle still reports the status.
    running.kill().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while active_children().iter().any(|c| c.pid == running.pid()) {
        assert!(Instant::now() < deadline, "still listed 20 s after SIGKILL");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(running.exit_code(), Some(-libc::SIGKILL));
    assert_eq!(
        join_bounded(&running, "killed").signal(),
        Some(libc::SIGKILL)
    );
}

#[test]
fn a_non_daemon_child_outlives_its_dropped_handle() {
    become_subreaper();
    let p = Process::fork(sleep_long).unwrap();
    let pid = p.pid();
    drop(p);
    assert_eq!(look(pid), Seen::Running);
    assert!(active_children().iter().any(|c| c.pid == pid));
    // SAFETY: our child, not reaped yet (nobody waits for it), so the pid still names it.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    // active_children reaps it although its handle is gone.
    let deadline = Instant::now() + Duration::from_secs(20);
    while active_children().iter().any(|c| c.pid == pid) {
        assert!(Instant::now() < deadline, "still listed 20 s after SIGKILL");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(look(pid), Seen::NotOurs);
}

#[test]
fn dropping_a_daemon_handle_stops_and_reaps_it() {
    become_subreaper();
    let forked = Process::builder().daemon(true).fork(sleep_long).unwrap();
    let spawned = Process::builder().daemon(true).spawn(sleeper, 60).unwrap();
    // Ignores SIGTERM: only the SIGKILL after the grace stops it.
    let ready = common::flag();
    let r = ready.clone();
    let stubborn = Process::builder()
        .daemon(true)
        .fork(move || {
            // SAFETY: setting a signal's disposition to "ignore" runs no code of ours.
            unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
            r.store(1, std::sync::atomic::Ordering::Release);
            sleep_long()
        })
        .unwrap();
    common::wait_for(&ready, 1);
    assert!(forked.is_daemon() && spawned.is_daemon() && stubborn.is_daemon());
    for p in [&forked, &stubborn] {
        assert!(p.is_alive());
    }
    let pids = [forked.pid(), spawned.pid(), stubborn.pid()];
    drop((forked, spawned, stubborn));
    for pid in pids {
        // Reaped by the handle's drop: no longer a child of ours, not listed.
        assert_eq!(look(pid), Seen::NotOurs, "pid {pid}");
        assert!(!active_children().iter().any(|c| c.pid == pid));
    }
}

#[test]
fn a_fork_child_neither_lists_nor_stops_its_parents_daemons() {
    let daemon = Process::builder().daemon(true).fork(sleep_long).unwrap();
    let pid = daemon.pid();
    // The child inherits a copy of our list of children; leaving at its end (which stops its
    // own daemons) must not touch ours.
    let child = Process::fork(move || {
        assert!(!active_children().iter().any(|c| c.pid == pid));
        let own = Process::builder().daemon(true).fork(sleep_long).unwrap();
        assert_eq!(active_children().len(), 1);
        std::mem::forget(own); // stopped as the child leaves
    })
    .unwrap();
    assert!(join_bounded(&child, "child").success());
    assert!(daemon.is_alive());
    assert!(active_children().iter().any(|c| c.pid == pid));
}

/// Runs [`parent_of_daemon`] ending as told; the parent's status and its daemon's pid.
fn run_parent_of_daemon(ending: Ending) -> (Process, u32) {
    become_subreaper();
    let pid_out = Value::new(0_u32).unwrap();
    let parent = Process::spawn(parent_of_daemon, (pid_out.clone(), ending)).unwrap();
    (parent, wait_set(&pid_out))
}

#[test]
fn daemons_are_stopped_when_their_parent_returns_or_exits() {
    for ending in [Ending::Return, Ending::Exit] {
        let (parent, daemon) = run_parent_of_daemon(ending);
        assert!(join_bounded(&parent, "parent").success());
        // Stopped and reaped by its parent before the parent exited; otherwise it would have
        // been re-parented to us (the subreaper) still running.
        match look(daemon) {
            Seen::NotOurs => {}
            Seen::Exited(status) => panic!("the daemon outlived its parent, then ended: {status}"),
            Seen::Running => {
                let status = reap_orphan(daemon);
                panic!("the daemon outlived its parent, running; then ended: {status}");
            }
        }
    }
}

#[test]
fn a_daemon_dies_with_a_killed_parent() {
    let (parent, daemon) = run_parent_of_daemon(Ending::BeKilled);
    parent.kill().unwrap();
    common::assert_killed(join_bounded(&parent, "parent"));
    // Its parent died without running any exit code: the daemon kills itself, re-parented
    // to us meanwhile.
    common::assert_killed(reap_orphan(daemon));
}
