//! Roster: members that die without leaving are found.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::{assert_killed, die_now, flag, wait_for};
use shmproc::raw::{Segment, SharedRef, Spec, TypeInfo};
use shmproc::{Kind, Process, Roster};

#[test]
fn a_member_killed_without_leaving_is_reported_dead_and_purged() {
    let spec = Spec {
        kind: Kind::Raw,
        elem: TypeInfo::none(),
        payload_len: std::mem::size_of::<Roster>(),
    };
    let seg = Arc::new(Segment::create_anonymous(&spec, |_| Ok(())).unwrap());
    let roster: SharedRef<Roster> = SharedRef::new(seg, 0).unwrap();
    roster.join().unwrap();
    let (joined, r) = (flag(), roster.clone());
    let j = joined.clone();
    let child = Process::fork(move || {
        r.join().unwrap();
        j.store(1, Ordering::Release);
        die_now();
    })
    .unwrap();
    wait_for(&joined, 1);
    let status = child.join().unwrap();
    assert_killed(status);
    assert_eq!(roster.dead_member(), Some(child.pid()));
    assert_eq!(roster.live_members(), 1);
    assert!(!roster.has_live_member_besides_me());
    assert_eq!(roster.purge_dead(), 1);
    assert_eq!(roster.dead_member(), None);
    assert!(roster.is_member());
}
