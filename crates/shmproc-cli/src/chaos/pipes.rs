//! Pipe scenarios: a stream of checksummed frames (some longer than the ring), and an echo,
//! while a sender, receiver or echo process is killed.

use std::time::Instant;

use shmproc::{Pipe, Receiver, RecvError, SendError, Value};

use super::harness::{
    bad, check_frame, frame, held, work_until, Fault, Ledger, Setup, GRACE, PATIENCE,
};
use super::kids::Kids;
use super::tally::{Problem, Trial};

/// Ledger slots of the pipe scenarios.
const RECEIVED: usize = 0;
const GAPS: usize = 1;
const DUPS: usize = 2;
const TORN_MSGS: usize = 3;
const RECV_END: usize = 4;
const SEND_END: usize = 5;
const PIPE_SLOTS: usize = 6;

/// How a pipe side ended (in `RECV_END` / `SEND_END`).
const COMPLETED: u64 = 1;
const DISCONNECTED: u64 = 2;
const PEER_DIED: u64 = 3;
const BROKEN: u64 = 4;

/// The name of an ending code.
fn ending(code: u64) -> &'static str {
    match code {
        0 => "nothing (still sending or killed)",
        COMPLETED => "all sent",
        DISCONNECTED => "Disconnected",
        PEER_DIED => "PeerDied",
        BROKEN => "Broken",
        _ => "?",
    }
}

/// Most messages a pipe sender sends (it stops earlier when its working time is up).
const PIPE_MSGS: u32 = 20_000;

/// Receives frames until the pipe ends, counting arrivals in order, gaps, duplicates and
/// torn frames in `book`.
fn receive(rx: &Receiver<Vec<u8>>, book: &Ledger, typed: bool, timed: bool) -> Result<(), Fault> {
    loop {
        let got = match (typed, timed) {
            (true, true) => rx.recv_timeout(PATIENCE),
            (true, false) => rx.recv(),
            (false, true) => rx.recv_bytes_timeout(PATIENCE),
            (false, false) => rx.recv_bytes(),
        };
        let end = match got {
            Ok(m) => {
                match check_frame(&m) {
                    Some((_, seq)) => {
                        let next = book.get(RECEIVED);
                        let seq = u64::from(seq);
                        if seq < next {
                            book.add(DUPS, 1);
                        } else {
                            book.add(GAPS, seq - next);
                            book.set(RECEIVED, seq + 1);
                        }
                    }
                    None => {
                        book.add(TORN_MSGS, 1);
                    }
                }
                continue;
            }
            Err(RecvError::Decode(_)) => {
                book.add(TORN_MSGS, 1);
                continue;
            }
            Err(RecvError::Disconnected) => DISCONNECTED,
            Err(RecvError::PeerDied { .. }) => PEER_DIED,
            Err(RecvError::Broken) => BROKEN,
            Err(RecvError::Timeout) => return Err(Fault::Hang("recv".into())),
            Err(e) => return Err(bad("recv", e)),
        };
        book.set(RECV_END, end);
        return Ok(());
    }
}

