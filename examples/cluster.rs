//! The same Pool on many hosts, tried out on one: a throwaway redis-server, two worker
//! processes (copies of this example started with `SHMPROC_WORKER`), and the local pool's calls
//! on a broker pool. Needs redis-server on the PATH.
//!
//! ```sh
//! cargo run --example cluster --features cluster
//! ```
//! On real hosts, skip `LocalRedis` and `spawn_local`: point the pool at your Redis and start
//! `SHMPROC_WORKER='redis://host:6379/0?queue=demo' ./cluster` on each worker host.

use std::time::Duration;

use shmproc::cluster::{BrokerExt, LocalRedis, Worker};
use shmproc::Pool;

#[shmproc::entry]
fn square(n: u64) -> u64 {
    n * n
}

#[shmproc::entry]
fn worker_pid(_: ()) -> String {
    format!("pid {}", std::process::id())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let redis = LocalRedis::start()?;
    let worker = Worker::new(&redis.url()).queue("demo").threads(2);
    let mut workers = vec![worker.spawn_local()?, worker.spawn_local()?];

    // let pool = Pool::new(4)?;   // the local pool: the one line that changes
    let pool = Pool::builder()
        .workers(4)
        .broker(&redis.url())
        .queue("demo")
        .build()?;

    let squares = pool.map(square, 0..10_000)?;
    println!(
        "map: {} squares, the last {}",
        squares.len(),
        squares[9_999]
    );
    let first: Vec<u64> = pool.imap(square, 0..5)?.collect::<Result<_, _>>()?;
    println!("imap: {first:?}");
    let task = pool.submit(worker_pid, ())?;
    println!(
        "submit: ran in worker {}",
        task.wait_timeout(Duration::from_secs(10))?
    );
    pool.shutdown()?;

    for w in &mut workers {
        w.kill()?;
        w.wait()?;
    }
    Ok(())
}
