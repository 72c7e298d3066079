//! The Queue scenario: checksummed frames from producers to consumers while one of them is
//! killed.

use std::time::{Duration, Instant};

use shmproc::{Array, Queue, RecvError, SegmentError, SendError};

use super::harness::{
    bad, check_frame, frame, held, work_until, Fault, Ledger, Setup, GRACE, PATIENCE,
};
use super::kids::Kids;
use super::tally::{Problem, Trial};

/// Most messages a queue producer puts (it stops earlier when its working time is up).
const QUEUE_MSGS: usize = 20_000;
/// Ledger slots after the delivery counts: torn deliveries, out-of-order deliveries, named
/// queues found removed (by another process) when a producer opened them.
const TORN: usize = 0;
const DISORDER: usize = 1;
const VANISHED: usize = 2;

/// Records one delivery in `seen` (one slot per producer and sequence number, then `TORN`
/// and `DISORDER`); `last` is this consumer's last sequence number per producer.
fn deliver(seen: &Ledger, base: usize, last: &mut [Option<u32>], msg: Option<&[u8]>) {
    match msg.and_then(check_frame) {
        Some((who, seq)) if (who as usize) < last.len() && (seq as usize) < QUEUE_MSGS => {
            let who = who as usize;
            if last[who].is_some_and(|l| l >= seq) {
                seen.add(base + DISORDER, 1);
            }
            last[who] = Some(seq);
            seen.add(who * QUEUE_MSGS + seq as usize, 1);
        }
        _ => {
            seen.add(base + TORN, 1);
        }
    }
}

