//! Channel segments as [`Queue::open`] and [`Pipe::open`] find them: a named segment file with
//! a ready header (the header's own checks are `shmproc_shm`'s `header` target) and anything
//! after it — ring capacities derived from the payload length, membership rosters, ring
//! indices — then a few `try_` operations on whatever opened.
//!
//! Input: `[selector][segment file]`; `selector & 1` opens it as a queue or as a pipe. The file
//! is zero-extended to the length its header announces (up to 1 MiB), so seeds need not spell
//! out rosters of zeroes. Inputs shorter than a header or without the ready flag are skipped:
//! `open` would wait half a second for them, and the `header` target covers them.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use shmproc_shm::fuzzing::{CREATOR_OFFSET, PAYLOAD_LEN_OFFSET, READY_OFFSET};
use shmproc_shm::{sys, NAME_PREFIX, PAYLOAD_OFFSET};

use crate::ring::HEADER;
use crate::{Pipe, Queue};

use super::{unique_name, Msg};

/// Longest segment file an input makes.
const MAX_FILE: usize = 1 << 20;

/// Writes the input as a named segment file, opens it as a queue or pipe end, and uses what
/// opened.
///
/// # Panics
/// When the code under test misbehaves (a check below fails), or when `/dev/shm` cannot be
/// written.
pub fn fuzz_open(data: &[u8]) {
    let Some((&selector, image)) = data.split_first() else {
        return;
    };
    if let Some(file) = file_of(image) {
        open_and_use(selector & 1 == 1, &file);
    }
}

/// Opens `file` as a pipe end or a queue and uses it; whether it opened.
fn open_and_use(pipe: bool, file: &[u8]) -> bool {
    let name = write_segment(file);
    if pipe {
        let opened = Pipe::<Msg>::open(&name);
        let _ = shmproc_shm::remove(&name);
        match opened {
            Ok(end) => {
                let sent = end.try_send_bytes(b"fuzz");
                let got = end.try_recv_bytes();
                let _ = (sent, got, end.poll(Duration::ZERO), end.try_recv());
                let _ = end.pending_bytes();
                true
            }
            Err(e) => {
                assert!(!e.to_string().is_empty());
                false
            }
        }
    } else {
        let opened = Queue::<Msg>::open(&name);
        let _ = shmproc_shm::remove(&name);
        match opened {
            Ok(q) => {
                use_queue(&q);
                true
            }
            Err(e) => {
                assert!(!e.to_string().is_empty());
                false
            }
        }
    }
}

/// Writes `file` as a new named segment (mode 0600); its name.
fn write_segment(file: &[u8]) -> String {
    let name = unique_name();
    let path = format!("{}/{NAME_PREFIX}{name}", sys::SHM_DIR);
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .expect("a segment file in /dev/shm");
    out.write_all(file).expect("write a segment file");
    name
}

fn use_queue(q: &Queue<Msg>) {
    let cap = q.capacity() as u64;
    assert!(
        cap.is_power_of_two() && cap > HEADER,
        "a queue of {cap} bytes"
    );
    assert_eq!(q.max_message_len() as u64, cap - HEADER);
    if let Ok(bytes) = q.try_get_bytes() {
        assert!(bytes.len() as u64 <= cap - HEADER);
    }
    let _ = (q.try_put_bytes(b"fuzz"), q.try_get(), q.len(), q.is_empty());
}

/// The segment file for `image`: `None` if it has no ready header, else zero-extended to the
/// length the header announces (if at most [`MAX_FILE`]).
fn file_of(image: &[u8]) -> Option<Vec<u8>> {
    let image = &image[..image.len().min(MAX_FILE)];
    let header = image.get(..PAYLOAD_OFFSET)?;
    let word = |at: usize, n: usize| {
        let mut bytes = [0u8; 8];
        bytes[..n].copy_from_slice(&header[at..at + n]);
        u64::from_le_bytes(bytes)
    };
    if word(READY_OFFSET, 4) == 0 {
        return None;
    }
    let announced = (PAYLOAD_OFFSET as u64).saturating_add(word(PAYLOAD_LEN_OFFSET, 8));
    let mut file = image.to_vec();
    if announced <= MAX_FILE as u64 {
        file.resize(file.len().max(announced as usize), 0);
    }
    Some(file)
}

