//! A `Semaphore(3)` limits 8 worker processes to 3 working at once; a shared counter records
//! the most that were ever inside together.
//!
//! Run: `cargo run --example semaphore`

use std::time::Duration;

use shmproc::{Array, Process, Semaphore};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sem = Semaphore::new(3)?;
    let stats = Array::<u32>::zeroed(2)?; // [inside now, most inside at once]
    let workers: Vec<Process> = (0..8)
        .map(|i| {
            let (sem, stats) = (sem.clone(), stats.clone());
            Process::fork(move || {
                sem.acquire().unwrap();
                {
                    let mut s = stats.lock().unwrap();
                    s[0] += 1;
                    s[1] = s[1].max(s[0]);
                    println!("worker {i} working ({} inside)", s[0]);
                }
                std::thread::sleep(Duration::from_millis(30));
                stats.lock().unwrap()[0] -= 1;
                sem.release().unwrap();
            })
        })
        .collect::<Result<_, _>>()?;
    for w in workers {
        w.join()?;
    }
    println!("at most {} of 8 workers were inside at once", stats.get(1)?);
    Ok(())
}
