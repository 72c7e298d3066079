//! The liveness layer: a live lock holder in another PID namespace is never declared dead;
//! untimed blocking calls return although the process that made their condition true died
//! between publishing and waking; `Event::wait` sees a `set` that a `clear` followed at once;
//! `unlock` releases only a lock the caller holds.
//!
//! Every blocking call under test runs where a watchdog bounds it (a thread whose result is
//! awaited for at most [`WATCHDOG`], or a child joined with a timeout): a lost wake-up fails
//! the test instead of hanging it. No other timing is asserted.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::{assert_killed, die_now, flag, unique, wait_for};
use shmproc::raw::test_hooks;
use shmproc::{
    Condition, Event, Lock, LockError, Pipe, Process, Queue, RawLock, RecvError, Semaphore, Value,
};

/// How long a blocking call may take before the test calls it hung.
const WATCHDOG: Duration = Duration::from_secs(10);

fn gettid() -> i32 {
    // SAFETY: gettid takes no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// Waits (bounded) until thread `tid` of process `pid` is inside a futex system call, i.e. it
/// has gone to sleep. Where `/proc/<pid>/task/<tid>/syscall` cannot be read, pauses 200 ms
/// instead.
fn wait_asleep(pid: u32, tid: i32) {
    let path = format!("/proc/{pid}/task/{tid}/syscall");
    let futex = libc::SYS_futex.to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match std::fs::read_to_string(&path) {
            Ok(s) if s.split_whitespace().next() == Some(futex.as_str()) => return,
            Ok(_) => {}
            Err(_) => {
                std::thread::sleep(Duration::from_millis(200));
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "thread {tid} of process {pid} never went to sleep"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A blocking call running in a thread of this process, awaited under the watchdog.
struct Blocked<T> {
    result: mpsc::Receiver<T>,
    tid: i32,
}

fn block_in_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Blocked<T> {
    let (tid_tx, tid_rx) = mpsc::channel();
    let (tx, result) = mpsc::channel();
    std::thread::spawn(move || {
        tid_tx.send(gettid()).unwrap();
        let _ = tx.send(f());
    });
    Blocked {
        result,
        tid: tid_rx.recv().unwrap(),
    }
}

impl<T> Blocked<T> {
    /// Waits until the thread sleeps in the blocking call.
    fn wait_asleep(&self) {
        wait_asleep(std::process::id(), self.tid);
    }

    /// Whether the call is still blocked.
    fn still_blocked(&self) -> bool {
        matches!(self.result.try_recv(), Err(mpsc::TryRecvError::Empty))
    }

    /// The call's result; fails the test if it is still blocked after [`WATCHDOG`].
    fn result(self, what: &str) -> T {
        match self.result.recv_timeout(WATCHDOG) {
            Ok(r) => r,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("{what}: still blocked after {WATCHDOG:?} (a lost wake-up)")
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: the thread panicked"),
        }
    }
}

/// Joins `child`; fails the test (killing it) if it has not ended after [`WATCHDOG`].
fn join_bounded(child: &Process, what: &str) -> ExitStatus {
    match child.join_timeout(WATCHDOG).unwrap() {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.join();
            panic!(
                "{what}: child {} still running after {WATCHDOG:?}",
                child.pid()
            );
        }
    }
}

fn assert_aborted(status: ExitStatus) {
    assert_eq!(status.signal(), Some(libc::SIGABRT), "status: {status}");
}

// ---------------------------------------------------------------------------------------------
// 1. A holder in another PID namespace
// ---------------------------------------------------------------------------------------------

/// Names the helper's segments: `lock,inside,held,release`.
const NS_HOLDER_ENV: &str = "SHMPROC_TEST_NS_HOLDER";
const NS_HELPER: &str = "ns_holder_helper";

/// Not a test of its own: the body of the process that `unshare` runs in a new PID namespace
/// (returns at once in an ordinary run). It takes the lock, counts itself inside, says so,
/// and holds the lock until told to release it (or killed).
#[test]
fn ns_holder_helper() {
    let Ok(names) = std::env::var(NS_HOLDER_ENV) else {
        return;
    };
    let names: Vec<&str> = names.split(',').collect();
    let [lock, inside, held, release] = names[..] else {
        panic!("helper: bad {NS_HOLDER_ENV}: {names:?}");
    };
    let lock = Lock::open(lock).expect("helper: open lock");
    let inside = Value::<u32>::open(inside).expect("helper: open counter");
    let held = Event::open(held).expect("helper: open event");
    let release = Event::open(release).expect("helper: open event");
    // Make the holding thread's id a large one that the parent's namespace almost surely
    // lacks, so that looking it up there (the old bug) would call the holder dead. Best effort.
    if let Ok(max) = std::fs::read_to_string("/proc/sys/kernel/pid_max") {
        if let Ok(max) = max.trim().parse::<u64>() {
            let _ = std::fs::write("/proc/sys/kernel/ns_last_pid", (max - 1000).to_string());
        }
    }
    let holder = std::thread::spawn(move || {
        let guard = lock.acquire().expect("helper: acquire");
        {
            let mut n = inside.lock().expect("helper: counter");
            *n += 1;
            assert_eq!(*n, 1, "helper: two holders inside");
        }
        eprintln!(
            "helper: pid {} holds the lock from thread {}",
            std::process::id(),
            gettid()
        );
        held.set().unwrap();
        // Killed here in the kill variant; the timeout only ends an orphaned helper.
        let told = release.wait_timeout(Duration::from_secs(60)).unwrap();
        assert!(told, "helper: never told to release");
        *inside.lock().expect("helper: counter") -= 1;
        drop(guard);
    });
    holder.join().expect("helper: holder thread");
}

/// Kills the `unshare` process (and so, through `--kill-child`, the namespace) if a test fails
/// before it ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn unshare_command() -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc", "--kill-child"]);
    cmd
}

/// Whether `unshare` can make a PID namespace here (prints why not).
fn unshare_works() -> bool {
    match unshare_command()
        .arg("true")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
    {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            eprintln!(
                "skipped: `unshare --pid --fork --mount-proc --kill-child` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
            false
        }
        Err(e) => {
            eprintln!("skipped: cannot run unshare: {e}");
            false
        }
    }
}

/// What the parent's blocked acquirer found.
#[derive(Debug, PartialEq, Eq)]
enum Entered {
    /// A clean acquisition; the number of holders inside once it counted itself in.
    Clean {
        inside: u32,
    },
    /// `OwnerDied`; the count the dead holder left.
    OwnerDied {
        left: u32,
    },
    Failed(String),
}

fn enter(lock: &Lock, inside: &Value<u32>) -> Entered {
    match lock.acquire() {
        Ok(guard) => {
            let n = {
                let mut n = inside.lock().unwrap();
                *n += 1;
                *n
            };
            *inside.lock().unwrap() -= 1;
            drop(guard);
            Entered::Clean { inside: n }
        }
        Err(LockError::OwnerDied(guard)) => {
            let left = {
                let mut n = inside.lock().unwrap();
                std::mem::replace(&mut *n, 0) // repair: the dead holder never left
            };
            drop(guard);
            Entered::OwnerDied { left }
        }
        Err(e) => Entered::Failed(e.to_string()),
    }
}

/// Asserts that attempts to take `lock` fail as a live holder's lock must (`waiter`: a blocked
/// acquirer of this process, whose result a failure message shows).
fn expect_held(lock: &Lock, waiter: Option<&Blocked<Entered>>) {
    let waiter = || waiter.map(|w| w.result.try_recv());
    for _ in 0..2 {
        match lock.acquire_timeout(Duration::from_millis(500)) {
            Err(LockError::Timeout) => {}
            Err(LockError::OwnerDied(_)) => {
                panic!("a live holder in another PID namespace was declared dead")
            }
            Ok(_) => panic!(
                "acquired a lock a live process holds (the blocked acquirer: {:?})",
                waiter()
            ),
            Err(e) => panic!("acquire_timeout: {e}"),
        }
    }
    match lock.try_acquire() {
        Err(LockError::WouldBlock) => {}
        Err(LockError::OwnerDied(_)) => {
            panic!("try_acquire declared a live holder in another PID namespace dead")
        }
        other => panic!(
            "try_acquire: {:?} (the blocked acquirer: {:?})",
            other.map(drop),
            waiter()
        ),
    }
}

fn holder_in_another_pid_namespace(kill: bool) {
    if !unshare_works() {
        return;
    }
    let label = if kill { "nsk" } else { "nsr" };
    let names = ["lock", "in", "held", "rel"].map(|n| unique(&format!("{label}-{n}")));
    let lock = Lock::create(&names[0]).unwrap();
    let inside = Value::create(&names[1], 0_u32).unwrap();
    let held = Event::create(&names[2]).unwrap();
    let release = Event::create(&names[3]).unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut child = KillOnDrop(
        unshare_command()
            .arg(exe)
            .args(["--exact", NS_HELPER, "--nocapture"])
            .env(NS_HOLDER_ENV, names.join(","))
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn unshare"),
    );
    // Until the helper holds the lock (or fails).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !held.is_set() {
        if let Some(status) = child.0.try_wait().unwrap() {
            panic!("the helper ended before taking the lock: {status}");
        }
        assert!(Instant::now() < deadline, "the helper never took the lock");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(lock.is_locked());
    eprintln!(
        "holder's thread id (in its own namespace): {:?}",
        lock.raw().owner_tid()
    );

    // While the holder lives: timed and non-blocking attempts fail without calling it dead...
    expect_held(&lock, None);
    // ...and so does an attempt blocked without a deadline.
    let (l, i) = (lock.clone(), inside.clone());
    let waiter = block_in_thread(move || enter(&l, &i));
    waiter.wait_asleep();
    expect_held(&lock, Some(&waiter));
    assert!(
        waiter.still_blocked(),
        "the blocked acquirer returned while the holder lives: {:?}",
        waiter.result.try_recv()
    );
    assert!(child.0.try_wait().unwrap().is_none(), "the helper ended");

    if kill {
        child.0.kill().unwrap(); // SIGKILL to unshare; --kill-child kills the namespace
        assert_killed(child.0.wait().unwrap());
        assert_eq!(
            waiter.result("acquire after the holder was killed"),
            Entered::OwnerDied { left: 1 }
        );
    } else {
        release.set().unwrap();
        assert_eq!(
            waiter.result("acquire after the holder released"),
            Entered::Clean { inside: 1 }
        );
        let deadline = Instant::now() + WATCHDOG;
        let status = loop {
            if let Some(status) = child.0.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the helper did not exit");
            std::thread::sleep(Duration::from_millis(5));
        };
        assert!(status.success(), "helper: {status}");
    }
    // Consistent again: a plain acquisition, nobody inside.
    let guard = lock
        .acquire_timeout(WATCHDOG)
        .map_err(LockError::without_guard)
        .expect("acquire at the end");
    assert_eq!(inside.get().unwrap(), 0);
    drop(guard);
}

#[test]
fn a_holder_in_another_pid_namespace_is_alive_until_it_releases() {
    holder_in_another_pid_namespace(false);
}

#[test]
fn a_holder_in_another_pid_namespace_is_dead_once_killed() {
    holder_in_another_pid_namespace(true);
}

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
