//! Processes under faults and hostile starts (issue 10): no deadlock on a large result, a
//! child's death reported while its descendants live, no orphaned pool workers, signals
//! through the pidfd, `/dev/null` as a spawned child's stdin. Forged and setuid starts are in
//! `proc_forged_start.rs`.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shmproc::{Array, Pool, Process, ProcessError, Value, WorkerKind};

/// Whether `pid` is a live process (not gone, not a zombie nobody reaps).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with(['Z', 'X']))
    })
}

fn sigkill(pid: u32) {
    // SAFETY: sending a signal has no memory-safety preconditions.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
}

/// Runs `f`; if it has not returned after `limit`, kills `p` so that a hang fails the test
/// instead of stalling it. Returns `f`'s value and whether the watchdog fired.
fn watchdog<R, T>(p: &Process<R>, limit: Duration, f: impl FnOnce() -> T) -> (T, bool) {
    let (done, wait) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        let dog = s.spawn(move || {
            let fired = wait.recv_timeout(limit) == Err(std::sync::mpsc::RecvTimeoutError::Timeout);
            if fired {
                let _ = p.kill();
            }
            fired
        });
        let out = f();
        drop(done);
        (out, dog.join().expect("watchdog"))
    })
}

#[shmproc::entry]
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

const BIG: usize = 4 << 20;

