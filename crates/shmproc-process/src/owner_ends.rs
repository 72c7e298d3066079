//! The owner ends of channels: the socket ends this process keeps to talk to its children
//! (a spawned `Process`, a pool worker). A child notices its owner's death as end-of-stream on
//! its own end — but only if no other process holds a copy of the owner's end.
//!
//! Spawned children never get one (the ends are close-on-exec). A forked child gets a copy of
//! every descriptor, close-on-exec or not, so `Process::fork`'s child calls
//! [`release_inherited`] before running its closure: each owner end listed here is replaced
//! by an inert descriptor (so a forked pool worker, or any child forked while a pool runs, does
//! not keep the pool's workers alive after the pool's owner died).
//!
//! The list is a fixed table of atomics, not a `Mutex<Vec<_>>`: a fork child reads it whatever
//! other threads of the parent were doing at the time of the fork. Each entry packs the
//! descriptor number with the socket's inode, so the child replaces a number only while it
//! still is that socket (another thread may have closed and reused the number between the
//! kernel copying the descriptor table and the memory). Past [`SLOTS`] live owner ends, more are
//! simply not listed: their copies stay open in fork children, as before this table existed.
//!
//! | who holds an owner end         | how it lets go                                   |
//! |--------------------------------|--------------------------------------------------|
//! | the owner (`Process`, pool)    | drop (unlisted, then closed), or its death       |
//! | a spawned child                | never had it (close-on-exec)                     |
//! | a child of `Process::fork`     | replaced by an inert descriptor before `f` runs  |
//! | a child of a raw `libc::fork`  | keeps it (not covered)                           |

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::sys;

/// Most owner ends listed at once.
const SLOTS: usize = 1024;

/// `0` is a free slot; otherwise `(fd + 1) << 32 | (inode as u32)` (socket inodes are 32-bit).
static ENDS: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];

fn pack(fd: i32, ino: u64) -> u64 {
    ((fd as u64 + 1) << 32) | (ino & 0xffff_ffff)
}

fn unpack(entry: u64) -> (i32, u64) {
    (((entry >> 32) - 1) as i32, entry & 0xffff_ffff)
}

/// A listed owner end; unlists it on drop (before its owner closes the descriptor).
#[derive(Debug)]
pub(crate) struct Listed {
    slot: usize,
    entry: u64,
}

/// Lists `fd` as an owner end. `None` if the table is full or its inode cannot be read (it
/// then stays unlisted: see the module docs).
pub(crate) fn list(fd: BorrowedFd<'_>) -> Option<Listed> {
    let ino = sys::inode(fd).ok()?;
    let entry = pack(fd.as_raw_fd(), ino);
    ENDS.iter().enumerate().find_map(|(slot, cell)| {
        cell.compare_exchange(0, entry, Ordering::AcqRel, Ordering::Relaxed)
            .ok()
            .map(|_| Listed { slot, entry })
    })
}

impl Drop for Listed {
    fn drop(&mut self) {
        // Only our own entry: in a fork child the table was cleared and may list others now.
        let _ =
            ENDS[self.slot].compare_exchange(self.entry, 0, Ordering::AcqRel, Ordering::Relaxed);
    }
}

/// In a fork child, before anything else runs: replaces every inherited owner end with an inert
/// descriptor and clears the table. Allocates nothing; uses no lock.
pub(crate) fn release_inherited() {
    let mut inert = None;
    for cell in &ENDS {
        // Load before swapping: writing every slot would copy the table's pages in the child.
        if cell.load(Ordering::Acquire) == 0 {
            continue;
        }
        let entry = cell.swap(0, Ordering::AcqRel);
        if inert.is_none() {
            // An eventfd: nothing to read, never at end-of-stream, needs no file system.
            inert = sys::eventfd().ok();
        }
        let Some(inert) = &inert else {
            // Out of descriptors: leave the copies open rather than close numbers that stale
            // handles in this child could close a second time.
            return;
        };
        let (fd, ino) = unpack(entry);
        sys::replace_socket(fd, ino, inert.as_fd());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::Channel;
    use crate::Process;
    use std::time::Duration;

    #[test]
    fn a_fork_child_sees_end_of_stream_once_the_owner_drops_its_end() {
        let (ours, theirs) = Channel::pair().unwrap();
        // The child got a copy of `ours` too; it must let go of it, or it waits forever.
        let p = Process::fork(move || assert!(theirs.recv(None).unwrap().is_none())).unwrap();
        drop(ours);
        let status = p.join_timeout(Duration::from_secs(20)).unwrap();
        if status.is_none() {
            p.kill().unwrap();
        }
        assert!(status.is_some_and(|s| s.success()), "{status:?}");
    }

    #[test]
    fn entries_round_trip() {
        for (fd, ino) in [(0, 1), (3, 0xffff_ffff), (i32::MAX - 1, 7)] {
            assert_ne!(pack(fd, ino), 0);
            assert_eq!(unpack(pack(fd, ino)), (fd, ino));
        }
    }
}
