//! A lookup of a small key allocates nothing but its returned value (none for a `u64`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use shmproc_collections::SharedMap;

/// Counts this thread's allocations (other test threads do not disturb the count).
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn get_and_contains_key_of_a_small_key_do_not_allocate() {
    let m: SharedMap<String, u64> = SharedMap::new(64).unwrap();
    for i in 0..50 {
        m.insert(format!("key-{i}"), i).unwrap();
    }
    let key = "key-7".to_string();
    let missing = "no-such-key".to_string();
    assert_eq!(m.get(&key).unwrap(), Some(7)); // warm-up (thread-locals of the lock)
    let before = allocations();
    for _ in 0..100 {
        assert_eq!(m.get(&key).unwrap(), Some(7));
        assert_eq!(m.get(&missing).unwrap(), None);
        assert!(m.contains_key(&key).unwrap());
    }
    assert_eq!(allocations() - before, 0);
}
