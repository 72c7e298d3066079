//! Entry keys: two entries with the same name and signature in one module (function-local
//! entries) each run their own body; a key registered twice is reported naming both, and never
//! runs the wrong function.

use shmproc::__private::{linkme, Registered, ENTRIES};
use shmproc::{Entry, Pool, Process, ProcessError, WorkerKind};

fn key_of<E: Entry>(_: E) -> &'static str {
    E::KEY
}

/// `work` through submit, map and spawn, plus its key.
fn run_all<E: Entry<Arg = u32, Ret = u32>>(work: E, kind: WorkerKind) -> (Vec<u32>, &'static str) {
    let pool = Pool::with_kind(1, kind).unwrap();
    let mut got = vec![pool.submit(work, 1).unwrap().wait().unwrap()];
    got.extend(pool.map(work, [2, 3]).unwrap());
    got.push(Process::spawn(work, 4).unwrap().join_result().unwrap());
    (got, E::KEY)
}

fn plus_one(kind: WorkerKind) -> (Vec<u32>, &'static str) {
    #[shmproc::entry]
    fn work(x: u32) -> u32 {
        x + 1
    }
    run_all(work, kind)
}

fn times_hundred(kind: WorkerKind) -> (Vec<u32>, &'static str) {
    #[shmproc::entry]
    fn work(x: u32) -> u32 {
        x * 100
    }
    run_all(work, kind)
}

#[test]
fn function_local_entries_with_one_name_run_their_own_bodies() {
    for kind in [WorkerKind::Spawned, WorkerKind::Forked] {
        let (first, first_key) = plus_one(kind);
        let (second, second_key) = times_hundred(kind);
        assert_eq!(first, [2, 3, 4, 5], "{kind:?}");
        assert_eq!(second, [100, 200, 300, 400], "{kind:?}");
        assert_ne!(first_key, second_key);
    }
}

/// Defines, in a block of its own, an entry `constant` returning `$value`: the entry's
/// name and body come from this one place in the source.
macro_rules! constant_entry {
    ($value:expr) => {{
        #[shmproc::entry]
        fn constant() -> u32 {
            $value
        }
        constant
    }};
}

#[test]
fn entries_made_by_one_macro_in_two_places_run_their_own_bodies() {
    let seven = constant_entry!(7);
    let eight = constant_entry!(8);
    assert_ne!(key_of(seven), key_of(eight));
    let pool = Pool::new(1).unwrap();
    assert_eq!(pool.submit(seven, ()).unwrap().wait().unwrap(), 7);
    assert_eq!(pool.submit(eight, ()).unwrap().wait().unwrap(), 8);
    assert_eq!(pool.map(eight, [(), ()]).unwrap(), [8, 8]);
}

/// Two hand-made entries under one key: what the macro can no longer produce, but a
/// hand-written `Entry` impl (or a future macro bug) could.
#[derive(Clone, Copy, Debug)]
struct TwinOne;
#[derive(Clone, Copy, Debug)]
struct TwinTwo;

const TWIN_KEY: &str = "pool_entries::twin(u32) -> u32";

impl Entry for TwinOne {
    type Arg = u32;
    type Ret = u32;
    const KEY: &'static str = TWIN_KEY;
    const HANDLE: Self = TwinOne;
    fn call(self, x: u32) -> u32 {
        x + 1
    }
}

impl Entry for TwinTwo {
    type Arg = u32;
    type Ret = u32;
    const KEY: &'static str = TWIN_KEY;
    const HANDLE: Self = TwinTwo;
    fn call(self, x: u32) -> u32 {
        x * 2
    }
}

#[linkme::distributed_slice(ENTRIES)]
#[linkme(crate = shmproc::__private::linkme)]
static TWIN_ONE: Registered = Registered::of::<TwinOne>();

#[linkme::distributed_slice(ENTRIES)]
#[linkme(crate = shmproc::__private::linkme)]
static TWIN_TWO: Registered = Registered::of::<TwinTwo>();

fn assert_names_both(e: &ProcessError) {
    let message = e.to_string();
    assert!(message.contains("two entries"), "{message}");
    assert!(message.contains(TWIN_KEY), "{message}");
    assert!(message.contains("TwinOne"), "{message}");
    assert!(message.contains("TwinTwo"), "{message}");
}

#[test]
fn a_key_registered_twice_is_reported_naming_both() {
    assert_eq!(key_of(TwinOne), key_of(TwinTwo));
    let pool = Pool::new(1).unwrap();
    match pool.submit(TwinTwo, 5) {
        Err(e @ ProcessError::Failed(_)) => assert_names_both(&e),
        other => panic!("expected a duplicate-key error, got {other:?}"),
    }
    match pool.map(TwinOne, [5, 6]) {
        Err(e @ ProcessError::Failed(_)) => assert_names_both(&e),
        other => panic!("expected a duplicate-key error, got {other:?}"),
    }
    // `spawn` refuses before starting a child, naming both.
    match Process::spawn(TwinTwo, 5) {
        Err(e @ ProcessError::Failed(_)) => assert_names_both(&e),
        Err(other) => panic!("expected a duplicate-key error, got {other:?}"),
        Ok(p) => panic!("a twin was spawned: {:?}", p.join_result()),
    }
    // The pool still runs other entries.
    assert_eq!(pool.map(plus_one_entry, [1]).unwrap(), [2]);
}

#[shmproc::entry]
fn plus_one_entry(x: u32) -> u32 {
    x + 1
}
