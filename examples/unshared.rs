//! The seeds' first surprise: a plain global changed in child processes stays 400 in the parent,
//! because each process has its own address space.
//!
//! Run: `cargo run --example unshared`

use std::sync::atomic::{AtomicI64, Ordering};

use shmproc::Process;

static BALANCE: AtomicI64 = AtomicI64::new(400);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let deposit = Process::fork(|| {
        for _ in 0..2000 {
            BALANCE.fetch_add(400, Ordering::Relaxed); // changes the child's own copy
        }
    })?;
    let withdraw = Process::fork(|| {
        for _ in 0..200 {
            BALANCE.fetch_sub(400, Ordering::Relaxed);
        }
    })?;
    deposit.join()?;
    withdraw.join()?;
    println!("Final Balance is: {}", BALANCE.load(Ordering::Relaxed));
    Ok(())
}
