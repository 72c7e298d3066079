//! The seeds' fix: the same deposit/withdraw processes, each update made under a lock — once
//! with the value's own lock, once with a separate `Lock` as in Python. Always exact.
//!
//! Run: `cargo run --release --example locked`

use std::time::Instant;

use shmproc::{Lock, Process, Value};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. The value's own lock: `with balance.get_lock(): balance.value += amount`.
    let balance = Value::new(400_i64)?;
    let start = Instant::now();
    let workers = [(1, 1_000_000), (-1, 100_000)].map(|(amount, times)| {
        let balance = balance.clone();
        Process::fork(move || {
            for _ in 0..times {
                *balance.lock().unwrap() += amount;
            }
        })
    });
    for w in workers {
        w?.join()?;
    }
    println!(
        "value lock:    Final Balance is: {} ({:?})",
        balance.get()?,
        start.elapsed()
    );

    // 2. A separate Lock around get/set, as in the Python seed.
    let (balance, lock) = (Value::new(400_i64)?, Lock::new()?);
    let start = Instant::now();
    let workers = [(1, 1_000_000), (-1, 100_000)].map(|(amount, times)| {
        let (balance, lock) = (balance.clone(), lock.clone());
        Process::fork(move || {
            for _ in 0..times {
                let _guard = lock.acquire().unwrap(); // lock.acquire() ... lock.release() on drop
                balance.set(balance.get().unwrap() + amount).unwrap();
            }
        })
    });
    for w in workers {
        w?.join()?;
    }
    println!(
        "separate Lock: Final Balance is: {} ({:?})",
        balance.get()?,
        start.elapsed()
    );
    Ok(())
}
