//! Regression (found by `shmproc chaos`): a streamed pipe message whose 8-byte header went out
//! in two parts. A receiver that looked while only the first part was published cached that
//! tail, and `readable` kept returning those few bytes while the wait predicate saw the whole
//! message: `try_recv` said `Empty` for ever, `recv_timeout` spun at 100% CPU past its
//! deadline, and once the sender had left, `recv` said `Broken`/`Disconnected` although the
//! whole message was there.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use shmproc::{Pipe, RecvError};

/// One round: 59 of the ring's 64 bytes are taken, so the next 48-byte message waits for room
/// and then goes out as 5 + 43 bytes; the receiver polls throughout.
fn round(sender_leaves: bool) -> Result<(), String> {
    let (tx, rx) = Pipe::<()>::simplex_with_capacity(64).unwrap();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let sender = std::thread::spawn(move || {
        tx.send_bytes(&[7; 51]).unwrap();
        tx.send_bytes(&[9; 40]).unwrap();
        if !sender_leaves {
            let _ = stop_rx.recv();
        }
    });
    assert_eq!(rx.recv_bytes().unwrap(), [7; 51]);
    let started = Instant::now();
    let outcome = loop {
        match rx.try_recv_bytes() {
            Ok(bytes) => break Ok(bytes),
            Err(RecvError::Empty) if started.elapsed() < Duration::from_secs(1) => {}
            Err(e) => break Err(e),
        }
    };
    drop(stop_tx);
    sender.join().unwrap();
    match outcome {
        Ok(bytes) if bytes == [9; 40] => Ok(()),
        Ok(bytes) => Err(format!("got {} other bytes", bytes.len())),
        Err(e) => Err(format!(
            "a whole message is waiting ({} bytes pending), yet try_recv_bytes: {e}",
            rx.pending_bytes()
        )),
    }
}

#[test]
fn a_receiver_that_saw_half_a_header_still_gets_the_message() {
    for sender_leaves in [false, true] {
        let until = Instant::now() + Duration::from_secs(1);
        let mut rounds = 0;
        while Instant::now() < until {
            rounds += 1;
            if let Err(e) = round(sender_leaves) {
                panic!("round {rounds} (sender leaves: {sender_leaves}): {e}");
            }
        }
    }
}
