//! The one platform seam of shmproc: every OS call (memfd, `shm_open`, futex, process liveness)
//! goes through here. Linux is implemented; other targets get stubs that return
//! [`std::io::ErrorKind::Unsupported`] so the crates still build.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::*;

#[cfg(not(target_os = "linux"))]
mod unsupported;
#[cfg(not(target_os = "linux"))]
pub use unsupported::*;
