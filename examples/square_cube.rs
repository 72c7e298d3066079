//! The seeds' `calc_square` / `calc_cube` pair as two spawned processes: their output
//! interleaves, and together they take half the time of running one after the other.
//!
//! Run: `cargo run --release --example square_cube`

use std::time::{Duration, Instant};

use shmproc::Process;

#[shmproc::entry]
fn calc_square(numbers: Vec<u64>) {
    for n in numbers {
        std::thread::sleep(Duration::from_millis(500));
        println!("Square of {n}: {}", n * n);
    }
}

#[shmproc::entry]
fn calc_cube(numbers: Vec<u64>) {
    for n in numbers {
        std::thread::sleep(Duration::from_millis(500));
        println!("Cube of {n}: {}", n * n * n);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arr = vec![2, 3, 8];
    let start = Instant::now();
    let p1 = Process::spawn(calc_square, arr.clone())?;
    let p2 = Process::spawn(calc_cube, arr)?;
    p1.join_result()?;
    p2.join_result()?;
    println!(
        "Done! in {:.2} s (one after the other: 3 s)",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
