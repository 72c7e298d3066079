//! Fuzz target of this crate (not a public API): header validation on open.
//!
//! [`fuzz_header`] is called by both the libFuzzer harness (`fuzz/`, nightly) and the stable
//! driver (`crates/shmproc-fuzz`), so both exercise exactly this code. It must never panic on any
//! input: a panic here is a bug in the code under test (or in its checks below).

use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::Duration;

use crate::header::{HeaderFields, RawHeader, PAYLOAD_OFFSET};
use crate::segment::PASSED_LABEL;
use crate::validate::check_kind_and_type;
use crate::{sys, Kind, Segment, SegmentError, Spec, TypeInfo};

/// Longest segment file a fuzz input makes (bytes after the selector).
pub const MAX_IMAGE: usize = 64 << 10;
/// Where a header keeps its ready word (an `open` waits while it is 0), for targets that open
/// segments by name and must not wait.
pub const READY_OFFSET: usize = std::mem::offset_of!(RawHeader, ready);
/// Where a header keeps the payload length (little-endian `u64`).
pub const PAYLOAD_LEN_OFFSET: usize = std::mem::offset_of!(HeaderFields, payload_len);
/// Where a header keeps its creator's pid and start time (two `u32`s).
pub const CREATOR_OFFSET: usize = std::mem::offset_of!(HeaderFields, creator_pid);

/// What a fuzz input's first byte asks the segment to be opened as (index modulo the length).
const EXPECTED: [(Kind, TypeInfo); 8] = [
    (Kind::Raw, NONE),
    (Kind::Value, elem("u64", 8, 8)),
    (Kind::Array, elem("[u8; 3]", 3, 1)),
    (Kind::Lock, NONE),
    (Kind::Barrier, NONE),
    // Channels record the message type with size 0 (see `shmproc_channel`).
    (Kind::Queue, elem("alloc::string::String", 0, 1)),
    (Kind::Pipe, elem("u8", 0, 1)),
    // A name longer than the 48 bytes a header stores.
    (
        Kind::Value,
        elem(
            "std::collections::hash::map::HashMap<alloc::string::String, u64>",
            48,
            8,
        ),
    ),
];

const NONE: TypeInfo = elem("", 0, 1);

const fn elem(name: &'static str, size: u32, align: u32) -> TypeInfo {
    TypeInfo { name, size, align }
}

/// Writes `data[1..]` (at most [`MAX_IMAGE`] bytes) into a new size-sealed memfd and opens it
/// as a segment of the kind and element type `data[0]` picks, through the validation
/// [`Segment::open_fd`] runs (without its bounded wait for an unfinished creator, so that
/// inputs without a ready flag take microseconds, not half a second). The result must be `Ok`
/// or a typed error; on `Ok`, the payload accessors are exercised with offsets taken from the
/// payload itself.
///
/// # Panics
/// When the code under test misbehaves (a check below fails), or when the OS refuses a memfd.
pub fn fuzz_header(data: &[u8]) {
    let Some((&selector, image)) = data.split_first() else {
        return;
    };
    let image = &image[..image.len().min(MAX_IMAGE)];
    let (kind, elem) = EXPECTED[usize::from(selector) % EXPECTED.len()];
    match open_image(image, kind, elem) {
        Ok((seg, fields)) => check_opened(&seg, &fields, image, kind, elem),
        Err(e) => {
            // Every error has a message and maps to an `io::Error`.
            assert!(!e.to_string().is_empty());
            let _ = std::io::Error::from(e);
        }
    }
}

/// `image` as the content of a size-sealed memfd, opened as `open_fd` does (without waiting).
fn open_image(
    image: &[u8],
    kind: Kind,
    elem: TypeInfo,
) -> Result<(Segment, HeaderFields), SegmentError> {
    let file = sys::memfd_create("shmproc-fuzz", image.len() as u64).expect("memfd");
    file.write_all_at(image, 0).expect("write to a memfd");
    sys::seal_size(&file).expect("seal a memfd");
    let (seg, fields) = Segment::open_file_within(file, None, Duration::ZERO)?;
    check_kind_and_type(PASSED_LABEL, &fields, kind, elem)?;
    Ok((seg, fields))
}

