//! Queues and pipe ends as arguments of spawned entries and Pool tasks, and as messages.

mod common;

use std::time::Duration;

use shmproc::{Connection, Pipe, Pool, Process, ProcessError, Queue, RecvError, SendError, Sender};

/// Long enough that only a bug (a hang) reaches it.
const BOUND: Duration = Duration::from_secs(20);

#[shmproc::entry]
fn produce((q, from, count): (Queue<u64>, u64, u64)) {
    for n in from..from + count {
        q.put(&n).unwrap();
    }
}

/// Answers every number with its successor until `u64::MAX`; returns how many it answered.
#[shmproc::entry]
fn pong(end: Connection<u64>) -> u64 {
    let mut answered = 0;
    loop {
        let n = end.recv_timeout(BOUND).unwrap();
        if n == u64::MAX {
            return answered;
        }
        end.send(&(n + 1)).unwrap();
        answered += 1;
    }
}

/// Answers once, then waits to be killed.
#[shmproc::entry]
fn pong_once_then_hang(end: Connection<u64>) {
    let n = end.recv_timeout(BOUND).unwrap();
    end.send(&(n + 1)).unwrap();
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// Tells its end "ready", then reports on `report` what its next `recv` said.
#[shmproc::entry]
fn report_next_recv((end, report): (Connection<u64>, Queue<String>)) {
    end.send(&0).unwrap();
    let outcome = match end.recv_timeout(BOUND) {
        Err(RecvError::PeerDied { .. }) => "peer died".to_owned(),
        other => format!("{other:?}"),
    };
    report.put(&outcome).unwrap();
}

/// Takes a queue handle from the named queue `outer` and puts `count` numbers into it.
#[shmproc::entry]
fn send_squares((tx, count): (Sender<u64>, u64)) {
    for n in 0..count {
        tx.send(&(n * n)).unwrap();
    }
}

#[shmproc::entry]
fn count_queues((_end, queues): (Connection<u64>, Vec<Queue<u64>>)) -> usize {
    queues.len()
}

#[shmproc::entry]
fn hand_back(end: Connection<u64>) -> Connection<u64> {
    end.send(&1).unwrap();
    end
}

#[shmproc::entry]
fn produce_via((outer, count): (String, u64)) {
    let outer: Queue<Queue<u64>> = Queue::open(&outer).unwrap();
    let inner = outer.get_timeout(BOUND).unwrap();
    for n in 0..count {
        inner.put(&n).unwrap();
    }
}

/// Takes a pipe end from the named queue `outer` and answers one number on it.
#[shmproc::entry]
fn pong_via(outer: String) {
    let outer: Queue<Connection<u64>> = Queue::open(&outer).unwrap();
    let end = outer.get_timeout(BOUND).unwrap();
    let n = end.recv_timeout(BOUND).unwrap();
    end.send(&(n + 1)).unwrap();
}

/// Asserts a receive reported that the other end was dropped (not died, not timed out).
fn assert_disconnected(got: Result<u64, RecvError>) {
    assert!(matches!(got, Err(RecvError::Disconnected)), "{got:?}");
}

/// Checks `a` and `b` still talk both ways, then that dropping `b` disconnects `a`.
fn talk_then_drop(a: &Connection<u64>, b: Connection<u64>) {
    a.send(&2).unwrap();
    assert_eq!(b.recv_timeout(BOUND).unwrap(), 2);
    b.send(&3).unwrap();
    assert_eq!(a.recv_timeout(BOUND).unwrap(), 3);
    drop(b);
    assert_disconnected(a.recv_timeout(BOUND));
}

fn get_all(q: &Queue<u64>, count: usize) -> Vec<u64> {
    let mut got: Vec<u64> = (0..count).map(|_| q.get_timeout(BOUND).unwrap()).collect();
    got.sort_unstable();
    got
}

#[test]
fn a_spawned_entry_puts_into_a_queue_it_received() {
    let q: Queue<u64> = Queue::new().unwrap();
    let p = Process::spawn(produce, (q.clone(), 0, 100)).unwrap();
    let got: Vec<u64> = (0..100).map(|_| q.get_timeout(BOUND).unwrap()).collect();
    assert_eq!(got, (0..100).collect::<Vec<_>>(), "in order, none lost");
    p.join_result_timeout(BOUND).unwrap();
    assert!(
        matches!(q.try_get(), Err(RecvError::Empty)),
        "none duplicated"
    );
}

#[test]
fn a_spawned_entry_ping_pongs_on_a_pipe_end_then_its_exit_disconnects() {
    let (a, b) = Pipe::<u64>::duplex().unwrap();
    // `b` moves into spawn, which drops it once it is serialized: from here on only the
    // hand-over keeps that end held until the child takes it.
    let p = Process::spawn(pong, b).unwrap();
    // The child never speaks first, so anything but a timeout would be a false "peer gone".
    assert!(matches!(
        a.recv_timeout(Duration::from_millis(50)),
        Err(RecvError::Timeout)
    ));
    for n in 0..100 {
        a.send(&n).unwrap();
        assert_eq!(a.recv_timeout(BOUND).unwrap(), n + 1);
    }
    a.send(&u64::MAX).unwrap();
    assert_eq!(p.join_result_timeout(BOUND).unwrap(), 100);
    assert_disconnected(a.recv_timeout(BOUND));
    assert!(matches!(a.send(&1), Err(SendError::Disconnected)));
}

#[test]
fn a_spawned_entry_sends_on_a_simplex_sender_it_received() {
    let (tx, rx) = Pipe::<u64>::simplex().unwrap();
    let p = Process::spawn(send_squares, (tx, 50)).unwrap();
    let got: Vec<u64> = (0..50).map(|_| rx.recv_timeout(BOUND).unwrap()).collect();
    assert_eq!(got, (0..50).map(|n| n * n).collect::<Vec<_>>());
    p.join_result_timeout(BOUND).unwrap();
    assert_disconnected(rx.recv_timeout(BOUND));
}

#[test]
fn an_end_deserialized_as_another_kind_of_end_is_an_error() {
    let name = common::unique("pend-role");
    let a = Pipe::<u64>::create(&name).unwrap();
    let bytes = postcard::to_allocvec(&a).unwrap();
    assert!(postcard::from_bytes::<Sender<u64>>(&bytes).is_err());
    assert!(postcard::from_bytes::<Connection<u32>>(&bytes).is_err());
    assert!(postcard::from_bytes::<Connection<u64>>(&bytes).is_ok());
    drop(a);
    assert!(
        common::leftovers("pend-role").is_empty(),
        "serializing kept it"
    );
}

#[test]
fn an_end_returned_by_a_spawned_entry_still_works_and_disconnects_when_dropped() {
    let (a, b) = Pipe::<u64>::duplex().unwrap();
    let p = Process::spawn(hand_back, b).unwrap();
    assert_eq!(a.recv_timeout(BOUND).unwrap(), 1);
    let b = p.join_result_timeout(BOUND).unwrap();
    // The child has exited; the end it returned is held here now.
    talk_then_drop(&a, b);
}

#[test]
fn a_child_killed_while_the_parent_waits_in_recv_is_reported() {
    let (a, b) = Pipe::<u64>::duplex().unwrap();
    let p = Process::spawn(pong_once_then_hang, b).unwrap();
    a.send(&41).unwrap();
    assert_eq!(a.recv_timeout(BOUND).unwrap(), 42);
    let pid = p.pid();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        p.kill().unwrap();
        p
    });
    // Blocked here (or about to be) when the child dies.
    match a.recv_timeout(BOUND) {
        Err(RecvError::PeerDied { pid: dead }) => assert_eq!(dead, pid),
        other => panic!("expected PeerDied, got {other:?}"),
    }
    let p = killer.join().unwrap();
    assert!(matches!(
        p.join_result_timeout(BOUND),
        Err(ProcessError::Signaled {
            name: "SIGKILL",
            ..
        })
    ));
}

