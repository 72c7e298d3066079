//! The element type check covers the full type name and layout, and capacities read from a
//! header are bounded before use.

mod common;

use std::collections::HashMap;
use std::io::{Seek, SeekFrom, Write};
use std::time::Duration;

use common::{leftovers, unique};
use shmproc::{Array, Process, Queue, SegmentError, Shareable, Value};

fn shm_path(name: &str) -> String {
    format!("/dev/shm/shmproc.{name}")
}

#[test]
fn queue_of_a_type_with_the_same_48_byte_name_prefix_is_refused() {
    let name = unique("hashmap");
    let q = Queue::<HashMap<String, String>>::create(&name).unwrap();
    let n = name.clone();
    let child = Process::fork(move || {
        // "std::collections::hash::map::HashMap<alloc::stri…": the old check compared these
        // 48 bytes (plus size 0 and alignment 1) and let this open succeed.
        let err = Queue::<HashMap<String, u64>>::open(&n).unwrap_err();
        assert!(matches!(err, SegmentError::WrongType { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("HashMap<alloc::string::String, u64>"),
            "{text}"
        );
        // The right type still opens.
        Queue::<HashMap<String, String>>::open(&n).unwrap();
    })
    .unwrap();
    let status = child.join_timeout(Duration::from_secs(30)).unwrap();
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    drop(q);
    assert!(
        leftovers("hashmap").is_empty(),
        "{:?}",
        leftovers("hashmap")
    );
}

/// Two element types of one size whose names agree on their first 48 bytes.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
struct Celsius(f64);
// SAFETY: one f64, no padding, every bit pattern valid.
unsafe impl Shareable for Celsius {
    fn type_name() -> &'static str {
        "weather_station::sensors::calibrated::readings::Celsius"
    }
}

#[derive(Debug, Clone, Copy)]
#[repr(C)]
struct Fahrenheit(f64);
// SAFETY: one f64, no padding, every bit pattern valid.
unsafe impl Shareable for Fahrenheit {
    fn type_name() -> &'static str {
        "weather_station::sensors::calibrated::readings::Fahrenheit"
    }
}

#[test]
fn value_of_a_type_with_the_same_name_prefix_and_layout_is_refused() {
    assert_eq!(Celsius::type_name()[..48], Fahrenheit::type_name()[..48]);
    let name = unique("celsius");
    let v = Value::create(&name, Celsius(21.5)).unwrap();
    let err = Value::<Fahrenheit>::open(&name).unwrap_err();
    assert!(matches!(err, SegmentError::WrongType { .. }), "{err:?}");
    assert_eq!(
        Value::<Celsius>::open(&name).unwrap().get().unwrap().0,
        21.5
    );
    drop(v);
    assert!(
        leftovers("celsius").is_empty(),
        "{:?}",
        leftovers("celsius")
    );
}

#[test]
fn payload_lengths_from_a_header_are_bounded() {
    const PAYLOAD_LEN_AT: u64 = 24; // header: magic 8, version 4, kind 4, size 4, align 4
    let name = unique("bounds");
    let a = Array::<u32>::create(&name, &[1, 2, 3, 4]).unwrap();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(shm_path(&name))
        .unwrap();
    let mut claim = |len: u64| {
        file.seek(SeekFrom::Start(PAYLOAD_LEN_AT)).unwrap();
        file.write_all(&len.to_ne_bytes()).unwrap();
        Array::<u32>::open(&name).map(|a| a.len())
    };
    let real = std::mem::size_of::<shmproc::RawLock>() as u64 + 16;
    assert_eq!(claim(real).unwrap(), 4);
    // More than the file holds, up to overflowing: truncated, never a mapping overrun.
    for len in [real + 4096 * 1024, u64::MAX - 64, u64::MAX] {
        let err = claim(len).unwrap_err();
        assert!(
            matches!(err, SegmentError::Truncated { .. }),
            "{len}: {err:?}"
        );
    }
    // Less than the lock, or not a whole number of elements: corrupt, not a shorter array.
    for len in [0, 8, real - 2, real - 1] {
        let err = claim(len).unwrap_err();
        assert!(
            matches!(err, SegmentError::Corrupt { .. }),
            "{len}: {err:?}"
        );
    }
    drop(a);
    assert!(leftovers("bounds").is_empty(), "{:?}", leftovers("bounds"));
}
