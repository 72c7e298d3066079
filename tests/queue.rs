//! Queue: MPMC exactly-once delivery across processes, timeouts, shutdown, size limits, producers
//! killed mid-put, and corrupt rings.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{assert_killed, flag, unique, wait_for};
use shmproc::raw::{Segment, SharedRef, Spec, TypeInfo};
use shmproc::{Kind, Process, Queue, RecvError, SendError};

const BOUND: Duration = Duration::from_secs(30);

#[test]
fn two_producers_two_consumers_deliver_every_message_exactly_once_in_producer_order() {
    const PER_PRODUCER: u32 = 100_000; // 200,000 messages in all
    let q: Queue<(u8, u32)> = Queue::with_capacity(64 << 10).unwrap();
    // Each consumer sends back, per producer, the sequence numbers it received (checked to be
    // increasing in the consumer itself).
    let results: Queue<(usize, Vec<u32>)> = Queue::with_capacity(4 << 20).unwrap();
    let producers: Vec<_> = (0..2u8)
        .map(|p| {
            let q = q.clone();
            Process::fork(move || {
                for seq in 0..PER_PRODUCER {
                    q.put_timeout(&(p, seq), BOUND).unwrap();
                }
            })
            .unwrap()
        })
        .collect();
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let (q, results) = (q.clone(), results.clone());
            Process::fork(move || {
                let mut seen: [Vec<u32>; 2] = [Vec::new(), Vec::new()];
                loop {
                    match q.get_timeout(BOUND) {
                        Ok((p, seq)) => {
                            let mine = &mut seen[p as usize];
                            assert!(mine.last().map_or(true, |last| *last < seq), "order");
                            mine.push(seq);
                        }
                        Err(RecvError::Disconnected) => break,
                        Err(e) => panic!("get failed: {e}"),
                    }
                }
                for s in seen.into_iter().enumerate() {
                    results.put(&s).unwrap();
                }
            })
            .unwrap()
        })
        .collect();
    for p in producers {
        assert!(p.join().unwrap().success());
    }
    q.shutdown();
    for c in &consumers {
        assert!(c.join().unwrap().success());
    }
    let mut counts = [
        vec![0u8; PER_PRODUCER as usize],
        vec![0u8; PER_PRODUCER as usize],
    ];
    for _ in 0..4 {
        let (p, seqs) = results.get_timeout(BOUND).unwrap();
        for seq in seqs {
            counts[p][seq as usize] += 1;
        }
    }
    for (p, c) in counts.iter().enumerate() {
        assert!(
            c.iter().all(|n| *n == 1),
            "producer {p}: lost or duplicated"
        );
    }
    assert!(q.is_empty());
}

#[test]
fn get_timeout_on_an_empty_queue_times_out_after_the_timeout() {
    let q: Queue<u64> = Queue::new().unwrap();
    let start = Instant::now();
    let timeout = Duration::from_millis(30);
    assert!(matches!(q.get_timeout(timeout), Err(RecvError::Timeout)));
    assert!(start.elapsed() >= timeout);
    assert!(matches!(q.try_get(), Err(RecvError::Empty)));
    assert!(q.is_empty());
    assert_eq!(q.len(), 0);
}

#[test]
fn shutdown_lets_getters_drain_then_disconnects_everyone() {
    let q: Queue<String> = Queue::new().unwrap();
    for s in ["a", "b", "c"] {
        q.put(&s.to_string()).unwrap();
    }
    assert_eq!(q.len(), 3);
    // A consumer blocked on an empty queue in another process wakes up on shutdown.
    let empty: Queue<u8> = Queue::new().unwrap();
    let (e, started) = (empty.clone(), flag());
    let s = started.clone();
    let blocked = Process::fork(move || {
        s.store(1, Ordering::Release);
        assert!(matches!(e.get_timeout(BOUND), Err(RecvError::Disconnected)));
    })
    .unwrap();
    wait_for(&started, 1);
    std::thread::sleep(Duration::from_millis(20));
    empty.shutdown();
    assert!(blocked.join().unwrap().success());

    q.shutdown();
    assert!(q.is_shutdown());
    assert!(!q.is_closed(), "shutdown is not this process's close");
    assert!(matches!(q.put(&"d".into()), Err(SendError::Disconnected)));
    let drained: Vec<String> = (0..3).map(|_| q.get().unwrap()).collect();
    assert_eq!(drained, ["a", "b", "c"]);
    assert!(matches!(q.get(), Err(RecvError::Disconnected)));
    assert!(matches!(q.try_get(), Err(RecvError::Disconnected)));
}

