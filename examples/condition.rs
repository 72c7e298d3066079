//! Producer/consumer with a `Condition`: a producer process puts numbers into a one-slot buffer,
//! the parent takes them out; each waits on the condition until the slot is ready for it.
//!
//! Run: `cargo run --example condition`

use std::time::Duration;

use shmproc::{Array, Condition, Process};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cond = Condition::new()?;
    // [value, full?] — read and written only while holding the condition's lock.
    let slot = Array::<u64>::zeroed(2)?;
    let (c, s) = (cond.clone(), slot.clone());
    let producer = Process::fork(move || {
        for n in 1..=5_u64 {
            let guard = c.lock().unwrap();
            let guard = c.wait_while(guard, || s.get(1).unwrap() == 1).unwrap();
            s.set(0, n * n).unwrap();
            s.set(1, 1).unwrap();
            println!("producer: put {}", n * n);
            c.notify_one().unwrap();
            drop(guard);
        }
    })?;
    for _ in 0..5 {
        let guard = cond.lock().unwrap();
        let (guard, ready) = cond
            .wait_while_timeout(guard, || slot.get(1).unwrap() == 0, Duration::from_secs(5))
            .unwrap();
        assert!(ready, "producer stopped producing");
        println!("consumer: got {}", slot.get(0)?);
        slot.set(1, 0)?;
        cond.notify_one()?;
        drop(guard);
    }
    producer.join()?;
    Ok(())
}
