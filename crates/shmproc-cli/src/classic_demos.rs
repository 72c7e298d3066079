//! The seeds' small demos: processes that sleep together (or in turn), a shared `Value` and
//! `Array` changed by children, and `cpu_count` / `current_process`. Each prints its story.

use std::time::{Duration, Instant};

use shmproc::{cpu_count, current_process, Array, Process, Value};

type DemoResult = Result<(), Box<dyn std::error::Error>>;

/// How long each sleeper sleeps (the seeds' 1.5 s, shortened so the sequential run stays short).
const NAP: Duration = Duration::from_millis(300);

fn sleeper(id: usize) -> Result<Process, std::io::Error> {
    Process::fork(move || {
        println!("  {id}--going to sleep, pid {}", current_process().pid);
        std::thread::sleep(NAP);
        println!("  {id}--woke up");
    })
}

/// Starts `n` sleepers together and joins them: about one nap in all.
fn together(n: usize) -> Result<Duration, Box<dyn std::error::Error>> {
    let start = Instant::now();
    let sleepers = (0..n).map(sleeper).collect::<Result<Vec<_>, _>>()?;
    for s in sleepers {
        s.join()?;
    }
    Ok(start.elapsed())
}

/// The seeds' sleepers: 2, then 10 processes each sleep; started together they take one nap,
/// joined inside the start loop they run one after another.
///
/// # Errors
/// When a process cannot be forked or joined.
pub fn sleepers() -> DemoResult {
    for n in [2, 10] {
        println!("{n} processes, each sleeping {NAP:?}, started together:");
        let wall = together(n)?;
        println!("Main process took {:.2} s", wall.as_secs_f64());
    }
    println!("10 processes with join inside the start loop (one after another):");
    let start = Instant::now();
    for id in 0..10 {
        sleeper(id)?.join()?;
    }
    println!(
        "Main process took {:.2} s: join waits, so start them all first",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The seeds' `Value('i', 0)` incremented by two children and `Array('i', [1, 2, 3])` changed
/// by a child: the parent sees every change.
///
/// # Errors
/// When shared memory or a process cannot be created.
pub fn value_array() -> DemoResult {
    let counter = Value::new(0_i32)?;
    let numbers = Array::from_slice(&[1_i32, 2, 3])?;
    let children = (0..2)
        .map(|_| {
            let counter = counter.clone();
            Process::fork(move || {
                for _ in 0..1000 {
                    *counter.lock().expect("counter lock") += 1;
                }
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let a = numbers.clone();
    let squarer = Process::fork(move || {
        for x in a.lock().expect("array lock").iter_mut() {
            *x *= *x;
        }
    })?;
    for c in children.into_iter().chain([squarer]) {
        c.join()?;
    }
    println!(
        "Value incremented 1000 times by each of two children: {}",
        counter.get()?
    );
    println!(
        "Array [1, 2, 3] squared in place by a child:          {:?}",
        numbers.to_vec()?
    );
    Ok(())
}

/// `cpu_count()` and `current_process()` in the parent and in a child.
///
/// # Errors
/// When the child cannot be forked.
pub fn cpu_info() -> DemoResult {
    println!("cpu_count(): {}", cpu_count());
    let me = current_process();
    println!("parent: name {}, pid {}", me.name, me.pid);
    let child = Process::fork(|| {
        let me = current_process();
        println!("child:  name {}, pid {}", me.name, me.pid);
    })?;
    child.join()?;
    Ok(())
}