/// A child streams numbered frames (some longer than the ring) to a receiver — the parent or
/// another child — and notes each acknowledged `send` in a `Value`; one of them is killed.
pub(crate) fn pipe_stream(t: &mut Trial<'_>) -> Setup {
    let capacity = t.rng.pick(&[1024, 4096, 65536]);
    let (tx, rx) = Pipe::<Vec<u8>>::simplex_with_capacity(capacity)?;
    let typed = t.rng.chance(50);
    let acked = Value::new(0_u64)?;
    let book = Ledger::new(PIPE_SLOTS)?;
    let mut kids = Kids::new(t, 2)?;
    let mut rng = t.rng.split();
    let (acks, b) = (acked.clone(), book.clone());
    kids.fork("sender", move || {
        let timed = rng.chance(50);
        let stop = work_until();
        for seq in 0..PIPE_MSGS {
            if Instant::now() >= stop {
                break;
            }
            let len = if rng.chance(3) {
                rng.range(capacity as u64, 4 * capacity as u64) as usize
            } else {
                rng.range(0, 200) as usize
            };
            let msg = frame(0, seq, len);
            let sent = match (typed, timed) {
                (true, true) => tx.send_timeout(&msg, PATIENCE),
                (true, false) => tx.send(&msg),
                (false, true) => tx.send_bytes_timeout(&msg, PATIENCE),
                (false, false) => tx.send_bytes(&msg),
            };
            let end = match sent {
                Ok(()) => {
                    *held(acks.lock_timeout(PATIENCE), "the ack value")?.0 = u64::from(seq) + 1;
                    continue;
                }
                Err(SendError::PeerDied { .. }) => PEER_DIED,
                Err(SendError::Broken) => BROKEN,
                Err(SendError::Disconnected) => DISCONNECTED,
                Err(SendError::Timeout) => return Err(Fault::Hang(format!("send #{seq}"))),
                Err(e) => return Err(bad(&format!("send #{seq}"), e)),
            };
            b.set(SEND_END, end);
            return Ok(());
        }
        b.set(SEND_END, COMPLETED);
        Ok(())
    })?;
    let child_receives = t.rng.chance(50);
    if child_receives {
        let (b, timed) = (book.clone(), t.rng.chance(50));
        let rx = rx.clone();
        kids.fork("receiver", move || receive(&rx, &b, typed, timed))?;
    }
    kids.arm(&mut t.rng, &[]);
    if child_receives {
        drop(rx);
    } else {
        let parent_got = std::thread::scope(|s| {
            s.spawn(|| kids.strike());
            receive(&rx, &book, typed, true)
        });
        match parent_got {
            Ok(()) => {}
            Err(f @ Fault::Hang(_)) => t.problem(Problem::Hang, format!("the parent's {f}")),
            Err(f) => t.problem(Problem::Unexpected, format!("the parent's {f}")),
        }
        drop(rx);
    }
    let ends = kids.finish(t, Instant::now() + GRACE);
    let (sender_killed, receiver_killed) = (ends[0].killed, ends.get(1).is_some_and(|e| e.killed));
    let a = match held(acked.lock_timeout(PATIENCE), "the ack value") {
        Ok((g, died)) => {
            t.counts.owner_died += u64::from(died);
            *g
        }
        Err(f) => {
            t.problem(Problem::Hang, f);
            return Ok(());
        }
    };
    t.counts.acked += a;
    let received = book.get(RECEIVED);
    check_stream(t, &book, a, received, receiver_killed);
    let (recv_end, send_end) = (book.get(RECV_END), book.get(SEND_END));
    if !receiver_killed {
        // A sender killed before it first used the end it inherited never became a holder:
        // the receiver hears "left" (see `Counts::unused_end_left`).
        let unused = sender_killed && a == 0 && received == 0;
        let ok = match recv_end {
            DISCONNECTED => !sender_killed || send_end == COMPLETED || unused,
            PEER_DIED | BROKEN => sender_killed,
            _ => false,
        };
        t.counts.unused_end_left += u64::from(ok && unused && recv_end == DISCONNECTED);
        if !ok {
            t.problem(
                Problem::Unexpected,
                format!(
                    "{} receiver ended with {} after {received} messages; the sender, killed: \
                     {sender_killed}, had {a} acknowledged and ended with {}",
                    if child_receives { "child" } else { "parent" },
                    ending(recv_end),
                    ending(send_end)
                ),
            );
        }
        t.counts.peer_died += u64::from(recv_end == PEER_DIED);
        if !sender_killed && received != a {
            t.problem(
                Problem::Lost(a.saturating_sub(received)),
                format!("the sender finished after {a} messages, {received} arrived"),
            );
        }
    }
    if receiver_killed && !sender_killed {
        let unused = received == 0 && send_end == DISCONNECTED;
        t.counts.unused_end_left += u64::from(unused);
        let ok = unused || matches!(send_end, COMPLETED | PEER_DIED | BROKEN);
        if !ok {
            t.problem(
                Problem::Unexpected,
                format!(
                    "sender ended with {} after the receiver was killed",
                    ending(send_end)
                ),
            );
        }
        t.counts.peer_died += u64::from(send_end == PEER_DIED);
    }
    Ok(())
}

/// Gaps, duplicates and torn frames of a stream, and its count against the acknowledged one.
fn check_stream(
    t: &mut Trial<'_>,
    book: &Ledger,
    acked: u64,
    received: u64,
    receiver_killed: bool,
) {
    let (gaps, dups, torn) = (book.get(GAPS), book.get(DUPS), book.get(TORN_MSGS));
    if gaps > 0 {
        t.problem(Problem::Lost(gaps), "gaps in the sequence");
    }
    if dups > 0 {
        t.problem(Problem::Duplicated(dups), "messages received twice");
    }
    if torn > 0 {
        t.problem(
            Problem::Torn(torn),
            "frames failed the checksum or did not decode",
        );
    }
    if received > acked + 1 {
        t.problem(
            Problem::Unexpected,
            format!("{received} received but only {acked} sends acknowledged"),
        );
    }
    t.counts.in_flight_delivered += u64::from(received == acked + 1);
    if !receiver_killed && received < acked {
        t.problem(
            Problem::Lost(acked - received),
            "acknowledged sends never received",
        );
    }
}

