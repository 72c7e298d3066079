//! The calls of a local Pool on a broker pool: a real redis-server, two worker processes.

mod support;

use std::time::Duration;

use shmproc::cluster::BrokerExt;
use shmproc::{Entry, Pool, ProcessError};
use support::{nap, square, LocalRedis, Workers};

const LONG: Duration = Duration::from_secs(30);

fn broker_pool(redis: &LocalRedis, queue: &str) -> Pool {
    Pool::builder()
        .workers(2)
        .broker(&redis.url())
        .queue(queue)
        .build()
        .expect("broker pool")
}

#[test]
fn map_across_two_workers_equals_the_local_result_and_every_call_works() {
    let Some(redis) = support::redis() else {
        return;
    };
    let _workers = Workers::start(&redis.url(), "calls", 2, 1, 10_000);
    let pool = broker_pool(&redis, "calls");

    let local: Vec<u64> = (0..10_000).map(|n| n * n).collect();
    assert_eq!(pool.map(square, 0..10_000).unwrap(), local);
    assert_eq!(
        pool.map_chunked(square, 0..1000, 7).unwrap(),
        &local[..1000]
    );

    let mut unordered: Vec<u64> = pool
        .imap_unordered(square, 0..1000)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    unordered.sort_unstable();
    assert_eq!(unordered, &local[..1000], "every result exactly once");
    let ordered: Vec<u64> = pool
        .imap(square, 0..500)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(ordered, &local[..500]);

    let tasks: Vec<_> = (0..20).map(|n| pool.submit(square, n).unwrap()).collect();
    let index = shmproc::wait_any(&tasks, LONG).unwrap();
    assert!(index < 20);
    let mut done: Vec<u64> = pool.as_completed(tasks).map(Result::unwrap).collect();
    done.sort_unstable();
    assert_eq!(done, &local[..20]);

    let slow = pool.submit(nap, 1500).unwrap();
    assert!(matches!(
        slow.wait_timeout(Duration::from_millis(10)),
        Err(ProcessError::Timeout)
    ));
    assert_eq!(
        slow.wait_timeout(LONG).unwrap(),
        1500,
        "still waitable after a timeout"
    );
    pool.shutdown().unwrap();
}

#[test]
fn a_queued_task_is_cancelled_and_never_runs() {
    let Some(redis) = support::redis() else {
        return;
    };
    let _workers = Workers::start(&redis.url(), "cancel", 1, 1, 10_000);
    let pool = broker_pool(&redis, "cancel");
    let running = pool.submit(nap, 1000).unwrap();
    let queued = pool.submit(nap, 0).unwrap();
    assert!(
        queued.cancel(),
        "no worker has it yet: the only one is busy"
    );
    assert!(matches!(queued.wait(), Err(ProcessError::Cancelled)));
    assert_eq!(running.wait_timeout(LONG).unwrap(), 1000);
    pool.shutdown().unwrap();
}

/// An entry no binary registered (as if the workers ran an older build).
#[derive(Clone, Copy)]
struct Unknown;

impl Entry for Unknown {
    type Arg = u64;
    type Ret = u64;
    const KEY: &'static str = "tests::only_in_a_newer_build(u64) -> u64";
    const HANDLE: Self = Unknown;
    fn call(self, n: u64) -> u64 {
        n
    }
}