#[test]
fn a_child_killed_before_it_took_its_end_does_not_leave_the_parent_waiting() {
    let (a, b) = Pipe::<u64>::duplex().unwrap();
    let p = Process::spawn(pong, b).unwrap();
    p.kill().unwrap(); // most likely before the child has even decoded its argument
    match a.recv_timeout(BOUND) {
        Err(RecvError::Disconnected | RecvError::PeerDied { .. }) => {}
        other => panic!("expected the end to be gone, got {other:?}"),
    }
    assert!(p.join_result_timeout(BOUND).is_err());
}

#[test]
fn a_child_sees_its_parent_die_through_a_received_end() {
    let report: Queue<String> = Queue::new().unwrap();
    let report_in_parent = report.clone();
    // The middle process creates the pipe, hands one end to a spawned child, and dies.
    let middle = Process::fork(move || {
        let (a, b) = Pipe::<u64>::duplex().unwrap();
        let child = Process::spawn(report_next_recv, (b, report_in_parent)).unwrap();
        assert_eq!(a.recv_timeout(BOUND).unwrap(), 0);
        std::mem::forget(child); // not joined: we die first
        common::die_now()
    })
    .unwrap();
    common::assert_killed(middle.join_timeout(BOUND).unwrap().expect("middle exited"));
    assert_eq!(report.get_timeout(BOUND).unwrap(), "peer died");
}

