//! The seeds' Queue demo: a child process puts the squares of [2, 3, 5] on a queue and the
//! parent drains them; then a sender process and a receiver process share a queue of strings.
//!
//! Run: `cargo run --release --example queue`

use shmproc::{Process, Queue};

fn calc_squares(numbers: &[u64], q: &Queue<u64>) {
    for n in numbers {
        q.put(&(n * n)).unwrap();
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let q: Queue<u64> = Queue::new()?;
    let child_q = q.clone();
    let p = Process::fork(move || calc_squares(&[2, 3, 5], &child_q))?;
    p.join()?;
    while let Ok(square) = q.try_get() {
        println!("{square}");
    }

    let words: Queue<String> = Queue::new()?;
    let (tx, rx) = (words.clone(), words.clone());
    let sender = Process::fork(move || {
        for w in ["hello", "from", "the", "sender", "END"] {
            tx.put(&w.to_string()).unwrap();
        }
    })?;
    let receiver = Process::fork(move || loop {
        let w = rx.get().unwrap();
        if w == "END" {
            break;
        }
        println!("Received: {w}");
    })?;
    sender.join()?;
    receiver.join()?;
    Ok(())
}
