//! Faults of a broker pool: workers SIGKILLed mid-task, the broker stopped and restarted.

mod support;

use std::path::Path;
use std::time::Duration;

use shmproc::cluster::BrokerExt;
use shmproc::{Pool, ProcessError};
use support::{count_runs, square, stall, stall_once, wait_for_file, LocalRedis, Scratch, Workers};

/// The workers' visibility timeout in these tests.
const VISIBILITY: Duration = Duration::from_secs(2);

/// How long a task may take to land elsewhere after its worker died (the bound).
const TAKEOVER: Duration = Duration::from_secs(2 + 5);

fn pool(redis: &LocalRedis, queue: &str, attempts: u32) -> Pool {
    Pool::builder()
        .workers(2)
        .broker(&redis.url())
        .queue(queue)
        .max_attempts(attempts)
        .broker_timeout(Duration::from_secs(2))
        .build()
        .expect("broker pool")
}

fn pid_in(path: &Path) -> u32 {
    wait_for_file(path, Duration::from_secs(20))
        .trim()
        .parse()
        .expect("a pid")
}

#[test]
fn a_task_whose_worker_is_killed_completes_on_the_other_worker() {
    let Some(redis) = support::redis() else {
        return;
    };
    let ms = VISIBILITY.as_millis() as u64;
    let mut workers = Workers::start(&redis.url(), "killed", 2, 1, ms);
    let pool = pool(&redis, "killed", 3);
    let dir = Scratch::new("killed");
    let task = pool.submit(stall_once, dir.path()).unwrap();
    let victim = pid_in(&dir.0.join("first"));
    workers.kill(victim);
    let runs = task.wait_timeout(TAKEOVER).expect("taken over in time");
    assert_eq!(runs, 2, "the killed run, then one on the other worker");
    let pids = std::fs::read_to_string(dir.0.join("runs")).unwrap();
    assert_ne!(pids.lines().nth(1), Some(victim.to_string().as_str()));
    assert!(count_runs(&dir.0) <= 3, "never more than max_attempts runs");
    assert_eq!(
        pool.submit(square, 9)
            .unwrap()
            .wait_timeout(TAKEOVER)
            .unwrap(),
        81
    );
}

#[test]
fn a_task_whose_every_attempt_dies_fails_with_worker_died() {
    let Some(redis) = support::redis() else {
        return;
    };
    let ms = VISIBILITY.as_millis() as u64;
    let mut workers = Workers::start(&redis.url(), "attempts", 2, 1, ms);
    let pool = pool(&redis, "attempts", 2);
    let dir = Scratch::new("attempts");
    let task = pool.submit(stall, dir.path()).unwrap();
    workers.kill(pid_in(&dir.0.join("pid-1")));
    workers.kill(pid_in(&dir.0.join("pid-2")));
    // A third worker sees the task's attempts used up and fails it instead of running it.
    let _third = Workers::start(&redis.url(), "attempts", 1, 1, ms);
    match task.wait_timeout(TAKEOVER + Duration::from_secs(5)) {
        Err(ProcessError::WorkerDied { how, .. }) => assert!(how.contains("2 attempt"), "{how}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(count_runs(&dir.0), 2, "never more than max_attempts runs");
}

#[test]
fn calls_fail_while_the_broker_is_away_and_work_after_it_returns() {
    let Some(mut redis) = support::redis() else {
        return;
    };
    let _workers = Workers::start(&redis.url(), "outage", 1, 1, 2000);
    let pool = pool(&redis, "outage", 3);
    assert_eq!(
        pool.submit(square, 3)
            .unwrap()
            .wait_timeout(TAKEOVER)
            .unwrap(),
        9
    );

    let pending = pool.submit(support::nap, 4_000).unwrap();
    redis.stop();
    match pool.submit(square, 4) {
        Err(ProcessError::Broker(message)) => assert!(message.contains("redis"), "{message}"),
        other => panic!("{other:?}"),
    }
    // The broker timeout is 2 s: the waiting task fails well before this bound.
    match pending.wait_timeout(Duration::from_secs(15)) {
        Err(ProcessError::Broker(message)) => assert!(message.contains("resubmit"), "{message}"),
        other => panic!("{other:?}"),
    }

    redis.restart().expect("redis-server restarts");
    let task = pool.submit(square, 5).expect("submitting works again");
    assert_eq!(task.wait_timeout(Duration::from_secs(20)).unwrap(), 25);
    assert_eq!(pool.map(square, 0..100).unwrap()[99], 99 * 99);
}