#[test]
fn an_unknown_entry_key_fails_with_an_error_naming_it() {
    let Some(redis) = support::redis() else {
        return;
    };
    let _workers = Workers::start(&redis.url(), "skew", 1, 1, 10_000);
    let pool = broker_pool(&redis, "skew");
    match pool.submit(Unknown, 1).unwrap().wait_timeout(LONG) {
        Err(ProcessError::Failed(message)) => {
            assert!(message.contains(Unknown::KEY), "{message}");
            assert!(message.contains("different builds"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        pool.submit(square, 4).unwrap().wait_timeout(LONG).unwrap(),
        16
    );
}

#[shmproc::entry]
fn read_value(v: shmproc::Value<i64>) -> i64 {
    v.get().unwrap_or(-1)
}

#[test]
fn a_shared_memory_argument_fails_at_submit() {
    let Some(redis) = support::redis() else {
        return;
    };
    let pool = broker_pool(&redis, "handles");
    let anonymous = shmproc::Value::new(5_i64).unwrap();
    // A named one travels by name between local processes; on another host the name would
    // open another segment (or none), so a broker pool refuses it too.
    let name = format!("cluster-named-{}", std::process::id());
    let named = shmproc::Value::create(&name, 5_i64).unwrap();
    for value in [&anonymous, &named] {
        match pool.submit(read_value, value.clone()) {
            Err(ProcessError::Encode(message)) => {
                assert!(message.contains("cannot leave its host"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let items = vec![value.clone(); 3];
        assert!(matches!(
            pool.map(read_value, items),
            Err(ProcessError::Encode(_))
        ));
    }
    // The same named handle still travels to local processes.
    let local = shmproc::Pool::threads(1).unwrap();
    assert_eq!(
        local
            .submit(read_value, named.clone())
            .unwrap()
            .wait()
            .unwrap(),
        5
    );
}

/// Returns a named `Value` made on the worker: on another host that name is another segment.
#[shmproc::entry]
fn named_value(name: String) -> shmproc::Value<i64> {
    let value = shmproc::Value::create(&name, 7_i64).unwrap();
    value.persist(); // still there when the reply is read: the refusal must not depend on it
    value
}

#[test]
fn a_shared_memory_result_is_refused_by_the_submitter() {
    let Some(redis) = support::redis() else {
        return;
    };
    let _workers = Workers::start(&redis.url(), "results", 1, 1, 10_000);
    let pool = broker_pool(&redis, "results");
    let name = format!("cluster-result-{}", std::process::id());
    let outcome = pool
        .submit(named_value, name.clone())
        .unwrap()
        .wait_timeout(LONG);
    let _ = shmproc::raw::remove(&name);
    match outcome {
        Err(ProcessError::Decode(message)) => {
            assert!(message.contains("cannot leave its host"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn threads_waiting_at_once_get_their_results_and_unwaited_tasks_still_finish() {
    let Some(redis) = support::redis() else {
        return;
    };
    let _workers = Workers::start(&redis.url(), "waiters", 2, 3, 10_000);
    let pool = broker_pool(&redis, "waiters");
    // Waiting threads read the replies themselves, one at a time: each must get its own, also
    // after the one reading left.
    let unwaited: Vec<_> = (0..4).map(|n| pool.submit(square, n).unwrap()).collect();
    let naps = [0_u64, 30, 120, 300];
    let got: Vec<u64> = std::thread::scope(|s| {
        let waiters: Vec<_> = naps
            .iter()
            .map(|&ms| {
                let pool = &pool;
                s.spawn(move || pool.submit(nap, ms).unwrap().wait_timeout(LONG).unwrap())
            })
            .collect();
        // A waiter whose timeout passes while it reads leaves in time, and others go on.
        let slow = pool.submit(nap, 200).unwrap();
        assert!(matches!(
            slow.wait_timeout(Duration::from_millis(5)),
            Err(ProcessError::Timeout)
        ));
        assert_eq!(slow.wait_timeout(LONG).unwrap(), 200);
        waiters.into_iter().map(|w| w.join().unwrap()).collect()
    });
    assert_eq!(got, naps);
    for (n, task) in (0..).zip(unwaited) {
        assert_eq!(task.wait_timeout(LONG).unwrap(), n * n);
    }
    // Tasks nobody waits for land through the pool's reader thread: shutdown sees them done.
    let later: Vec<_> = (0..4).map(|n| pool.submit(square, n).unwrap()).collect();
    pool.shutdown_timeout(LONG).unwrap();
    for (n, task) in (0..).zip(later) {
        assert!(task.is_ready());
        assert_eq!(task.wait().unwrap(), n * n);
    }
}