/// Producers put numbered frames and note each acknowledged `put` in a shared `Array`;
/// consumers (children, and the parent all along) take them. One process is killed. Then the
/// queue is shut down and drained, and every acknowledged message must have arrived exactly once.
pub(crate) fn queue(t: &mut Trial<'_>) -> Setup {
    let producers = t.rng.range(1, 3) as usize;
    let consumers = t.rng.range(0, 2) as usize;
    let capacity = t.rng.pick(&[256, 1024, 4096, 65536]);
    let typed = t.rng.chance(50);
    let name = t.rng.chance(25).then(|| t.name("q"));
    let q: Queue<Vec<u8>> = match &name {
        Some(name) => Queue::create_with_capacity(name, capacity)?,
        None => Queue::with_capacity(capacity)?,
    };
    // Frame = 16 bytes + body; a typed message adds postcard's length prefix (2 bytes here).
    let max_body = (q.max_message_len() - 18).min(240) as u64;
    let acks = Array::<u64>::zeroed(producers)?;
    let base = producers * QUEUE_MSGS;
    let seen = Ledger::new(base + 3)?;
    let mut kids = Kids::new(t, producers + consumers)?;
    for p in 0..producers {
        let (q, acks, name, seen) = (q.clone(), acks.clone(), name.clone(), seen.clone());
        let mut rng = t.rng.split();
        kids.fork("producer", move || {
            let q = match name.filter(|_| rng.chance(50)).map(|n| Queue::open(&n)) {
                Some(Ok(opened)) => opened,
                Some(Err(SegmentError::NotFound { .. })) => {
                    seen.add(base + VANISHED, 1); // removed by someone else: use the copy
                    q
                }
                Some(Err(e)) => return Err(bad("open", e)),
                None => q,
            };
            let stop = work_until();
            for seq in 0..QUEUE_MSGS as u32 {
                if Instant::now() >= stop {
                    break;
                }
                let msg = frame(p as u32, seq, rng.range(0, max_body) as usize);
                let put = if typed {
                    q.put_timeout(&msg, PATIENCE)
                } else {
                    q.put_bytes_timeout(&msg, PATIENCE)
                };
                match put {
                    Ok(()) => {}
                    Err(SendError::Timeout) => return Err(Fault::Hang(format!("put #{seq}"))),
                    Err(e) => return Err(bad(&format!("put #{seq}"), e)),
                }
                let (mut g, _) = held(acks.lock_timeout(PATIENCE), "the ack array")?;
                g[p] = u64::from(seq) + 1;
            }
            Ok(())
        })?;
    }
    for _ in 0..consumers {
        let (q, seen) = (q.clone(), seen.clone());
        kids.fork("consumer", move || {
            let mut last = vec![None; producers];
            loop {
                let got = if typed {
                    q.get_timeout(PATIENCE)
                } else {
                    q.get_bytes_timeout(PATIENCE)
                };
                match got {
                    Ok(m) => deliver(&seen, base, &mut last, Some(&m)),
                    Err(RecvError::Decode(_)) => deliver(&seen, base, &mut last, None),
                    Err(RecvError::Disconnected) => return Ok(()),
                    Err(RecvError::Timeout) => return Err(Fault::Hang("get".into())),
                    Err(e) => return Err(bad("get", e)),
                }
            }
        })?;
    }
    kids.arm(&mut t.rng, &[]);
    let deadline = Instant::now() + GRACE;
    let mut last = vec![None; producers];
    // The parent consumes too (so producers never wait on a full ring for nobody) until
    // every producer is gone, then shuts the queue down and drains it with the consumers.
    let mut closing = false;
    loop {
        let struck = kids.strike_if_due();
        if !closing && struck && (0..producers).all(|p| kids.exited(p)) {
            q.shutdown();
            closing = true;
        }
        if Instant::now() > deadline {
            t.problem(Problem::Hang, "producers still putting after the trial");
            q.shutdown();
            break;
        }
        let nap = if closing {
            PATIENCE
        } else {
            Duration::from_millis(1)
        };
        let got = if typed {
            q.get_timeout(nap)
        } else {
            q.get_bytes_timeout(nap)
        };
        match got {
            Ok(m) => deliver(&seen, base, &mut last, Some(&m)),
            Err(RecvError::Decode(_)) => deliver(&seen, base, &mut last, None),
            Err(RecvError::Timeout) if !closing => {}
            Err(RecvError::Disconnected) if closing => break,
            // Every child is gone (left, or died): the queue ended for the parent, empty.
            Err(RecvError::Disconnected | RecvError::PeerDied { .. })
                if (0..kids.len()).all(|i| kids.wait(i, Instant::now() + PATIENCE)) =>
            {
                break
            }
            Err(RecvError::Timeout) => {
                t.problem(Problem::Hang, "the parent's get after shutdown");
                break;
            }
            Err(e) => {
                t.problem(Problem::Unexpected, format!("the parent's get: {e}"));
                break;
            }
        }
    }
    let ends = kids.finish(t, deadline);
    let acked = match held(acks.lock_timeout(PATIENCE), "the ack array") {
        Ok((g, died)) => {
            t.counts.owner_died += u64::from(died);
            g.to_vec()
        }
        Err(f) => {
            t.problem(Problem::Hang, f);
            return Ok(());
        }
    };
    let killed_consumers = ends[producers..].iter().filter(|e| e.killed).count() as u64;
    let (mut missing, mut extra, mut phantom) = (0, 0, 0);
    for (p, &a) in acked.iter().enumerate() {
        let a = a as usize;
        t.counts.acked += a as u64;
        for seq in 0..QUEUE_MSGS {
            let n = seen.get(p * QUEUE_MSGS + seq);
            extra += n.saturating_sub(1);
            match seq.cmp(&a) {
                std::cmp::Ordering::Less => missing += u64::from(n == 0),
                std::cmp::Ordering::Equal => t.counts.in_flight_delivered += n.min(1),
                std::cmp::Ordering::Greater => phantom += n.min(1),
            }
        }
    }
    let excused = missing.min(killed_consumers);
    t.counts.taken_by_killed_consumer += excused;
    if missing > excused {
        t.problem(
            Problem::Lost(missing - excused),
            format!("acknowledged messages never delivered ({killed_consumers} consumers killed)"),
        );
    }
    if extra > 0 {
        t.problem(Problem::Duplicated(extra), "messages delivered twice");
    }
    if phantom > 0 {
        t.problem(
            Problem::Unexpected,
            format!("{phantom} messages delivered that were never put"),
        );
    }
    let torn = seen.get(base + TORN);
    if torn > 0 {
        t.problem(
            Problem::Torn(torn),
            "deliveries failed the checksum or did not decode",
        );
    }
    if seen.get(base + DISORDER) > 0 {
        t.problem(
            Problem::Unexpected,
            "a consumer saw one producer's messages out of order",
        );
    }
    t.counts.removed_by_others += seen.get(base + VANISHED);
    if !q.is_empty() {
        t.problem(
            Problem::Unexpected,
            "the queue is not empty after the drain",
        );
    }
    Ok(())
}
