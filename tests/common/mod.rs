//! Helpers shared by the multi-process integration tests.
#![allow(dead_code)]

pub mod blocking;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shmproc::raw::{Segment, SharedRef, Spec, TypeInfo};
use shmproc::Kind;

/// A flag in an anonymous segment, shared with children forked afterwards.
pub fn flag() -> SharedRef<AtomicU32> {
    let spec = Spec {
        kind: Kind::Raw,
        elem: TypeInfo::none(),
        payload_len: 64,
    };
    let seg = Segment::create_anonymous(&spec, |_| Ok(())).expect("anonymous segment");
    SharedRef::new(Arc::new(seg), 0).expect("flag")
}

/// Waits (bounded, so a bug fails instead of hanging) until `flag` is at least `value`.
pub fn wait_for(flag: &AtomicU32, value: u32) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while flag.load(Ordering::Acquire) < value {
        assert!(Instant::now() < deadline, "timed out waiting for a child");
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// A segment name unique to this test process and `label`.
pub fn unique(label: &str) -> String {
    format!("t{}-{label}", std::process::id())
}

/// Names of shmproc files in /dev/shm that start with this test process's prefix + `label`.
pub fn leftovers(label: &str) -> Vec<String> {
    let prefix = format!("shmproc.{}", unique(label));
    std::fs::read_dir("/dev/shm")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts that no segment of `label` is left, waiting (bounded) for it to go: the last
/// reference to a dropped handle may be released a moment later by a background thread of
/// this process (the watcher looking at sleeping ends, a fork handler), which then unlinks it.
pub fn assert_no_leftovers(label: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !leftovers(label).is_empty() {
        assert!(
            Instant::now() < deadline,
            "left over: {:?}",
            leftovers(label)
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Kills the calling process with SIGKILL, at once (simulates a crash at this exact point).
pub fn die_now() -> ! {
    // SAFETY: raising a signal in our own process; SIGKILL cannot be caught and never returns.
    unsafe { libc::raise(libc::SIGKILL) };
    unreachable!("SIGKILL returned")
}

/// Asserts that `status` is death by SIGKILL.
pub fn assert_killed(status: std::process::ExitStatus) {
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL), "status: {status}");
}
