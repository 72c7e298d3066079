//! The seeds' `Pool` / `ProcessPoolExecutor` demo and the `calc_square` / `calc_cube` pair, as
//! spawned processes. Each function prints its story.

use std::time::{Duration, Instant};

use shmproc::{as_completed, cpu_count, current_process, Pool, Process, ProcessError};

type DemoResult = Result<(), Box<dyn std::error::Error>>;

/// Sleeps `ms` milliseconds in a pool worker and says who ran it.
#[shmproc::entry]
pub fn sleep_task((label, ms): (u32, u64)) -> (u32, u32) {
    std::thread::sleep(Duration::from_millis(ms));
    (label, current_process().pid)
}

/// `n * n`, slowly enough to see the workers share the work.
#[shmproc::entry]
pub fn slow_square(n: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(50));
    n * n
}

/// CPU-bound busy work: `rounds` steps of a multiply-add chain the optimizer cannot skip.
#[shmproc::entry]
pub fn spin(rounds: u64) -> u64 {
    (0..rounds).fold(0_u64, |x, i| {
        std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i))
    })
}

/// The seed's `calc_square`: prints the square of each number, half a second apart.
#[shmproc::entry]
pub fn calc_square(numbers: Vec<u64>) -> u64 {
    numbers
        .iter()
        .map(|n| {
            std::thread::sleep(Duration::from_millis(500));
            println!("Square of {n}: {}", n * n);
            n * n
        })
        .sum()
}

