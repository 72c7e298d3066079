//! What Python cannot do: a process is SIGKILLed while holding a lock, and the next acquirer is
//! told so (holding the lock) instead of hanging forever.
//!
//! Run: `cargo run --example owner_died`

use shmproc::{LockError, Process, Value};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let balance = Value::new(400_i64)?;
    let b = balance.clone();
    let child = Process::fork(move || {
        let mut guard = b.lock().unwrap();
        *guard = -1; // half-way through an update...
                     // SAFETY: raising SIGKILL in our own process; it never returns.
        unsafe { libc::raise(libc::SIGKILL) };
    })?;
    println!("child {} exited with {}", child.pid(), child.join()?);
    match balance.lock() {
        Err(LockError::OwnerDied(mut guard)) => {
            println!(
                "previous owner died mid-update (balance {}); repairing",
                *guard
            );
            *guard = 400;
        }
        Ok(_) => println!("lock was clean"),
        Err(e) => return Err(e.without_guard().into()),
    }
    println!(
        "balance is {} and the lock works: {:?}",
        balance.get()?,
        balance.try_lock().is_ok()
    );
    Ok(())
}
