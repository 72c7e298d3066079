//! The race and locked demos: get-then-set loses updates, a held lock never does.

use shmproc_cli::demos::{self, Update};

#[test]
fn unlocked_get_then_set_loses_updates_in_some_trial() {
    let lost: Vec<u64> = (0..5)
        .map(|_| demos::bank(Update::GetThenSet, 1_000_000, 100_000).unwrap())
        .inspect(|o| assert_eq!(o.expected, 900_400))
        .map(|o| o.lost())
        .take_while(|lost| *lost == 0)
        .collect();
    assert!(lost.len() < 5, "5 trials without a single lost update");
}

#[test]
fn locked_updates_are_exact_every_time() {
    for how in [Update::ValueLock, Update::SeparateLock] {
        for _ in 0..3 {
            let o = demos::bank(how, 200_000, 20_000).unwrap();
            assert_eq!((o.expected, o.actual), (180_400, 180_400), "{how:?}");
        }
    }
}

#[test]
fn unshared_balance_stays_400_in_the_parent() {
    assert_eq!(demos::unshared().unwrap(), 400);
}
