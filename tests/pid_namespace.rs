//! Liveness across PID namespaces: a live lock holder in another PID namespace is never
//! declared dead; once killed, the waiter gets `OwnerDied` — never two holders.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::blocking::{block_in_thread, gettid, Blocked, WATCHDOG};
use common::{assert_killed, unique};
use shmproc::{Event, Lock, LockError, Value};

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
