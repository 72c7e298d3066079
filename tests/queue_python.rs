//! Queue like Python: `close` is per process, `shutdown` is global and wakes blocked getters
//! everywhere, `JoinableQueue` counts tasks across processes, `SimpleQueue` is the small form.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::blocking::{block_in_thread, join_bounded, wait_asleep};
use common::{die_now, flag, wait_for};
use shmproc::{JoinableQueue, Process, Queue, RecvError, SendError, SimpleQueue, TaskError, Value};

/// Long enough that only a bug (a hang) reaches it.
const BOUND: Duration = Duration::from_secs(30);

/// Every put form of `q` fails with `SendError::Closed`.
fn assert_puts_refused_as_closed(q: &Queue<u32>) {
    let short = Duration::from_millis(5);
    let outcomes = [
        q.put(&1),
        q.put_timeout(&1, short),
        q.try_put(&1),
        q.put_bytes(&[1]),
        q.put_bytes_timeout(&[1], short),
        q.try_put_bytes(&[1]),
    ];
    for (i, outcome) in outcomes.into_iter().enumerate() {
        assert!(
            matches!(outcome, Err(SendError::Closed)),
            "put form {i}: {outcome:?}"
        );
    }
}

#[test]
fn close_in_one_producer_process_leaves_another_producer_working() {
    const LATER: u32 = 500;
    let q: Queue<u32> = Queue::new().unwrap();
    let closed = flag();
    let (cq, c) = (q.clone(), closed.clone());
    let closer = Process::fork(move || {
        cq.put(&0).unwrap();
        cq.close();
        assert!(cq.is_closed() && !cq.is_shutdown());
        assert_puts_refused_as_closed(&cq);
        assert_puts_refused_as_closed(&cq.clone()); // clones share the closed state
        c.store(1, Ordering::Release);
    })
    .unwrap();
    let (pq, c) = (q.clone(), closed.clone());
    let producer = Process::fork(move || {
        wait_for(&c, 1); // puts only after the other producer closed
        assert!(!pq.is_closed());
        for n in 1..=LATER {
            pq.put_timeout(&n, BOUND).unwrap();
        }
    })
    .unwrap();
    let mut got: Vec<u32> = (0..=LATER).map(|_| q.get_timeout(BOUND).unwrap()).collect();
    assert!(join_bounded(&closer, "closer").success());
    assert!(join_bounded(&producer, "producer").success());
    got.sort_unstable();
    assert_eq!(got, (0..=LATER).collect::<Vec<_>>());
    // The closing process's close did not reach this one.
    assert!(!q.is_closed() && !q.is_shutdown());
    q.put(&7).unwrap();
    assert_eq!(q.get().unwrap(), 7);
}

#[test]
fn close_is_shared_by_clones_and_a_child_forked_after_it_starts_open() {
    let q: Queue<u32> = Queue::new().unwrap();
    let clone = q.clone();
    q.close();
    assert!(clone.is_closed());
    assert_puts_refused_as_closed(&clone);
    let cq = q.clone();
    let child = Process::fork(move || {
        assert!(!cq.is_closed(), "a forked child starts with the queue open");
        cq.put(&42).unwrap();
    })
    .unwrap();
    assert!(join_bounded(&child, "child").success());
    // Gets still work in the closing process.
    assert_eq!(q.get_timeout(BOUND).unwrap(), 42);
    assert!(q.is_closed());
}

#[test]
fn close_wakes_a_put_of_the_same_process_blocked_on_a_full_queue() {
    let q: Queue<u32> = Queue::with_capacity(64).unwrap();
    while q.try_put(&1).is_ok() {}
    let blocked_q = q.clone();
    let blocked = block_in_thread(move || blocked_q.put(&2));
    blocked.wait_asleep();
    q.close();
    let outcome = blocked.result("put blocked across close");
    assert!(matches!(outcome, Err(SendError::Closed)), "{outcome:?}");
}

