//! The classic `multiprocessing` demos from the seeds, as functions the CLI, examples and tests
//! share. Each returns what happened; the CLI prints the story.

use std::io;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use shmproc::{Lock, Process, Value};

/// Starting balance of every bank demo.
pub const START_BALANCE: i64 = 400;

/// What a deposit/withdraw run ended with.
#[derive(Debug, Clone, Copy)]
pub struct BankOutcome {
    /// The balance if no update was lost.
    pub expected: i64,
    /// The balance the parent read at the end.
    pub actual: i64,
    /// Wall time of the two processes.
    pub elapsed: Duration,
}

impl BankOutcome {
    /// How far the balance is off: updates overwritten by the other process.
    pub fn lost(&self) -> u64 {
        self.expected.abs_diff(self.actual)
    }
}

/// How the deposit and withdraw processes update the balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// `set(get() + 1)`: each step locked, the pair not. Loses updates (no UB).
    GetThenSet,
    /// `*balance.lock()? += 1`: one locked read-modify-write.
    ValueLock,
    /// A separate `Lock` held around `get`/`set`, as in the Python seed.
    SeparateLock,
}

/// Adds `amount` to `balance` `times` times in the given way.
///
/// # Panics
/// If a lock holder died (no process dies in the demos).
pub fn update(balance: &Value<i64>, lock: &Lock, how: Update, amount: i64, times: u64) {
    for _ in 0..times {
        match how {
            Update::GetThenSet => {
                let now = balance.get().expect("balance lock");
                balance.set(now + amount).expect("balance lock");
            }
            Update::ValueLock => *balance.lock().expect("balance lock") += amount,
            Update::SeparateLock => {
                let _guard = lock.acquire().expect("lock");
                let now = balance.get().expect("balance lock");
                balance.set(now + amount).expect("balance lock");
            }
        }
    }
}

/// Runs a deposit process (+1 × `deposits`) and a withdraw process (−1 × `withdrawals`) on one
/// shared balance starting at [`START_BALANCE`].
///
/// # Errors
/// When shared memory or a process cannot be created, or a child fails.
pub fn bank(how: Update, deposits: u64, withdrawals: u64) -> io::Result<BankOutcome> {
    let balance = Value::new(START_BALANCE)?;
    let lock = Lock::new()?;
    let start = Instant::now();
    let children = [(1, deposits), (-1, withdrawals)].map(|(amount, times)| {
        let (balance, lock) = (balance.clone(), lock.clone());
        Process::fork(move || update(&balance, &lock, how, amount, times))
    });
    for child in children {
        let status = child?.join()?;
        if !status.success() {
            return Err(io::Error::other(format!("bank process failed: {status}")));
        }
    }
    Ok(BankOutcome {
        expected: START_BALANCE + deposits as i64 - withdrawals as i64,
        actual: balance.get().map_err(io::Error::other)?,
        elapsed: start.elapsed(),
    })
}

/// A plain (not shared) balance, changed by a child process.
static PLAIN_BALANCE: AtomicI64 = AtomicI64::new(START_BALANCE);

/// Deposits 400 × 2000 into a *plain* static in one child and withdraws 400 × 200 in another;
/// returns what the parent sees afterwards (still 400: each child changed its own copy).
///
/// # Errors
/// When a process cannot be forked or fails.
pub fn unshared() -> io::Result<i64> {
    let children = [(400, 2000), (-400, 200)].map(|(amount, times)| {
        Process::fork(move || {
            for _ in 0..times {
                PLAIN_BALANCE.fetch_add(amount, Ordering::Relaxed);
            }
        })
    });
    for child in children {
        let status = child?.join()?;
        if !status.success() {
            return Err(io::Error::other(format!("child failed: {status}")));
        }
    }
    Ok(PLAIN_BALANCE.load(Ordering::Relaxed))
}
