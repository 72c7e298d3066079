//! The seeds' race: deposit and withdraw processes update a shared balance with an unlocked
//! read-modify-write (`set(get() + 1)`) and lose updates. Each `get`/`set` is locked on its own,
//! so the loss is well defined (no torn values, no undefined behaviour).
//!
//! Run: `cargo run --release --example race`

use shmproc::{Process, Value};

fn deposit(balance: &Value<i64>, amount: i64, times: u32) {
    for _ in 0..times {
        balance.set(balance.get().unwrap() + amount).unwrap();
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let balance = Value::new(400_i64)?;
    let (b1, b2) = (balance.clone(), balance.clone());
    let deposits = Process::fork(move || deposit(&b1, 1, 1_000_000))?;
    let withdrawals = Process::fork(move || deposit(&b2, -1, 100_000))?;
    deposits.join()?;
    withdrawals.join()?;
    let actual = balance.get()?;
    println!(
        "Final balance is: {actual} (expected 900400: off by {}, updates lost in the race)",
        (900_400 - actual).abs()
    );
    Ok(())
}