/// How the parent's side of an echo trial ended early.
#[derive(Debug)]
enum EchoEnd {
    Torn,
    Mixed { got: u32, want: u32 },
    Send(SendError),
    Recv(RecvError),
}

/// The parent sends frames over a duplex pipe to a child that echoes them; the child is
/// killed. Every reply must be the exact request, and the end a `PeerDied`/`Broken`.
pub(crate) fn pipe_echo(t: &mut Trial<'_>) -> Setup {
    let capacity = t.rng.pick(&[512, 4096, 65536]);
    let (a, b) = Pipe::<Vec<u8>>::duplex_with_capacity(capacity)?;
    let typed = t.rng.chance(50);
    let mut kids = Kids::new(t, 1)?;
    let timed = t.rng.chance(50);
    kids.fork("echo", move || loop {
        let got = match (typed, timed) {
            (true, true) => b.recv_timeout(PATIENCE),
            (true, false) => b.recv(),
            (false, true) => b.recv_bytes_timeout(PATIENCE),
            (false, false) => b.recv_bytes(),
        };
        let m = match got {
            Ok(m) => m,
            Err(RecvError::Disconnected) => return Ok(()),
            Err(RecvError::Timeout) => return Err(Fault::Hang("recv".into())),
            Err(e) => return Err(bad("recv", e)),
        };
        let sent = match (typed, timed) {
            (true, true) => b.send_timeout(&m, PATIENCE),
            (true, false) => b.send(&m),
            (false, true) => b.send_bytes_timeout(&m, PATIENCE),
            (false, false) => b.send_bytes(&m),
        };
        match sent {
            Ok(()) => {}
            Err(SendError::Timeout) => return Err(Fault::Hang("send".into())),
            Err(e) => return Err(bad("send", e)),
        }
    })?;
    kids.arm(&mut t.rng, &[]);
    let mut rng = t.rng.split();
    let (mut acked, mut end) = (0_u64, None);
    std::thread::scope(|s| {
        s.spawn(|| kids.strike());
        let stop = work_until();
        for seq in 0..PIPE_MSGS {
            if Instant::now() >= stop {
                break;
            }
            let len = if rng.chance(2) {
                rng.range(capacity as u64, 3 * capacity as u64) as usize
            } else {
                rng.range(0, 200) as usize
            };
            let msg = frame(0, seq, len);
            let sent = if typed {
                a.send_timeout(&msg, PATIENCE)
            } else {
                a.send_bytes_timeout(&msg, PATIENCE)
            };
            if let Err(e) = sent {
                end = Some(EchoEnd::Send(e));
                break;
            }
            let reply = if typed {
                a.recv_timeout(PATIENCE)
            } else {
                a.recv_bytes_timeout(PATIENCE)
            };
            match reply {
                Ok(r) if r == msg => acked += 1,
                Ok(r) => {
                    end = Some(match check_frame(&r) {
                        None => EchoEnd::Torn,
                        Some((_, got)) => EchoEnd::Mixed { got, want: seq },
                    });
                    break;
                }
                Err(RecvError::Decode(_)) => {
                    end = Some(EchoEnd::Torn);
                    break;
                }
                Err(e) => {
                    end = Some(EchoEnd::Recv(e));
                    break;
                }
            }
        }
    });
    drop(a);
    let ends = kids.finish(t, Instant::now() + GRACE);
    t.counts.acked += acked;
    let killed = ends[0].killed;
    match end {
        None => {}
        Some(EchoEnd::Torn) => t.problem(Problem::Torn(1), "a reply failed the checksum"),
        Some(EchoEnd::Send(SendError::Timeout) | EchoEnd::Recv(RecvError::Timeout)) => {
            t.problem(Problem::Hang, "the parent's send/recv timed out")
        }
        Some(
            EchoEnd::Send(SendError::PeerDied { .. }) | EchoEnd::Recv(RecvError::PeerDied { .. }),
        ) if killed => {
            t.counts.peer_died += 1;
        }
        Some(EchoEnd::Send(SendError::Broken) | EchoEnd::Recv(RecvError::Broken)) if killed => {}
        // Killed before it first used the end it inherited: it never became a holder.
        Some(EchoEnd::Send(SendError::Disconnected) | EchoEnd::Recv(RecvError::Disconnected))
            if killed && acked == 0 =>
        {
            t.counts.unused_end_left += 1;
        }
        Some(EchoEnd::Mixed { got, want }) => t.problem(
            Problem::Unexpected,
            format!("the reply to request #{want} was #{got}"),
        ),
        Some(e) => t.problem(
            Problem::Unexpected,
            format!("{e:?} after {acked} round trips (echo killed: {killed})"),
        ),
    }
    Ok(())
}
