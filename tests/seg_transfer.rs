//! The thread-locals that collect and hand out descriptors while handles are (de)serialized
//! are put back when a `Serialize` impl (or the code receiving descriptors) panics: afterwards
//! an anonymous handle outside a transfer fails as before, and no descriptor leaks.
//!
//! Checked in a forked child: it has one thread, so counting its open descriptors is exact.

use std::panic::{catch_unwind, AssertUnwindSafe};

use shmproc::raw::{collect_fds, take_transfer_error, with_received_fds};
use shmproc::{Process, Value};

/// Panics when serialized, after whatever came before it in the message.
struct Boom;

impl serde::Serialize for Boom {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        panic!("boom: a Serialize impl panicked (on purpose)")
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn panicking_serialize_leaves_the_collectors_clean() {
    let child = Process::fork(|| {
        let v = Value::new(7_u32).unwrap();
        let before = open_fds();

        // Sending side: the handle's descriptor is collected, then the next field panics.
        let sent = catch_unwind(AssertUnwindSafe(|| {
            collect_fds(|| postcard::to_allocvec(&(&v, Boom)))
        }));
        assert!(sent.is_err());
        assert_eq!(open_fds(), before, "the collected descriptor leaked");
        // Outside any transfer an anonymous handle still cannot be serialized (before the fix
        // the stale collector took its descriptor and this succeeded).
        assert!(postcard::to_allocvec(&v).is_err());
        let message = take_transfer_error().unwrap_or_default();
        assert!(message.contains("anonymous"), "{message}");
        assert_eq!(open_fds(), before, "a descriptor went to a stale collector");

        // Receiving side: a panic while the received descriptors are installed.
        let (bytes, fds) = collect_fds(|| postcard::to_allocvec(&v).unwrap());
        assert_eq!(fds.len(), 1);
        let received = catch_unwind(AssertUnwindSafe(|| {
            with_received_fds(fds, || panic!("boom: receiving code panicked (on purpose)"))
        }));
        assert!(received.is_err());
        assert_eq!(open_fds(), before, "the received descriptor leaked");
        // Descriptor #0 is not handed out outside `with_received_fds` any more.
        assert!(postcard::from_bytes::<Value<u32>>(&bytes).is_err());

        // A proper round trip still works.
        let (bytes, fds) = collect_fds(|| postcard::to_allocvec(&v).unwrap());
        let back: Value<u32> = with_received_fds(fds, || postcard::from_bytes(&bytes)).unwrap();
        assert_eq!(back.get().unwrap(), 7);
    })
    .unwrap();
    assert!(child.join().unwrap().success(), "the child's checks failed");
}
