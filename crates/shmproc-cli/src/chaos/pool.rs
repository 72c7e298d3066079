//! The Pool scenario: a worker is SIGKILLed, usually while it runs a task.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use shmproc::{Array, LockError, Pool, ProcessError, WorkerKind};

use super::harness::{spin_for, Setup, GRACE, PATIENCE};
use super::kids::kill_own_child;
use super::tally::{Problem, Trial};

/// Notes `value` at `index` of `board`, taking over the lock if a killed worker held it.
fn note(board: &Array<u64>, index: usize, value: u64) {
    match board.lock_timeout(PATIENCE) {
        Ok(mut g) | Err(LockError::OwnerDied(mut g)) => g[index] = value,
        Err(_) => {}
    }
}

/// What a chaos task returns for `input`.
fn answer(input: u64) -> u64 {
    input.wrapping_mul(0x2545_F491_4F6C_DD1D).rotate_left(17) ^ input
}

/// A chaos pool task: notes which worker started it (`board[2 * slot]`), works for `us`
/// microseconds, notes that it finished (`board[2 * slot + 1]`) and returns `answer(input)`.
#[shmproc::entry]
pub fn chaos_task((board, slot, input, us): (Array<u64>, u32, u64, u64)) -> u64 {
    let slot = slot as usize;
    note(&board, 2 * slot, u64::from(std::process::id()));
    spin_for(us);
    note(&board, 2 * slot + 1, 1);
    answer(input)
}

/// Tasks go to a pool of two workers (forked or spawned); 0–20 ms later a worker that is
/// running a task (else any worker that ran one) is SIGKILLed. At most that worker's one task
/// may fail, with `WorkerDied` naming it; every other result must be right, nothing may hang,
/// and the pool must shut down.
pub(crate) fn pool(t: &mut Trial<'_>) -> Setup {
    let kind = if t.rng.chance(50) {
        WorkerKind::Forked
    } else {
        WorkerKind::Spawned
    };
    let pool = Pool::with_kind(2, kind)?;
    let n = t.rng.range(4, 10) as usize;
    let board = Array::<u64>::zeroed(2 * n)?;
    let inputs: Vec<u64> = (0..n).map(|_| t.rng.next()).collect();
    let tasks = inputs
        .iter()
        .enumerate()
        .map(|(i, &input)| {
            let us = t.rng.range(0, 4000);
            pool.submit(chaos_task, (board.clone(), i as u32, input, us))
        })
        .collect::<Result<Vec<_>, _>>()?;
    std::thread::sleep(Duration::from_micros(t.rng.range(0, 20_000)));
    let snapshot = match board.lock_timeout(PATIENCE) {
        Ok(g) | Err(LockError::OwnerDied(g)) => g.to_vec(),
        Err(e) => {
            t.problem(Problem::Hang, format!("reading the board: {e}"));
            return Ok(());
        }
    };
    let running: Vec<u64> = snapshot
        .chunks(2)
        .filter(|c| c[0] != 0 && c[1] == 0)
        .map(|c| c[0])
        .collect();
    let started: Vec<u64> = snapshot
        .chunks(2)
        .map(|c| c[0])
        .filter(|&p| p != 0)
        .collect();
    let pick = if running.is_empty() {
        &started
    } else {
        &running
    };
    let victim = (!pick.is_empty())
        .then(|| t.rng.pick(pick))
        .filter(|&pid| kill_own_child(pid as u32));
    t.counts.kills += u64::from(victim.is_some());

    let deadline = Instant::now() + GRACE;
    let outcomes: Vec<Result<u64, ProcessError>> = tasks
        .iter()
        .map(|task| task.wait_timeout(deadline.saturating_duration_since(Instant::now())))
        .collect();
    let ran_on = match board.lock_timeout(PATIENCE) {
        Ok(g) | Err(LockError::OwnerDied(g)) => g.to_vec(),
        Err(e) => {
            t.problem(Problem::Hang, format!("reading the board: {e}"));
            return Ok(());
        }
    };
    let mut died = 0;
    for (i, (outcome, input)) in outcomes.into_iter().zip(&inputs).enumerate() {
        match outcome {
            Ok(v) if v == answer(*input) => t.counts.acked += 1,
            Ok(v) => t.problem(Problem::Unexpected, format!("task {i} returned {v:#x}")),
            Err(ProcessError::WorkerDied { pid, how }) => {
                died += 1;
                t.counts.worker_died += 1;
                let ran_on = ran_on[2 * i];
                if victim != Some(u64::from(pid)) || (ran_on != 0 && ran_on != u64::from(pid)) {
                    t.problem(
                        Problem::Unexpected,
                        format!(
                            "task {i} (started by {ran_on}) failed: worker {pid} {how}; \
                             we killed {victim:?}"
                        ),
                    );
                }
            }
            Err(ProcessError::Timeout) => t.problem(Problem::Hang, format!("task {i}")),
            Err(e) => t.problem(Problem::Unexpected, format!("task {i}: {e}")),
        }
    }
    if died > 1 {
        t.problem(Problem::Unexpected, format!("one kill failed {died} tasks"));
    }
    // A shutdown that never returns is a hang; the thread is then left behind.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(pool.shutdown().map_err(|e| e.to_string()));
    });
    match rx.recv_timeout(PATIENCE) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => t.problem(Problem::Unexpected, format!("shutdown: {e}")),
        Err(_) => t.problem(Problem::Hang, "Pool::shutdown"),
    }
    Ok(())
}