fn assert_pattern(got: &[u8]) {
    assert_eq!(got.len(), BIG);
    assert!(got.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
}

#[test]
fn join_before_join_result_with_a_4_mib_result_does_not_deadlock() {
    let p = Process::spawn(pattern, BIG).unwrap();
    let (status, fired) = watchdog(&p, Duration::from_secs(60), || p.join().unwrap());
    assert!(
        !fired,
        "join deadlocked on the child's result; the watchdog killed the child"
    );
    assert!(status.success(), "status: {status}");
    assert_pattern(&p.join_result().unwrap());
    assert!(matches!(p.join_result(), Err(ProcessError::ResultTaken)));
}

#[test]
fn join_timeout_in_short_slices_reads_a_4_mib_result_piece_by_piece() {
    let p = Process::spawn(pattern, BIG).unwrap();
    let (status, fired) = watchdog(&p, Duration::from_secs(60), || loop {
        if let Some(status) = p.join_timeout(Duration::from_micros(300)).unwrap() {
            return status;
        }
    });
    assert!(
        !fired,
        "join_timeout never saw the child exit; the watchdog killed it"
    );
    assert!(status.success(), "status: {status}");
    assert!(!p.is_alive());
    assert_pattern(&p.join_result_timeout(Duration::from_secs(10)).unwrap());
}

#[shmproc::entry]
fn start_helper_then_abort(helper: Value<u32>) {
    let child = Command::new("sleep")
        .arg("30")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sleep");
    helper.set(child.id()).unwrap();
    std::process::abort()
}

#[test]
fn an_abort_is_reported_while_a_helper_program_the_entry_started_lives() {
    let helper = Value::new(0u32).unwrap();
    let p = Process::spawn(start_helper_then_abort, helper.clone()).unwrap();
    let outcome = p.join_result_timeout(Duration::from_secs(10));
    let helper_pid = helper.get().unwrap();
    let helper_alive = helper_pid != 0 && alive(helper_pid);
    if helper_pid != 0 {
        sigkill(helper_pid);
    }
    match outcome {
        Err(ProcessError::Signaled { signal, name }) => {
            assert_eq!(signal, libc::SIGABRT, "{name}");
        }
        other => panic!("expected death by SIGABRT, got {other:?}"),
    }
    assert!(
        helper_alive,
        "the helper should still run when the abort is reported"
    );
}

#[shmproc::entry]
fn report_pid_then_sleep(pids: Array<u32>) {
    {
        let mut pids = pids.lock().unwrap();
        let n = pids[0] as usize;
        if n + 1 < pids.len() {
            pids[n + 1] = std::process::id();
        }
        pids[0] += 1;
    }
    std::thread::sleep(Duration::from_secs(60));
}

/// A forked owner starts a pool with two workers, each busy in a 60 s task that reported its
/// pid, and is SIGKILLed: both workers must be gone within a few seconds.
fn owner_death_ends_busy_workers(kind: WorkerKind) {
    let pids = Array::<u32>::zeroed(3).unwrap();
    let theirs = pids.clone();
    let owner = Process::fork(move || {
        let pool = Pool::with_kind(2, kind).unwrap();
        let _tasks = [
            pool.submit(report_pid_then_sleep, theirs.clone()).unwrap(),
            pool.submit(report_pid_then_sleep, theirs.clone()).unwrap(),
        ];
        let deadline = Instant::now() + Duration::from_secs(20);
        while theirs.get(0).unwrap() < 2 {
            assert!(
                Instant::now() < deadline,
                "the workers did not start their tasks"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        common::die_now()
    })
    .unwrap();
    let status = owner.join_timeout(Duration::from_secs(60)).unwrap();
    common::assert_killed(status.expect("the owner hangs"));
    let workers = [pids.get(1).unwrap(), pids.get(2).unwrap()];
    assert!(workers.iter().all(|&w| w != 0), "workers: {workers:?}");

    // Watchdog only: a kill by the kernel takes milliseconds.
    let deadline = Instant::now() + Duration::from_secs(5);
    while workers.iter().any(|&w| alive(w)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let survivors: Vec<u32> = workers.iter().copied().filter(|&w| alive(w)).collect();
    survivors.iter().for_each(|&w| sigkill(w));
    assert!(
        survivors.is_empty(),
        "workers {survivors:?} outlived their owner"
    );
}

#[test]
fn forked_pool_workers_die_with_their_sigkilled_owner() {
    owner_death_ends_busy_workers(WorkerKind::Forked);
}

#[test]
fn spawned_pool_workers_die_with_their_sigkilled_owner() {
    owner_death_ends_busy_workers(WorkerKind::Spawned);
}

#[shmproc::entry]
fn hold_until((started, go): (Value<u32>, Value<u32>)) -> u32 {
    *started.lock().unwrap() += 1;
    let deadline = Instant::now() + Duration::from_secs(20);
    while go.get().unwrap() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    std::process::id()
}

/// Guards the way workers die with their owner: a parent-death signal (`PR_SET_PDEATHSIG`)
/// would come when the *thread* that started them ends, killing a working pool.
fn a_pool_outlives_the_thread_that_started_it(kind: WorkerKind) {
    let (started, go) = (Value::new(0u32).unwrap(), Value::new(0u32).unwrap());
    let arg = (started.clone(), go.clone());
    let (pool, tasks, tid) = std::thread::spawn(move || {
        let pool = Pool::with_kind(2, kind).unwrap();
        let tasks = [
            pool.submit(hold_until, arg.clone()).unwrap(),
            pool.submit(hold_until, arg.clone()).unwrap(),
        ];
        let deadline = Instant::now() + Duration::from_secs(20);
        while arg.0.get().unwrap() < 2 {
            assert!(
                Instant::now() < deadline,
                "the workers did not start their tasks"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        // SAFETY: gettid has no preconditions.
        (pool, tasks, unsafe { libc::gettid() })
    })
    .join()
    .unwrap();
    // Gone from the kernel too: whatever its exit sends has been sent.
    let task = format!("/proc/self/task/{tid}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::path::Path::new(&task).exists() {
        assert!(Instant::now() < deadline, "{task} stays");
        std::thread::sleep(Duration::from_millis(1));
    }
    go.set(1).unwrap();
    for task in tasks {
        let pid = task.wait().unwrap();
        assert_ne!(pid, std::process::id());
    }
    pool.shutdown().unwrap();
}

#[test]
fn a_spawned_pool_outlives_the_thread_that_started_it() {
    a_pool_outlives_the_thread_that_started_it(WorkerKind::Spawned);
}

#[test]
fn a_forked_pool_outlives_the_thread_that_started_it() {
    a_pool_outlives_the_thread_that_started_it(WorkerKind::Forked);
}

#[shmproc::entry]
fn stdin_target() -> String {
    std::fs::read_link("/proc/self/fd/0")
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| format!("no stdin: {e}"))
}

#[test]
fn a_spawned_child_reads_dev_null_as_stdin() {
    // From a parent whose stdin is a pipe, so the test means the same whatever runs it.
    let parent = Process::fork(|| {
        let mut fds = [0; 2];
        // SAFETY: pipe writes two descriptors into a live array; dup2 takes numbers.
        unsafe {
            assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
            assert_eq!(libc::dup2(fds[0], 0), 0);
        }
        let stdin = Process::spawn(stdin_target, ())
            .unwrap()
            .join_result()
            .unwrap();
        assert_eq!(stdin, "/dev/null");
    })
    .unwrap();
    let (status, fired) = watchdog(&parent, Duration::from_secs(60), || parent.join().unwrap());
    assert!(!fired && status.success(), "status: {status}");
}

#[test]
fn kill_after_someone_else_reaped_the_child_never_hits_a_process_that_reused_its_pid() {
    let last_pid = "/proc/sys/kernel/ns_last_pid";
    if std::fs::OpenOptions::new()
        .write(true)
        .open(last_pid)
        .is_err()
    {
        eprintln!("skipped: {last_pid} is not writable here (needs root)");
        return;
    }
    for _ in 0..50 {
        let gone = Process::fork(|| {}).unwrap();
        // Someone else reaps it (a `wait()` elsewhere, SIGCHLD ignored, …).
        let mut raw = 0;
        // SAFETY: waiting for our own child with a live out-pointer.
        unsafe { libc::waitpid(gone.pid() as libc::pid_t, &mut raw, 0) };
        // Make the next process get the same pid (other tests fork too: retry if one wins).
        let _ = std::fs::write(last_pid, (gone.pid() - 1).to_string());
        let victim = Process::fork(|| std::thread::sleep(Duration::from_secs(60))).unwrap();
        if victim.pid() != gone.pid() {
            victim.kill().unwrap();
            victim.join().unwrap();
            continue;
        }
        gone.kill().unwrap();
        gone.terminate().unwrap();
        // Watchdog only: a signal that reached the victim ends it in milliseconds.
        let ended = victim.join_timeout(Duration::from_secs(2)).unwrap();
        victim.kill().unwrap();
        victim.join().unwrap();
        drop(gone); // after the victim is reaped: its status is not this one's
        assert!(ended.is_none(), "the victim got the signal: {ended:?}");
        return;
    }
    eprintln!("skipped: no process got the recycled pid in 50 tries");
}
