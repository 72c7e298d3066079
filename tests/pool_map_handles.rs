//! `Pool::map` with anonymous handles in its items: each handle travels as a descriptor, and a
//! job frame carries a bounded number of them, so `map` splits its chunks by that budget too.

use shmproc::{Pool, ProcessError, Value, WorkerKind};

#[shmproc::entry]
fn read_value(v: Value<u64>) -> u64 {
    v.get().unwrap()
}

#[shmproc::entry]
fn sum_values(values: Vec<Value<u64>>) -> u64 {
    values.iter().map(|v| v.get().unwrap()).sum()
}

#[test]
fn map_over_300_anonymous_values() {
    let values: Vec<Value<u64>> = (0..300).map(|n| Value::new(n).unwrap()).collect();
    let expected: Vec<u64> = (0..300).collect();
    for kind in [WorkerKind::Spawned, WorkerKind::Forked] {
        for workers in [1, 2] {
            let pool = Pool::with_kind(workers, kind).unwrap();
            let got = pool.map(read_value, values.iter().cloned());
            assert_eq!(got.unwrap(), expected, "{kind:?}, {workers} workers");
        }
    }
}

#[test]
fn map_over_items_carrying_many_handles_each() {
    // Twelve items of 30 handles: three items per chunk by count would carry 90 descriptors.
    let items: Vec<Vec<Value<u64>>> = (0..12)
        .map(|i| (0..30).map(|j| Value::new(i * 100 + j).unwrap()).collect())
        .collect();
    let expected: Vec<u64> = (0..12)
        .map(|i| (0..30).map(|j| i * 100 + j).sum())
        .collect();
    let pool = Pool::new(1).unwrap();
    assert_eq!(pool.map(sum_values, items).unwrap(), expected);

    // One item over the limit on its own is an error, and nothing of the map runs.
    let too_many: Vec<Value<u64>> = (0..300).map(|n| Value::new(n).unwrap()).collect();
    let items = vec![Vec::new(), too_many, Vec::new()];
    match pool.map(sum_values, items) {
        Err(ProcessError::Encode(message)) => assert!(message.contains("300"), "{message}"),
        other => panic!("expected an Encode error, got {other:?}"),
    }
    assert_eq!(pool.map(sum_values, [Vec::new()]).unwrap(), [0]);
}
