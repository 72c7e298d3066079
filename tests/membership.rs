//! Leaving vs dying: a process that is done (returns from its fork closure, drops its handles,
//! calls `exit`) *leaves* — pipe peers see `Disconnected`, a barrier carries on — while a process
//! gone without leaving (SIGKILL) is *dead* — `PeerDied`, `ParticipantDied`. Plus the roster's
//! limit of `ROSTER_SLOTS` live members.
//!
//! Durations here are only watchdogs that turn a hang into a failure; no test asserts how fast
//! something happens.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{assert_killed, die_now, flag, unique, wait_for};
use shmproc::raw::{liveness, Seat, Segment, SharedRef, Spec, TypeInfo, ROSTER_SLOTS};
use shmproc::{Barrier, Kind, Pipe, Process, RecvError, Roster, SyncError};

/// Bound on any blocking call: far above what a correct run needs, so only a hang hits it.
const WATCHDOG: Duration = Duration::from_secs(10);

fn assert_success(p: &Process) {
    let status = p.join().unwrap();
    assert!(status.success(), "child {} exited with {status}", p.pid());
}

/// Sleeps (coarsely, so many waiting processes cost little CPU) until `flag` is at least
/// `value`; panics after a bound instead of hanging.
fn wait_coarse(flag: &AtomicU32, value: u32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while flag.load(Ordering::Acquire) < value {
        assert!(Instant::now() < deadline, "timed out waiting on a flag");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// What the receiver saw after the one message of a trial.
fn ending(r: Result<u32, RecvError>) -> &'static str {
    match r {
        Err(RecvError::Disconnected) => "Disconnected",
        Err(RecvError::PeerDied { .. }) => "PeerDied",
        Err(RecvError::Timeout) => "Timeout",
        Ok(_) => "an extra message",
        Err(_) => "another error",
    }
}

// 1. ----------------------------------------------------------------------------------------

#[test]
fn a_fork_child_that_sends_and_returns_leaves_the_receiver_disconnected_100_times() {
    const TRIALS: u32 = 100;
    let mut outcomes: HashMap<&'static str, u32> = HashMap::new();
    for trial in 0..TRIALS {
        let (tx, rx) = Pipe::<u32>::simplex().unwrap();
        let t = tx.clone();
        let child = Process::fork(move || t.send(&trial).unwrap()).unwrap();
        drop(tx); // the child's copy is now the only sender
        assert_eq!(rx.recv_timeout(WATCHDOG).unwrap(), trial, "trial {trial}");
        let end = rx.recv_timeout(WATCHDOG);
        if let Err(RecvError::PeerDied { pid }) = &end {
            eprintln!(
                "trial {trial}: PeerDied {{ pid: {pid} }}, child {}",
                child.pid()
            );
        }
        *outcomes.entry(ending(end)).or_default() += 1;
        assert_success(&child);
    }
    assert_eq!(
        outcomes,
        HashMap::from([("Disconnected", TRIALS)]),
        "a child that returned normally must look like it left, never like it died"
    );
}

// 2. ----------------------------------------------------------------------------------------

#[test]
fn a_fork_child_that_sends_and_is_killed_leaves_the_receiver_peer_died_100_times() {
    const TRIALS: u32 = 100;
    let mut outcomes: HashMap<&'static str, u32> = HashMap::new();
    for trial in 0..TRIALS {
        let (tx, rx) = Pipe::<u32>::simplex().unwrap();
        let t = tx.clone();
        let child = Process::fork(move || {
            t.send(&trial).unwrap();
            die_now();
        })
        .unwrap();
        drop(tx);
        assert_eq!(rx.recv_timeout(WATCHDOG).unwrap(), trial, "trial {trial}");
        let end = rx.recv_timeout(WATCHDOG);
        if let Err(RecvError::PeerDied { pid }) = &end {
            assert_eq!(*pid, child.pid(), "trial {trial}: the dead pid");
        }
        *outcomes.entry(ending(end)).or_default() += 1;
        assert_killed(child.join().unwrap());
    }
    assert_eq!(
        outcomes,
        HashMap::from([("PeerDied", TRIALS)]),
        "a SIGKILLed sender must be reported dead, never as having left"
    );
}

// 3. ----------------------------------------------------------------------------------------

#[test]
fn one_hundred_children_share_a_sender_nothing_lost_no_early_ending_then_disconnected() {
    const CHILDREN: u32 = 100;
    const EACH: u32 = 50;
    let (tx, rx) = Pipe::<u32>::simplex().unwrap();
    let release = flag();
    let children: Vec<Process> = (0..CHILDREN)
        .map(|c| {
            let (t, release) = (tx.clone(), release.clone());
            Process::fork(move || {
                for k in 0..EACH {
                    t.send(&(c * EACH + k)).unwrap();
                }
                // Stay alive (holding the sender) until the parent has checked that no ending
                // is reported while senders live.
                wait_coarse(&release, 1);
            })
            .unwrap()
        })
        .collect();
    drop(tx);

    let mut seen = vec![false; (CHILDREN * EACH) as usize];
    for got in 0..CHILDREN * EACH {
        match rx.recv_timeout(WATCHDOG) {
            Ok(n) => {
                let slot = seen
                    .get_mut(n as usize)
                    .unwrap_or_else(|| panic!("message {n} out of range"));
                assert!(!*slot, "message {n} received twice");
                *slot = true;
            }
            Err(e) => panic!("after {got} messages, with every child alive: {e:?}"),
        }
    }
    assert!(seen.iter().all(|s| *s));
    // Every child is alive and holds the sender: no ending may be reported now.
    match rx.recv_timeout(Duration::from_millis(200)) {
        Err(RecvError::Timeout) => {}
        other => panic!("all senders alive and silent: expected Timeout, got {other:?}"),
    }
    release.store(1, Ordering::Release);
    match rx.recv_timeout(WATCHDOG) {
        Err(RecvError::Disconnected) => {}
        other => panic!("every sender returned: expected Disconnected, got {other:?}"),
    }
    for child in &children {
        assert_success(child);
    }
}

// 4. ----------------------------------------------------------------------------------------

#[test]
fn a_barrier_member_that_returned_is_not_reported_dead_to_the_next_partner() {
    const ROUNDS: usize = 3;
    let barrier = Barrier::new(2).unwrap();
    let b = barrier.clone();
    let a = Process::fork(move || {
        for round in 0..ROUNDS {
            if let Err(e) = b.wait_timeout(WATCHDOG) {
                panic!("child A, round {round}: {e:?}");
            }
        }
    })
    .unwrap();
    for round in 0..ROUNDS {
        if let Err(e) = barrier.wait_timeout(WATCHDOG) {
            panic!("parent with A, round {round}: {e:?}");
        }
    }
    assert_success(&a); // A is gone now: it left, it did not die

    let b = barrier.clone();
    let b_child = Process::fork(move || {
        // Arrive late, so the parent sleeps (and checks the members for deaths) many times
        // first, with A gone.
        std::thread::sleep(Duration::from_millis(200));
        for round in 0..ROUNDS {
            if let Err(e) = b.wait_timeout(WATCHDOG) {
                panic!("child B, round {round}: {e:?}");
            }
        }
    })
    .unwrap();
    for round in 0..ROUNDS {
        if let Err(e) = barrier.wait_timeout(WATCHDOG) {
            panic!("parent with B, round {round} (A returned normally, it must not count as dead): {e:?}");
        }
    }
    assert_success(&b_child);
    assert!(!barrier.is_broken());
}

// 5. ----------------------------------------------------------------------------------------

#[test]
fn a_barrier_member_killed_while_waiting_breaks_the_barrier_for_the_others() {
    let barrier = Barrier::new(3).unwrap();
    let b = barrier.clone();
    let victim = Process::fork(move || {
        // Round 0 cannot complete (only 2 of 3 parties ever arrive): this blocks until killed.
        let r = b.wait_timeout(Duration::from_secs(60));
        panic!("the victim's wait returned: {r:?}");
    })
    .unwrap();
    // Until the victim has arrived (and so joined the barrier's members).
    let deadline = Instant::now() + WATCHDOG;
    while barrier.n_waiting() < 1 {
        assert!(Instant::now() < deadline, "the victim never arrived");
        std::thread::sleep(Duration::from_millis(1));
    }
    victim.kill().unwrap();
    assert_killed(victim.join().unwrap());

    match barrier.wait_timeout(WATCHDOG) {
        Err(SyncError::ParticipantDied { pid }) => assert_eq!(pid, victim.pid()),
        other => panic!("expected ParticipantDied (not a timeout), got {other:?}"),
    }
    assert!(barrier.is_broken());
    assert!(matches!(
        barrier.wait_timeout(WATCHDOG),
        Err(SyncError::Broken)
    ));

    // After a reset the barrier works again for live processes.
    barrier.reset();
    assert!(!barrier.is_broken());
    let helpers: Vec<Process> = (0..2)
        .map(|_| {
            let b = barrier.clone();
            Process::fork(move || {
                b.wait_timeout(WATCHDOG).unwrap();
            })
            .unwrap()
        })
        .collect();
    barrier.wait_timeout(WATCHDOG).unwrap();
    helpers.iter().for_each(assert_success);
}

#[test]
fn a_barrier_member_killed_right_before_arriving_breaks_the_barrier() {
    let barrier = Barrier::new(2).unwrap();
    let b = barrier.clone();
    let victim = Process::fork(move || {
        b.wait_timeout(WATCHDOG).unwrap(); // round 0 with the parent: now a member
        die_now(); // never arrives in round 1
    })
    .unwrap();
    barrier.wait_timeout(WATCHDOG).unwrap();
    match barrier.wait_timeout(WATCHDOG) {
        Err(SyncError::ParticipantDied { pid }) => assert_eq!(pid, victim.pid()),
        other => panic!("expected ParticipantDied (not a timeout), got {other:?}"),
    }
    assert_killed(victim.join().unwrap());
    assert!(barrier.is_broken());
}

// 6. ----------------------------------------------------------------------------------------

#[test]
fn a_64_party_barrier_of_processes_runs_10_rounds() {
    const PARTIES: u32 = 64;
    const ROUNDS: u32 = 10;
    let barrier = Barrier::new(PARTIES).unwrap();
    let arrivals = flag();
    let run = |b: &Barrier, arrivals: &AtomicU32, who: &str| {
        for round in 0..ROUNDS {
            arrivals.fetch_add(1, Ordering::SeqCst);
            if let Err(e) = b.wait_timeout(Duration::from_secs(30)) {
                panic!("{who}, round {round}: {e:?}");
            }
            // Nobody passes round r before all parties arrived in it.
            let now = arrivals.load(Ordering::SeqCst);
            assert!(
                now >= PARTIES * (round + 1),
                "{who} passed round {round} at {now}"
            );
        }
    };
    let children: Vec<Process> = (1..PARTIES)
        .map(|i| {
            let (b, arrivals) = (barrier.clone(), arrivals.clone());
            Process::fork(move || run(&b, &arrivals, &format!("child {i}"))).unwrap()
        })
        .collect();
    run(&barrier, &arrivals, "parent");
    children.iter().for_each(assert_success);
    assert_eq!(arrivals.load(Ordering::SeqCst), PARTIES * ROUNDS);
    assert!(!barrier.is_broken());
}

// 7. ----------------------------------------------------------------------------------------

#[test]
fn a_roster_of_1024_live_members_refuses_one_more_until_a_slot_frees() {
    assert_eq!(ROSTER_SLOTS, 1024);
    let spec = Spec {
        kind: Kind::Raw,
        elem: TypeInfo::none(),
        payload_len: std::mem::size_of::<Roster>(),
    };
    let seg = Arc::new(Segment::create_anonymous(&spec, |_| Ok(())).unwrap());
    let roster: SharedRef<Roster> = SharedRef::new(Arc::clone(&seg), 0).unwrap();
    let slot = |i: usize| {
        seg.atomic::<AtomicU64>(i * std::mem::size_of::<AtomicU64>())
            .unwrap()
    };

    // A live identity other than ours (kernel-held token, not a pid: works under hidepid too).
    let ids = {
        let spec = Spec {
            kind: Kind::Raw,
            elem: TypeInfo::none(),
            payload_len: 64,
        };
        let s = Segment::create_anonymous(&spec, |_| Ok(())).unwrap();
        SharedRef::<AtomicU64>::new(Arc::new(s), 0).unwrap()
    };
    let (published, release) = (flag(), flag());
    let (i, p, r) = (ids.clone(), published.clone(), release.clone());
    let holder = Process::fork(move || {
        i.store(liveness::current_identity(), Ordering::Release);
        p.store(1, Ordering::Release);
        wait_coarse(&r, 1);
    })
    .unwrap();
    wait_for(&published, 1);
    let other = ids.load(Ordering::Acquire);
    assert_ne!(other, liveness::current_identity());
    assert!(liveness::identity_alive(other));

    (0..ROSTER_SLOTS).for_each(|i| slot(i).store(other, Ordering::Release));
    assert_eq!(roster.live_members(), ROSTER_SLOTS);
    let full = roster.join().expect_err("a 1025th live member");
    let text = full.to_string();
    assert!(text.contains("1024"), "RosterFull message: {text}");
    assert!(!roster.is_member());
    assert_eq!(roster.live_members(), ROSTER_SLOTS, "no live member purged");

    slot(517).store(0, Ordering::Release);
    roster.join().expect("a slot is free");
    assert!(roster.is_member());
    assert_eq!(roster.live_members(), ROSTER_SLOTS);
    roster.leave();

    // Once the holder is gone, its 1024 stale entries make room at once.
    release.store(1, Ordering::Release);
    assert_success(&holder);
    assert!(!liveness::identity_alive(other));
    (0..ROSTER_SLOTS).for_each(|i| slot(i).store(other, Ordering::Release));
    roster.join().expect("dead members are purged to make room");
    assert!(roster.is_member());
    assert_eq!(roster.live_members(), 1);
    assert_eq!(roster.dead_member(), None);
}

// 8. ----------------------------------------------------------------------------------------

#[test]
fn a_pipe_end_opened_in_a_fork_child_that_calls_exit_leaves_the_peer_disconnected() {
    let name = unique("exit-named");
    let parent = Pipe::<u32>::create(&name).unwrap();
    let n = name.clone();
    let child = Process::fork(move || {
        let end = Pipe::<u32>::open(&n).unwrap(); // created in this process
        end.send(&5).unwrap();
        // No destructor runs: only the atexit handler can make this process leave.
        std::process::exit(0);
    })
    .unwrap();
    assert_eq!(parent.recv_timeout(WATCHDOG).unwrap(), 5);
    match parent.recv_timeout(WATCHDOG) {
        Err(RecvError::Disconnected) => {}
        other => panic!("the child called exit: expected Disconnected, got {other:?}"),
    }
    assert_success(&child);
    drop(parent);
    // Unlinked when the creator's last reference goes; another thread of this process (a fork
    // in a concurrent test, the watcher) may hold one for a moment after our drop.
    let deadline = Instant::now() + WATCHDOG;
    while !common::leftovers("exit-named").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the named pipe was never unlinked"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn an_inherited_pipe_end_used_by_a_fork_child_that_calls_exit_leaves_the_peer_disconnected() {
    let (tx, rx) = Pipe::<u32>::simplex().unwrap();
    let t = tx.clone();
    let child = Process::fork(move || {
        t.send(&9).unwrap();
        std::process::exit(0);
    })
    .unwrap();
    drop(tx);
    assert_eq!(rx.recv_timeout(WATCHDOG).unwrap(), 9);
    match rx.recv_timeout(WATCHDOG) {
        Err(RecvError::Disconnected) => {}
        other => panic!("the child called exit: expected Disconnected, got {other:?}"),
    }
    assert_success(&child);
}

// Regression: fork while another thread registers a barrier membership ---------------------

/// Sets its flag when dropped (stops a helper thread even if the test panics).
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// BUG FOUND BY THIS FILE (fixed in `crates/shmproc-shm/src/membership.rs`): the process-wide
/// list of barrier seats was a `std::sync::Mutex` with no at-fork handling. A child forked while
/// another thread of the parent held it (inside `Seat::new`, i.e. `Barrier::new`/`open`) got it
/// locked forever: the child hung in its own `Barrier::new`, and `leave_seats` gave up at exit,
/// so a child that returned normally was reported to its partners as `ParticipantDied`.
#[test]
fn a_fork_child_is_unharmed_by_another_thread_registering_barrier_seats_at_fork_time() {
    const TRIALS: u32 = 40;
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_guard = StopOnDrop(Arc::clone(&stop));
    let s = Arc::clone(&stop);
    let churn = std::thread::spawn(move || {
        let spec = Spec {
            kind: Kind::Raw,
            elem: TypeInfo::none(),
            payload_len: std::mem::size_of::<Roster>(),
        };
        let seg = Arc::new(Segment::create_anonymous(&spec, |_| Ok(())).unwrap());
        let roster: SharedRef<Roster> = SharedRef::new(seg, 0).unwrap();
        // Live seats make each registration hold the list longer.
        let _kept: Vec<_> = (0..64).map(|_| Seat::new(roster.clone())).collect();
        while !s.load(Ordering::Relaxed) {
            drop(Seat::new(roster.clone()));
        }
    });
    for trial in 0..TRIALS {
        let barrier = Barrier::new(2).unwrap();
        let b = barrier.clone();
        let child = Process::fork(move || {
            b.wait_timeout(WATCHDOG).unwrap(); // now a member
            drop(Barrier::new(1).unwrap()); // registers a seat in the child
        })
        .unwrap();
        barrier.wait_timeout(WATCHDOG).unwrap();
        match child.join_timeout(WATCHDOG).unwrap() {
            Some(status) => assert!(status.success(), "trial {trial}: {status}"),
            None => {
                child.kill().unwrap();
                child.join().unwrap();
                panic!("trial {trial}: the child hung creating a barrier");
            }
        }
        // The child returned: it left. Waiting alone can only time out, never see it dead.
        match barrier.wait_timeout(Duration::from_millis(50)) {
            Err(SyncError::Timeout) => {}
            other => panic!("trial {trial}: the child returned normally, got {other:?}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    churn.join().unwrap();
}