/// A consumer that counts what it gets into `count` until the queue ends.
fn consume_until_end(q: &Queue<u32>, count: &Value<u64>) -> Result<(), RecvError> {
    loop {
        match q.get() {
            Ok(_) => *count.lock().unwrap() += 1,
            Err(RecvError::Disconnected) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

#[test]
fn shutdown_drains_then_ends_blocked_getters_in_other_processes_and_threads() {
    const ITEMS: u64 = 300;
    let q: Queue<u32> = Queue::new().unwrap();
    let count = Value::new(0_u64).unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            let (q, count) = (q.clone(), count.clone());
            Process::fork(move || consume_until_end(&q, &count).unwrap()).unwrap()
        })
        .collect();
    let (tq, tcount) = (q.clone(), count.clone());
    let thread = block_in_thread(move || consume_until_end(&tq, &tcount));
    // Everyone asleep on the empty queue; then items, then shutdown right behind them.
    for c in &children {
        wait_asleep(c.pid(), c.pid() as i32);
    }
    thread.wait_asleep();
    for n in 0..ITEMS {
        q.put(&(n as u32)).unwrap();
    }
    q.shutdown();
    assert!(q.is_shutdown() && !q.is_closed());
    assert!(matches!(q.put(&0), Err(SendError::Disconnected)));
    thread.result("thread getter").unwrap();
    for c in &children {
        assert!(join_bounded(c, "getter process").success());
    }
    assert_eq!(count.get().unwrap(), ITEMS, "every queued item drained");
    assert!(matches!(q.try_get(), Err(RecvError::Disconnected)));
}

#[test]
fn shutdown_wakes_getters_asleep_on_an_empty_queue_in_another_process() {
    let q: Queue<u32> = Queue::new().unwrap();
    let count = Value::new(0_u64).unwrap();
    let (cq, c) = (q.clone(), count.clone());
    let child = Process::fork(move || consume_until_end(&cq, &c).unwrap()).unwrap();
    wait_asleep(child.pid(), child.pid() as i32);
    // A shutdown from a third process reaches the sleeper too.
    let sq = q.clone();
    let stopper = Process::fork(move || sq.shutdown()).unwrap();
    assert!(join_bounded(&stopper, "stopper").success());
    assert!(join_bounded(&child, "getter").success());
    assert_eq!(count.get().unwrap(), 0);
    assert!(q.is_shutdown());
}

/// Takes tasks until the queue ends, counting each in `done` *before* marking it done, so a
/// `join` that returned early would see fewer than were put. Returns how many it did.
fn work_tasks(jq: &JoinableQueue<u32>, done: &Value<u64>) -> u64 {
    let mut mine = 0;
    loop {
        match jq.get_timeout(BOUND) {
            Ok(n) => {
                if n % 16 == 0 {
                    std::thread::sleep(Duration::from_millis(1)); // some tasks take a while
                }
                *done.lock().unwrap() += 1;
                jq.task_done().unwrap();
                mine += 1;
            }
            Err(RecvError::Disconnected) => return mine,
            Err(e) => panic!("get: {e}"),
        }
    }
}

#[shmproc::entry]
fn task_worker((jq, done): (JoinableQueue<u32>, Value<u64>)) -> u64 {
    work_tasks(&jq, &done)
}

#[test]
fn join_returns_only_after_every_task_done_in_two_consumer_processes() {
    const ITEMS: u32 = 400;
    let jq: JoinableQueue<u32> = JoinableQueue::new().unwrap();
    let done = Value::new(0_u64).unwrap();
    let (fq, fdone) = (jq.clone(), done.clone());
    let forked = Process::fork(move || {
        work_tasks(&fq, &fdone);
    })
    .unwrap();
    let spawned = Process::spawn(task_worker, (jq.clone(), done.clone())).unwrap();
    for n in 0..ITEMS {
        jq.put(&n).unwrap();
    }
    jq.join_timeout(BOUND).unwrap();
    assert_eq!(
        done.get().unwrap(),
        u64::from(ITEMS),
        "join returned before every task was done"
    );
    assert_eq!(jq.unfinished_tasks(), 0);
    jq.shutdown();
    let spawned_did = spawned.join_result_timeout(BOUND).unwrap();
    assert!(join_bounded(&forked, "forked worker").success());
    assert!(spawned_did <= u64::from(ITEMS));
}

#[test]
fn task_done_more_times_than_items_put_is_an_error() {
    let jq: JoinableQueue<u32> = JoinableQueue::new().unwrap();
    assert!(matches!(jq.task_done(), Err(TaskError::TooManyDone)));
    jq.put(&1).unwrap();
    jq.put(&2).unwrap();
    assert_eq!(jq.unfinished_tasks(), 2);
    // Marked done in another process than the one that put them.
    let cq = jq.clone();
    let child = Process::fork(move || {
        for _ in 0..2 {
            cq.get_timeout(BOUND).unwrap();
            cq.task_done().unwrap();
        }
        assert!(matches!(cq.task_done(), Err(TaskError::TooManyDone)));
    })
    .unwrap();
    assert!(join_bounded(&child, "child").success());
    assert!(matches!(jq.task_done(), Err(TaskError::TooManyDone)));
    assert_eq!(jq.unfinished_tasks(), 0);
    jq.join_timeout(BOUND).unwrap();
}

#[test]
fn join_timeout_times_out_while_a_task_is_never_done() {
    let jq: JoinableQueue<u32> = JoinableQueue::new().unwrap();
    jq.put(&1).unwrap();
    // Taken by a process that leaves without marking it done.
    let cq = jq.clone();
    let child = Process::fork(move || {
        cq.get_timeout(BOUND).unwrap();
    })
    .unwrap();
    assert!(join_bounded(&child, "child").success());
    let waited = jq.join_timeout(Duration::from_millis(300));
    assert!(matches!(waited, Err(TaskError::Timeout)), "{waited:?}");
    assert_eq!(jq.unfinished_tasks(), 1);
}

#[test]
fn join_reports_a_task_taken_by_a_consumer_that_died() {
    let jq: JoinableQueue<u32> = JoinableQueue::new().unwrap();
    jq.put(&1).unwrap();
    let cq = jq.clone();
    let child = Process::fork(move || {
        cq.get_timeout(BOUND).unwrap();
        die_now(); // before task_done
    })
    .unwrap();
    common::assert_killed(join_bounded(&child, "child"));
    match jq.join_timeout(BOUND) {
        Err(TaskError::PeerDied { pid }) => assert_eq!(pid, child.pid()),
        other => panic!("expected PeerDied, got {other:?}"),
    }
    assert_eq!(jq.unfinished_tasks(), 1);
}

#[test]
fn join_reports_lost_tasks_beyond_those_in_this_process_hands() {
    let jq: JoinableQueue<u32> = JoinableQueue::new().unwrap();
    jq.put(&1).unwrap();
    jq.put(&2).unwrap();
    let cq = jq.clone();
    let child = Process::fork(move || {
        cq.get_timeout(BOUND).unwrap();
        die_now();
    })
    .unwrap();
    common::assert_killed(join_bounded(&child, "child"));
    jq.get_timeout(BOUND).unwrap(); // the other task is in this process's hands
                                    // Unfinished: 2, in hand: 1 — the dead child's task is still lost.
    assert!(matches!(
        jq.join_timeout(BOUND),
        Err(TaskError::PeerDied { .. })
    ));
    jq.task_done().unwrap();
    jq.task_done().unwrap(); // (finishing the dead child's task for it, as Python allows)
    jq.join_timeout(BOUND).unwrap();
}

#[test]
fn a_task_in_this_process_hands_is_not_reported_lost() {
    let jq: JoinableQueue<u32> = JoinableQueue::new().unwrap();
    jq.put(&1).unwrap();
    jq.get_timeout(BOUND).unwrap(); // in this process's hands
    let cq = jq.clone();
    let child = Process::fork(move || {
        assert!(matches!(cq.try_get(), Err(RecvError::Empty))); // holds the queue, takes none
        die_now();
    })
    .unwrap();
    common::assert_killed(join_bounded(&child, "child"));
    let waited = jq.join_timeout(Duration::from_millis(500));
    assert!(matches!(waited, Err(TaskError::Timeout)), "{waited:?}");
    jq.task_done().unwrap();
    jq.join_timeout(BOUND).unwrap();
}

#[test]
fn a_named_joinable_queue_is_joined_across_processes_and_type_checked() {
    let name = common::unique("jq-named");
    let jq: JoinableQueue<u32> = JoinableQueue::create_with_capacity(&name, 4096).unwrap();
    assert!(
        Queue::<u32>::open(&name).is_err(),
        "a plain queue of the name"
    );
    assert!(
        JoinableQueue::<u64>::open(&name).is_err(),
        "another message type"
    );
    let child_name = name.clone();
    let child = Process::fork(move || {
        let mine: JoinableQueue<u32> = JoinableQueue::open(&child_name).unwrap();
        for _ in 0..3 {
            mine.get_timeout(BOUND).unwrap();
            mine.task_done().unwrap();
        }
    })
    .unwrap();
    for n in 0..3 {
        jq.put(&n).unwrap();
    }
    jq.join_timeout(BOUND).unwrap();
    assert!(join_bounded(&child, "child").success());
    drop(jq);
    common::assert_no_leftovers("jq-named");
}

#[shmproc::entry]
fn simple_echo(sq: SimpleQueue<String>) {
    let got = sq.get_timeout(BOUND).unwrap();
    sq.put(&format!("{got}!")).unwrap();
}

#[test]
fn a_simple_queue_passes_to_a_spawned_process() {
    let sq: SimpleQueue<String> = SimpleQueue::new().unwrap();
    assert!(sq.is_empty());
    let child = Process::spawn(simple_echo, sq.clone()).unwrap();
    sq.put(&"hi".to_string()).unwrap();
    child.join_result_timeout(BOUND).unwrap();
    assert_eq!(sq.get_timeout(BOUND).unwrap(), "hi!");
    sq.close();
    assert!(matches!(sq.put(&"more".into()), Err(SendError::Closed)));
}
