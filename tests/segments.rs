//! Named segments: open from another process; every bad open is a typed error, never a crash;
//! nothing is left in /dev/shm.

mod common;

use std::io::{Seek, SeekFrom, Write};

use common::{assert_killed, die_now, leftovers, unique};
use shmproc::{Array, Lock, Process, SegmentError, Value};

fn shm_path(name: &str) -> String {
    format!("/dev/shm/shmproc.{name}")
}

#[test]
fn named_value_is_opened_and_changed_by_another_process() {
    let name = unique("open");
    let v = Value::create(&name, 7_i64).unwrap();
    let child_name = name.clone();
    let child = Process::fork(move || {
        let mine = Value::<i64>::open(&child_name).unwrap();
        mine.set(mine.get().unwrap() * 6).unwrap();
    })
    .unwrap();
    assert!(child.join().unwrap().success());
    assert_eq!(v.get().unwrap(), 42);
    let arr = Array::create(&unique("open-arr"), &[1_u16, 2, 3]).unwrap();
    let again = Array::<u16>::open(arr.name().unwrap()).unwrap();
    again.set(2, 30).unwrap();
    assert_eq!(arr.to_vec().unwrap(), vec![1, 2, 30]);
    drop((v, arr, again));
    assert!(leftovers("open").is_empty(), "{:?}", leftovers("open"));
}

#[test]
fn bad_opens_give_typed_errors() {
    let name = unique("bad");
    let _v = Value::create(&name, 1_i64).unwrap();
    assert!(matches!(
        Value::<u32>::open(&name),
        Err(SegmentError::WrongType { .. })
    ));
    assert!(matches!(
        Value::<f64>::open(&name),
        Err(SegmentError::WrongType { .. })
    ));
    assert!(matches!(
        Array::<i64>::open(&name),
        Err(SegmentError::WrongKind { .. })
    ));
    assert!(matches!(
        Lock::open(&name),
        Err(SegmentError::WrongKind { .. })
    ));
    assert!(matches!(
        Value::<i64>::open(&unique("missing")),
        Err(SegmentError::NotFound { .. })
    ));
    let dup = Value::create(&name, 2_i64).unwrap_err();
    assert!(matches!(dup, SegmentError::AlreadyExists { .. }));
    assert!(dup.to_string().contains("exists"), "{dup}");
    for bad in ["", "a/b", "white space", &"x".repeat(41), "ünïcode"] {
        assert!(
            matches!(Lock::create(bad), Err(SegmentError::InvalidName { .. })),
            "{bad:?}"
        );
    }
}

#[test]
fn garbage_headers_and_truncated_files_are_errors_not_crashes() {
    let name = unique("garbage");
    let v = Value::create(&name, 5_i64).unwrap();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(shm_path(&name))
        .unwrap();
    // A wrong layout version only.
    file.seek(SeekFrom::Start(8)).unwrap();
    file.write_all(&99_u32.to_ne_bytes()).unwrap();
    assert!(matches!(
        Value::<i64>::open(&name),
        Err(SegmentError::Version { found: 99, .. })
    ));
    // The whole header overwritten with garbage.
    file.seek(SeekFrom::Start(0)).unwrap();
    file.write_all(&[0xAB; 128]).unwrap();
    let err = Value::<i64>::open(&name).unwrap_err();
    assert!(matches!(err, SegmentError::Corrupt { .. }), "{err}");
    drop(v);
    // The garbage also set the header's persist flag, so the creator's drop kept the file.
    shmproc::raw::remove(&name).unwrap();

    // A file too short for a header (as if a creator died before sizing it); private, as
    // `open` refuses files that group or others may access before reading anything.
    let short = unique("garbage-short");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(shm_path(&short))
            .unwrap();
        f.write_all(&[1_u8; 10]).unwrap();
    }
    assert!(matches!(
        Value::<i64>::open(&short),
        Err(SegmentError::Truncated { .. })
    ));
    shmproc::raw::remove(&short).unwrap();

    // A header claiming more payload than the file has.
    let big = unique("garbage-big");
    let a = Array::<u8>::create(&big, &[0; 16]).unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(shm_path(&big))
        .unwrap();
    f.set_len(100).unwrap();
    assert!(matches!(
        Array::<u8>::open(&big),
        Err(SegmentError::Truncated { .. })
    ));
    drop(a);
    assert!(
        leftovers("garbage").is_empty(),
        "{:?}",
        leftovers("garbage")
    );
}

#[test]
fn only_the_creating_process_unlinks_and_persist_keeps_it() {
    let name = unique("life");
    let v = Value::create(&name, 1_u32).unwrap();
    let copy = v.clone();
    let child = Process::fork(move || drop(copy)).unwrap();
    assert!(child.join().unwrap().success());
    assert!(
        std::fs::metadata(shm_path(&name)).is_ok(),
        "a child's drop unlinked"
    );
    drop(v);
    assert!(std::fs::metadata(shm_path(&name)).is_err(), "not unlinked");

    let kept = unique("life-kept");
    let v = Value::create(&kept, 1_u32).unwrap();
    v.persist();
    drop(v);
    assert_eq!(Value::<u32>::open(&kept).unwrap().get().unwrap(), 1);
    shmproc::raw::remove(&kept).unwrap();
    assert!(leftovers("life").is_empty(), "{:?}", leftovers("life"));
}

#[test]
fn segments_of_crashed_creators_are_listed_stale_and_cleaned() {
    let name = unique("crash");
    let child_name = name.clone();
    let child = Process::fork(move || {
        let _v = Value::create(&child_name, 9_i64).unwrap();
        die_now(); // no destructor runs: the file stays behind
    })
    .unwrap();
    assert_killed(child.join().unwrap());
    let listed = shmproc::raw::list().unwrap();
    let info = listed
        .iter()
        .find(|s| s.name == name)
        .expect("crashed segment listed");
    assert!(info.is_stale());
    let removed = shmproc::raw::clean().unwrap();
    assert!(removed.iter().any(|s| s.name == name));
    assert!(leftovers("crash").is_empty(), "{:?}", leftovers("crash"));
}
