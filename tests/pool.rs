//! Pool: map order, as_completed, panics, dying workers, shutdown.

use std::time::Duration;

use shmproc::{as_completed, Pool, ProcessError, Value, WorkerKind};

#[shmproc::entry]
fn square(n: u64) -> u64 {
    n * n
}

#[shmproc::entry]
fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[shmproc::entry]
fn abort_now() -> u64 {
    std::process::abort()
}

#[shmproc::entry]
fn sigkill_self() -> u64 {
    // SAFETY: raising a signal in our own process; SIGKILL cannot be caught.
    unsafe { libc::raise(libc::SIGKILL) };
    unreachable!("SIGKILL returned")
}

#[shmproc::entry]
fn add_to((total, n): (Value<u64>, u64)) {
    *total.lock().unwrap() += n;
}

#[test]
fn map_equals_the_sequential_result_in_order() {
    let pool = Pool::new(2).unwrap();
    let expected: Vec<u64> = (0..10_000).map(|n| n * n).collect();
    assert_eq!(pool.map(square, 0..10_000).unwrap(), expected);
    assert_eq!(pool.map(square, Vec::new()).unwrap(), Vec::<u64>::new());
    assert_eq!(pool.map(square, [3]).unwrap(), vec![9]);
}

#[test]
fn as_completed_yields_every_task() {
    let pool = Pool::new(2).unwrap();
    let tasks = [60, 0, 30, 10, 0]
        .into_iter()
        .map(|ms| pool.submit(nap, ms).unwrap())
        .collect();
    let mut got: Vec<u64> = pool.as_completed(tasks).map(Result::unwrap).collect();
    got.sort();
    assert_eq!(got, vec![0, 0, 10, 30, 60]);
}

#[test]
fn an_aborting_task_fails_with_worker_died_and_the_pool_goes_on() {
    for kind in [WorkerKind::Spawned, WorkerKind::Forked] {
        let pool = Pool::with_kind(2, kind).unwrap();
        let doomed = pool.submit(abort_now, ()).unwrap();
        match doomed.wait() {
            Err(ProcessError::WorkerDied { how, .. }) => assert!(how.contains("SIGABRT"), "{how}"),
            other => panic!("expected WorkerDied, got {other:?}"),
        }
        let expected: Vec<u64> = (0..100).map(|n| n * n).collect();
        assert_eq!(pool.map(square, 0..100).unwrap(), expected, "{kind:?}");
        match pool.submit(sigkill_self, ()).unwrap().wait() {
            Err(ProcessError::WorkerDied { how, .. }) => assert!(how.contains("SIGKILL"), "{how}"),
            other => panic!("expected WorkerDied, got {other:?}"),
        }
        assert_eq!(pool.submit(square, 9).unwrap().wait().unwrap(), 81);
    }
}

#[test]
fn wait_timeout_leaves_the_task_waitable() {
    let pool = Pool::new(1).unwrap();
    let task = pool.submit(nap, 200).unwrap();
    assert!(!task.is_ready());
    assert!(matches!(
        task.wait_timeout(Duration::from_millis(1)),
        Err(ProcessError::Timeout)
    ));
    assert_eq!(task.wait_timeout(Duration::from_secs(20)).unwrap(), 200);
}

#[test]
fn tasks_share_values_passed_to_them() {
    let total = Value::new(0_u64).unwrap();
    let pool = Pool::new(2).unwrap();
    let tasks: Vec<_> = (1..=10)
        .map(|n| pool.submit(add_to, (total.clone(), n)).unwrap())
        .collect();
    for t in tasks {
        t.wait().unwrap();
    }
    assert_eq!(total.get().unwrap(), 55);
}

#[test]
fn drop_with_pending_tasks_does_not_hang_and_shutdown_refuses_new_work() {
    let pool = Pool::new(2).unwrap();
    let tasks: Vec<_> = (0..6).map(|_| pool.submit(nap, 20).unwrap()).collect();
    drop(pool); // waits for the submitted tasks
    for t in tasks {
        assert_eq!(t.wait().unwrap(), 20);
    }

    let pool = Pool::with_kind(1, WorkerKind::Forked).unwrap();
    let _running = pool.submit(nap, 60_000).unwrap();
    let queued = pool.submit(nap, 1).unwrap();
    pool.terminate().unwrap();
    assert!(matches!(queued.wait(), Err(ProcessError::ShutDown)));
    assert!(matches!(
        pool.submit(square, 1),
        Err(ProcessError::ShutDown)
    ));
}

#[shmproc::entry]
fn sum_values(values: Vec<Value<u64>>) -> u64 {
    values.iter().map(|v| v.get().unwrap()).sum()
}

#[test]
fn too_many_handles_in_one_task_is_an_error_not_a_hang() {
    let pool = Pool::new(1).unwrap();
    let few: Vec<_> = (0..3).map(|n| Value::new(n).unwrap()).collect();
    assert_eq!(pool.submit(sum_values, few).unwrap().wait().unwrap(), 3);
    let many: Vec<_> = (0..65).map(|n| Value::new(n).unwrap()).collect();
    assert!(matches!(
        pool.submit(sum_values, many),
        Err(ProcessError::Encode(_))
    ));
}

#[test]
fn threads_submitting_and_waiting_concurrently_get_every_result_once() {
    let pool = Pool::new(2).unwrap();
    let sums: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4_u64)
            .map(|t| {
                let pool = &pool;
                s.spawn(move || {
                    let mut sum = 0;
                    for i in 0..300 {
                        let n = t * 1000 + i;
                        let task = pool.submit(square, n).unwrap();
                        if i % 3 == 0 {
                            // Some waits time out first and are taken later.
                            match task.wait_timeout(Duration::from_micros(1)) {
                                Ok(v) => {
                                    sum += v;
                                    continue;
                                }
                                Err(ProcessError::Timeout) => {}
                                Err(e) => panic!("{n}: {e}"),
                            }
                        }
                        if task.is_ready() || i % 2 == 0 {
                            sum += task.wait().unwrap_or_else(|e| panic!("{n}: {e}"));
                        } else {
                            sum += as_completed(vec![task]).next().unwrap().unwrap();
                        }
                    }
                    sum
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (t, sum) in sums.into_iter().enumerate() {
        let expected: u64 = (0..300).map(|i| (t as u64 * 1000 + i).pow(2)).sum();
        assert_eq!(sum, expected, "thread {t}");
    }
}