/// What must hold of a segment that passed validation, and a workout of its accessors.
fn check_opened(seg: &Segment, fields: &HeaderFields, image: &[u8], kind: Kind, elem: TypeInfo) {
    let len = seg.payload_len();
    assert!(
        PAYLOAD_OFFSET + len <= image.len(),
        "payload of {len} bytes accepted in a file of {}",
        image.len()
    );
    assert_eq!(fields.payload_len, len as u64);
    assert_eq!(fields.kind, kind as u32);
    assert_eq!(
        (fields.elem_size, fields.elem_align),
        (elem.size, elem.align)
    );
    assert!(fields.elem_align.is_power_of_two() && fields.elem_align <= 64);
    let _ = seg.is_persistent();

    // Offsets and counts as a corrupt peer would plant them, from the payload's first words.
    let word = |i: usize| {
        let at = PAYLOAD_OFFSET + 8 * i;
        image
            .get(at..at + 8)
            .map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    };
    for (offset, count) in [
        (word(0), word(1)),
        (word(0) % 64, 1),
        (len as u64, 0),
        (len as u64, 1),
        (len.saturating_sub(8) as u64, 1),
    ] {
        let (offset, count) = (offset as usize, count as usize);
        match seg.ptr::<AtomicU64>(offset, count) {
            Ok(_) => {
                let end = offset + 8 * count;
                assert!(end <= len, "range {offset}..{end} accepted in {len} bytes");
                if count > 0 {
                    // Touch the first and the last element: outside the mapping this faults.
                    let first = seg.atomic::<AtomicU64>(offset).expect("first element");
                    let last = seg.atomic::<AtomicU64>(end - 8).expect("last element");
                    let _ = first.load(Ordering::Relaxed) ^ last.load(Ordering::Relaxed);
                }
            }
            Err(e) => assert!(matches!(e, SegmentError::Corrupt { .. }), "{e:?}"),
        }
    }
    if len > 0 {
        let last = seg.atomic::<AtomicU8>(len - 1).expect("last payload byte");
        assert_eq!(
            last.load(Ordering::Relaxed),
            image[PAYLOAD_OFFSET + len - 1]
        );
    }
    assert!(seg.atomic::<AtomicU8>(len).is_err(), "one past the payload");
}

/// Seed inputs for [`fuzz_header`]: a valid segment of each expected kind and type (and, for
/// the first, payloads of a few sizes) (creator pid and start time zeroed, so seeds are reproducible).
pub fn header_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    let sizes = |selector: usize| {
        if selector == 0 {
            &[0, 24, 200][..]
        } else {
            &[24]
        }
    };
    for (selector, (kind, elem)) in EXPECTED.iter().enumerate() {
        for &payload_len in sizes(selector) {
            let spec = Spec {
                kind: *kind,
                elem: *elem,
                payload_len,
            };
            let seg = Segment::create_anonymous(&spec, |seg| {
                for i in 0..payload_len {
                    let byte = seg.atomic::<AtomicU8>(i)?;
                    byte.store(i as u8, Ordering::Relaxed);
                }
                Ok(())
            })
            .expect("an anonymous segment");
            let mut image = vec![0u8; PAYLOAD_OFFSET + payload_len];
            seg.file()
                .read_exact_at(&mut image, 0)
                .expect("read a memfd");
            image[CREATOR_OFFSET..CREATOR_OFFSET + 8].fill(0);
            let mut seed = vec![selector as u8];
            seed.extend_from_slice(&image);
            seeds.push(seed);
        }
    }
    seeds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_open_cleanly_and_short_or_unready_images_fail_fast() {
        for seed in header_seeds() {
            let (kind, elem) = EXPECTED[usize::from(seed[0])];
            let opened = open_image(&seed[1..], kind, elem);
            assert!(opened.is_ok(), "{:?}", opened.err());
            fuzz_header(&seed);
        }
        let started = std::time::Instant::now();
        fuzz_header(&[0]);
        fuzz_header(&[0; 200]);
        assert!(started.elapsed() < Duration::from_millis(400));
    }
}
