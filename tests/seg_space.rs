//! A named segment larger than the room left in `/dev/shm` is an error from `create`, never a
//! SIGBUS at the first write (Docker's `/dev/shm` is 64 MiB by default).
//!
//! The test re-runs this test binary in a private mount namespace whose `/dev/shm` is a 1 MiB
//! tmpfs (`unshare -m`, root or a user namespace needed; skipped with a message elsewhere) and
//! checks the helper's exit status: death by SIGBUS fails the test.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use shmproc::{Array, SegmentError};

/// Environment variable that turns [`space_helper`] on (it does nothing in a normal run).
const HELPER_ENV: &str = "SHMPROC_SEG_SPACE_HELPER";
/// What the helper prints once all its checks passed.
const DONE: &str = "seg-space-helper: done";

#[test]
fn named_segment_larger_than_dev_shm_is_a_create_error_not_sigbus() {
    let probe = Command::new("unshare")
        .args(["-m", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /dev/shm"])
        .output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        println!(
            "skipped: cannot mount a private tmpfs over /dev/shm here (`unshare -m` needs root \
             or user namespaces): {probe:?}"
        );
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("unshare")
        .args([
            "-m",
            "sh",
            "-c",
            "mount -t tmpfs -o size=1m tmpfs /dev/shm && \
             exec \"$0\" --exact space_helper --nocapture --test-threads=1",
        ])
        .arg(&exe)
        .env(HELPER_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(
        out.status.signal(),
        Some(libc::SIGBUS),
        "the helper died of SIGBUS\n{stdout}\n{stderr}"
    );
    assert!(out.status.success(), "{}\n{stdout}\n{stderr}", out.status);
    assert!(
        stdout.contains(DONE),
        "the helper did not run\n{stdout}\n{stderr}"
    );
}

/// Runs inside the private mount namespace (see above): `/dev/shm` holds 1 MiB.
#[test]
fn space_helper() {
    if std::env::var_os(HELPER_ENV).is_none() {
        return;
    }
    // A segment that fits works, and its memory is really there.
    let small = Array::<u8>::create_zeroed("seg-space-small", 64 << 10).unwrap();
    small.lock().unwrap().fill(1);
    assert_eq!(small.get(65_535).unwrap(), 1);

    // Four times the whole tmpfs: refused at creation (before, this succeeded and the writes
    // below died of SIGBUS).
    let bytes = 4 << 20;
    match Array::<u8>::create_zeroed("seg-space-big", bytes) {
        Err(e @ SegmentError::NoSpace { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("/dev/shm has no room for") && text.contains("seg-space-big"),
                "{text}"
            );
            println!("seg-space-helper: create said: {text}");
            let io: std::io::Error = e.into();
            assert_ne!(io.kind(), std::io::ErrorKind::InvalidData);
        }
        Err(e) => panic!("expected NoSpace, got {e:?}"),
        Ok(big) => {
            big.lock().unwrap().fill(1); // SIGBUS here if nothing was reserved
            panic!("a {bytes}-byte segment was created in a 1 MiB /dev/shm");
        }
    }
    // Nothing is left behind, and the room is still there for a segment that fits.
    let left: Vec<_> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains("seg-space-big"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let again = Array::<u8>::create_zeroed("seg-space-again", 256 << 10).unwrap();
    again.lock().unwrap().fill(2);
    drop((small, again));
    println!("{DONE}");
}
