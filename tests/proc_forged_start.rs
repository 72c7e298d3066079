//! A program linking shmproc serves entries only to the parent that spawned it: a forged
//! `SHMPROC_SPAWN_CHILD` with a socket at descriptor 3, or a setuid start, is refused with a
//! message and a non-zero exit before `main`.

use std::io::Read;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use shmproc::Process;

// Linked so the binary can be a spawned child at all.
#[shmproc::entry]
fn unused(n: u64) -> u64 {
    n
}

/// Runs `program` (a copy of this test binary) as a would-be spawned child: the marker set and
/// `channel` at descriptor 3. Killed after 30 s, so a child that serves (and waits for jobs)
/// fails the test instead of hanging it.
fn run_as_child(program: &Path, channel: RawFd) -> Output {
    let mut cmd = Command::new(program);
    // Had the start been accepted and `main` run, the harness would run no test.
    cmd.args(["--exact", "no-such-test"])
        .env(shmproc::__private::SPAWN_ENV, "forged")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the closure runs in the child between fork and exec and calls only the
    // async-signal-safe fcntl/dup2 on descriptor numbers.
    unsafe {
        cmd.pre_exec(move || {
            let r = if channel == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(channel, 3)
            };
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // A copy just written may be open for writing in a process another test forked meanwhile
    // (ETXTBSY) until that process exits or execs.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut child = loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            started => break started.expect("start the test binary"),
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    child.wait_with_output().unwrap()
}

#[test]
fn a_channel_from_a_stranger_is_refused() {
    // The stranger — not the parent of the child below — makes the socket the child gets.
    let path = std::env::temp_dir().join(format!("shmproc-forge-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let at = path.clone();
    let stranger = Process::fork(move || {
        let listener = UnixListener::bind(&at).unwrap();
        let (mut conn, _) = listener.accept().unwrap();
        let _ = conn.read_to_end(&mut Vec::new()); // hold it until the test lets go
    })
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let conn = loop {
        match UnixStream::connect(&path) {
            Ok(conn) => break conn,
            Err(e) => {
                assert!(Instant::now() < deadline, "stranger not listening: {e}");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    };
    let out = run_as_child(&std::env::current_exe().unwrap(), conn.as_raw_fd());
    drop(conn);
    let _ = std::fs::remove_file(&path);
    let stranger_status = stranger.join_timeout(Duration::from_secs(20)).unwrap();
    if stranger_status.is_none() {
        stranger.kill().unwrap();
    }

    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}: {stderr}", out.status);
    assert!(
        stderr.contains("not by this process's parent") && stderr.contains("refusing"),
        "{stderr}"
    );
    assert!(stranger_status.is_some_and(|s| s.success()));
}

#[test]
fn a_setuid_start_is_refused() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: making a setuid copy of this binary needs root");
        return;
    }
    let dir = std::env::temp_dir().join(format!("shmproc-setuid-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let _cleanup = RemoveOnDrop(dir.clone());
    let copy = dir.join("copy");
    std::fs::copy(std::env::current_exe().unwrap(), &copy).unwrap();
    std::os::unix::fs::chown(&copy, Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o4755)).unwrap();
    if nosuid(&dir) {
        eprintln!("skipped: {} is mounted nosuid", dir.display());
        return;
    }
    // A channel from the real parent (this test): only the setuid start is wrong. Our end is
    // closed at once, so a child that serves sees end-of-stream and exits 0.
    let (ours, theirs) = UnixStream::pair().unwrap();
    drop(ours);
    let out = run_as_child(&copy, theirs.as_raw_fd());

    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}: {stderr}", out.status);
    assert!(stderr.contains("AT_SECURE"), "{stderr}");
}

/// Removes a directory (a setuid binary in it must not outlive the test, even a failed one).
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn nosuid(dir: &Path) -> bool {
    let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: statvfs fills a zeroed plain struct from a NUL-terminated path.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        libc::statvfs(path.as_ptr(), &mut st) == 0 && st.f_flag & libc::ST_NOSUID != 0
    }
}