#[test]
fn a_pool_task_puts_into_a_queue_it_received() {
    let q: Queue<u64> = Queue::new().unwrap();
    let pool = Pool::new(2).unwrap();
    let tasks: Vec<_> = (0..4)
        .map(|i| pool.submit(produce, (q.clone(), i * 10, 10)).unwrap())
        .collect();
    for t in tasks {
        t.wait_timeout(BOUND).unwrap();
    }
    assert_eq!(get_all(&q, 40), (0..40).collect::<Vec<_>>());
    assert!(q.is_empty());
}

#[test]
fn a_pool_task_ping_pongs_on_a_pipe_end_it_received() {
    let pool = Pool::new(1).unwrap();
    let (a, b) = Pipe::<u64>::duplex().unwrap();
    let task = pool.submit(pong, b).unwrap();
    for n in [10, 20, 30] {
        a.send(&n).unwrap();
        assert_eq!(a.recv_timeout(BOUND).unwrap(), n + 1);
    }
    a.send(&u64::MAX).unwrap();
    assert_eq!(task.wait_timeout(BOUND).unwrap(), 3);
    // The worker lives on, but the task dropped its end.
    assert_disconnected(a.recv_timeout(BOUND));
}

#[test]
fn a_named_queue_handle_travels_through_another_named_queue() {
    let outer_name = common::unique("chan-outer");
    let outer: Queue<Queue<u64>> = Queue::create(&outer_name).unwrap();
    let inner: Queue<u64> = Queue::create(&common::unique("chan-inner")).unwrap();
    let p = Process::spawn(produce_via, (outer_name, 25)).unwrap();
    outer.put(&inner).unwrap();
    assert_eq!(get_all(&inner, 25), (0..25).collect::<Vec<_>>());
    p.join_result_timeout(BOUND).unwrap();
    drop((outer, inner));
    assert!(common::leftovers("chan-").is_empty());
}

#[test]
fn a_named_pipe_end_travels_through_a_named_queue_and_its_receiver_is_tracked() {
    let outer_name = common::unique("pend-outer");
    let outer: Queue<Connection<u64>> = Queue::create(&outer_name).unwrap();
    let pipe_name = common::unique("pend-pipe");
    let a = Pipe::<u64>::create(&pipe_name).unwrap();
    let b = Pipe::<u64>::open(&pipe_name).unwrap();
    let p = Process::spawn(pong_via, outer_name).unwrap();
    outer.put(&b).unwrap();
    drop(b); // the hand-over holds the end until the child has it
    a.send(&7).unwrap();
    assert_eq!(a.recv_timeout(BOUND).unwrap(), 8);
    p.join_result_timeout(BOUND).unwrap();
    assert_disconnected(a.recv_timeout(BOUND));
    drop((a, outer));
    // Only this test's names: other tests here make `pend-*` segments at the same time.
    assert!(common::leftovers("pend-outer").is_empty());
    assert!(common::leftovers("pend-pipe").is_empty());
}

