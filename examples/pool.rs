//! The seeds' `Pool` / `ProcessPoolExecutor`: `map` in input order, `submit` + `as_completed`
//! in finishing order, a `wait_timeout` that times out, a worker that dies without taking
//! the pool down, `imap` over an endless input, `cancel`, `wait_any`, and the same calls on
//! threads.
//!
//! Run: `cargo run --release --example pool`

use std::time::{Duration, Instant};

use shmproc::{as_completed, Pool, ProcessError};

#[shmproc::entry]
fn square(n: u64) -> u64 {
    n * n
}

#[shmproc::entry]
fn sleepy(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[shmproc::entry]
fn crash() {
    std::process::abort()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = Pool::new(4)?;
    println!("map:          {:?}", pool.map(square, 1..=10)?);

    let start = Instant::now();
    let tasks = [500, 400, 300, 200, 100]
        .into_iter()
        .map(|ms| pool.submit(sleepy, ms))
        .collect::<Result<Vec<_>, _>>()?;
    let finished = as_completed(tasks).collect::<Result<Vec<_>, _>>()?;
    println!(
        "as_completed: {finished:?} ({:.2} s)",
        start.elapsed().as_secs_f64()
    );

    let slow = pool.submit(sleepy, 1000)?;
    match slow.wait_timeout(Duration::from_millis(100)) {
        Err(ProcessError::Timeout) => println!("wait_timeout: timed out after 100 ms"),
        other => println!("wait_timeout: {other:?}"),
    }
    println!("wait:         {} ms", slow.wait()?);

    match pool.submit(crash, ())?.wait() {
        Err(e) => println!("crash:        {e}"),
        Ok(()) => println!("crash:        did not crash?"),
    }
    println!("map again:    {:?}", pool.map(square, 1..=5)?);

    let first: Vec<u64> = pool.imap(square, 1..)?.take(5).collect::<Result<_, _>>()?;
    println!("imap(1..):    {first:?} (an endless input, pulled as consumed)");
    let queued = pool.submit(sleepy, 1)?;
    let _busy = [1000, 1000, 1000, 1000].map(|ms| pool.submit(sleepy, ms));
    let behind = pool.submit(sleepy, 1)?;
    println!(
        "cancel:       {} (queued behind four 1 s tasks)",
        behind.cancel()
    );
    println!(
        "wait_any:     index {}",
        shmproc::wait_any(&[queued], Duration::from_secs(10))?
    );

    let threads = Pool::threads(4)?; // ThreadPoolExecutor: the same entries and calls
    println!("threads map:  {:?}", threads.map(square, 1..=5)?);
    pool.terminate()?;
    Ok(())
}
