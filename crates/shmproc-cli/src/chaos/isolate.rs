//! A private `/dev/shm` for a chaos run: a new mount namespace with a fresh tmpfs over
//! `/dev/shm`, inherited by every child (forked or spawned). Inside it `clean` can run as users
//! run it — every stale segment, while the trials go on — without touching anyone else's
//! segments, and no other process (another user of shmproc, another version's `clean`) can
//! touch ours.

use std::ffi::CString;
use std::io;

/// Moves this process into a new mount namespace with an empty tmpfs on `/dev/shm`.
///
/// Must run before this process uses any shmproc object (its liveness file would otherwise
/// be the outer one while spawned children would use the inner one) and before it starts a
/// thread.
///
/// # Errors
/// Why not (no `CAP_SYS_ADMIN`, shmproc already in use, …); nothing changed that matters then:
/// at worst this process has a mount namespace of its own that sees the same mounts.
pub fn isolate() -> Result<(), String> {
    if uses_shm() {
        return Err("this process already has a file of /dev/shm open".into());
    }
    // SAFETY: unshare takes only flags and changes nothing in this process's memory.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return Err(format!(
            "unshare(CLONE_NEWNS): {}",
            io::Error::last_os_error()
        ));
    }
    // Our mounts must not propagate back to the namespace we came from.
    mount(None, "/", None, libc::MS_REC | libc::MS_PRIVATE, None)?;
    mount(
        Some("tmpfs"),
        "/dev/shm",
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=1777"),
    )
}

/// Whether this process has a file under `/dev/shm` open.
fn uses_shm() -> bool {
    std::fs::read_dir("/proc/self/fd").is_ok_and(|fds| {
        fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|target| target.starts_with("/dev/shm"))
        })
    })
}

fn mount(
    source: Option<&str>,
    target: &str,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<(), String> {
    let c = |s: &str| CString::new(s).map_err(|e| e.to_string());
    let (source, fstype, data) = (
        source.map(c).transpose()?,
        fstype.map(c).transpose()?,
        data.map(c).transpose()?,
    );
    let target_c = c(target)?;
    let ptr = |s: &Option<CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: every pointer is null or a NUL-terminated string that outlives the call.
    let r = unsafe {
        libc::mount(
            ptr(&source),
            target_c.as_ptr(),
            ptr(&fstype),
            flags,
            ptr(&data).cast(),
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(format!("mount {target}: {}", io::Error::last_os_error()))
    }
}