/// Seed inputs for [`fuzz_open`]: fresh queue and pipe segments of two capacities, header only
/// (creator zeroed; the rest is zeroes, which `file_of` restores).
pub fn open_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for capacity in [64, 1024] {
        for selector in [0_u8, 1] {
            let name = unique_name();
            let path = format!("{}/{NAME_PREFIX}{name}", sys::SHM_DIR);
            let file = if selector == 0 {
                let q = Queue::<Msg>::create_with_capacity(&name, capacity).expect("a queue");
                let file = std::fs::read(&path);
                drop(q);
                file
            } else {
                let end = Pipe::<Msg>::create_with_capacity(&name, capacity).expect("a pipe");
                let file = std::fs::read(&path);
                drop(end);
                file
            };
            let mut header = file.expect("the segment file")[..PAYLOAD_OFFSET].to_vec();
            header[CREATOR_OFFSET..CREATOR_OFFSET + 8].fill(0);
            let mut seed = vec![selector];
            seed.extend_from_slice(&header);
            seeds.push(seed);
        }
    }
    seeds
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parts::Parts;
    use crate::ring::footprint;

    #[test]
    fn seeds_open_and_unready_headers_are_skipped() {
        for seed in open_seeds() {
            let file = file_of(&seed[1..]).expect("a ready header");
            assert!(file.len() > 16 << 10, "zero-extended to {}", file.len());
            assert!(open_and_use(seed[0] == 1, &file));
            fuzz_open(&seed);
        }
        assert!(file_of(&[0; 200]).is_none());
    }

    /// A seed's segment file (0: queue, 1: pipe, of 64-byte rings) with its payload length
    /// shortened by `less` bytes.
    fn shrunk(selector: u8, less: u64) -> Vec<u8> {
        let seed = open_seeds()
            .into_iter()
            .find(|s| s[0] == selector)
            .expect("a seed");
        let mut file = file_of(&seed[1..]).expect("a ready header");
        let at = PAYLOAD_LEN_OFFSET..PAYLOAD_LEN_OFFSET + 8;
        let len = u64::from_le_bytes(file[at.clone()].try_into().expect("8 bytes"));
        file[at].copy_from_slice(&(len - less).to_le_bytes());
        file
    }

    // Found by the `open` target: a payload length that leaves a ring of 1 byte (any power of
    // two below the 64 bytes `create` never goes under) was accepted. A queue's
    // `max_message_len` then underflowed (a panic in debug builds), and a pipe's blocking send
    // spun forever, never sleeping: it streams in batches of half the ring, 0 bytes.
    #[test]
    fn a_queue_segment_whose_ring_is_1_byte_is_refused_on_open() {
        let name = write_segment(&shrunk(0, 63));
        let opened = Queue::<Msg>::open(&name);
        let _ = shmproc_shm::remove(&name);
        let err = opened.expect_err("a ring of 1 byte refused");
        assert!(
            matches!(err, shmproc_shm::SegmentError::Corrupt { .. }),
            "{err}"
        );
    }

    #[test]
    fn a_simplex_pipe_segment_whose_ring_is_1_byte_is_refused() {
        // How a `Sender` or `Receiver` received in a message opens its segment (a duplex pipe's
        // second ring would be misaligned, which was refused already).
        let spec = shmproc_shm::Spec {
            kind: shmproc_shm::Kind::Pipe,
            elem: crate::layout::message_type::<Msg>(),
            payload_len: 2 * std::mem::size_of::<crate::end::EndState>() + footprint(1),
        };
        let seg = shmproc_shm::Segment::create_anonymous(&spec, |_| Ok(())).expect("a segment");
        let err = Parts::opened(seg, 1)
            .err()
            .expect("a ring of 1 byte refused");
        assert!(
            matches!(err, shmproc_shm::SegmentError::Corrupt { .. }),
            "{err}"
        );
    }
}
