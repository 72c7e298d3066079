//! Workers that start together: four processes prepare for different times, then wait at a
//! `Barrier`; all leave it at the same moment, and one of them is told it is the leader.
//!
//! Run: `cargo run --example barrier`

use std::time::{Duration, Instant};

use shmproc::{Barrier, Process};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let barrier = Barrier::new(4)?;
    let t0 = Instant::now();
    let workers: Vec<Process> = (0..4_u64)
        .map(|i| {
            let barrier = barrier.clone();
            Process::fork(move || {
                std::thread::sleep(Duration::from_millis(50 * i)); // uneven preparation
                println!("worker {i} ready after {:>3} ms", t0.elapsed().as_millis());
                let r = barrier.wait().unwrap();
                let role = if r.is_leader() { " (leader)" } else { "" };
                println!(
                    "worker {i} starts at   {:>3} ms{role}",
                    t0.elapsed().as_millis()
                );
            })
        })
        .collect::<Result<_, _>>()?;
    for w in workers {
        w.join()?;
    }
    Ok(())
}