#[test]
fn an_end_received_by_a_process_that_holds_it_shares_that_hold() {
    let name = common::unique("pend-self");
    let a = Pipe::<u64>::create(&name).unwrap();
    let b = Pipe::<u64>::open(&name).unwrap();
    let bytes = postcard::to_allocvec(&b).unwrap();
    let again: Connection<u64> = postcard::from_bytes(&bytes).unwrap();
    drop(again);
    // `b` still holds the end: dropping the received copy did not close it.
    talk_then_drop(&a, b);
}

#[test]
fn a_failed_send_of_an_end_does_not_leave_it_in_transit() {
    let name = common::unique("pend-fail");
    let a = Pipe::<u64>::create(&name).unwrap();
    let b = Pipe::<u64>::open(&name).unwrap();
    let closed: Queue<Connection<u64>> = Queue::new().unwrap();
    closed.shutdown();
    for _ in 0..20 {
        // More failures than there are hand-over slots: none of them keeps one.
        assert!(matches!(closed.put(&b), Err(SendError::Disconnected)));
    }
    drop(b);
    assert_disconnected(a.recv_timeout(BOUND));
}

#[test]
fn a_message_too_large_for_the_stack_encoding_leaves_no_hand_over_behind() {
    let name = common::unique("pend-big");
    let a = Pipe::<u64>::create(&name).unwrap();
    let b = Pipe::<u64>::open(&name).unwrap();
    let q: Queue<(Connection<u64>, Vec<u8>)> = Queue::new().unwrap();
    for round in 0..20 {
        // Past the stack buffer: the end's hand-over recorded by the first, stack-sized
        // encoding attempt must be revoked (more rounds than there are hand-over slots).
        q.put(&(b.clone(), vec![round; 300])).unwrap();
        let (end, payload) = q.get().unwrap();
        assert_eq!(payload, vec![round; 300]);
        drop(end);
    }
    drop(b);
    assert_disconnected(a.recv_timeout(BOUND));
}

#[test]
fn a_spawn_whose_argument_cannot_be_sent_releases_the_end_in_it() {
    let (a, b) = Pipe::<u64>::duplex().unwrap();
    // More anonymous handles than one message can carry: encoding fails after `b`'s hand-over
    // was recorded for the child, which spawn then kills.
    let queues: Vec<Queue<u64>> = (0..65).map(|_| Queue::with_capacity(64).unwrap()).collect();
    assert!(matches!(
        Process::spawn(count_queues, (b, queues)),
        Err(ProcessError::Encode(_))
    ));
    assert_disconnected(a.recv_timeout(BOUND));
}

#[test]
fn anonymous_channel_handles_cannot_leave_spawn_or_pool() {
    let q: Queue<u64> = Queue::new().unwrap();
    assert!(postcard::to_allocvec(&q).is_err());
    let message = shmproc::raw::take_transfer_error().unwrap();
    assert!(message.contains("create it by name"), "{message}");

    let carrier: Queue<Queue<u64>> = Queue::new().unwrap();
    assert!(matches!(carrier.put(&q), Err(SendError::Encode(_))));
    assert!(carrier.is_empty());

    let (a, b) = Pipe::<u64>::duplex().unwrap();
    assert!(postcard::to_allocvec(&b).is_err());
    let (tx, rx) = Pipe::<u64>::simplex().unwrap();
    assert!(postcard::to_allocvec(&tx).is_err());
    assert!(postcard::to_allocvec(&rx).is_err());
    // A refused hand-over leaves nothing behind: dropping `b` still disconnects `a`.
    drop(b);
    assert_disconnected(a.recv_timeout(BOUND));
}