#[test]
fn an_oversized_message_is_refused_whole_and_the_queue_still_works() {
    let q: Queue<Vec<u8>> = Queue::with_capacity(1024).unwrap();
    q.put(&vec![1, 2, 3]).unwrap();
    let big = vec![7u8; 4096];
    match q.put(&big) {
        Err(SendError::TooLarge { len, max }) => assert!(len > max && max == 1024),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(matches!(
        q.try_put_bytes(&big),
        Err(SendError::TooLarge { .. })
    ));
    assert_eq!(big.len(), 4096, "the message is still the caller's");
    assert_eq!(q.len(), 1);
    assert_eq!(q.get().unwrap(), [1, 2, 3]);
    q.put(&vec![4; 1000]).unwrap(); // fills most of the ring, wrapping around its end
    assert_eq!(q.get().unwrap(), vec![4; 1000]);
    assert!(q.max_message_len() == 1016);
    q.put_bytes(&[9; 1016]).unwrap();
    assert!(matches!(q.try_put_bytes(&[1]), Err(SendError::Full)));
    assert_eq!(q.get_bytes().unwrap(), vec![9; 1016]);
}

/// A message that carries its own checksum, so a torn one is caught.
fn message(producer: u8, seq: u32) -> Vec<u8> {
    let len = 1 + (seq.wrapping_mul(2_654_435_761) % 300) as usize;
    let mut m = vec![producer];
    m.extend_from_slice(&seq.to_le_bytes());
    m.extend((0..len).map(|i| (i as u32 ^ seq) as u8));
    let sum = checksum(&m);
    m.extend_from_slice(&sum.to_le_bytes());
    m
}

fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Checks a received message; returns (producer, seq).
fn verify(m: &[u8]) -> (u8, u32) {
    assert!(m.len() > 13, "short message");
    let (body, sum) = m.split_at(m.len() - 8);
    assert_eq!(
        checksum(body),
        u64::from_le_bytes(sum.try_into().unwrap()),
        "torn message"
    );
    (body[0], u32::from_le_bytes(body[1..5].try_into().unwrap()))
}

fn acked() -> SharedRef<AtomicU64> {
    let spec = Spec {
        kind: Kind::Raw,
        elem: TypeInfo::none(),
        payload_len: 64,
    };
    SharedRef::new(
        Arc::new(Segment::create_anonymous(&spec, |_| Ok(())).unwrap()),
        0,
    )
    .unwrap()
}

#[test]
fn a_producer_killed_mid_put_never_wedges_the_queue_or_tears_a_message() {
    const SURVIVOR: u32 = 2_000;
    let mut rng = 0x2545_f491_u32;
    for round in 0..20 {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        // Small ring: both producers block and contend for the lock all the time.
        let q: Queue<u8> = Queue::with_capacity(2048).unwrap();
        let ok_count = acked(); // puts of the victim that returned Ok
        let (vq, ack) = (q.clone(), ok_count.clone());
        let victim = Process::fork(move || {
            for seq in 0.. {
                vq.put_bytes_timeout(&message(0, seq), BOUND).unwrap();
                ack.store(u64::from(seq) + 1, Ordering::Release);
            }
        })
        .unwrap();
        let sq = q.clone();
        let survivor = Process::fork(move || {
            for seq in 0..SURVIVOR {
                sq.put_bytes_timeout(&message(1, seq), BOUND).unwrap();
            }
        })
        .unwrap();
        let mut next = [0u32; 2];
        let drain_one = |next: &mut [u32; 2], m: Vec<u8>| {
            let (p, seq) = verify(&m);
            assert_eq!(
                seq, next[p as usize],
                "round {round}: producer {p} out of order"
            );
            next[p as usize] += 1;
        };
        let kill_after = 1 + u64::from(rng % 200);
        while ok_count.load(Ordering::Acquire) < kill_after {
            if let Ok(m) = q.try_get_bytes() {
                drain_one(&mut next, m);
            }
        }
        victim.kill().unwrap();
        assert_killed(victim.join().unwrap());
        let acked_puts = ok_count.load(Ordering::Acquire);
        while next[1] < SURVIVOR {
            drain_one(&mut next, q.get_bytes_timeout(BOUND).expect("queue wedged"));
        }
        assert!(survivor.join().unwrap().success());
        while let Ok(m) = q.try_get_bytes() {
            drain_one(&mut next, m);
        }
        assert!(
            u64::from(next[0]) >= acked_puts,
            "round {round}: a put that returned Ok was lost"
        );
        // The queue still works for new producers.
        q.put_bytes(&message(2, 0)).unwrap();
        assert_eq!(verify(&q.get_bytes().unwrap()), (2, 0));
    }
}

#[test]
fn named_queues_are_shared_by_name_and_type_checked() {
    let name = unique("q-named");
    let q: Queue<u32> = Queue::create(&name).unwrap();
    let opened: Queue<u32> = Queue::open(&name).unwrap();
    q.put(&7).unwrap();
    assert_eq!(opened.get().unwrap(), 7);
    assert!(
        Queue::<String>::open(&name).is_err(),
        "another message type"
    );
    assert!(Queue::<u32>::create(&name).is_err(), "the name is taken");
    drop((q, opened));
    common::assert_no_leftovers("q-named");
}

#[test]
fn a_corrupt_record_length_is_an_error_not_a_crash() {
    let name = unique("q-corrupt");
    let q: Queue<u8> = Queue::create_with_capacity(&name, 256).unwrap();
    q.put_bytes(&[1, 2, 3]).unwrap();
    let raw = Segment::open_named(&name, Kind::Queue, message_type()).unwrap();
    let data_off = raw.payload_len() - q.capacity();
    // The first record's 8-byte length header sits at the start of the data area.
    let header = raw.ptr::<u8>(data_off, 8).unwrap();
    // SAFETY: 8 checked bytes inside the mapping; this test is the only one using the queue.
    unsafe { std::ptr::copy_nonoverlapping(u64::MAX.to_le_bytes().as_ptr(), header.as_ptr(), 8) };
    assert!(matches!(q.try_get_bytes(), Err(RecvError::Corrupt(_))));
    assert!(matches!(
        q.get_bytes_timeout(Duration::from_millis(10)),
        Err(RecvError::Corrupt(_))
    ));
}

fn message_type() -> TypeInfo {
    TypeInfo {
        name: std::any::type_name::<u8>(),
        size: 0,
        align: 1,
    }
}
