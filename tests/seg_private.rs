//! `open` refuses a named segment that is not private to the caller: owned by another user, or
//! readable/writable by group or others (someone could have planted it, or change it under us),
//! unless the caller opts in to sharing with a group. Checked from another process (the
//! "victim" opening by name), before anything in the file is read.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{leftovers, unique};
use shmproc::{OpenOptions, Process, SegmentError, Value};

/// `nobody` / `nogroup` on Linux.
const NOBODY: u32 = 65_534;

fn shm_path(name: &str) -> String {
    format!("/dev/shm/shmproc.{name}")
}

fn set_mode(name: &str, mode: u32) {
    std::fs::set_permissions(shm_path(name), std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Runs `check` in a forked child and asserts it succeeded.
fn in_child(check: impl FnOnce() + Send + 'static) {
    let child = Process::fork(check).unwrap();
    assert!(child.join().unwrap().success(), "the child's checks failed");
}

#[test]
fn segment_owned_by_another_user_is_refused() {
    let name = unique("foreign");
    let v = Value::create(&name, 7_i64).unwrap();
    if let Err(e) = std::os::unix::fs::chown(shm_path(&name), Some(NOBODY), Some(NOBODY)) {
        println!("skipped: cannot give a file to another user here (not root?): {e}");
        return;
    }
    let n = name.clone();
    in_child(move || {
        let err = Value::<i64>::open(&n).unwrap_err();
        assert!(
            matches!(err, SegmentError::NotPrivate { owner: NOBODY, .. }),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains("belongs to another user"), "{text}");
        assert!(text.contains(&n), "{text}");
        assert_eq!(
            std::io::Error::from(err).kind(),
            std::io::ErrorKind::PermissionDenied
        );
        // The group opt-in does not help with a user of a group we are not in.
        let group = OpenOptions::new().allow_group(true);
        let err = Value::<i64>::open_with(&n, &group).unwrap_err();
        assert!(matches!(err, SegmentError::NotPrivate { .. }), "{err:?}");
    });
    drop(v); // the creator's drop still removes its own file
    assert!(
        leftovers("foreign").is_empty(),
        "{:?}",
        leftovers("foreign")
    );
}

#[test]
fn world_writable_segment_is_refused_even_with_the_group_opt_in() {
    let name = unique("planted");
    let v = Value::create(&name, 7_i64).unwrap();
    set_mode(&name, 0o666); // as a planted file would be: valid header, anyone may write
    let n = name.clone();
    in_child(move || {
        let err = Value::<i64>::open(&n).unwrap_err();
        match &err {
            SegmentError::NotPrivate { mode, reason, .. } => {
                assert_eq!(*mode, 0o666);
                assert!(reason.contains("other users"), "{reason}");
            }
            other => panic!("expected NotPrivate, got {other:?}"),
        }
        let group = OpenOptions::new().allow_group(true);
        let err = Value::<i64>::open_with(&n, &group).unwrap_err();
        assert!(matches!(err, SegmentError::NotPrivate { .. }), "{err:?}");
    });
    // Readable by group only: refused by default, accepted with the opt-in.
    set_mode(&name, 0o640);
    let n = name.clone();
    in_child(move || {
        assert!(matches!(
            Value::<i64>::open(&n),
            Err(SegmentError::NotPrivate { .. })
        ));
        let group = OpenOptions::new().allow_group(true);
        assert_eq!(
            Value::<i64>::open_with(&n, &group).unwrap().get().unwrap(),
            7
        );
    });
    drop(v);
    assert!(
        leftovers("planted").is_empty(),
        "{:?}",
        leftovers("planted")
    );
}

#[test]
fn group_shared_segment_is_created_0660_and_opened_with_the_opt_in() {
    let name = unique("group");
    let group = OpenOptions::new().allow_group(true);
    let v = Value::create_with(&name, 1_u64, &group).unwrap();
    let mode = std::fs::metadata(shm_path(&name))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o660);
    let n = name.clone();
    in_child(move || {
        assert!(matches!(
            Value::<u64>::open(&n),
            Err(SegmentError::NotPrivate { .. })
        ));
        let mine = Value::<u64>::open_with(&n, &OpenOptions::new().allow_group(true)).unwrap();
        mine.set(2).unwrap();
    });
    assert_eq!(v.get().unwrap(), 2);
    // A private segment is created 0600 (set explicitly: the umask cannot widen or narrow it).
    let private = unique("group-private");
    let p = Value::create(&private, 1_u8).unwrap();
    let mode = std::fs::metadata(shm_path(&private))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    drop((v, p));
    assert!(leftovers("group").is_empty(), "{:?}", leftovers("group"));
}