/// The seed's `calc_cube`: prints the cube of each number, half a second apart.
#[shmproc::entry]
pub fn calc_cube(numbers: Vec<u64>) -> u64 {
    numbers
        .iter()
        .map(|n| {
            std::thread::sleep(Duration::from_millis(500));
            println!("Cube of {n}: {}", n * n * n);
            n * n * n
        })
        .sum()
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// `shmproc demo pool`: ten 1-second tasks on `cpu_count()` workers, `as_completed` in
/// finishing order, `map` in input order, a `wait_timeout` that times out, and threads vs
/// processes for CPU-bound and sleeping tasks.
///
/// # Errors
/// When the pool cannot start or a task fails.
pub fn pool() -> DemoResult {
    let workers = cpu_count();
    let pool = Pool::new(workers)?;
    println!("A pool of {workers} spawned worker processes (cpu_count()).");

    println!("\n1. Ten tasks that each sleep 1 s, submitted at once:");
    let start = Instant::now();
    let tasks = (1..=10)
        .map(|n| pool.submit(sleep_task, (n, 1000)))
        .collect::<Result<Vec<_>, _>>()?;
    for result in as_completed(tasks) {
        let (label, pid) = result?;
        println!(
            "   task {label:>2} done in worker {pid} at {}",
            secs(start.elapsed())
        );
    }
    println!(
        "   all ten in {} (ceil(10 / {workers}) = {} s; one process would take 10 s)",
        secs(start.elapsed()),
        10_usize.div_ceil(workers)
    );

    println!("\n2. as_completed yields in finishing order: task n sleeps (6 - n) x 150 ms:");
    let start = Instant::now();
    let tasks = (1..=5)
        .map(|n| pool.submit(sleep_task, (n, (6 - u64::from(n)) * 150)))
        .collect::<Result<Vec<_>, _>>()?;
    let order = as_completed(tasks)
        .map(|r| r.map(|(label, _)| label.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    println!(
        "   submitted 1 2 3 4 5, finished {} ({})",
        order.join(" "),
        secs(start.elapsed())
    );

    println!("\n3. map keeps input order, whichever worker finishes first:");
    let start = Instant::now();
    let squares = pool.map(slow_square, 1..=10)?;
    println!(
        "   map(slow_square, 1..=10) = {squares:?} ({})",
        secs(start.elapsed())
    );

    println!("\n4. A timeout is an error you can catch; the task stays waitable:");
    let task = pool.submit(sleep_task, (99, 1000))?;
    match task.wait_timeout(Duration::from_millis(200)) {
        Err(ProcessError::Timeout) => println!("   wait_timeout(200 ms): timed out, as expected"),
        other => println!("   wait_timeout(200 ms): unexpected {other:?}"),
    }
    let (label, _) = task.wait()?;
    println!("   wait() afterwards: task {label} finished");

    threads_vs_processes(&pool)?;
    pool.shutdown()?;
    Ok(())
}

/// Step 5 of the pool demo: the same calls on `Pool::threads` and on the process pool, for
/// CPU-bound and for sleeping tasks (seed 001's ThreadPoolExecutor / ProcessPoolExecutor).
fn threads_vs_processes(processes: &Pool) -> DemoResult {
    let workers = processes.size();
    let threads = Pool::threads(workers)?;
    let n = 2 * workers;
    // About 100 ms of work per task on this machine, measured here in one thread.
    let start = Instant::now();
    spin(10_000_000);
    let per_ten_million = start.elapsed().max(Duration::from_micros(1));
    let rounds = (10_000_000.0 * 0.1 / per_ten_million.as_secs_f64()) as u64;
    let start = Instant::now();
    spin(rounds);
    let one_task = start.elapsed();
    let time = |pool: &Pool, work: &dyn Fn(&Pool) -> Result<(), ProcessError>| {
        let start = Instant::now();
        work(pool).map(|()| start.elapsed())
    };
    let cpu = |pool: &Pool| pool.map_chunked(spin, vec![rounds; n], 1).map(drop);
    let nap = |pool: &Pool| {
        pool.map_chunked(sleep_task, (0..n as u32).map(|i| (i, 100)), 1)
            .map(drop)
    };
    let (cpu_t, cpu_p) = (time(&threads, &cpu)?, time(processes, &cpu)?);
    let (nap_t, nap_p) = (time(&threads, &nap)?, time(processes, &nap)?);
    println!("\n5. The same calls on Pool::threads({workers}) (ThreadPoolExecutor) and on the processes:");
    println!(
        "   cpu-bound x{n} ({} each alone): threads {}, processes {}",
        secs(one_task),
        secs(cpu_t),
        secs(cpu_p)
    );
    println!(
        "   sleeping  x{n} (100 ms each):  threads {}, processes {}",
        secs(nap_t),
        secs(nap_p)
    );
    let sequential = one_task * n as u32;
    let speedup = |d: Duration| sequential.as_secs_f64() / d.as_secs_f64().max(1e-9);
    println!(
        "   one thread would take ~{} for the cpu-bound ones: threads x{:.1}, processes x{:.1} \
         faster here",
        secs(sequential),
        speedup(cpu_t),
        speedup(cpu_p)
    );
    println!(
        "   Rust threads hold no GIL: CPU-bound work scales on threads as on processes, up to \
         the cores free right now (Python's threads would stay at x1.0). Sleeping tasks \
         overlap on either. Processes buy isolation (a crash fails one task); threads save \
         start-up and copying."
    );
    threads.shutdown()?;
    Ok(())
}

/// `shmproc demo square-cube`: the seed's two processes, interleaved, vs running sequentially.
///
/// # Errors
/// When a process cannot start or fails.
pub fn square_cube() -> DemoResult {
    let numbers = vec![2, 3, 8];
    println!("calc_square and calc_cube over {numbers:?} in two spawned processes:");
    let start = Instant::now();
    let p1 = Process::spawn(calc_square, numbers.clone())?;
    let p2 = Process::spawn(calc_cube, numbers.clone())?;
    let (squares, cubes) = (p1.join_result()?, p2.join_result()?);
    let parallel = start.elapsed();
    println!("Done! (sum of squares {squares}, sum of cubes {cubes})");

    println!("\nThe same two calls one after the other in this process:");
    let start = Instant::now();
    calc_square(numbers.clone());
    calc_cube(numbers);
    let sequential = start.elapsed();
    println!(
        "\ntwo processes: {}   sequential: {}   ({:.1}x faster)",
        secs(parallel),
        secs(sequential),
        sequential.as_secs_f64() / parallel.as_secs_f64()
    );
    Ok(())
}
