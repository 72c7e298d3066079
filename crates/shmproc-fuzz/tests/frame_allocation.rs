//! Regression test for a bug the `frames` target found: a frame header announcing up to 2 GiB
//! made the transport allocate (and zero) the whole body before a single byte of it had arrived,
//! so any peer — a buggy child, or whoever is at the other end of a forged channel — could make
//! a parent or worker ask for 2 GiB per frame (an abort where memory is tight; libFuzzer's
//! out-of-memory report). Its own test binary: the allocator below watches every allocation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, remembering the largest single allocation.
struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call unchanged to the system allocator.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Largest = Largest;

#[test]
fn a_frame_header_announcing_2_gib_does_not_allocate_it_before_the_bytes_arrive() {
    // No descriptors, one piece: a header of 2^31 bytes and no fd, then 4 bytes, then the end.
    let input = [0, 255, 0, 0, 0, 0, 0x80, 0, 0, 0, 0, 1, 2, 3, 4];
    shmproc_process::fuzzing::fuzz_frames(&input);
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(largest < 16 << 20, "one allocation of {largest} bytes");
}
